"""One writer per output location: a lock file (local) or lock object (``s3://``) held while a run writes.

A run that targets an output a live run is writing fails at once, naming the other run's
host, process id and start time. The lock is created atomically: ``O_CREAT | O_EXCL``
locally, a conditional ``PUT`` (``If-None-Match: *``) on S3, so two runs that start at the
same moment cannot both win. A lock left by a run that died is *stale*: when its owner ran on
this host, in this PID namespace, and its process is gone, it is removed and taken over.
A lock from another host cannot be judged from here; the message names the lock, to be
deleted by hand once that run is known to be gone. Before publishing, a run re-checks that
the lock is still its own (:meth:`OutputLock.verify`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from geoseg.errors import OutputError
from geoseg.io import storage

__all__ = ["LOCK_NAME", "LockOwner", "OutputLock", "pid_alive"]

log = logging.getLogger(__name__)

LOCK_NAME = ".geoseg.lock"
"""Name of the lock file / object inside the output location."""


@dataclass(frozen=True)
class LockOwner:
    """Who holds a lock: host name, PID namespace (Linux), process id, command, start time (UTC ISO 8601)."""

    host: str
    pid: int
    started: str
    command: str = "geoseg"
    pidns: int | None = None
    id: str = ""

    @classmethod
    def me(cls, command: str) -> LockOwner:
        return cls(socket.gethostname(), os.getpid(), datetime.now(UTC).isoformat(timespec="seconds"), command,
                   pid_namespace(), uuid.uuid4().hex)

    @classmethod
    def from_bytes(cls, data: bytes) -> LockOwner | None:
        """The owner recorded in a lock's content; None when it cannot be read (being written, or damaged)."""
        try:
            doc = json.loads(data)
            return cls(str(doc["host"]), int(doc["pid"]), str(doc.get("started", "?")), str(doc.get("command", "geoseg")),
                       doc.get("pidns"), str(doc.get("id", "")))
        except (ValueError, TypeError, KeyError):
            return None

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    def describe(self) -> str:
        return f"`geoseg {self.command}` on host {self.host}, pid {self.pid}, started {self.started}"

    def is_dead(self) -> bool:
        """Whether this owner is known to be gone: it ran on this host, in this PID namespace, and its pid is free."""
        return (self.host == socket.gethostname() and self.pidns == pid_namespace() and not pid_alive(self.pid))


class OutputLock:
    """The lock of one output location (local directory or ``s3://`` prefix); a context manager.

    ``acquire()`` creates the location (locally) and the lock, or raises :class:`OutputError`
    (exit 2) naming the live run that holds it. ``created`` lists the folders made by
    this run (a failed run removes them again when they hold nothing else).
    """

    def __init__(self, out: str | Path, command: str = "segment"):
        self.out = str(out)
        self.uri = storage.join(self.out, LOCK_NAME)
        self.owner = LockOwner.me(command)
        self.created: list[Path] = []  # the folders this run made, innermost first
        self.held = False

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> OutputLock:
        if not storage.is_remote(self.out):
            path = Path(self.out)
            self.created = [d for d in (path, *path.parents) if not d.exists()]
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"{self.out}: cannot create the output directory ({exc}); "
                                  "choose a writable --output") from exc
        for _ in range(2):
            if self._create():
                self.held = True
                return self
            other = self._read()
            if other is None and not storage.exists(self.uri):
                continue  # released between the two calls: try again
            if other is not None and other.is_dead():
                log.warning("%s: removing the lock of a run that no longer exists (%s)", self.out, other.describe())
                storage.delete(self.uri)
                continue
            break
        self.remove_created_dir()
        who = other.describe() if other is not None else "a run whose lock cannot be read"
        raise OutputError(
            f"{self.out}: another run is writing to this output ({who}); wait for it to finish or choose another "
            f"--output. If that run no longer exists, delete {self.uri} and rerun"
        )

    def verify(self) -> None:
        """Raise :class:`OutputError` unless the lock is still this run's (checked before publishing)."""
        other = self._read()
        if other is None or other.id != self.owner.id:
            who = other.describe() if other is not None else "nobody: it was deleted"
            raise OutputError(f"{self.out}: the output lock {self.uri} is no longer this run's (now held by {who}); "
                              "nothing was published. Rerun once the other run has finished")

    def release(self) -> None:
        """Remove the lock if it is still this run's; never raises (the run's own outcome is what matters)."""
        if not self.held:
            return
        self.held = False
        try:
            other = self._read()
            if other is not None and other.id == self.owner.id:
                storage.delete(self.uri)
        except (OutputError, OSError) as exc:
            log.warning("could not remove the output lock %s (%s); delete it by hand", self.uri, exc)

    def remove_created_dir(self) -> None:
        """Remove the local output folder and the parents this run created, where empty (after a failed run)."""
        while self.created:
            try:
                os.rmdir(self.created[0])
            except OSError:
                return  # it holds something (a journal to resume from, a failure list): keep it
            self.created.pop(0)

    def _create(self) -> bool:
        """Create the lock atomically; False if it exists."""
        data = self.owner.to_bytes()
        if not storage.is_remote(self.uri):
            try:
                fd = os.open(self.uri, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            except OSError as exc:
                raise OutputError(f"{self.out}: cannot write the output lock ({exc}); choose a writable --output") from exc
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return True
        return storage.create_exclusive(self.uri, data)

    def _read(self) -> LockOwner | None:
        if not storage.is_remote(self.uri):
            try:
                return LockOwner.from_bytes(Path(self.uri).read_bytes())
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise OutputError(f"{self.uri}: cannot read the output lock ({exc})") from exc
        if not storage.exists(self.uri):
            return None
        return LockOwner.from_bytes(storage.read_bytes(self.uri))


def pid_namespace() -> int | None:
    """Identity of this process's PID namespace (Linux), None where there is none to read."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (in this PID namespace)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

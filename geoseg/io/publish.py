"""Publishing results: a private staging directory, moved into place atomically once complete.

Everything is first written under a staging directory (:class:`Staging`), then moved
into place (atomic renames locally, upload + server-side copy on S3) once complete, so
a failed run never leaves a partial file under a final name and never clobbers an
existing result.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.errors import OutputError
from geoseg.io import storage
from geoseg.io.cog import atomic_path
from geoseg.io.lock import LockOwner
from geoseg.io.urls import redact

log = logging.getLogger(__name__)


class Staging:
    """Where a run writes before publishing: ``publish()`` moves finished files under ``out``.

    Local ``out``: a private directory inside it (same filesystem), published by atomic
    renames. ``s3://`` ``out``: a local scratch directory (``$GEOSEG_SCRATCH`` or the
    system temp dir); publishing uploads every file under a private staging prefix
    first, then copies them server-side to their final keys, ``manifest.json`` last, so
    a failed upload never leaves a partial object or a half-replaced result under the
    final keys. When a result is replaced (``overwrite``), its ``manifest.json`` is
    deleted before the first file is replaced: a manifest always describes the files
    next to it (a copy that fails midway leaves no manifest, not an old one over new
    files). Staging directories of dead runs on this host are removed.
    """

    def __init__(self, out: str | Path, overwrite: bool, final_names: Iterable[str]):
        self.out = str(out)
        self.remote = storage.is_remote(self.out)
        self.overwrite = overwrite
        self._refuse_existing(final_names, "already exist")
        self.id = uuid.uuid4().hex[:12]
        parent = Path(os.environ.get("GEOSEG_SCRATCH") or tempfile.gettempdir()) if self.remote else Path(self.out)
        try:
            parent.mkdir(parents=True, exist_ok=True)
            _remove_dead_staging(parent)
            self.dir = parent / f"{STAGING_PREFIX}{self.id}"
            self.dir.mkdir()
            (self.dir / OWNER_FILE).write_bytes(LockOwner.me("staging").to_bytes())
        except OSError as exc:
            raise OutputError(f"{parent}: cannot create the output directory ({exc}); choose a writable --output") from exc

    def _refuse_existing(self, names: Iterable[str], how: str) -> None:
        if self.overwrite:
            return
        existing = [n for n in names if storage.exists(storage.join(self.out, n))]
        if existing:
            raise OutputError(
                f"{self.out}: outputs {how} ({', '.join(existing[:4])}{'...' if len(existing) > 4 else ''}); "
                "pass --overwrite (or set `overwrite: true` in the config) to replace them, or choose another --output"
            )

    def path(self, name: str) -> Path:
        return self.dir / name

    def publish(self, names: Iterable[str]) -> list[str]:
        """Move staged ``names`` into the output location, manifest last; return their final paths/URIs.

        Without ``overwrite``, outputs that appeared since the run started are never replaced (the
        names are checked again). With it, the files the replaced ``manifest.json`` listed and this
        run does not write are deleted, so the folder holds exactly what the new manifest lists.
        """
        names = sorted(names, key=lambda n: n == MANIFEST)
        self._refuse_existing(names, "appeared while this run was working")
        stale = self._stale_outputs(names) if MANIFEST in names else []
        out = []
        if not self.remote:
            if MANIFEST in names:
                Path(self.out, MANIFEST).unlink(missing_ok=True)
            for n in stale:
                Path(self.out, n).unlink(missing_ok=True)
            for n in names:
                os.replace(self.dir / n, Path(self.out) / n)
                out.append(str(Path(self.out) / n))
            return out
        staged = storage.join(self.out, f"{STAGING_PREFIX}{self.id}")
        try:
            for n in names:
                storage.upload(self.dir / n, storage.join(staged, n))
            if MANIFEST in names:  # everything is uploaded: the old result stops being "complete" now
                storage.delete(storage.join(self.out, MANIFEST))
            for n in stale:
                storage.delete(storage.join(self.out, n))
            for n in names:
                out.append(storage.copy(storage.join(staged, n), storage.join(self.out, n)))
        finally:
            try:
                storage.delete_tree(staged)
            except OutputError as exc:  # never hide why the publish failed
                log.warning("could not remove the staging prefix %s (%s); delete it by hand", staged, exc)
        return out

    def _stale_outputs(self, names: list[str]) -> list[str]:
        """Files the manifest being replaced lists that this run does not write (plain names only)."""
        uri = storage.join(self.out, MANIFEST)
        if not self.overwrite or not storage.exists(uri):
            return []
        try:
            listed = json.loads(storage.read_bytes(uri)).get("files") or []
        except (ValueError, AttributeError) as exc:
            log.warning("%s cannot be read (%s); files of the run it describes are left in place", uri, exc)
            return []
        keep = set(names)
        return sorted({n for n in listed if isinstance(n, str) and n not in keep and n == Path(n).name
                       and not n.startswith(".") and n != MANIFEST})

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


MANIFEST = "manifest.json"
STAGING_PREFIX = ".geoseg-staging-"
OWNER_FILE = ".owner.json"


def _remove_dead_staging(parent: Path) -> None:
    """Delete staging directories in ``parent`` left by runs on this host whose process is gone.

    Only a directory whose owner ran on this host *and* in this PID namespace can be
    judged: containers sharing a host name (host networking) and a volume see each
    other's PIDs as absent, so their live staging directories are left alone.
    """
    for d in parent.glob(f"{STAGING_PREFIX}*"):
        try:
            owner = LockOwner.from_bytes((d / OWNER_FILE).read_bytes())
        except OSError:
            continue
        if owner is not None and owner.is_dead():
            log.info("removing %s, left by a run that no longer exists", d)
            shutil.rmtree(d, ignore_errors=True)


DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG)
DISK_MESSAGES = ("No space left on device", "Disk quota exceeded", "Read-only file system")
"""Write failures of an output location (also as the text of GDAL's errors, which carry no errno)."""


def output_write_error(out: str | Path, exc: BaseException, kept: str = "") -> OutputError | None:
    """An :class:`OutputError` naming ``out`` if ``exc`` is a full, read-only or over-quota disk, else None.

    ``kept``: what the run leaves for a rerun (appended to the message).
    """
    if isinstance(exc, OutputError) or not isinstance(exc, Exception):
        return None
    said = getattr(exc, "errno", None) in DISK_ERRNOS or any(m in str(exc) for m in DISK_MESSAGES)
    state = None if said else _disk_state(out)  # GDAL's words may be only "failed to write/read ..."
    if not said and state is None:
        return None
    cause = f"{state}: {exc}" if state else str(exc)
    return OutputError(f"{redact(str(out))}: cannot write the outputs ({cause}); free space (or quota) there, or "
                       f"choose another --output. Nothing was published{kept}")


@contextmanager
def naming_write_errors(out: str | Path, kept: str = "") -> Iterator[None]:
    """Re-raise a full, read-only or over-quota disk met inside the block as :func:`output_write_error`'s
    :class:`OutputError` naming ``out``; every other exception passes unchanged."""
    try:
        yield
    except Exception as exc:
        error = output_write_error(out, exc, kept)
        if error is None:
            raise
        raise error from exc


def _disk_state(out: str | Path) -> str | None:
    """What is wrong with the local filesystem of ``out`` (or its nearest existing parent): read-only, or under
    1 MiB free; None when nothing is (or it is not local)."""
    if storage.is_remote(out):
        return None
    path = Path(out)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return "Read-only file system"
    free = st.f_bavail * st.f_frsize
    return f"No space left on device ({free // 1024} KiB free)" if free < 2**20 else None


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as indented, strict JSON (:func:`json_text`), atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(data))
    return path


def json_text(data: Any) -> str:
    """``data`` as indented JSON text ending in a newline: numpy values and paths converted, and every NaN or
    ±inf written as ``null``, never as the bare ``NaN``/``Infinity`` that strict JSON parsers reject."""
    return json.dumps(finite(data), indent=2, default=json_default, allow_nan=False) + "\n"


def finite(o: Any) -> Any:
    """``o`` with numpy arrays and scalars turned into Python values and non-finite floats into None, recursively."""
    if isinstance(o, dict):
        return {k: finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [finite(v) for v in o]
    if isinstance(o, np.ndarray):
        return finite(o.tolist())
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, float | np.floating):
        f = float(o)
        return f if math.isfinite(f) else None
    return o


def json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")

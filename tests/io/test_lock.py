"""One writer per output (:mod:`geoseg.io.lock`): atomic creation, stale detection, verify and release."""

from __future__ import annotations

import os
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from geoseg.errors import OutputError
from geoseg.io.lock import LOCK_NAME, LockOwner, OutputLock, pid_namespace

DEAD_PID = 2**22 + 12345  # above pid_max's default: no such process


def try_acquire(out) -> OutputLock | None:
    try:
        return OutputLock(out).acquire()
    except OutputError:
        return None


def test_of_many_runs_starting_at_once_exactly_one_gets_the_lock(tmp_path):
    out = tmp_path / "out"
    with ThreadPoolExecutor(8) as pool:
        got = [lk for lk in pool.map(try_acquire, [out] * 16) if lk is not None]
    assert len(got) == 1
    assert LockOwner.from_bytes((out / LOCK_NAME).read_bytes()).id == got[0].owner.id
    got[0].verify()
    got[0].release()
    assert not (out / LOCK_NAME).exists()


@pytest.mark.parametrize(("owner", "stale"), [
    ({"pid": DEAD_PID}, True),
    ({}, False),  # this very process: alive
    ({"pid": DEAD_PID, "pidns": -1}, False),  # another PID namespace (a container): cannot be judged
    ({"pid": DEAD_PID, "host": "elsewhere"}, False),
])
def test_only_a_lock_whose_owner_is_known_dead_is_taken_over(tmp_path, owner, stale):
    me = {"host": socket.gethostname(), "pid": os.getpid(), "pidns": pid_namespace()}
    doc = LockOwner(**{**me, **owner}, started="2026-12-01T00:00:00+00:00", command="segment", id="old")
    tmp_path.joinpath(LOCK_NAME).write_bytes(doc.to_bytes())
    lock = try_acquire(tmp_path)
    assert (lock is not None) == stale
    held = LockOwner.from_bytes(tmp_path.joinpath(LOCK_NAME).read_bytes())
    assert held.id == (lock.owner.id if lock else "old")


def test_release_never_removes_a_lock_another_run_holds(tmp_path):
    lock = OutputLock(tmp_path).acquire()
    other = LockOwner("elsewhere", 7, "2026-12-01T00:00:00+00:00", id="theirs")
    tmp_path.joinpath(LOCK_NAME).write_bytes(other.to_bytes())
    with pytest.raises(OutputError, match="no longer this run's .now held by `geoseg geoseg` on host elsewhere, pid 7"):
        lock.verify()
    lock.release()
    assert LockOwner.from_bytes(tmp_path.joinpath(LOCK_NAME).read_bytes()).id == "theirs"


def test_an_unreadable_lock_is_held_and_named(tmp_path):
    tmp_path.joinpath(LOCK_NAME).write_bytes(b"")
    with pytest.raises(OutputError, match="a run whose lock cannot be read"):
        OutputLock(tmp_path).acquire()


def test_a_failed_run_removes_only_the_empty_folder_it_created(tmp_path):
    lock = OutputLock(tmp_path / "a" / "b").acquire()
    assert lock.created
    lock.release()
    lock.remove_created_dir()
    assert not (tmp_path / "a").exists()  # and its parent, made for it
    lock = OutputLock(tmp_path / "c").acquire()
    (tmp_path / "c" / "kept.json").write_text("{}")
    lock.release()
    lock.remove_created_dir()
    assert (tmp_path / "c" / "kept.json").exists()

"""Nothing lost (#13): one writer per output, clean overwrite and failure, interrupts that say how to resume.

The real ``geoseg`` CLI on tiny rasters (helpers of :mod:`tests.system.test_bad_inputs`). A run that fails leaves the
output location byte-identical to what it was (or, where it created the folder, no folder); a run that succeeds
leaves exactly the new complete result (what its ``manifest.json`` lists) next to the user's own files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from rasterio.windows import Window

from geoseg.cli import main
from geoseg.errors import ExitCode
from geoseg.io import storage
from geoseg.io.lock import LOCK_NAME, LockOwner, OutputLock
from geoseg.segment.journal import JOURNAL_DIR
from tests.helpers import NC_IMAGE, REPO, crop_raster, prior_output, snapshot
from tests.system.test_bad_inputs import scene, segment

HOLD = ("import sys, time; from geoseg.io.lock import OutputLock; l = OutputLock(sys.argv[1], 'segment').acquire(); "
        "print('held', flush=True); time.sleep(120)")
"""A live process that holds the output lock (as a running ``geoseg segment`` does) until it is killed."""


def holder(out: str) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, out], stdout=subprocess.PIPE, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert p.stdout is not None and p.stdout.readline().strip() == "held"
    return p


def journal_tiles(out: Path) -> int:
    """How many finished tiles the journal under ``out`` holds (read from its chunks)."""
    import numpy as np

    return sum(len(np.load(c)["tile"]) for c in out.glob(f"{JOURNAL_DIR}/*/*.npz"))


def listed(out: Path) -> set[str]:
    return set(json.loads((out / "manifest.json").read_text())["files"]) | {"manifest.json"}


def test_a_run_into_an_output_a_live_run_is_writing_fails_at_once_naming_that_run(tmp_path):
    out, before_user = prior_output(tmp_path)
    p = holder(str(out))
    try:
        before = snapshot(out)
        owner = LockOwner.from_bytes((out / LOCK_NAME).read_bytes())
        assert owner is not None and owner.pid == p.pid
        t0 = time.perf_counter()
        code, output = segment(str(scene(tmp_path)), "--output", str(out), "--overwrite")
        assert time.perf_counter() - t0 < 5  # at once: before any model work
        assert code == ExitCode.BAD_INPUT
        assert f"{out}: another run is writing to this output (`geoseg segment` on host {owner.host}, pid {p.pid}, " \
               f"started {owner.started})" in output
        assert "wait for it to finish or choose another --output" in output
        assert snapshot(out) == before  # the other run's lock too
    finally:
        p.kill()
        p.wait()
    assert {k: v for k, v in snapshot(out).items() if k != LOCK_NAME} == before_user


def test_the_lock_of_a_run_that_died_on_this_host_is_taken_over(tmp_path):
    out = tmp_path / "out"
    p = holder(str(out))
    p.kill()
    p.wait()
    assert (out / LOCK_NAME).exists()  # killed: nothing removed it
    code, output = segment(str(scene(tmp_path)), "--output", str(out), "--overwrite")
    assert code == ExitCode.OK, output
    assert not (out / LOCK_NAME).exists()  # released at the end
    assert set(snapshot(out)) == listed(out)


def test_a_lock_from_another_host_is_never_taken_over_and_the_message_says_how_to_clear_it(tmp_path):
    out, _ = prior_output(tmp_path)
    other = LockOwner("build-node-7", 2**22 + 99, "2026-12-01T10:00:00+00:00", "segment", None, "x")
    (out / LOCK_NAME).write_bytes(other.to_bytes())
    before = snapshot(out)
    code, output = segment(str(scene(tmp_path)), "--output", str(out))
    assert code == ExitCode.BAD_INPUT
    assert "host build-node-7, pid 4194403, started 2026-12-01T10:00:00+00:00" in output
    assert f"If that run no longer exists, delete {out / LOCK_NAME} and rerun" in output
    assert snapshot(out) == before


def test_on_s3_the_lock_is_a_conditional_write_only_one_of_two_runs_gets(s3_bucket):
    out = storage.join(s3_bucket, "locked")
    first, second = OutputLock(out, "segment"), OutputLock(out, "change")
    first.acquire()
    with pytest.raises(Exception) as exc:
        second.acquire()
    assert exc.value.exit_code == ExitCode.BAD_INPUT
    assert f"`geoseg segment` on host {first.owner.host}, pid {os.getpid()}" in str(exc.value)
    assert LockOwner.from_bytes(storage.read_bytes(storage.join(out, LOCK_NAME))).id == first.owner.id
    first.release()
    assert not storage.exists(storage.join(out, LOCK_NAME))
    second.acquire().release()  # free again


def test_a_segment_run_into_an_s3_output_a_live_run_holds_fails_and_leaves_it(s3_bucket, tmp_path):
    out = storage.join(s3_bucket, "busy")
    storage.write_bytes(storage.join(out, "notes.txt"), b"kept")
    p = holder(out)
    try:
        code, output = segment(str(scene(tmp_path)), "--output", out)
        assert code == ExitCode.BAD_INPUT and f"pid {p.pid}" in output and "another run is writing" in output
        assert sorted(storage.name(k) for k in storage.listdir(out)) == [LOCK_NAME, "notes.txt"]
    finally:
        p.kill()
        p.wait()


def test_a_run_whose_lock_was_taken_away_publishes_nothing(tmp_path, monkeypatch):
    """Publishing re-checks the lock: a run that lost it (deleted and taken by another) replaces nothing."""
    from geoseg.segment import pipeline

    out, before = prior_output(tmp_path)
    real = pipeline._compute_and_write

    def steal(run, journal, progress):
        names = real(run, journal, progress)
        (out / LOCK_NAME).write_bytes(LockOwner("elsewhere", 1, "2026-12-07T00:00:00+00:00", "segment").to_bytes())
        return names

    monkeypatch.setattr(pipeline, "_compute_and_write", steal)
    code, output = segment(str(scene(tmp_path)), "--output", str(out))
    assert code == ExitCode.BAD_INPUT
    assert "is no longer this run's (now held by `geoseg segment` on host elsewhere, pid 1" in output
    assert "nothing was published" in output
    after = snapshot(out)
    assert {k: v for k, v in after.items() if k != LOCK_NAME and not k.startswith(JOURNAL_DIR)} == before
    assert (out / LOCK_NAME).exists()  # the other owner's lock is not removed
    assert journal_tiles(out) == 1  # and the finished tile (one, of the model's size) is kept for the rerun


def test_outputs_that_appear_while_a_run_works_are_not_replaced_without_overwrite(tmp_path, monkeypatch):
    from geoseg.segment import pipeline

    out, _ = prior_output(tmp_path)
    real = pipeline._compute_and_write

    def race(run, journal, progress):
        names = real(run, journal, progress)
        (out / "scene_classes.tif").write_bytes(b"written by someone else meanwhile")
        return names

    monkeypatch.setattr(pipeline, "_compute_and_write", race)
    code, output = segment(str(scene(tmp_path)), "--output", str(out))
    before = {k: v for k, v in snapshot(out).items() if not k.startswith(JOURNAL_DIR)}
    assert code == ExitCode.BAD_INPUT
    assert "outputs appeared while this run was working (scene_classes.tif)" in output and "--overwrite" in output
    assert before["scene_classes.tif"] == b"written by someone else meanwhile"
    assert set(before) == {"notes.txt", "scene_classes.tif"}


def test_overwrite_with_another_input_removes_the_previous_runs_listed_outputs(tmp_path):
    out, _ = prior_output(tmp_path)
    code, output = segment(str(scene(tmp_path, "first.tif")), "--output", str(out))
    assert code == ExitCode.OK, output
    first = listed(out)
    assert "first_classes.tif" in first and set(snapshot(out)) == first | {"notes.txt"}
    second = crop_raster(NC_IMAGE, tmp_path / "second.tif", Window(64, 64, 96, 96))
    code, output = segment(str(second), "--output", str(out), "--overwrite")
    assert code == ExitCode.OK, output
    now = listed(out)
    assert "second_classes.tif" in now and not any(n.startswith("first") for n in now)
    assert set(snapshot(out)) == now | {"notes.txt"}  # the user's own file stays; nothing of the first run


@pytest.mark.parametrize("before_exists", [False, True])
def test_a_failed_run_leaves_no_folder_it_created_and_an_existing_one_as_it_was(tmp_path, before_exists):
    out = tmp_path / "new" / "out"
    if before_exists:
        out.mkdir(parents=True)
        (out / "notes.txt").write_text("kept\n")
    before = snapshot(out)
    code, output = segment(str(scene(tmp_path)), "--model", str(tmp_path / "no-such-model"), "--output", str(out))
    assert code == ExitCode.BAD_INPUT and "no-such-model" in output
    assert out.exists() == before_exists and snapshot(out) == before
    assert out.parent.exists() == before_exists  # nor its parent, made for it


def interrupt_after(monkeypatch, n: int, exc: BaseException):
    """Raise ``exc`` in the driver once ``n`` tiles are journaled (as the SIGINT/SIGTERM handlers do)."""
    from geoseg.segment.journal import TileJournal

    real = TileJournal.record

    def record(self, scene, results):
        real(self, scene, results)
        if self.tiles_written >= n:
            raise exc

    monkeypatch.setattr(TileJournal, "record", record)


@pytest.mark.parametrize(("exc", "code", "what"), [
    (KeyboardInterrupt(), ExitCode.INTERRUPTED, "interrupted (Ctrl-C)"),
    (SystemExit(ExitCode.TERMINATED), ExitCode.TERMINATED, "terminated (SIGTERM)"),
])
def test_an_interrupted_run_says_how_many_tiles_are_saved_and_a_rerun_resumes(tmp_path, monkeypatch, exc, code, what):
    cfg = tmp_path / "journal.yaml"
    cfg.write_text("runtime:\n  checkpoint_tiles: 1\n")
    out, before = prior_output(tmp_path)
    args = [str(scene(tmp_path)), "--config", str(cfg), "--output", str(out), "--tile-size", "64", "--halo", "8"]
    with monkeypatch.context() as m:
        interrupt_after(m, 3, exc)
        got, output = segment(*args)
    assert got == code, output
    saved = journal_tiles(out)
    assert 3 <= saved < 9
    assert f"{what}: {saved} of 9 tiles are saved in {out / JOURNAL_DIR}" in output
    assert "nothing was published" in output and "Rerun the same command to resume" in output
    assert "Aborted!" not in output
    assert {k: v for k, v in snapshot(out).items() if not k.startswith(JOURNAL_DIR)} == before
    got, output = segment(*args)
    assert got == ExitCode.OK, output
    assert f"({saved} resumed from an interrupted run)" in output


def test_ctrl_c_in_a_command_without_a_journal_exits_130_with_a_message(tmp_path, monkeypatch):
    from tests.helpers import blobs, write_classes

    classes = write_classes(tmp_path, blobs(0), name="c_classes.tif")

    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("geoseg.vector.polygons.vectorize_to_file", stop)
    r = CliRunner().invoke(main, ["vectorize", str(classes), "--output", str(tmp_path / "c.gpkg")])
    assert r.exit_code == ExitCode.INTERRUPTED, r.output
    assert "interrupted (Ctrl-C): `geoseg vectorize` stopped; nothing was published" in r.output
    assert "Aborted!" not in r.output and not (tmp_path / "c.gpkg").exists()


@pytest.mark.slow
def test_a_real_sigint_to_the_cli_process_exits_130_and_the_rerun_resumes(tmp_path):
    """The real signal to a real ``geoseg segment`` process (in-process model, journal every tile)."""
    src = crop_raster(NC_IMAGE, tmp_path / "big.tif", Window(0, 0, 384, 384))
    cfg = tmp_path / "journal.yaml"
    cfg.write_text("runtime:\n  checkpoint_tiles: 1\n")
    out = tmp_path / "out"
    # 32 px tiles: 256 tiles, so the run is still predicting when the signal comes (64 px tiles took 0.5 s in
    # all, short enough for a busy machine to miss the journal between two polls and let the run finish)
    cmd = [sys.executable, "-m", "geoseg.cli", "-q", "segment", str(src), "--config", str(cfg), "--output", str(out),
           "--tile-size", "32", "--halo", "4", "--local", "--engine", "torch"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    deadline = time.monotonic() + 120
    while not list(out.glob(f"{JOURNAL_DIR}/*/*.npz")) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)
    assert p.poll() is None, "the run ended before the test saw its journal"
    p.send_signal(signal.SIGINT)
    output, _ = p.communicate(timeout=120)
    assert p.returncode == ExitCode.INTERRUPTED, output
    saved = journal_tiles(out)
    assert saved and f"interrupted (Ctrl-C): {saved} of " in output and "Rerun the same command to resume" in output
    assert not list(out.glob("*_classes.tif"))
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"({saved} resumed from an interrupted run)" in r.stdout


def test_a_change_run_into_an_output_a_live_run_is_writing_fails_at_once(tmp_path):
    from tests.helpers import blobs, write_map

    b = write_map(tmp_path / "before_classes.tif", blobs(0))
    a = write_map(tmp_path / "after_classes.tif", blobs(1))
    out, _ = prior_output(tmp_path)
    p = holder(str(out))
    try:
        before = snapshot(out)
        r = CliRunner().invoke(main, ["-q", "change", b, a, "--output", str(out), "--min-confidence", "0", "--overwrite"])
        assert r.exit_code == ExitCode.BAD_INPUT, r.output
        assert "another run is writing to this output (`geoseg segment` on host" in r.output and f"pid {p.pid}" in r.output
        assert snapshot(out) == before
    finally:
        p.kill()
        p.wait()
    r = CliRunner().invoke(main, ["-q", "change", b, a, "--output", str(out), "--min-confidence", "0"])
    assert r.exit_code == 0, r.output  # the dead holder's lock is taken over
    assert not (out / LOCK_NAME).exists() and (out / "transitions.json").exists()

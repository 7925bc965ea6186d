"""The in-process executor (geoseg.runtime.local): one worker thread, one task ahead of the caller, at a
lower priority on CPU.

Oracles: the tile processor run directly on the same tasks (same results, same order), counts of tasks
pulled from a lazy iterator, the kernel's niceness of the worker and the calling thread.
"""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
import pytest

from geoseg.model.checkpoint import checkpoint_payload
from geoseg.model.predict import Predictor, SceneJob, TileProcessor
from geoseg.runtime.local import INFERENCE_NICE, LocalExecutor, lower_thread_priority
from geoseg.runtime.tasks import Task
from geoseg.tiling import TileGrid
from tests.helpers import ZION_IMAGE, scene_inputs


def _job_and_tasks(checkpoint, per_task=1):
    info, idx, stats = scene_inputs(ZION_IMAGE, checkpoint.card)
    tiles = list(TileGrid(info.grid.width, info.grid.height, 128, 16))
    job = SceneJob(str(ZION_IMAGE), idx, stats, info.grid)
    return job, [Task(0, tuple(tiles[k : k + per_task])) for k in range(0, len(tiles), per_task)]


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_outcomes_equal_the_processor_run_directly_in_order(default_checkpoint):
    job, tasks = _job_and_tasks(default_checkpoint, per_task=2)
    tasks = tasks[:5]
    payload = checkpoint_payload(default_checkpoint)
    direct = TileProcessor(Predictor.from_payload(payload, device="cpu", threads=1), 2)
    ex = LocalExecutor(payload, "cpu", 1, 2)
    try:
        outcomes = list(ex.run([job], tasks))
    finally:
        ex.close()
    assert [o.task for o in outcomes] == tasks
    for o in outcomes:
        assert o.error is None and o.results is not None
        for got, want in zip(o.results, direct.process(job, list(o.task.tiles))):
            assert got.tile == want.tile
            np.testing.assert_array_equal(got.classes, want.classes)
            np.testing.assert_array_equal(got.confidence, want.confidence)


def test_the_worker_runs_one_task_ahead_and_stops_when_the_caller_does(default_checkpoint):
    job, tasks = _job_and_tasks(default_checkpoint)
    pulled = []

    def lazy():
        for t in tasks:
            pulled.append(t)
            yield t

    ex = LocalExecutor(checkpoint_payload(default_checkpoint), "cpu", 1, 1)
    try:
        run = ex.run([job], lazy())
        first = next(run)
        assert first.task == tasks[0] and len(pulled) == 3  # the next two are queued: one runs, one waits
        second = next(run)
        assert second.task == tasks[1] and len(pulled) == 4
        run.close()  # the caller stops (an error, Ctrl-C): nothing more is pulled
        assert len(pulled) == 4
    finally:
        ex.close()
    assert ex.processor is None  # released: the model is dropped
    with pytest.raises(RuntimeError, match="released"):
        next(ex.run([job], tasks))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_cpu_inference_runs_at_a_lower_priority_than_the_caller(default_checkpoint):
    before = _nice()
    ex = LocalExecutor(checkpoint_payload(default_checkpoint), "cpu", 1, 1)
    try:
        assert ex._pool is not None
        worker = ex._pool.submit(_nice).result()
        assert ex.niced and worker == max(INFERENCE_NICE, before)
        assert _nice() == before  # the caller (stitching, vectorizing, writing) keeps its priority
    finally:
        ex.close()
    kept = LocalExecutor(checkpoint_payload(default_checkpoint), "cpu", 1, 1, nice=0)
    try:
        assert kept._pool is not None and kept._pool.submit(_nice).result() == before and not kept.niced
    finally:
        kept.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_lowering_the_priority_touches_only_the_calling_thread():
    before = _nice()
    if before >= INFERENCE_NICE:
        pytest.skip(f"the test process already runs at niceness {before}")
    seen = {}

    def body():
        seen["changed"] = lower_thread_priority(INFERENCE_NICE)
        seen["again"] = lower_thread_priority(INFERENCE_NICE)  # already there: nothing to do
        seen["nice"] = _nice()

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == {"changed": True, "again": False, "nice": INFERENCE_NICE}
    assert _nice() == before

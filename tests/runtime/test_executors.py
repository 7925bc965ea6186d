"""The executors (geoseg.runtime.executors): bounded fan-out over a pool of model actors, retries when an
actor dies, the ordered map of the write stage.

Oracles: the local executor's results for the same tasks, the sequential vectorization, counts of
calls pulled and in flight.
"""

import sys

import numpy as np
import pytest

from geoseg.config import RuntimeConfig
from geoseg.model.checkpoint import ModelPayload, checkpoint_payload
from geoseg.model.predict import SceneJob
from geoseg.runtime.executors import LocalExecutor, RayExecutor, Task
from geoseg.tiling import TileGrid
from tests.helpers import ZION_IMAGE, scene_inputs


def _job_and_tasks(checkpoint, tile_size=128, halo=16, per_task=2):
    info, idx, stats = scene_inputs(ZION_IMAGE, checkpoint.card)
    tiles = list(TileGrid(info.grid.width, info.grid.height, tile_size, halo))
    job = SceneJob(str(ZION_IMAGE), idx, stats, info.grid)
    return job, [Task(0, tuple(tiles[k : k + per_task])) for k in range(0, len(tiles), per_task)]


@pytest.mark.slow
def test_killed_actor_tiles_are_retried_and_results_match_local(ray_cluster, default_checkpoint):
    job, tasks = _job_and_tasks(default_checkpoint)
    ex = RayExecutor(checkpoint_payload(default_checkpoint), "cpu",
                     RuntimeConfig(num_workers=2, max_tasks_in_flight_per_worker=2), batch_size=2)
    results = {}
    try:
        killed = False
        for outcome in ex.run([job], tasks, retries=2):
            assert outcome.results is not None, outcome.error
            for r in outcome.results:
                results[r.tile.index] = r
            if not killed:
                ray_cluster.kill(ex.actors[0])  # dies with calls queued on it
                killed = True
    finally:
        ex.close()
    assert sorted(results) == [t.index for task in tasks for t in task.tiles]
    local = LocalExecutor(checkpoint_payload(default_checkpoint), "cpu", 1, 2)
    for outcome in local.run([job], tasks[:3]):
        for r in outcome.results:
            np.testing.assert_array_equal(r.classes, results[r.tile.index].classes)


def test_local_executor_reports_failures_after_retries(default_checkpoint):
    job, tasks = _job_and_tasks(default_checkpoint)
    bad = SceneJob("/nonexistent/x.tif", job.band_indexes, job.stats, job.grid)
    local = LocalExecutor(checkpoint_payload(default_checkpoint), "cpu", 1, 2)
    outcomes = list(local.run([bad], tasks[:2], retries=1))
    assert all(o.results is None and "cannot open" in o.error for o in outcomes)


@pytest.mark.slow
def test_calls_in_flight_are_bounded(ray_cluster, default_checkpoint):
    """The pool pulls tasks lazily: never more than workers x per_worker calls outstanding."""
    job, tasks = _job_and_tasks(default_checkpoint, per_task=1)
    pulled = 0
    done = 0
    max_outstanding = 0

    def lazy():
        nonlocal pulled
        for t in tasks:
            pulled += 1
            yield t

    ex = RayExecutor(checkpoint_payload(default_checkpoint), "cpu",
                     RuntimeConfig(num_workers=2, max_tasks_in_flight_per_worker=2), batch_size=1)
    try:
        for outcome in ex.run([job], lazy()):
            assert outcome.results is not None
            max_outstanding = max(max_outstanding, pulled - done)
            done += 1
    finally:
        ex.close()
    assert done == len(tasks) == 25  # Zion 512 px at 128/16: 5 x 5 tiles
    assert max_outstanding <= 2 * 2


@pytest.mark.slow
def test_ray_ordered_map_runs_the_vectorizer_blocks_identically(ray_cluster, tmp_path):
    """The write stage's Ray map (per-block vectorization as tasks) gives the sequential result exactly."""
    from geoseg.runtime.maps import ray_ordered_map as ordered_map
    from geoseg.vector.polygons import polygon_frame
    from tests.helpers import ZION_LABELS

    seq = polygon_frame(ZION_LABELS, block_size=100, mmu_m2=5000)
    par = polygon_frame(ZION_LABELS, block_size=100, mmu_m2=5000, map_fn=ordered_map)
    assert list(par.polygon_id) == list(seq.polygon_id)
    assert (par.geometry.to_wkb() == seq.geometry.to_wkb()).all()
    assert par.area_m2.tolist() == seq.area_m2.tolist()


@pytest.mark.slow
def test_segment_with_parallel_vectorization_on_ray(ray_cluster, tmp_path, monkeypatch):
    import geopandas as gpd

    import geoseg.segment.pipeline
    from geoseg.config import SegmentConfig
    from geoseg.segment.pipeline import segment
    from tests.helpers import NC_IMAGE

    def cfg(out, local):
        return SegmentConfig(inputs=[str(NC_IMAGE)], output=str(tmp_path / out), tile_size=256, device="cpu",
                             runtime={"local": local, "num_workers": 2}, outputs={"vectorize_block": 128})

    segment(cfg("local", True), progress=False)
    monkeypatch.setattr(geoseg.segment.pipeline, "PARALLEL_VECTORIZE_MIN_CPUS", 1)  # this cluster has 2
    segment(cfg("ray", False), progress=False)
    a = gpd.read_file(tmp_path / "local" / f"{NC_IMAGE.stem}_polygons.gpkg")
    b = gpd.read_file(tmp_path / "ray" / f"{NC_IMAGE.stem}_polygons.gpkg")
    assert len(a) > 100 and list(a.polygon_id) == list(b.polygon_id)
    assert (a.geometry.to_wkb() == b.geometry.to_wkb()).all()


@pytest.mark.slow
def test_actors_that_can_never_start_fail_clearly_after_the_timeout(ray_cluster, default_checkpoint):
    from geoseg.errors import ConfigError

    # 3 CPUs per actor on a 2-CPU cluster: nothing can be scheduled (as when an autoscaler adds no nodes)
    rt = RuntimeConfig(num_workers=1, threads_per_worker=3, actor_start_timeout_s=3)
    with pytest.raises(ConfigError, match=r"no model actor could start within 3 s \(`runtime.actor_start_timeout_s`\)"):
        RayExecutor(checkpoint_payload(default_checkpoint), "cpu", rt, batch_size=2)
    assert ray_cluster.available_resources().get("CPU") == 2  # the pending actor was cancelled


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_when_every_actor_is_gone_and_replacements_cannot_start_the_rest_fails_instead_of_looping(
        ray_cluster, default_checkpoint):
    job, tasks = _job_and_tasks(default_checkpoint, per_task=1)
    ex = RayExecutor(checkpoint_payload(default_checkpoint), "cpu",
                     RuntimeConfig(num_workers=1, max_tasks_in_flight_per_worker=1), batch_size=1)
    ex._payload_ref = ray_cluster.put(ModelPayload("{}", b"not a model"))  # from now on, every new actor dies in __init__
    outcomes = []
    try:
        for outcome in ex.run([job], tasks, retries=1):
            outcomes.append(outcome)
            if len(outcomes) == 1:
                ray_cluster.kill(ex.actors[0])
    finally:
        ex.close()
    assert len(outcomes) == len(tasks) and outcomes[0].results is not None
    failed = [o for o in outcomes if o.results is None]
    assert failed and all("failed to start" in o.error for o in failed)
    assert {o.attempts for o in failed} <= {0, 1}  # tasks never sent to an actor count no attempt
    assert ex.replaced == 1 + 2  # the dead actor's replacement, then 2 x workers more: no endless restarts


def test_small_jobs_without_a_cluster_address_run_in_process_and_say_why(monkeypatch):
    from geoseg.runtime.executors import run_in_process

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray = sys.modules.get("ray")
    if ray is not None:  # an earlier test's cluster may still be connected: that case has its own test below
        monkeypatch.setattr(ray, "is_initialized", lambda: False)
    auto = RuntimeConfig(local_max_mpx=10)
    local, why = run_in_process(auto, 9.5)
    assert local and "9.50 Mpx <= runtime.local_max_mpx 10" in why
    assert run_in_process(auto, 10.5, gpu=True) == (False, "")  # on GPUs: large enough to pay for Ray (an actor each)
    local, why = run_in_process(auto, 10.5)  # on CPU one process is as fast as local actors, with less memory
    assert local and "10.50 Mpx on CPU without a cluster address: no Ray started" in why
    assert run_in_process(RuntimeConfig(local=False), 0.1) == (False, "")  # forced
    assert run_in_process(RuntimeConfig(local=True), 1e6)[0]
    assert run_in_process(RuntimeConfig(address="ray://head:10001"), 0.1) == (False, "")  # a cluster is named
    monkeypatch.setenv("RAY_ADDRESS", "head:6379")
    assert run_in_process(auto, 0.1) == (False, "")


def test_an_existing_ray_connection_keeps_small_jobs_on_ray(ray_cluster, monkeypatch):
    from geoseg.runtime.executors import run_in_process

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert run_in_process(RuntimeConfig(), 0.1) == (False, "")


@pytest.mark.slow
def test_cuda_on_a_cluster_without_gpus_or_autoscaler_fails_at_once_naming_gpus(ray_cluster, default_checkpoint):
    import time

    from geoseg.errors import ConfigError

    rt = RuntimeConfig(num_workers=1, actor_start_timeout_s=600)
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="0 GPUs and no autoscaler can add them; run with --device cpu or --device auto"):
        RayExecutor(checkpoint_payload(default_checkpoint), "cuda", rt, batch_size=2)
    assert time.monotonic() - t0 < 30


@pytest.mark.slow
def test_while_an_autoscaler_may_add_gpus_the_wait_prints_progress(ray_cluster, default_checkpoint, monkeypatch, caplog):
    import logging

    from geoseg.errors import ConfigError
    from geoseg.runtime import executors

    monkeypatch.setattr(executors, "autoscaler_present", lambda: True)
    monkeypatch.setattr(executors, "PROGRESS_S", 1.0)
    rt = RuntimeConfig(num_workers=1, actor_start_timeout_s=3)
    with caplog.at_level(logging.WARNING, "geoseg.runtime.executors"), pytest.raises(ConfigError, match="within 3 s"):
        RayExecutor(checkpoint_payload(default_checkpoint), "cuda", rt, batch_size=2)
    waits = [r.getMessage() for r in caplog.records if "waiting for the cluster to provide" in r.getMessage()]
    assert len(waits) >= 2 and "1 GPU + 1 CPU each" in waits[0] and "0 GPU" in waits[0]
    assert ray_cluster.available_resources().get("CPU") == 2  # the pending actor was cancelled

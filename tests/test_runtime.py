"""The Ray adapter: bounded fan-out over a pool of model actors, retries when an actor dies."""

import numpy as np
import pytest
import rasterio

from geoseg.config import RuntimeConfig
from geoseg.model import checkpoint_payload
from geoseg.normalization import scene_stats
from geoseg.predict import SceneJob
from geoseg.raster import RasterInfo, resolve_bands
from geoseg.runtime import LocalExecutor, RayExecutor, Task
from geoseg.tiling import TileGrid
from tests.conftest import ZION_IMAGE


def _job_and_tasks(checkpoint, tile_size=128, halo=16, per_task=2):
    with rasterio.open(ZION_IMAGE) as src:
        info = RasterInfo.from_dataset(str(ZION_IMAGE), src)
        idx = resolve_bands(info, checkpoint.card.bands)
        stats = scene_stats(src, idx, checkpoint.card.normalization)
    tiles = list(TileGrid(info.width, info.height, tile_size, halo))
    job = SceneJob(str(ZION_IMAGE), idx, stats, info.transform, info.crs)
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
    bad = SceneJob("/nonexistent/x.tif", job.band_indexes, job.stats, job.transform, job.crs)
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
    assert done == len(tasks) == 36
    assert max_outstanding <= 2 * 2

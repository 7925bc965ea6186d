"""Fault tolerance on a simulated multi-node Ray cluster (``ray.cluster_utils.Cluster``, one machine).

A head node without CPUs (the driver's node) and worker nodes with one CPU each, like a
CPU head + GPU workers in production. Each test runs the real CLI as a separate driver
process against that cluster, breaks something mid-run, and checks the job still ends
with the same class maps as an undisturbed in-process run, or fails loudly with the
tiles named.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import rasterio

from geoseg.config import SegmentConfig
from geoseg.segment.pipeline import segment
from geoseg.tiling import TileGrid
from tests.helpers import NC_IMAGE, ZION_IMAGE, corrupt_block

pytestmark = pytest.mark.slow

TILING = {"tile_size": 96, "halo": 32, "batch_size": 1}
JOURNAL_GLOB = ".geoseg-journal/*/chunk-*.npz"


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(2):
        c.add_node(num_cpus=1)
    c.wait_for_nodes()
    yield c
    c.shutdown()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> list[Path]:
    """Four scenes (two copies of each sample) so that one queue holds ~900 tiles of several inputs."""
    d = tmp_path_factory.mktemp("scenes")
    out = []
    for src in (NC_IMAGE, ZION_IMAGE):
        for k in (1, 2):
            dst = d / f"{src.stem}_{k}.tif"
            shutil.copyfile(src, dst)
            out.append(dst)
    return out


@pytest.fixture(scope="module")
def reference(scenes, tmp_path_factory) -> Path:
    """The same job in-process, undisturbed."""
    out = tmp_path_factory.mktemp("reference")
    segment(SegmentConfig(inputs=[str(s) for s in scenes], output=str(out), outputs={"polygons": False},
                          runtime={"local": True, "tiles_per_task": 1}, **TILING), progress=False)
    return out


def _write_cfg(path: Path, scenes, output: Path, **runtime) -> Path:
    rt = {"tiles_per_task": 1, "checkpoint_tiles": 8, "max_task_retries": 2, **runtime}
    lines = [f"inputs: {json.dumps([str(s) for s in scenes])}", f"output: {output}", "outputs: {polygons: false}"]
    lines += [f"{k}: {v}" for k, v in TILING.items()]
    lines += ["runtime:"] + [f"  {k}: {v}" for k, v in rt.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _start(cfg: Path, cluster) -> subprocess.Popen:
    env = {**os.environ, "RAY_ADDRESS": cluster.address, "RAY_AUTH_MODE": "disabled"}
    return subprocess.Popen([sys.executable, "-m", "geoseg.cli", "-q", "segment", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_chunks(proc: subprocess.Popen, out: Path, n: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while len(list(out.glob(JOURNAL_GLOB))) < n:
        if proc.poll() is not None:
            pytest.fail(f"the job ended before it was disturbed:\n{proc.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the job journaled no tiles in time")
        time.sleep(0.05)


def _finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    stdout, stderr = proc.communicate(timeout=timeout)
    return proc.returncode, stdout, stderr


def _assert_same_maps(out: Path, reference: Path, scenes) -> None:
    for s in scenes:
        name = f"{s.stem}_classes.tif"
        with rasterio.open(out / name) as a, rasterio.open(reference / name) as b:
            np.testing.assert_array_equal(a.read(1), b.read(1), err_msg=name)


def _actor_processes(cluster) -> list[psutil.Process]:
    """Model actor processes of *this* cluster (workers are its raylets' children): the machine is
    shared, and other Ray instances on it (the test session's own, other people's) are not ours to kill."""
    from ray._private import ray_constants

    found = []
    for node in cluster.list_all_nodes():
        for info in node.all_processes.get(ray_constants.PROCESS_TYPE_RAYLET, []):
            try:
                children = psutil.Process(info.process.pid).children(recursive=True)
            except psutil.Error:
                continue
            for p in children:
                try:
                    if any("_TileActor" in part for part in p.cmdline()):
                        found.append(p)
                except psutil.Error:
                    continue
    return found


def _journaled_tiles(out: Path) -> int:
    """Tiles saved in the journal under ``out`` (whatever the chunk sizes: chunks are also cut by time)."""
    n = 0
    for chunk in out.glob(JOURNAL_GLOB):
        with np.load(chunk) as data:
            n += len(data["tile"])
    return n


def test_a_killed_actor_process_has_its_tiles_retried_elsewhere(cluster, scenes, reference, tmp_path):
    out = tmp_path / "out"
    proc = _start(_write_cfg(tmp_path / "job.yaml", scenes, out), cluster)
    _wait_for_chunks(proc, out, 2)
    actors = _actor_processes(cluster)
    assert actors, "no model actor process found"
    actors[0].send_signal(signal.SIGKILL)
    rc, stdout, stderr = _finish(proc)
    assert rc == 0, stderr[-3000:]
    assert "model actor died" in stderr
    _assert_same_maps(out, reference, scenes)
    m = json.loads((out / "manifest.json").read_text())
    assert m["tiles"]["failed"] == 0 and m["tiles"]["processed"] + m["tiles"]["skipped"] == m["tiles"]["total"]


def test_a_node_removed_mid_run_does_not_stop_the_job(cluster, scenes, reference, tmp_path):
    node = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    out = tmp_path / "out"
    proc = _start(_write_cfg(tmp_path / "job.yaml", scenes, out, num_workers=3), cluster)
    _wait_for_chunks(proc, out, 2)
    cluster.remove_node(node, allow_graceful=False)
    rc, stdout, stderr = _finish(proc)
    cluster.wait_for_nodes(timeout=120)  # the next test must not be scheduled onto the removed node
    assert rc == 0, stderr[-3000:]
    assert "model actor died" in stderr  # the removed node's actor; its replacement never fits, the pool shrinks
    _assert_same_maps(out, reference, scenes)


def test_a_tile_that_always_fails_is_retried_then_reported_and_the_job_exits_nonzero(cluster, tmp_path):
    bad = tmp_path / "corrupt.tif"
    corrupt_block(NC_IMAGE, bad, block=(2, 3))  # block row 2, col 3: pixels rows 128-191, cols 192-255
    out = tmp_path / "out"
    proc = _start(_write_cfg(tmp_path / "job.yaml", [bad], out, max_task_retries=2), cluster)
    rc, stdout, stderr = _finish(proc)
    assert rc == 3, stderr[-3000:]
    with rasterio.open(bad) as s:
        grid = TileGrid(s.width, s.height, TILING["tile_size"], TILING["halo"])

    def touches(t):
        r = t.read
        return r.row < 192 and r.row_stop > 128 and r.col < 256 and r.col_stop > 192

    expected = sorted(t.index for t in grid if touches(t))
    m = json.loads((out / "manifest.failed.json").read_text())
    failed = m["inputs"][0]["failed_tiles"]
    assert sorted(f["tile"] for f in failed) == expected
    assert all(f["attempts"] == 3 and "RasterioIOError" in f["error"] for f in failed)
    assert f"tiles {expected}" in stderr and "failed after 3 attempt(s)" in stderr
    assert not (out / "corrupt_classes.tif").exists() and not (out / "manifest.json").exists()


def test_a_killed_driver_resumes_from_the_journal_to_identical_outputs(cluster, scenes, reference, tmp_path):
    out = tmp_path / "out"
    cfg = _write_cfg(tmp_path / "job.yaml", scenes, out)
    proc = _start(cfg, cluster)
    _wait_for_chunks(proc, out, 3)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    journaled = _journaled_tiles(out)
    assert not (out / "manifest.json").exists()
    rc, stdout, stderr = _finish(_start(cfg, cluster))
    assert rc == 0, stderr[-3000:]
    m = json.loads((out / "manifest.json").read_text())
    total = m["tiles"]["total"]
    # every journaled tile, and only those, is resumed (the rerun recomputes the rest)
    assert 0 < journaled < total and m["tiles"]["resumed"] == journaled
    assert m["tiles"]["processed"] + m["tiles"]["skipped"] == total
    _assert_same_maps(out, reference, scenes)
    for s in scenes:  # the COGs are byte-identical to the undisturbed run's
        assert (out / f"{s.stem}_classes.tif").read_bytes() == (reference / f"{s.stem}_classes.tif").read_bytes()
    assert not list(out.glob(".geoseg-*")), "journal and staging are removed after success"


def test_the_write_stage_fans_out_only_on_the_drivers_node(cluster, tmp_path):
    """Vectorizer tasks read rasters staged on the driver's disk: never on another node. On a head
    without CPUs (as here, and as in the KubeRay examples) they stay in the driver."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import json, ray\n"
        "from geoseg.runtime.cluster import local_node_cpus\nfrom geoseg.runtime.maps import ray_ordered_map as ordered_map\n"
        "ray.init(logging_level='WARNING')\n"
        "def where(_):\n"
        "    return ray.get_runtime_context().get_node_id()\n"
        "print(json.dumps({'cluster_cpus': ray.cluster_resources().get('CPU', 0), 'local_cpus': local_node_cpus(),\n"
        "                  'driver': ray.get_runtime_context().get_node_id(), 'ran_on': list(ordered_map(where, range(6)))}))\n"
    )
    env = {**os.environ, "RAY_ADDRESS": cluster.address, "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.run([sys.executable, str(script)], check=False, capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["cluster_cpus"] >= 2 and got["local_cpus"] == 0
    assert set(got["ran_on"]) == {got["driver"]}


def test_with_cpus_on_the_drivers_node_the_write_stage_is_pinned_there_while_plain_tasks_spread(tmp_path):
    """The pinned path: the driver's node has a CPU, another node has two. Unpinned tasks spread to
    the other node (the control, so the setup can tell); `ray_ordered_map`'s tasks never do."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=2)
    c.wait_for_nodes()
    script = tmp_path / "probe.py"
    script.write_text(
        "import json, time, ray\n"
        "from geoseg.runtime.cluster import local_node_cpus\nfrom geoseg.runtime.maps import ray_ordered_map\n"
        "ray.init(logging_level='WARNING')\n"
        "def where(_):\n"
        "    time.sleep(0.3)\n"
        "    return ray.get_runtime_context().get_node_id()\n"
        "plain = ray.remote(num_cpus=1)(where)\n"
        "print(json.dumps({'local_cpus': local_node_cpus(), 'driver': ray.get_runtime_context().get_node_id(),\n"
        "                  'pinned': list(ray_ordered_map(where, range(8), lookahead=4)),\n"
        "                  'plain': ray.get([plain.remote(i) for i in range(8)])}))\n"
    )
    try:
        env = {**os.environ, "RAY_ADDRESS": c.address, "RAY_AUTH_MODE": "disabled"}
        proc = subprocess.run([sys.executable, str(script)], check=False, capture_output=True, text=True,
                              env=env, timeout=300)
    finally:
        c.shutdown()
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["local_cpus"] == 1
    assert set(got["plain"]) - {got["driver"]}, "control: unpinned tasks should reach the other node"
    assert set(got["pinned"]) == {got["driver"]}

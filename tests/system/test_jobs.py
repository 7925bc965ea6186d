"""`jobs/segment.py` submitted through the Ray Jobs API to a head started with ``ray start --head``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from tests.helpers import NC_IMAGE, REPO, ZION_IMAGE, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def ray_head():
    """A local Ray head on 127.0.0.1 with the dashboard (Jobs API); its process group is killed afterwards."""
    port, dash = free_port(), free_port()
    # every port the head binds is chosen here: the defaults (e.g. the dashboard agent's 52365) may be taken
    # by another Ray on this machine, such as the test session's own cluster
    agent_ports = [f"--{opt}={free_port()}" for opt in ("dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                          "runtime-env-agent-port", "metrics-export-port",
                                                          "ray-client-server-port")]
    temp = tempfile.mkdtemp(prefix="gsray", dir="/tmp")  # short: Ray's socket paths live under it
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    ray_exe = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
    head = subprocess.Popen(
        [ray_exe, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
         f"--temp-dir={temp}", "--disable-usage-stats", *agent_ports, "--block"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        yield f"http://127.0.0.1:{dash}"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(head.pid, sig)
            except ProcessLookupError:
                break
            try:
                head.wait(15)
            except subprocess.TimeoutExpired:
                continue
        shutil.rmtree(temp, ignore_errors=True)


def test_segment_job_submitted_through_the_jobs_api(ray_head, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    deadline = time.monotonic() + 180
    while True:
        try:
            client = JobSubmissionClient(ray_head)
            break
        except Exception:
            if time.monotonic() > deadline:
                pytest.fail(f"the Ray head's Jobs API at {ray_head} did not come up")
            time.sleep(1)
    out = tmp_path / "out"
    while True:  # the dashboard answers before the head's job agent is up ("No available agent")
        try:
            job_id = client.submit_job(
                entrypoint=f"python jobs/segment.py {NC_IMAGE} {ZION_IMAGE} --output {out} --tile-size 256 --halo 32 "
                           "--workers 2 -q",
                runtime_env={"working_dir": str(REPO),
                             "excludes": [".git", ".whl", "out", "tests", "benchmarks", "docs", "infra"],
                             "env_vars": {"RAY_AUTH_MODE": "disabled"}},
            )
            break
        except RuntimeError as exc:
            if "agent" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(2)
    deadline = time.monotonic() + 600
    while (status := client.get_job_status(job_id)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
        if time.monotonic() > deadline:
            client.stop_job(job_id)
            pytest.fail(f"job {job_id} still {status} after 600 s:\n{client.get_job_logs(job_id)[-3000:]}")
        time.sleep(1)
    logs = client.get_job_logs(job_id)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "success" and m["runtime"] == "Ray, 2 CPU actor(s), onnxruntime"
    assert m["tiles"]["processed"] == 6 + 9  # NC: 2 x 3 tiles of 256 px, Zion: 3 x 3
    for stem in (NC_IMAGE.stem, ZION_IMAGE.stem):
        assert (out / f"{stem}_classes.tif").is_file() and (out / f"{stem}_polygons.gpkg").is_file()

"""The one place Ray is joined: what the workers are told about S3, and a session that never starts Ray when local."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from geoseg.runtime.cluster import FORWARDED_ENV, RaySession, worker_env


def test_worker_env_forwards_where_s3_is_but_no_credentials(monkeypatch):
    for k in FORWARDED_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_REGION", "")
    assert worker_env() == {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    assert "AWS_SECRET_ACCESS_KEY" not in FORWARDED_ENV and "AWS_ACCESS_KEY_ID" not in FORWARDED_ENV


def test_local_session_never_starts_ray():
    import ray

    was_up = ray.is_initialized()
    s = RaySession(local=True)
    s.ensure()
    assert ray.is_initialized() == was_up and not s.owned
    s.close()
    assert ray.is_initialized() == was_up


@pytest.mark.slow
def test_a_local_ray_started_by_the_job_keeps_token_auth_without_warning(tmp_path):
    """Ray 2.60 warns on every ray.init() that token authentication is on by default; the job says it explicitly."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    code = ("import os, ray; from geoseg.runtime.cluster import connect, shutdown; connect(); "
            "print('MODE', os.environ.get('RAY_AUTH_MODE'), ray.get(ray.remote(lambda: 1 + 1).remote())); shutdown()")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "MODE token 2" in done.stdout  # Ray's default (token authentication) is kept, not disabled
    assert "Token authentication" not in done.stderr


def test_a_read_only_monitor_is_no_autoscaler_but_one_with_node_types_is():
    from geoseg.runtime.cluster import _config_has_node_types

    readonly = {"autoscaler_report": {"node_type_mapping": {"abc": "node_abc", "def": "node_def"}}}
    launcher = {"autoscaler_report": {"node_type_mapping": {"abc": "head", "def": "gpu_worker"}}}
    assert not _config_has_node_types(readonly)
    assert _config_has_node_types(launcher)
    assert not _config_has_node_types({})


@pytest.mark.slow
def test_a_local_ray_has_no_autoscaler(ray_cluster):
    import time

    from geoseg.runtime.cluster import autoscaler_present

    time.sleep(1)  # the monitor writes its first status within a second of start
    assert autoscaler_present() is False

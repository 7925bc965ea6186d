"""The one place Ray is joined: what the workers are told about S3, and a session that never starts Ray when local."""

from __future__ import annotations

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

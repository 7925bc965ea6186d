"""Shared fixtures: tiny rasters built on the fly, the bundled model, one small Ray cluster, an S3 server,
a PostgreSQL + PostGIS server.

Plain helpers (paths, raster writers, parsers) are in :mod:`tests.helpers`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

pytest.register_assert_rewrite("tests.helpers")  # its asserts report like a test's

from tests.helpers import free_port, write_raster  # noqa: E402

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# ONNX exports (geoseg.model.engines) are cached per session, not in the user's ~/.cache
os.environ.setdefault("GEOSEG_CACHE_DIR", tempfile.mkdtemp(prefix="geoseg-test-cache-"))


@pytest.fixture
def make_raster(tmp_path):
    """Write ``array`` ((bands, rows, cols) or (rows, cols)) as a tiled GeoTIFF and return its path."""

    counter = {"n": 0}

    def _make(
        array: np.ndarray,
        *,
        crs: str = "EPSG:32612",
        transform=None,
        nodata=None,
        descriptions: list[str] | None = None,
        name: str | None = None,
        tiled: bool = True,
    ) -> Path:
        counter["n"] += 1
        path = tmp_path / (name or f"raster{counter['n']}.tif")
        return write_raster(path, array, crs=crs, transform=transform, nodata=nodata, descriptions=descriptions,
                            blocksize=64 if tiled else None, compress="deflate" if tiled else None)

    return _make


@pytest.fixture(scope="session")
def ray_cluster():
    """One small local Ray instance for the whole session (2 CPUs, no dashboard).

    Its workers have S3 credentials (for the test server) but, like the workers of a real
    cluster, not the driver's environment: where S3 is must come from geoseg.
    """
    import ray

    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False,
             runtime_env={"env_vars": creds})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def default_checkpoint():
    from geoseg.model.checkpoint import load_checkpoint

    return load_checkpoint(None)


@pytest.fixture(scope="session")
def predictor(default_checkpoint):
    from geoseg.model.predict import Predictor

    return Predictor.from_checkpoint(default_checkpoint, device="cpu")


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3-compatible HTTP server on 127.0.0.1: ``$GEOSEG_TEST_S3_ENDPOINT`` (``.ci/run`` starts
    ``moto_server``) or a ``moto_server`` started here. Yields its URL."""
    import shutil
    import subprocess
    import time
    import urllib.request

    url = os.environ.get("GEOSEG_TEST_S3_ENDPOINT")
    proc = None
    if not url:
        exe = shutil.which("moto_server")
        if exe is None:
            pytest.fail("moto_server not found: install the test extra (pip install -e '.[test]')")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=2)
            break
        except Exception:
            if time.monotonic() > deadline:
                if proc:
                    proc.kill()
                pytest.fail(f"S3 server at {url} did not answer within 30 s")
            time.sleep(0.2)
    yield url
    if proc:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch):
    """A fresh bucket on the test S3 server, with the AWS environment pointing at it. Yields ``s3://name``."""
    import uuid

    from geoseg.io import storage

    env = {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    # geoseg sets GDAL's variables in os.environ itself (storage.configure_gdal_s3): restore them afterwards
    # (monkeypatch.delenv of an absent variable records nothing to undo)
    gdal_keys = ("AWS_S3_ENDPOINT", "AWS_HTTPS", "AWS_VIRTUAL_HOSTING", *storage.GDAL_HTTP_RETRIES)
    gdal_before = {k: os.environ.get(k) for k in gdal_keys}
    for k in (*gdal_keys, "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    storage.s3_client.cache_clear()
    name = f"geoseg-test-{uuid.uuid4().hex[:10]}"
    storage.s3_client().create_bucket(Bucket=name)
    yield f"s3://{name}"
    storage.s3_client.cache_clear()
    for k, v in gdal_before.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def pg_url():
    """A real PostgreSQL + PostGIS server: ``$GEOSEG_TEST_PG_DSN`` (``.ci/run`` starts one with ``tests/pgserver.py``)
    or one started here (skipped, with the reason, only when PostgreSQL or PostGIS is not installed). Yields the URL
    of its superuser (no password needed; see ``tests/pgserver.py`` for the roles that need one)."""
    import tempfile

    from tests import pgserver

    url = os.environ.get("GEOSEG_TEST_PG_DSN")
    if url:
        yield url
        return
    reason = pgserver.unavailable()
    if reason:
        pytest.skip(reason)
    directory = tempfile.mkdtemp(prefix="geoseg-pg-")  # not under pytest's 0700 tmp root: the server user reads it
    try:
        yield pgserver.start(directory)
    finally:
        pgserver.stop(directory)


@pytest.fixture
def pg(pg_url):
    """A fresh schema on the test server (:class:`tests.helpers.PgSchema`: sink URL, queries); dropped afterwards."""
    import uuid

    from tests.helpers import PgSchema

    db = PgSchema(pg_url, f"t_{uuid.uuid4().hex[:10]}")
    yield db
    db.close()

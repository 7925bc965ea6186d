"""Shared fixtures: tiny rasters built on the fly, the bundled sample data, one small Ray cluster."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
SHARED = REPO.parent / "shared" / "data"
NC_IMAGE = SAMPLE / "nc_raleigh_landsat7_2000.tif"
NC_LABELS = SAMPLE / "nc_raleigh_labels_4class.tif"
ZION_IMAGE = SAMPLE / "zion_north_landsat8_2015_crop.tif"
ZION_LABELS = SAMPLE / "zion_north_labels_4class_crop.tif"

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


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
        arr = array if array.ndim == 3 else array[None]
        counter["n"] += 1
        path = tmp_path / (name or f"raster{counter['n']}.tif")
        profile = dict(
            driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0], dtype=arr.dtype,
            crs=crs, transform=transform or from_origin(500000, 4200000, 30, 30), nodata=nodata,
        )
        if tiled:
            profile.update(tiled=True, blockxsize=64, blockysize=64, compress="deflate")
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(arr)
            if descriptions:
                dst.descriptions = tuple(descriptions)
        return path

    return _make


@pytest.fixture(scope="session")
def ray_cluster():
    """One small local Ray instance for the whole session (2 CPUs, no dashboard)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def default_checkpoint():
    from geoseg.model import load_checkpoint

    return load_checkpoint(None)


@pytest.fixture(scope="session")
def predictor(default_checkpoint):
    from geoseg.predict import Predictor

    return Predictor.from_checkpoint(default_checkpoint, device="cpu")

"""Per-scene normalisation (geoseg.model.normalization): percentile statistics over valid pixels only.

Oracle: a raster whose valid values are a known ramp (100..199) with a nodata strip.
"""

import numpy as np
import pytest
import rasterio

from geoseg.errors import InputError
from geoseg.io.raster import read_window
from geoseg.model.normalization import Normalization, apply, scene_stats
from geoseg.tiling import PixelBox


def test_scene_stats_ignore_nodata_and_scale_to_unit_range(make_raster):
    arr = np.tile(np.arange(100, 200, dtype=np.uint16), (2, 100, 1))
    arr[:, :10, :] = 65535
    path = make_raster(arr, nodata=65535)
    norm = Normalization(low=0, high=100)
    with rasterio.open(path) as src:
        stats = scene_stats(src, [1, 2], norm)
        data, _ = read_window(src, [1, 2], PixelBox(0, 0, 100, 100))
    assert stats.offset == (100.0, 100.0) and stats.scale == (99.0, 99.0)
    x = apply(data[:, 10:, :], stats, norm)
    assert x.min() == 0.0 and x.max() == 1.0


def test_scene_stats_on_all_nodata_is_a_clear_error(make_raster):
    path = make_raster(np.zeros((1, 10, 10), np.uint8), nodata=0)
    with rasterio.open(path) as src, pytest.raises(InputError, match="no valid"):
        scene_stats(src, [1], Normalization())

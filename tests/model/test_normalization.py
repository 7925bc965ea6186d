"""Per-scene normalisation (geoseg.model.normalization): percentile statistics over valid pixels only.

Oracles: a raster whose valid values are a known ramp (100..199) with a nodata strip; numpy's
percentiles of the finite pixels of a float raster with NaN and inf in some bands.
"""

import numpy as np
import pytest
import rasterio

from geoseg.errors import InputError
from geoseg.io.raster import read_window
from geoseg.model.normalization import BandStats, Normalization, apply, scene_stats, stats_from_dict
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
    assert stats.pixels == 90 * 100  # the valid pixels they were estimated from
    x = apply(data[:, 10:, :], stats, norm)
    assert x.min() == 0.0 and x.max() == 1.0


def test_scene_stats_on_all_nodata_is_a_clear_error(make_raster):
    path = make_raster(np.zeros((1, 10, 10), np.uint8), nodata=0)
    with rasterio.open(path) as src, pytest.raises(InputError, match="no valid"):
        scene_stats(src, [1], Normalization())


@pytest.mark.parametrize("nodata", [None, -9999.0])
def test_scene_stats_skip_nan_and_inf_in_any_band(make_raster, nodata):
    """One NaN pixel (no declared nodata, or a nodata other than NaN) must not make the statistics NaN;
    a pixel non-finite in any band is left out of every band's percentiles, like a nodata pixel."""
    rng = np.random.default_rng(3)
    arr = rng.uniform(0.0, 0.4, size=(3, 60, 70)).astype(np.float32)
    arr[1, 7, 9] = np.nan
    arr[0, 20:23, :] = np.nan
    arr[2, 40, 5] = np.inf
    arr[0, 50, 50] = -np.inf
    if nodata is not None:
        arr[:, 55:, 60:] = nodata
    path = make_raster(arr, nodata=nodata)
    norm = Normalization(low=2, high=98)
    with rasterio.open(path) as src:
        stats = scene_stats(src, [1, 2, 3], norm)
        data, valid = read_window(src, [1, 2, 3], PixelBox(0, 0, 70, 60))
    ok = np.isfinite(arr).all(axis=0) & ~(arr == nodata).any(axis=0)
    lo, hi = np.percentile(arr[:, ok].astype(np.float64), [2, 98], axis=1)
    np.testing.assert_allclose(stats.offset, lo)
    np.testing.assert_allclose(stats.scale, hi - lo)
    np.testing.assert_array_equal(valid, ok)
    x = apply(data, stats, norm)  # what the network sees: finite everywhere, valid pixels as scaled
    assert np.isfinite(x).all()
    np.testing.assert_allclose(x[:, ok], np.clip((arr[:, ok] - lo[:, None]) / (hi - lo)[:, None], -0.5, 1.5), rtol=1e-5, atol=1e-6)


def test_scene_stats_of_an_all_nan_raster_is_a_clear_error(make_raster):
    path = make_raster(np.full((2, 10, 10), np.nan, np.float32))
    with rasterio.open(path) as src, pytest.raises(InputError, match="no valid"):
        scene_stats(src, [1, 2], Normalization())


def test_valid_pixels_too_sparse_for_the_decimated_read_still_give_statistics(make_raster, monkeypatch):
    """A scene whose few valid pixels all fall between the samples of the decimated read is not "empty":
    every pixel is then read (strip by strip) before the scene is refused."""
    from geoseg.model import normalization

    monkeypatch.setattr(normalization, "STATS_MAX_SIDE", 16)  # 64 px -> a read of every 4th pixel
    arr = np.zeros((1, 64, 64), np.uint16)
    arr[0, 1::4, 1::4] = np.arange(1, 257).reshape(16, 16)  # between the samples of nearest decimation
    path = make_raster(arr, nodata=0)
    with rasterio.open(path) as src:
        stats = scene_stats(src, [1], Normalization(low=0, high=100))
    assert stats.offset == (1.0,) and stats.scale == (255.0,)


def test_scene_stats_of_a_scene_gdal_cannot_read_at_all_give_gdals_cause_not_no_valid_pixels(tmp_path):
    from rasterio.shutil import copy as rio_copy
    from rasterio.windows import Window

    from tests.helpers import NC_IMAGE, crop_raster

    source = crop_raster(NC_IMAGE, tmp_path / "gone.tif", Window(0, 0, 64, 64))
    vrt = tmp_path / "v.vrt"
    rio_copy(source, vrt, driver="VRT")
    source.unlink()
    with rasterio.open(vrt) as src, pytest.raises(InputError) as err:
        scene_stats(src, [2, 3, 4], Normalization())
    assert "no valid pixels" not in str(err.value) and str(source) in str(err.value)


def test_stats_from_a_manifest_mapping_round_trip_and_refuse_what_is_not_one():
    stats = BandStats((1.0, 2.0, 3.0), (10.0, 20.0, 30.0), pixels=5)
    assert stats_from_dict(stats.to_dict(), 3, "m.json") == stats  # ``pixels`` is not part of the scaling
    for bad, needle in [({"offset": [1, 2, 3]}, "must be"), ({"offset": [1, 2], "scale": [1, 1]}, "takes 3 band"),
                        ({"offset": [1, 2, 3], "scale": [1, 0, 1]}, "> 0"), ({"offset": "abc", "scale": [1]}, "must be")]:
        with pytest.raises(InputError, match=needle):
            stats_from_dict(bad, 3, "m.json")

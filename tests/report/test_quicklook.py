"""Quicklook PNGs (geoseg.report.quicklook). Oracles: Pillow decoding the PNGs, numpy percentiles, the raster."""

from __future__ import annotations

import numpy as np
import pytest

from geoseg.io.styles import Category
from geoseg.report import quicklook
from tests.helpers import read_png, write_raster


def test_encoded_png_decodes_to_the_same_pixels(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 256, (37, 53, 4), dtype=np.uint8)
    (tmp_path / "x.png").write_bytes(quicklook.encode_png(rgba))
    assert np.array_equal(read_png(tmp_path / "x.png"), rgba)


def test_large_rasters_are_decimated_to_the_long_side():
    assert quicklook.quicklook_shape(4000, 1000) == (256, 1024)
    assert quicklook.quicklook_shape(300, 200) == (200, 300)


def test_categorical_quicklook_colours_and_transparent_nodata(tmp_path):
    arr = np.array([[0, 1, 255], [1, 7, 0]], np.uint8)
    tif = write_raster(tmp_path / "c.tif", arr, nodata=255)
    png = quicklook.write_categorical(tif, tmp_path / "c.png", [Category(0, "a", "#102030"), Category(1, "b", "#ff0000")])
    got = read_png(png)
    assert got[0, 0].tolist() == [16, 32, 48, 255] and got[0, 1].tolist() == [255, 0, 0, 255]
    assert got[0, 2, 3] == 0 and got[1, 1, 3] == 0  # nodata and a value without a category


def test_scene_quicklook_picks_bands_by_name_and_stretches():
    assert quicklook.composite_bands(["blue", "green", "red", "nir"], 4) == ([3, 2, 1], "red/green/blue")
    assert quicklook.composite_bands(["swir1", "nir", "red", "green"], 4) == ([1, 2, 3], "swir1/nir/red")
    assert quicklook.composite_bands([None, None], 2) == ([1, 1, 1], "band 1")
    data = np.arange(100, dtype=float).reshape(1, 10, 10)
    out = quicklook.stretch(data, np.ones((10, 10), bool))
    lo, hi = np.percentile(data, [2, 98])
    assert out[0, 0, 0] == 0 and out[0, 9, 9] == 255
    assert out[0, 5, 0] == round((50 - lo) * 255 / (hi - lo))


def test_ramp_interpolates_between_stops():
    got = quicklook.ramp_rgba(np.array([[0, 100, 25]]), np.array([[True, True, False]]), ((0, "#000000"), (100, "#ffffff")))
    assert got[0, 0].tolist() == [0, 0, 0, 255] and got[0, 1].tolist() == [255, 255, 255, 255] and got[0, 2, 3] == 0


def test_palette_png_decodes_to_the_palette_colours(tmp_path):
    rng = np.random.default_rng(1)
    palette = rng.integers(0, 256, (40, 4), dtype=np.uint8)
    idx = rng.integers(0, 40, (29, 31), dtype=np.uint8)
    (tmp_path / "p.png").write_bytes(quicklook.encode_png_palette(idx, palette))
    assert np.array_equal(read_png(tmp_path / "p.png"), palette[idx])
    with pytest.raises(ValueError, match="outside a palette of 40"):
        quicklook.encode_png_palette(np.full((2, 2), 40, np.uint8), palette)


def test_confidence_quicklook_equals_the_rgba_ramp_of_the_raster(tmp_path):
    conf = np.random.default_rng(2).integers(0, 101, (40, 50)).astype(np.uint8)
    conf[3:9, 4:20] = 255
    tif = write_raster(tmp_path / "conf.tif", conf, nodata=255)
    got = read_png(quicklook.write_ramp(tif, tmp_path / "conf.png"))
    want = quicklook.ramp_rgba(conf, conf != 255)
    assert np.array_equal(got, want) and got[5, 10, 3] == 0


def test_categorical_quicklook_with_another_nodata_value(tmp_path):
    arr = np.array([[0, 1, 3], [3, 1, 0]], np.uint8)  # 3: nodata, as a change map may declare
    tif = write_raster(tmp_path / "c.tif", arr, nodata=3)
    cats = [Category(0, "a", "#102030"), Category(1, "b", "#ff0000"), Category(3, "c", "#00ff00")]
    got = read_png(quicklook.write_categorical(tif, tmp_path / "c.png", cats, nodata=3))
    assert got[0, 1].tolist() == [255, 0, 0, 255] and got[0, 2, 3] == 0 and got[1, 0, 3] == 0

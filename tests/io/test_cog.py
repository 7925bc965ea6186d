"""Raster writing: a window-by-window raster becomes a valid COG with the same pixels; writes are atomic.

Oracles: the pixels written; each 2 x 2 block's majority class (numpy) for the overviews of a class map.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rio_cogeo.cogeo import cog_validate

from geoseg.grid import GeoGrid
from geoseg.io.cog import StitchedRaster, atomic_path, open_scratch, write_cog
from geoseg.tiling import PixelBox
from tests.helpers import majority_blocks

GRID = GeoGrid(1100, 700, from_origin(500000, 4200000, 30, 30), rasterio.crs.CRS.from_epsg(32612))


def test_stitched_raster_is_a_cog_with_the_written_pixels_and_mode_overviews(tmp_path):
    rng = np.random.default_rng(0)
    want = rng.integers(0, 4, size=GRID.shape).astype(np.uint8)
    want[:, :550] = 2  # the left half: a constant block, so its overview is 2 whatever the rule
    out = StitchedRaster(tmp_path / "m.tif", GRID, 255, blocksize=256, colormap={2: (0, 0, 255, 255)})
    for r0 in range(0, 700, 300):  # windows in any order and shape
        for c0 in range(0, 1100, 400):
            box = PixelBox(c0, r0, min(400, 1100 - c0), min(300, 700 - r0))
            out.write(box, want[box.to_slices()])
    path = out.to_cog(tags={"k": "v"}, band_description="class")
    assert not out.scratch.exists()
    valid, errors, _ = cog_validate(str(path))
    assert valid, errors
    with rasterio.open(path) as src:
        np.testing.assert_array_equal(src.read(1), want)
        assert src.tags()["k"] == "v" and src.descriptions == ("class",) and src.nodata == 255
        assert src.colormap(1)[2] == (0, 0, 255, 255)
        assert src.overviews(1), "a 1100 px raster has overviews"
        ov = src.read(1, out_shape=(src.height // 2, src.width // 2))
        assert (ov[:, : 550 // 2 - 1] == 2).all()


def test_atomic_path_leaves_nothing_on_failure_and_replaces_on_success(tmp_path):
    target = tmp_path / "a.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"  # not visible before the block ends
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_write_cog_of_a_scratch_raster_keeps_uint32_ids(tmp_path):
    grid = GeoGrid(300, 200, GRID.transform, GRID.crs)
    ids = np.arange(300 * 200, dtype=np.uint32).reshape(200, 300)
    with open_scratch(tmp_path / "s.tif", grid, dtype="uint32", nodata=0, mode="w+", block=64) as ds:
        ds.write(ids, 1)
        np.testing.assert_array_equal(ds.read(1), ids)  # w+: read back while writing
    write_cog(tmp_path / "s.tif", tmp_path / "ids.tif", overview_resampling="NEAREST")
    with rasterio.open(tmp_path / "ids.tif") as src:
        assert src.dtypes[0] == "uint32"
        np.testing.assert_array_equal(src.read(1), ids)


@pytest.mark.parametrize("resampling", [None, "NEAREST"])
def test_class_map_overviews_hold_the_mode_of_each_2x2_block(tmp_path, resampling):
    """A 1536 x 1024 map (overviews at 1/2 and 1/4) where each 2 x 2 block has one class three times and another
    once: by default the first overview holds each block's majority (a numpy oracle), which neither nearest
    (the top-left pixel) nor averaging would give."""
    classes, mode = majority_blocks(1, 1024, 1536)
    grid = GeoGrid(1536, 1024, GRID.transform, GRID.crs)
    out = StitchedRaster(tmp_path / "m.tif", grid, 255, blocksize=512)
    out.write(grid.box, classes)
    path = out.to_cog(overview_resampling=resampling) if resampling else out.to_cog()
    with rasterio.open(path) as src:
        assert src.overviews(1) == [2, 4]
    with rasterio.open(path, overview_level=0) as ov:
        level0 = ov.read(1)
    if resampling is None:
        np.testing.assert_array_equal(level0, mode)
    else:  # the oracle tells the rules apart
        assert (level0 != mode).mean() > 0.9

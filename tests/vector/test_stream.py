"""Streaming vectorization (geoseg.vector.stream): blocks assembled from tiles in any order, and the
polygons written from them while tiles arrive.

Oracles: the class map's own slices (every block equals the array block it covers, each block once, in
row-major order, handed over as soon as its pixels have arrived);
the file-based block-wise pass (:func:`vectorize_to_file`, itself checked against whole-raster GDAL polygonize
in test_polygons.py) on the same map written as a GeoTIFF with the same tags: same ids, classes, attributes and
geometry, with and without simplification.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geoseg.grid import GeoGrid
from geoseg.tiling import PixelBox, TileGrid
from geoseg.vector.blocks import block_rows
from geoseg.vector.frames import RegionContext
from geoseg.vector.polygons import vectorize_to_file
from geoseg.vector.stream import BlockAssembler, StreamingVectorizer
from tests.helpers import CLASS_NAMES, UTM12_30M, blobs, write_raster


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 70), w=st.integers(1, 70), tile=st.integers(13, 40), halo=st.integers(0, 6),
       block=st.integers(1, 33), seed=st.integers(0, 2**16), skip_share=st.floats(0, 0.5))
def test_blocks_equal_the_map_blocks_in_order_whatever_the_tile_order(h, w, tile, halo, block, seed, skip_share):
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 4, (h, w)).astype(np.uint8)
    conf = rng.integers(0, 101, (h, w)).astype(np.uint8)
    tiles = list(TileGrid(w, h, tile, halo))
    skipped = {t.index for t in tiles if rng.random() < skip_share}
    want_cls = classes.copy()
    want_conf = conf.copy()
    for t in tiles:
        if t.index in skipped:
            c = t.core
            want_cls[c.row:c.row_stop, c.col:c.col_stop] = 255
            want_conf[c.row:c.row_stop, c.col:c.col_stop] = 255
    grid = [box for row in block_rows(w, h, block) for box in row]
    asm = BlockAssembler(w, h, block, confidence=True, conf_nodata=255)
    got, given = [], np.zeros((h, w), bool)
    for i in rng.permutation(len(tiles)):
        c = tiles[i].core
        if tiles[i].index in skipped:
            new = asm.skip(c)
        else:
            new = asm.add(c, classes[c.row:c.row_stop, c.col:c.col_stop], conf[c.row:c.row_stop, c.col:c.col_stop])
        given[c.row:c.row_stop, c.col:c.col_stop] = True
        got += new
        assert [b.box for b in got] == grid[: len(got)]  # in row-major order, none twice
        for b in new:  # handed over as soon as it (and every block before it) is complete
            assert given[b.box.row:b.box.row_stop, b.box.col:b.box.col_stop].all()
        if len(got) < len(grid):
            nxt = grid[len(got)]
            assert not given[nxt.row:nxt.row_stop, nxt.col:nxt.col_stop].all()  # not held back
    assert asm.done and len(got) == len(grid)
    for b in got:
        rows, cols = slice(b.box.row, b.box.row_stop), slice(b.box.col, b.box.col_stop)
        np.testing.assert_array_equal(b.classes, want_cls[rows, cols])
        assert b.confidence is not None
        np.testing.assert_array_equal(b.confidence, want_conf[rows, cols])


def test_a_pixel_given_twice_is_an_error_not_a_silent_overwrite():
    asm = BlockAssembler(4, 8, 4, confidence=False)  # block rows 0-3, then 4-5 and 6-7 (the last one split)
    assert asm.add(PixelBox(0, 0, 4, 2), np.zeros((2, 4), np.uint8)) == []
    with pytest.raises(ValueError, match="more than once"):
        asm.add(PixelBox(0, 1, 4, 3), np.zeros((3, 4), np.uint8))
    asm = BlockAssembler(4, 8, 4, confidence=False)
    assert [b.box for b in asm.add(PixelBox(0, 0, 4, 4), np.zeros((4, 4), np.uint8))] == [PixelBox(0, 0, 4, 4)]
    with pytest.raises(ValueError, match="handed over"):  # a block already vectorized gets pixels again
        asm.add(PixelBox(0, 3, 4, 2), np.zeros((2, 4), np.uint8))


def test_a_block_row_is_handed_over_block_by_block_as_its_tiles_arrive():
    asm = BlockAssembler(96, 64, 32, confidence=False)  # 3 blocks per row, rows 0-31, 32-47, 48-63
    zeros = np.zeros((32, 32), np.uint8)
    assert [b.box for b in asm.add(PixelBox(0, 0, 32, 32), zeros)] == [PixelBox(0, 0, 32, 32)]
    assert asm.add(PixelBox(64, 0, 32, 32), zeros) == []  # the third block waits for the second
    assert [b.box.col for b in asm.add(PixelBox(32, 0, 32, 32), zeros)] == [32, 64]


def _map(tmp_path, shape=(150, 130), seed=4):
    classes = blobs(seed, shape)
    classes[40:60, 10:30] = 255  # a nodata hole
    conf = ((np.arange(shape[1])[None, :] * 7 + np.arange(shape[0])[:, None] * 3) % 90 + 10).astype(np.uint8)
    conf[classes == 255] = 255
    tags = {"class_names": ",".join(CLASS_NAMES), "model": "unet@1:abc", "source": "scene.tif", "acquired": "2015-08-18"}
    cpath = write_raster(tmp_path / "classes.tif", classes, nodata=255, tags=tags)
    fpath = write_raster(tmp_path / "conf.tif", conf, nodata=255)
    grid = GeoGrid(shape[1], shape[0], UTM12_30M, rasterio.crs.CRS.from_epsg(32612))
    ctx = RegionContext.for_map("scene.tif", grid, CLASS_NAMES, "unet@1:abc", "2015-08-18")
    return classes, conf, cpath, fpath, ctx


def _feed_in_tiles(vec, classes, conf, block, seed=0):
    h, w = classes.shape
    asm = BlockAssembler(w, h, block, confidence=True)
    tiles = list(TileGrid(w, h, 48, 8))
    for i in np.random.default_rng(seed).permutation(len(tiles)):
        c = tiles[i].core
        vec.feed(asm.add(c, classes[c.row:c.row_stop, c.col:c.col_stop], conf[c.row:c.row_stop, c.col:c.col_stop]))
    assert asm.done


@pytest.mark.parametrize("block,simplify_m", [(32, 0.0), (64, 0.0), (1024, 0.0), (32, 45.0)])
def test_streamed_polygons_equal_the_file_based_pass_on_the_finished_map(tmp_path, block, simplify_m):
    classes, conf, cpath, fpath, ctx = _map(tmp_path)
    vec = StreamingVectorizer(tmp_path / "streamed.gpkg", ctx, block, simplify_m, max_queued=1)
    _feed_in_tiles(vec, classes, conf, block)
    n = vec.finish()
    want_n = vectorize_to_file(cpath, tmp_path / "file.gpkg", confidence=fpath, class_names=CLASS_NAMES,
                               block_size=block, simplify_m=simplify_m)
    got = gpd.read_file(tmp_path / "streamed.gpkg", layer="landcover").sort_values("polygon_id", ignore_index=True)
    want = gpd.read_file(tmp_path / "file.gpkg", layer="landcover").sort_values("polygon_id", ignore_index=True)
    assert n == want_n == len(got) and n > 20
    assert got.drop(columns="geometry").equals(want.drop(columns="geometry"))
    assert shapely.equals_exact(got.geometry.values, want.geometry.values, tolerance=0).all()
    assert got.crs == want.crs and vec.seconds > 0


def test_a_failure_in_the_thread_reaches_the_feeder_and_abort_leaves_no_file(tmp_path):
    from geoseg.vector.stream import BlockData

    classes, conf, _, _, ctx = _map(tmp_path)
    vec = StreamingVectorizer(tmp_path / "bad.gpkg", ctx, 32)
    vec.feed([BlockData(PixelBox(32, 0, 32, 32), classes[:32, 32:64], conf[:32, 32:64])])  # block 1 before block 0
    with pytest.raises(RuntimeError, match="out of order"):
        vec.finish()
    vec = StreamingVectorizer(tmp_path / "aborted.gpkg", ctx, 32)
    vec.feed([BlockData(PixelBox(0, 0, 32, 32), classes[:32, :32], conf[:32, :32])])
    vec.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.tif", "conf.tif"]  # no output, no temp file

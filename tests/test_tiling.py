"""The tile grid (geoseg.tiling): cores partition the raster, reads stay inside it, halos give context.

Oracles: coverage counts over random grids (hypothesis) and hand-computed windows, transforms and messages.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoseg.errors import ConfigError
from geoseg.tiling import PixelBox, TileGrid

grids = st.builds(
    lambda w, h, ts, halo_frac: TileGrid(w, h, ts, min(int(ts * halo_frac), (ts - 1) // 2)),
    st.integers(1, 700),
    st.integers(1, 700),
    st.sampled_from([32, 64, 96, 128, 256]),
    st.floats(0, 0.45),
)


@settings(max_examples=200, deadline=None)
@given(grids)
def test_cores_cover_every_pixel_exactly_once(grid):
    cover = np.zeros((grid.height, grid.width), np.int32)
    for t in grid:
        cover[t.core.to_slices()] += 1
    assert (cover == 1).all()


@settings(max_examples=200, deadline=None)
@given(grids)
def test_reads_stay_inside_raster_and_contain_their_core(grid):
    for t in grid:
        r = t.read
        assert r.col >= 0 and r.row >= 0 and r.col_stop <= grid.width and r.row_stop <= grid.height
        assert r.width == min(grid.tile_size, grid.width) and r.height == min(grid.tile_size, grid.height)
        rs, cs = t.core_in_read()  # raises if the core is not inside the read window
        assert rs.stop - rs.start == t.core.height and cs.stop - cs.start == t.core.width


@settings(max_examples=100, deadline=None)
@given(grids)
def test_halo_context_is_kept_away_from_image_edges(grid):
    """Each core has at least `halo` pixels of context on every side that is not the image edge."""
    for t in grid:
        assert t.core.col - t.read.col >= min(grid.halo, t.core.col)
        assert t.core.row - t.read.row >= min(grid.halo, t.core.row)
        assert t.read.col_stop - t.core.col_stop >= min(grid.halo, grid.width - t.core.col_stop)
        assert t.read.row_stop - t.core.row_stop >= min(grid.halo, grid.height - t.core.row_stop)


def test_grid_is_deterministic_and_indexed_row_major():
    g = TileGrid(1000, 700, 256, 32)
    tiles = list(g)
    assert tiles == list(TileGrid(1000, 700, 256, 32))
    assert [t.index for t in tiles] == list(range(len(g)))
    assert g.shape == (4, 5)  # edge cores of 256 - 32 px, inner ones of 192: 224 + 3 x 192 + 72 = 1000
    last = tiles[-1]
    assert last.read == PixelBox(1000 - 256, 700 - 256, 256, 256)  # shifted back inside, no padding


def test_tile_transform_offsets_by_read_window():
    from affine import Affine

    from geoseg.grid import GeoGrid

    g = TileGrid(300, 300, 128, 16)
    t = g.tile(1, 1)
    tr = Affine(30, 0, 1000, 0, -30, 5000)
    grid = GeoGrid(300, 300, tr, None)
    assert grid.window_transform(t.read) * (0, 0) == tr * (t.read.col, t.read.row)
    assert grid.window_transform(t.core) * (0, 0) == tr * (t.core.col, t.core.row)


@pytest.mark.parametrize("tile_size,halo,message", [
    (64, 32, r"tile_size \(64\) must exceed 2 x halo \(64\); raise tile_size or lower halo"),
    (64, 40, r"tile_size \(64\) must exceed 2 x halo \(80\)"),
    (32, -1, r"halo must be >= 0 pixels, got -1")])
def test_invalid_halo_is_a_config_error_naming_the_values(tile_size, halo, message):
    with pytest.raises(ConfigError, match=message):
        TileGrid(100, 100, tile_size, halo)


@pytest.mark.parametrize("width,height", [(0, 5), (5, 0), (-1, 5), (5, -3)])
def test_an_empty_raster_is_a_config_error(width, height):
    with pytest.raises(ConfigError, match=rf"raster size must be positive, got {width}x{height}"):
        TileGrid(width, height, 64, 8)


def test_the_smallest_core_is_one_pixel():
    g = TileGrid(10, 3, 3, 1)  # tile 3, halo 1: 1 px cores along the long axis, 2 px at its ends
    assert g.core_size == 1 and g.shape == (1, 8)
    assert [g.tile(0, c).core.width for c in range(8)] == [2, 1, 1, 1, 1, 1, 1, 2]
    assert g.tile(0, 4).core == PixelBox(5, 0, 1, 3) and g.tile(0, 4).read == PixelBox(4, 0, 3, 3)


def test_tiles_know_their_grid_position_and_reject_positions_outside():
    g = TileGrid(300, 200, 128, 16)  # cores of 96 px, 112 at the edges: 112 + 96 + 92 columns, 112 + 88 rows
    assert g.shape == (2, 3)
    t = g.tile(1, 1)
    assert (t.index, t.grid_row, t.grid_col) == (4, 1, 1)
    assert t.core == PixelBox(112, 112, 96, 88) and t.read == PixelBox(96, 72, 128, 128)
    for r, c in ((2, 0), (0, 3), (-1, 0), (0, -1), (2, 3)):
        with pytest.raises(IndexError, match=rf"tile \({r}, {c}\) outside grid 2x3"):
            g.tile(r, c)


def test_pixel_boxes_as_windows_slices_and_relative_slices():
    from rasterio.windows import Window

    box = PixelBox(col=7, row=3, width=5, height=2)
    assert box.to_window() == Window(7, 3, 5, 2)
    assert box.to_slices() == (slice(3, 5), slice(7, 12)) and box.size == 10
    outer = PixelBox(col=4, row=1, width=10, height=6)
    assert box.relative_to(outer) == (slice(2, 4), slice(3, 8))
    assert box.relative_to(box) == (slice(0, 2), slice(0, 5))
    for bad in (PixelBox(3, 3, 5, 2), PixelBox(7, 0, 5, 2), PixelBox(10, 3, 5, 2), PixelBox(7, 6, 5, 2)):
        with pytest.raises(ValueError, match="is not inside"):
            bad.relative_to(outer)


@pytest.mark.parametrize("extent,tiles", [(95, 1), (96, 1), (97, 2), (128, 2), (129, 3), (160, 3), (161, 4)])
def test_an_axis_no_longer_than_one_tile_is_one_tile_without_halo(extent, tiles):
    """Hand-counted: tile 96, halo 32 -> cores of 32 px, 64 px at the edges (two tiles cover 128 px); an axis of
    at most 96 px is read (and kept) whole."""
    g = TileGrid(extent, 50, 96, 32)
    assert g.shape == (1, tiles)
    first, last = g.tile(0, 0), g.tile(0, tiles - 1)
    if tiles == 1:
        assert first.core == first.read == PixelBox(0, 0, extent, 50)
    else:
        assert first.core == PixelBox(0, 0, 64, 50) and first.read == PixelBox(0, 0, 96, 50)
        assert last.core.col_stop == extent and last.read == PixelBox(extent - 96, 0, 96, 50)


@settings(max_examples=200, deadline=None)
@given(grids)
def test_no_tile_is_needed_less(grid):
    """The fewest tiles that give every core ``halo`` px of context: one tile fewer along an axis would have to
    cover more than ``tile - halo`` at both edges plus ``tile - 2 halo`` in between (the layout's capacity)."""
    rows, cols = grid.shape
    for n, extent in ((rows, grid.height), (cols, grid.width)):
        if n > 1:
            capacity = 2 * (grid.tile_size - grid.halo) + (n - 3) * grid.core_size if n > 2 else grid.tile_size
            assert extent > capacity

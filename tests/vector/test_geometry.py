"""Pixel-space geometry (geoseg.vector.geometry): exact unions of pieces and collinear-vertex removal.

Oracles: shapely's own union and area (overlay union for the coverage union), and the rasterized
footprint of the pieces.
"""

from __future__ import annotations

import numpy as np
import shapely
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.features import shapes
from shapely.geometry import Polygon, box

from geoseg.vector.geometry import build_polygons, drop_collinear, union_pieces


def test_build_polygons_keeps_holes():
    shell = [(0, 0), (4, 0), (4, 4), (0, 4), (0, 0)]
    hole = [(1, 1), (1, 2), (2, 2), (2, 1), (1, 1)]
    got = build_polygons([[shell, hole], [[(5, 5), (6, 5), (6, 6), (5, 5)]]])
    assert got[0].equals(Polygon(shell, [hole])) and got[0].area == 15 and got[1].area == 0.5


def test_drop_collinear_removes_only_straight_through_vertices():
    ring = Polygon([(0, 0), (1, 0), (2, 0), (2, 1), (2, 2), (0, 2), (0, 1), (0, 0)])
    out = drop_collinear(ring)
    assert out.equals(ring) and len(out.exterior.coords) == 5  # the 4 corners + closing vertex
    many = drop_collinear(np.array([ring, box(0, 0, 3, 1)], dtype=object))
    assert [len(g.exterior.coords) for g in many] == [5, 5]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=20, unique=True))
def test_union_of_unit_pixels_equals_shapely_union(cells):
    pieces = [box(c, r, c + 1, r + 1) for c, r in cells]
    want = shapely.union_all(pieces)
    got = union_pieces(list(pieces))
    assert got.is_valid and got.area == len(cells) == want.area
    assert shapely.symmetric_difference(got, want).area == 0
    coords = shapely.get_coordinates(got)
    assert (coords == np.round(coords)).all()  # integer vertices: nothing was rounded
    fast = union_pieces(list(pieces), coverage=True)  # unit squares are a coverage
    assert fast.is_valid and shapely.equals_exact(shapely.normalize(fast), shapely.normalize(got), tolerance=0)


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**16), st.integers(3, 60), st.sampled_from([0.62, 0.97]))
def test_coverage_union_of_a_regions_block_fragments_equals_the_overlay_union(seed, block, density):
    """Fragments of one region cut by block seams (long straight seam edges whose vertices do not
    match across the seam; holes; pieces touching at a corner): same geometry, vertex for vertex."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    size = 120
    mask = np.ones((size, size), bool)
    for _ in range(12):  # rectangular gaps: long straight edges
        r, c = rng.integers(0, size, 2)
        mask[r:r + rng.integers(1, 40), c:c + rng.integers(1, 40)] = False
    mask &= rng.random((size, size)) < density
    lab, n = ndimage.label(mask)
    if n == 0:
        return
    region = lab == np.bincount(lab.ravel())[1:].argmax() + 1  # the largest 4-connected region
    pieces = []
    for r0 in range(0, size, block):
        for c0 in range(0, size, block * 2):  # blocks of block x 2*block pixels
            sub = np.zeros_like(region)
            sub[r0:r0 + block, c0:c0 + 2 * block] = region[r0:r0 + block, c0:c0 + 2 * block]
            if sub.any():
                rings = [g["coordinates"] for g, _ in shapes(sub.astype(np.uint8), mask=sub, connectivity=4,
                                                             transform=Affine.translation(2987, 1013))]
                pieces.extend(build_polygons(rings).tolist())
    want = union_pieces(list(pieces))
    got = union_pieces(list(pieces), coverage=True)
    assert got.is_valid and got.area == region.sum() == want.area
    assert shapely.equals_exact(shapely.normalize(got), shapely.normalize(want), tolerance=0)

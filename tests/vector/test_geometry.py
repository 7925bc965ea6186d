"""Pixel-space geometry (geoseg.vector.geometry): exact unions of pieces and collinear-vertex removal.

Oracles: shapely's own union and area, and the rasterized footprint of the pieces.
"""

from __future__ import annotations

import numpy as np
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
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

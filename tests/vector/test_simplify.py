"""Coverage simplification (geoseg.vector.simplify) through the block-wise vectorizer.

Oracles: the unsimplified block-wise polygons (same ids, same holes, same union: no gaps, no
overlaps, within the tolerance of the pixel edges); the same map at another pixel size (the
tolerance is in metres).
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from geoseg.vector.polygons import polygon_frame
from tests.helpers import blobs, write_classes

# --------------------------------------------------------------------------- simplification


def _overlap_area(geoms):
    tree = shapely.STRtree(geoms)
    i, j = tree.query(geoms, predicate="intersects")
    m = i < j
    return float(shapely.area(shapely.intersection(geoms[i[m]], geoms[j[m]])).sum())


@pytest.mark.parametrize("block_size", [4, 7, 16, 100])
def test_simplification_keeps_a_valid_gap_free_coverage(tmp_path, block_size):
    classes = blobs(2)
    classes[20:24, 30:34] = 1
    classes[21:23, 31:33] = 2  # a hole in a hole
    path = write_classes(tmp_path, classes)
    before = polygon_frame(path, block_size=block_size)
    after = polygon_frame(path, block_size=block_size, simplify_m=45.0)
    g = after.geometry.values
    assert len(after) == len(before) and after["polygon_id"].tolist() == before["polygon_id"].tolist()
    assert shapely.is_valid(g).all()
    assert _overlap_area(g) == pytest.approx(0, abs=1e-6)
    assert shapely.union_all(g).area == pytest.approx(before.geometry.area.sum(), rel=1e-9)  # no gaps
    assert shapely.get_num_interior_rings(g).sum() == shapely.get_num_interior_rings(before.geometry.values).sum()
    assert shapely.get_num_coordinates(g).sum() < 0.85 * shapely.get_num_coordinates(before.geometry.values).sum()
    # within the tolerance of the pixel boundaries
    assert shapely.hausdorff_distance(shapely.union_all(shapely.boundary(g)),
                                      shapely.union_all(shapely.boundary(before.geometry.values))) < 3 * 30
    # no collinear vertices left along the pinned block-row lines
    assert (shapely.get_num_coordinates(shapely.simplify(g, 0)) == shapely.get_num_coordinates(g)).all()


def test_the_tolerance_is_in_metres_whatever_the_pixel_size(tmp_path):
    """The same map with 30 m and 10 m pixels: 45 m and 15 m (1.5 px) give the same polygons in pixel space;
    45 m on 10 m pixels (4.5 px) simplifies more."""
    from rasterio.transform import from_origin

    classes = blobs(4)

    def simplified(pixel, metres):
        t = from_origin(500000, 4200000, pixel, pixel)
        gdf = polygon_frame(write_classes(tmp_path, classes, transform=t), block_size=16, simplify_m=metres)
        px = shapely.transform(gdf.geometry.values, lambda xy: (xy - [500000, 4200000]) / [pixel, -pixel])
        return gdf["polygon_id"].tolist(), shapely.normalize(shapely.set_precision(px, 1e-6))

    ids30, g30 = simplified(30.0, 45.0)
    ids10, g10 = simplified(10.0, 15.0)
    assert ids30 == ids10 and shapely.equals_exact(g30, g10, tolerance=1e-6).all()
    coarse = shapely.get_num_coordinates(simplified(10.0, 45.0)[1]).sum()
    assert coarse < shapely.get_num_coordinates(g10).sum()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    classes=arrays(np.uint8, st.tuples(st.integers(2, 24), st.integers(2, 24)), elements=st.sampled_from([0, 1, 2, 255])),
    block_size=st.integers(1, 9),
    tolerance=st.sampled_from([20.0, 45.0, 200.0]),
    mmu_px=st.sampled_from([0, 3]),
)
def test_random_simplified_coverages_stay_valid(tmp_path, classes, block_size, tolerance, mmu_px):
    path = write_classes(tmp_path, classes)
    before = polygon_frame(path, block_size=block_size, mmu_m2=mmu_px * 900.0)
    after = polygon_frame(path, block_size=block_size, mmu_m2=mmu_px * 900.0, simplify_m=tolerance)
    g = after.geometry.values
    assert after["polygon_id"].tolist() == before["polygon_id"].tolist()
    assert shapely.is_valid(g).all()
    assert _overlap_area(g) == pytest.approx(0, abs=1e-6)
    assert (shapely.get_num_interior_rings(g) == shapely.get_num_interior_rings(before.geometry.values)).all()
    if not (classes == 255).any():
        assert shapely.union_all(g).area == pytest.approx(classes.size * 900.0, rel=1e-9)


def test_simplification_with_nodata(tmp_path):
    classes = blobs(3)
    classes[10:20, 15:30] = 255
    classes[:, :3] = 255
    path = write_classes(tmp_path, classes)
    before = polygon_frame(path, block_size=9)
    after = polygon_frame(path, block_size=9, simplify_m=40.0)
    g = after.geometry.values
    assert shapely.is_valid(g).all() and _overlap_area(g) == pytest.approx(0, abs=1e-6)
    perimeter = shapely.union_all(before.geometry.values).length
    assert shapely.union_all(g).area == pytest.approx(before.geometry.area.sum(), abs=perimeter * 40.0)


# --------------------------------------------------------------------------- outputs



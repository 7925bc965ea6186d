"""The minimum mapping unit (geoseg.vector.mmu): which neighbour a region below the MMU joins.

Oracle: hand-counted shared pixel edges on small maps: a one-pixel region with 3 edges on one class
and 1 on another, a two-pixel region with 3 and 3 (a tie: the lowest class id), each mirrored so
that neither side nor scan order decides, and cut by block seams of several sizes; nodata across a
seam, which is never a neighbour.
"""

from __future__ import annotations

import numpy as np
import pytest

from geoseg.vector.polygons import polygon_frame
from tests.helpers import write_classes

PX = 900.0  # m² of a 30 m pixel


def _halves(left: int, right: int) -> np.ndarray:
    """A 12 x 12 map: columns 0..5 of class ``left``, 6..11 of class ``right`` (72 px regions)."""
    a = np.full((12, 12), right, np.uint8)
    a[:, :6] = left
    return a


def _merged(tmp_path, classes, block_size, mmu_px=3) -> list[tuple[int, float]]:
    gdf = polygon_frame(write_classes(tmp_path, classes), block_size=block_size, mmu_m2=mmu_px * PX)
    return sorted((int(c), round(a / PX)) for c, a in zip(gdf.class_id, gdf.area_m2))


@pytest.mark.parametrize("block_size", [3, 5, 64])
@pytest.mark.parametrize("left,right", [(1, 2), (2, 1)])
def test_a_small_region_joins_the_class_it_shares_most_edges_with(tmp_path, block_size, left, right):
    classes = _halves(left, right)
    classes[5, 5] = 3  # in the left half: 3 edges on the left class (up, down, left), 1 on the right one
    got = _merged(tmp_path, classes, block_size)
    assert got == sorted([(left, 72), (right, 72)]), "the 1 px region must join the left half (3 edges vs 1)"
    classes = _halves(left, right)
    classes[6, 6] = 3  # in the right half: 3 edges on the right class
    assert _merged(tmp_path, classes, block_size) == sorted([(left, 72), (right, 72)])


@pytest.mark.parametrize("block_size", [3, 5, 64])
@pytest.mark.parametrize("left,right", [(1, 2), (2, 1)])
def test_a_tie_in_shared_edges_goes_to_the_lowest_class_id(tmp_path, block_size, left, right):
    classes = _halves(left, right)
    classes[5, 5:7] = 3  # straddles the halves: 3 edges on each side (up, down and outer end)
    got = _merged(tmp_path, classes, block_size)
    winner = min(left, right)
    sizes = {left: 71, right: 71}
    sizes[winner] += 2
    assert got == sorted(sizes.items()), f"a tie must go to class {winner}"


@pytest.mark.parametrize("block_size", [2, 4, 64])
@pytest.mark.parametrize("transpose", [False, True])
def test_nodata_is_never_a_neighbour_even_across_a_block_seam(tmp_path, block_size, transpose):
    """A 4 px region under a nodata strip (4 edges on nodata, right on a block seam for blocks of 2 and 4),
    3 edges on each class: the tie goes to class 1, never to nodata."""
    classes = _halves(1, 2)
    classes[0:4, 4:8] = 255
    classes[4, 4:8] = 3
    if transpose:
        classes = np.ascontiguousarray(classes.T)
    assert _merged(tmp_path, classes, block_size, mmu_px=5) == [(1, 66), (2, 62)]

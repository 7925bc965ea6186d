"""The block machinery of the vectorizer (geoseg.vector.blocks): block grid, block labelling, union-find and
the seam join that puts regions split by block borders back together.

Oracles: ``scipy.ndimage.label`` of the whole raster (4-connected regions of one class, numbered
from their first pixel in row-major order) for random maps split into random block sizes
(hypothesis), and ``scipy.sparse.csgraph.connected_components`` for the union-find.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from geoseg.tiling import PixelBox
from geoseg.vector.blocks import Joiner, UnionFind, block_rows, label_block, row_bands
from tests.helpers import spiral

class_maps = st.integers(1, 4).flatmap(lambda k: arrays(
    np.uint8, st.tuples(st.integers(1, 24), st.integers(1, 24)),
    elements=st.sampled_from([*range(k), 255])))
"""Random class maps of 1 to 4 classes with nodata (255), up to 24 x 24 pixels."""


def whole_raster_regions(classes: np.ndarray) -> np.ndarray:
    """Per pixel, the raster index (row * width + col) of the first pixel of its 4-connected region of
    one class; -1 on nodata."""
    out = np.full(classes.shape, -1, np.int64)
    for c in np.unique(classes):
        if c == 255:
            continue
        lab, k = ndimage.label(classes == c)
        for i in range(1, k + 1):
            mask = lab == i
            out[mask] = np.flatnonzero(mask.ravel())[0]
    return out


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 60), st.integers(1, 60), st.integers(1, 25))
def test_block_rows_cover_the_raster_once_in_row_major_order(width, height, block_size):
    cover = np.zeros((height, width), np.int32)
    starts = []
    rows = list(block_rows(width, height, block_size))
    for row in rows:
        assert len({(b.row, b.height) for b in row}) == 1, "a block row shares its rows"
        for b in row:
            assert b.width <= block_size and b.height <= block_size
            cover[b.to_slices()] += 1
            starts.append((b.row, b.col))
    assert (cover == 1).all()
    assert starts == sorted(starts)
    full = -(-height // block_size)  # block rows of block_size px, the last one split in two (if it can be)
    last = height - (full - 1) * block_size
    assert len(rows) == full + (last >= 2)
    assert all(row[0].height == block_size for row in rows[: full - 1])


@pytest.mark.parametrize(("height", "block", "want"), [
    (3072, 1024, [(0, 1024), (1024, 1024), (2048, 512), (2560, 512)]),
    (3000, 1024, [(0, 1024), (1024, 1024), (2048, 476), (2524, 476)]),
    (2049, 1024, [(0, 1024), (1024, 1024), (2048, 1)]),
    (7, 4, [(0, 4), (4, 2), (6, 1)]),
    (1, 8, [(0, 1)]),
    (0, 8, []),
])
def test_row_bands_split_the_last_block_row_in_two(height, block, want):
    assert row_bands(height, block) == want


@settings(max_examples=100, deadline=None)
@given(class_maps, st.integers(0, 50), st.integers(0, 50), st.integers(0, 30))
def test_label_block_fragments_are_the_blocks_4_connected_regions(classes, row0, col0, extra_width):
    """The block at (row0, col0) of a raster ``extra_width`` columns wider than the block: one label per
    region of the block alone, nodata unlabelled, ids = raster index of the fragment's first pixel."""
    h, w = classes.shape
    width = col0 + w + extra_width
    blk = label_block(classes, PixelBox(col0, row0, w, h), width)
    assert ((blk.labels == 0) == (classes == 255)).all()
    assert blk.fid[0] == -1 and blk.label_class[0] == 255
    ref = whole_raster_regions(classes)  # of the block alone: in block coordinates
    assert blk.n == len(np.unique(ref[ref >= 0]))
    for i in range(1, blk.n + 1):
        mask = blk.labels == i
        first = np.flatnonzero(mask.ravel())[0]
        assert (ref[mask] == first).all() and (mask == (ref == first)).all()  # the same pixels as one region
        assert (classes[mask] == blk.label_class[i]).all()
        r, c = divmod(int(first), w)
        assert blk.fid[i] == (row0 + r) * width + col0 + c


def join_in_blocks(classes: np.ndarray, block_size: int) -> tuple[np.ndarray, dict[int, int]]:
    """Label ``classes`` block by block and join the fragments across seams, as the vectorizer does.

    Returns per pixel the id of its region (the smallest fragment id of the region: a fragment on
    its own keeps its id) and, per joined region, the block row at whose end it was closed.
    """
    h, w = classes.shape
    joiner = Joiner(w, h)
    region = np.full((h, w), -1, np.int64)
    pending = {}  # fragment id -> (box, pixels in the block) of fragments on internal block edges
    closed_at = {}
    rows = list(block_rows(w, h, block_size))
    for bi, row in enumerate(rows):
        for box in row:
            blk = label_block(classes[box.to_slices()], box, w)
            edges = blk.edges()
            is_node = joiner.join(edges)
            for i in range(1, blk.n + 1):
                mask = blk.labels == i
                if is_node[i]:
                    pending[int(blk.fid[i])] = (box, mask)
                else:
                    region[box.to_slices()][mask] = blk.fid[i]
            joiner.advance(edges)
        for members in joiner.end_row(bi == len(rows) - 1):
            rid = min(members)
            for f in members:
                box, mask = pending.pop(f)
                region[box.to_slices()][mask] = rid
            closed_at[rid] = bi
    assert not pending, "fragments never closed"
    return region, closed_at


@settings(max_examples=150, deadline=None)
@given(class_maps, st.integers(1, 9))
def test_joined_fragments_are_the_whole_raster_regions(classes, block_size):
    """Every region of the whole raster comes back as one region, with the id of its first pixel, and is
    closed in the block row where it ends (or the next one, if it ends on that row's bottom line)."""
    region, closed_at = join_in_blocks(classes, block_size)
    ref = whole_raster_regions(classes)
    np.testing.assert_array_equal(region, ref)
    last_row = {int(rid): int(np.flatnonzero((ref == rid).any(axis=1))[-1]) for rid in closed_at}
    for rid, bi in closed_at.items():
        assert last_row[rid] // block_size <= bi <= last_row[rid] // block_size + 1, (rid, bi)


def test_a_spiral_across_many_blocks_is_one_region():
    """A one-pixel-wide spiral crosses every seam of a 3-pixel block grid many times: one region."""
    a = spiral(21)
    assert ndimage.label(a == 1)[1] == 1  # the oracle agrees it is one region
    region, _ = join_in_blocks(a, 3)
    assert len(np.unique(region[a == 1])) == 1 and region[0, 0] == 0


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=60))))
def test_union_find_groups_are_the_connected_components(case):
    n, pairs = case
    ids = [7 * k + 3 for k in range(n)]  # arbitrary, sparse ids, like raster indexes
    uf = UnionFind()
    for x in ids:
        uf.add(x)
    for a, b in pairs:
        uf.union(ids[a], ids[b])
    rows = [a for a, _ in pairs] + list(range(n))
    cols = [b for _, b in pairs] + list(range(n))
    k, comp = connected_components(coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)), directed=False)
    for a in range(n):
        for b in range(n):
            assert (uf.find(ids[a]) == uf.find(ids[b])) == (comp[a] == comp[b])
    assert len(uf.members) == k
    for root, members in uf.members.items():
        assert uf.find(root) == root
        assert sorted(members) == sorted(ids[i] for i in np.flatnonzero(comp == comp[ids.index(root)]))
    # popping a closed group forgets exactly its members
    root = uf.find(ids[0])
    popped = uf.pop(root)
    assert sorted(popped) == sorted(ids[i] for i in np.flatnonzero(comp == comp[0]))
    assert set(uf.parent) == set(ids) - set(popped) and root not in uf.members
    with pytest.raises(KeyError):
        uf.find(ids[0])

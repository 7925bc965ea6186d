"""Change patches (geoseg.change.patches): 4-connected patches of one change code, joined across blocks,
with their exact areas and confidence sums, and the minimum mapping unit.

Oracle: ``scipy.ndimage.label`` of the whole change raster, code by code: each patch's pixels,
area (per-row pixel areas summed over its pixels), confidence sums and first pixel, and which
patches are below the MMU. The raster is fed to :class:`Patches` block by block, as
``geoseg.change.detect`` does; the fragments of small border-crossing patches are found again by
labelling each block with scipy.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.crs import CRS
from rasterio.transform import from_origin
from scipy import ndimage

from geoseg.change.patches import Patches
from geoseg.grid import GeoGrid
from geoseg.vector.blocks import block_rows
from tests.helpers import CHANGE_CRS, CHANGE_ORIGIN


def run_patches(only, block_size, mmu_m2, row_area, cb=None, ca=None):
    """Feed the change-only raster ``only`` to :class:`Patches` block by block.

    Returns ``(pixels of small patches: reported inside blocks or by fragment id, kept ids, their stats,
    number of small patches)``.
    """
    h, w = only.shape
    patches = Patches(GeoGrid(w, h, from_origin(*CHANGE_ORIGIN, 30, 30), CRS.from_string(CHANGE_CRS)), mmu_m2)
    small = np.zeros(only.shape, bool)
    rows = list(block_rows(w, h, block_size))
    for bi, row in enumerate(rows):
        for box in row:
            sl = box.to_slices()
            small[sl] = patches.add_block(only[sl], box, row_area[sl[0]],
                                          None if cb is None else cb[sl], None if ca is None else ca[sl])
        patches.end_row(bi == len(rows) - 1)
    small_fids, keys, stats = patches.finish()
    assert (np.diff(small_fids) > 0).all(), "small fragment ids: sorted and unique"
    for row in rows:  # fragments of small patches that cross block borders: found by their first pixel
        for box in row:
            sub = only[box.to_slices()]
            for c in np.unique(sub[sub != 255]):
                lab, k = ndimage.label(sub == c)
                for i in range(1, k + 1):
                    r, col = divmod(int(np.flatnonzero((lab == i).ravel())[0]), box.width)
                    if np.isin((box.row + r) * w + box.col + col, small_fids):
                        small[box.to_slices()][lab == i] = True
    return small, keys, stats, patches.small_patches


def reference_patches(only, row_area, cb=None, ca=None):
    """Every patch of the whole raster: ``[(first pixel index, pixels mask, [area, pixels, conf sums/counts])]``."""
    out = []
    area = np.broadcast_to(row_area[:, None], only.shape)
    for c in np.unique(only[only != 255]):
        lab, k = ndimage.label(only == c)
        for i in range(1, k + 1):
            m = lab == i
            sums = [area[m].sum(), m.sum()]
            for conf in (cb, ca):
                ok = m if conf is None else m & (conf != 255)
                sums += [0.0, 0.0] if conf is None else [conf[ok].astype(float).sum(), ok.sum()]
            out.append((int(np.flatnonzero(m.ravel())[0]), m, np.array(sums, float)))
    return out


def random_change_raster(rng, h, w):
    """Blocky change codes (1..12, 255 = no change) with speckle: patches of many sizes across seams."""
    cell = int(rng.integers(2, 6))
    coarse = rng.integers(1, 13, (h // cell + 1, w // cell + 1))
    only = np.kron(coarse, np.ones((cell, cell), int))[:h, :w]
    only = np.where(rng.random((h, w)) < 0.35, 255, only)
    speck = rng.random((h, w)) < 0.1
    only[speck] = rng.integers(1, 13, speck.sum())
    return only.astype(np.uint8)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 12), st.sampled_from([0, 2, 5, 12]), st.booleans())
def test_patches_match_a_whole_raster_labelling(seed, block_size, mmu_px, with_confidence):
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(5, 40, 2))
    only = random_change_raster(rng, h, w)
    row_area = 900.0 + 7.0 * np.arange(h)  # pixel areas that change from row to row, as on a geographic grid
    cb = ca = None
    if with_confidence:
        cb = rng.integers(0, 101, (h, w)).astype(np.uint8)
        ca = rng.integers(0, 101, (h, w)).astype(np.uint8)
        cb[rng.random((h, w)) < 0.1] = 255  # nodata: left out of the sums and the counts
    mmu = mmu_px * 900.0 + 450.0 if mmu_px else 0.0  # never within rounding of a patch's area
    small, keys, stats, n_small = run_patches(only, block_size, mmu, row_area, cb, ca)

    ref = reference_patches(only, row_area, cb, ca)
    kept = sorted((first, sums) for first, _, sums in ref if sums[0] >= mmu)
    assert keys.tolist() == [first for first, _ in kept]
    np.testing.assert_allclose(stats, np.array([s for _, s in kept]).reshape(-1, 6), rtol=1e-12)
    below = [m for _, m, sums in ref if sums[0] < mmu]
    assert n_small == len(below)
    np.testing.assert_array_equal(small, np.any(below, axis=0) if below else np.zeros_like(small))


@pytest.mark.parametrize("block_size", [8, 2])
def test_a_patch_of_exactly_the_mmu_is_kept(block_size):
    """0.81 ha = 9 px of 900 m² although 0.81 * 1e4 > 8100 in floating point; 8 px are below it.
    8-px blocks: a patch of each size inside a block and one of each across seams; 2-px blocks: all across."""
    only = np.full((16, 16), 255, np.uint8)
    only[0:3, 0:3] = 5      # 9 px inside block (0, 0)
    only[0:2, 10:14] = 5    # 8 px inside block (0, 1)
    only[7:10, 7:10] = 6    # 9 px across the row-8 and col-8 seams
    only[13:15, 6:10] = 6   # 8 px across the col-8 seam
    small, keys, stats, n_small = run_patches(only, block_size, 0.81 * 1e4, np.full(16, 900.0))
    assert keys.tolist() == [0, 7 * 16 + 7] and stats[:, 1].tolist() == [9, 9]
    assert stats[:, 0].tolist() == [8100.0, 8100.0]
    assert n_small == 2 and small.sum() == 16
    assert small[0:2, 10:14].all() and small[13:15, 6:10].all()


def test_touching_patches_of_different_codes_stay_apart():
    """Two codes side by side across a seam are two patches; one code touching only diagonally, two more."""
    only = np.full((8, 8), 255, np.uint8)
    only[0:4, 2:4] = 1
    only[0:4, 4:6] = 2      # same rows, across the col-4 seam, other code
    only[4, 6] = 1
    only[5, 7] = 1          # diagonal neighbour of (4, 6): another patch
    _, keys, stats, _ = run_patches(only, 4, 0.0, np.full(8, 900.0))
    assert keys.tolist() == [2, 4, 4 * 8 + 6, 5 * 8 + 7]
    assert stats[:, 1].tolist() == [8, 8, 1, 1]

"""Minimum mapping unit of the block-wise vectorizer: pass 1 (region areas and shared edges) and the rule.

Regions below the MMU are found in a first pass over the blocks (their exact areas and
the pixel edges they share with each neighbouring region, joined across block seams),
reassigned at once by :func:`resolve_mmu`, and the reassignment (:class:`Remap`) is
applied per block in the vectorizing pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from geoseg import CLASS_NODATA
from geoseg.io.raster import open_raster
from geoseg.tiling import PixelBox
from geoseg.vector.blocks import BlockTask, Edges, Joiner, MapFn, block_rows, close_map, label_block
from geoseg.vector.frames import RegionContext

log = logging.getLogger(__name__)

MMU_RTOL = 1e-9
"""Relative tolerance of minimum-mapping-unit comparisons: a region whose area equals the MMU is kept."""


@dataclass(frozen=True, slots=True)
class Remap:
    """Class reassignment from the MMU pass: fragment first-pixel ids (sorted) -> new class."""

    fid: np.ndarray
    new_class: np.ndarray

    def for_box(self, box: PixelBox, width: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The part of the remap inside ``box`` (``(fid, new_class)``), or None when there is none."""
        lo, hi = np.searchsorted(self.fid, [box.row * width, box.row_stop * width])
        fid, cls = self.fid[lo:hi], self.new_class[lo:hi]
        m = (fid % width >= box.col) & (fid % width < box.col_stop)
        return (fid[m], cls[m]) if m.any() else None

    def apply(self, classes: np.ndarray, box: PixelBox, width: int) -> np.ndarray:
        lo, hi = np.searchsorted(self.fid, [box.row * width, box.row_stop * width])
        cols = self.fid[lo:hi] % width
        if not ((cols >= box.col) & (cols < box.col_stop)).any():
            return classes
        blk = label_block(classes, box, width)
        idx = np.clip(np.searchsorted(self.fid, blk.fid), 0, len(self.fid) - 1)
        hit = self.fid[idx] == blk.fid
        lut = blk.label_class.copy()
        lut[hit] = self.new_class[idx[hit]]
        return lut[blk.labels]


def _edge_pairs(labels: np.ndarray):
    """Label pairs of 4-neighbouring pixels in different fragments (both valid)."""
    out_a, out_b = [], []
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1], labels[1:])):
        m = (a != b) & (a > 0) & (b > 0)
        out_a.append(a[m])
        out_b.append(b[m])
    return np.concatenate(out_a), np.concatenate(out_b)


@dataclass(slots=True)
class MmuBlockResult:
    """:func:`mmu_block`'s result: fragments, their areas, and the edges of small fragments inside the block."""

    edges: Edges
    area: np.ndarray  # (n + 1,) m² per label
    small: np.ndarray  # (n + 1,) bool, area < mmu_m2 ([0] False)
    pairs: tuple | None  # (fid_a, fid_b, cls_a, cls_b, small_a, small_b, shared edge count), or None


def mmu_block(task: BlockTask) -> MmuBlockResult:
    """Per-block work of the MMU pass (pure, picklable in and out): read, label, areas, inner edges."""
    box = task.box
    with open_raster(task.path) as src:
        classes = src.read(1, window=box.to_window())
    blk = label_block(classes, box, task.width)
    assert task.row_area is not None, "mmu_block needs BlockTask.row_area"
    area = np.bincount(blk.labels.ravel(), weights=np.repeat(task.row_area, box.width), minlength=blk.n + 1)
    small = area < task.mmu_m2
    small[0] = False
    la, lb = _edge_pairs(blk.labels)
    keep = small[la] | small[lb]
    pairs = None
    if keep.any():
        key, cnt = np.unique(la[keep].astype(np.int64) * (blk.n + 1) + lb[keep], return_counts=True)
        a, b = key // (blk.n + 1), key % (blk.n + 1)
        pairs = (blk.fid[a], blk.fid[b], blk.label_class[a], blk.label_class[b], small[a], small[b], cnt)
    return MmuBlockResult(blk.edges(), area, small, pairs)


def mmu_pass(path, block_size: int, mmu_m2: float, ctx: RegionContext, map_fn: MapFn = map) -> Remap:
    """Pass 1: region areas and, for regions that may be below ``mmu_m2``, their neighbours."""
    mmu_m2 = mmu_m2 * (1 - MMU_RTOL)  # a region of exactly the MMU stays (0.81 ha * 1e4 > 8100.0 in floats)
    W, H = ctx.grid.width, ctx.grid.height
    joiner = Joiner(W, H)
    node_area: dict[int, float] = {}
    node_cls: dict[int, int] = {}
    small_fid, small_comp = [], []  # fragments of regions below the MMU, and their region's id
    comp_id, comp_cls, comp_area = [], [], []  # regions below the MMU
    e_src, e_dst, e_dcls, e_cnt = [], [], [], []  # (small fragment, neighbour fragment, its class, shared edges)
    top_small = np.zeros(W, bool)
    bot_small = np.zeros(W, bool)

    def record(fa, fb, ca, cb, sa, sb, cnt):
        for s, f1, f2, c2 in ((sa, fa, fb, cb), (sb, fb, fa, ca)):
            e_src.append(f1[s])
            e_dst.append(f2[s])
            e_dcls.append(c2[s])
            e_cnt.append(cnt[s])

    rows = list(block_rows(W, H, block_size))
    tasks = (BlockTask(path, box, W, row_area=ctx.row_area_m2(box), mmu_m2=float(mmu_m2))
             for row in rows for box in row)
    results = iter(map_fn(mmu_block, tasks))
    try:
        for bi, row in enumerate(rows):
            left_small: np.ndarray | None = None
            for box in row:
                res = next(results)
                e, area, small = res.edges, res.area, res.small
                if e.box != box:
                    raise RuntimeError(f"map_fn returned results out of order: {e.box} for {box}")
                is_node = joiner.join(e)
                # edges inside the block
                if res.pairs is not None:
                    record(*res.pairs)
                # edges across the left and top seams
                prev_smalls: list[np.ndarray] = []
                cur_smalls: list[np.ndarray] = []
                if box.col > 0:
                    assert left_small is not None  # set by the block on the left
                    prev_smalls.append(left_small)
                    cur_smalls.append(small[e.lab[2]])
                if box.row > 0:
                    prev_smalls.append(top_small[box.col:box.col_stop])
                    cur_smalls.append(small[e.lab[0]])
                for (pf, pc, cf, cc), ps, cs in zip(joiner.seams(e), prev_smalls, cur_smalls):
                    m = (pc != cc) & (pc != CLASS_NODATA) & (cc != CLASS_NODATA) & (ps | cs)
                    if m.any():
                        pairs, cnt = np.unique(np.stack([pf[m], cf[m], pc[m], cc[m], ps[m], cs[m]], axis=1), axis=0,
                                               return_counts=True)
                        record(pairs[:, 0], pairs[:, 1], pairs[:, 2], pairs[:, 3], pairs[:, 4] > 0, pairs[:, 5] > 0, cnt)
                for f, c, a in zip(e.fid[is_node].tolist(), e.label_class[is_node].tolist(), area[is_node].tolist()):
                    node_area[f], node_cls[f] = a, c
                alone = ~is_node & small
                alone[0] = False
                small_fid.append(e.fid[alone])
                small_comp.append(e.fid[alone])
                comp_id.append(e.fid[alone])
                comp_cls.append(e.label_class[alone])
                comp_area.append(area[alone])
                left_small = small[e.lab[3]]
                bot_small[box.col:box.col_stop] = small[e.lab[1]]
                joiner.advance(e)
            for members in joiner.end_row(bi == len(rows) - 1):
                total = sum(node_area.pop(m) for m in members)
                cls = node_cls[members[0]]
                for m in members:
                    del node_cls[m]
                if total < mmu_m2:
                    small_fid.append(np.array(members, np.int64))
                    small_comp.append(np.full(len(members), min(members)))
                    comp_id.append(np.array([min(members)]))
                    comp_cls.append(np.array([cls]))
                    comp_area.append(np.array([total]))
            top_small, bot_small = bot_small, top_small
            bot_small.fill(False)
    finally:
        close_map(results)

    def cat(x, dtype):
        return np.concatenate(x).astype(dtype) if x else np.zeros(0, dtype)

    return Remap(*resolve_mmu(
        cat(small_fid, np.int64), cat(small_comp, np.int64),
        (cat(comp_id, np.int64), cat(comp_cls, np.uint8), cat(comp_area, np.float64)),
        cat(e_src, np.int64), cat(e_dst, np.int64), cat(e_dcls, np.uint8), cat(e_cnt, np.int64),
    ))


def _pick(src: np.ndarray, cls: np.ndarray, cnt: np.ndarray):
    """Per ``src``, the class with the largest summed ``cnt`` (ties: the lowest class id)."""
    key, inv = np.unique(src * 256 + cls, return_inverse=True)
    tot = np.bincount(inv, weights=cnt)
    s, c = key // 256, key % 256
    order = np.lexsort((c, -tot, s))
    s, c = s[order], c[order]
    first = np.r_[True, s[1:] != s[:-1]]
    return s[first], c[first]


def resolve_mmu(frag_fid, frag_comp, comps, e_src, e_dst, e_dcls, e_cnt) -> tuple[np.ndarray, np.ndarray]:
    """The MMU rule, applied to all regions below the MMU at once.

    * A region below the MMU takes the class it shares the most pixel edges with among
      its neighbouring regions *at or above* the MMU (4-neighbours; ties: lowest class
      id). It then touches a region of that class, so it joins it.
    * A small region with only small neighbours waits: in later rounds it takes the most
      common class among neighbours already resolved (each of which is joined to a
      region at or above the MMU), so it joins them too.
    * A cluster of small regions that touches no region at or above the MMU at all (an
      island among nodata / the raster edge) becomes one region of the class of its
      largest member (ties: lowest class id); it stays below the MMU only when the whole
      island is. Nodata is never a neighbour and is never filled.

    Hence every output region is at least ``mmu_m2`` except such islands.
    """
    comp_id, comp_cls, comp_area = comps
    m = len(comp_id)
    if m == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint8)
    order = np.argsort(comp_id)
    comp_id, comp_cls, comp_area = comp_id[order], comp_cls[order], comp_area[order]
    frag_order = np.argsort(frag_fid)
    frag_fid, frag_comp = frag_fid[frag_order], frag_comp[frag_order]
    frag_idx = np.searchsorted(comp_id, frag_comp)  # comp index of each small fragment

    def lookup(f):
        i = np.clip(np.searchsorted(frag_fid, f), 0, len(frag_fid) - 1)
        return np.where(frag_fid[i] == f, frag_idx[i], -1)

    src, dst = lookup(e_src), lookup(e_dst)
    keep = src >= 0  # the source fragment may be small yet belong to a large region
    src, dst, dcls, cnt = src[keep], dst[keep], e_dcls[keep].astype(np.int64), e_cnt[keep]
    target = np.full(m, -1, np.int64)
    big = dst < 0
    if big.any():
        s, c = _pick(src[big], dcls[big], cnt[big])
        target[s] = c
    while True:
        ok = ~big & (target[src] < 0) & (target[np.maximum(dst, 0)] >= 0)
        if not ok.any():
            break
        s, c = _pick(src[ok], target[dst[ok]], cnt[ok])
        target[s] = c
    left = target < 0
    if left.any():  # islands of small regions: one class per cluster
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        e = ~big & left[src] & left[np.maximum(dst, 0)]
        graph = coo_matrix((np.ones(e.sum()), (src[e], dst[e])), shape=(m, m))
        _, cluster = connected_components(graph, directed=False)
        idx = np.flatnonzero(left)
        order = np.lexsort((comp_cls[idx], -comp_area[idx], cluster[idx]))
        idx = idx[order]
        first = np.r_[True, cluster[idx][1:] != cluster[idx][:-1]]
        winner = dict(zip(cluster[idx][first].tolist(), comp_cls[idx][first].tolist()))
        target[idx] = [winner[c] for c in cluster[idx].tolist()]
    changed = target[frag_idx] != comp_cls[frag_idx]
    log.info("MMU: %d regions below the MMU, %d reassigned", m, int((target != comp_cls).sum()))
    return frag_fid[changed], target[frag_idx][changed].astype(np.uint8)

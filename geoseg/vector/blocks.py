"""The block machinery of the block-wise vectorizer (:mod:`geoseg.vector.polygons`).

The block grid and per-block work orders, 4-connected labelling of one block into
fragments, and the union-find that joins fragments across block seams. Pure numpy/scipy,
no I/O; arrays are ``(rows, cols)``, boxes are pixel boxes of the full raster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoseg import CLASS_NODATA
from geoseg.tiling import PixelBox

SPLIT_LAST_MIN = 2
"""A last block row of at least this many rows is split in two (see :func:`row_bands`)."""


def row_bands(height: int, block_size: int) -> list[tuple[int, int]]:
    """``(first row, rows)`` of each block row: ``block_size`` rows each, the last row split in two halves
    when it has at least :data:`SPLIT_LAST_MIN` rows.

    When polygons are streamed while tiles are predicted (:mod:`geoseg.vector.stream`), the last block
    row is what is left to vectorize after the last tile: halving it halves that work, for one more seam."""
    bands = [(r0, min(block_size, height - r0)) for r0 in range(0, height, block_size)]
    if bands and bands[-1][1] >= SPLIT_LAST_MIN:
        r0, h = bands[-1]
        top = h - h // 2
        bands[-1:] = [(r0, top), (r0 + top, h // 2)]
    return bands


def block_rows(width: int, height: int, block_size: int) -> Iterator[list[PixelBox]]:
    """The block grid, one list of boxes per block row (:func:`row_bands`), row-major."""
    for r0, h in row_bands(height, block_size):
        yield [PixelBox(c0, r0, min(block_size, width - c0), h) for c0 in range(0, width, block_size)]


@dataclass(frozen=True)
class BlockTask:
    """One block's work order for :func:`vectorize_block` / :func:`mmu_block`: picklable, small.

    ``path``/``confidence``: the rasters (opened by the worker); ``box``: the block;
    ``width``: the raster's width (for fragment ids); ``remap``: this block's slice of the
    MMU reassignment ``(fid, new_class)`` or None; ``keep_labels``: also return the label
    block (simplification, instance raster); ``nodata_polygons``: also polygonize nodata
    (simplification); ``row_area``/``mmu_m2``: pixel area (m²) per block row and the MMU,
    for :func:`mmu_block`.
    """

    path: str | Path
    box: PixelBox
    width: int
    confidence: str | Path | None = None
    remap: tuple[np.ndarray, np.ndarray] | None = None
    keep_labels: bool = False
    nodata_polygons: bool = False
    row_area: np.ndarray | None = None
    mmu_m2: float = 0.0


MapFn = Callable[[Callable[[Any], Any], Iterable[Any]], Iterable[Any]]
"""An ordered map like the builtin ``map``: ``map_fn(func, items)`` yields ``func(item)`` in order
(e.g. :func:`geoseg.runtime.maps.ray_ordered_map`, which runs ahead on Ray tasks)."""


def close_map(results) -> None:
    """Close a (possibly generator) map result early, so a parallel map can shut its workers down."""
    close = getattr(results, "close", None)
    if close is not None:
        close()


# --------------------------------------------------------------------------- labelling & joining


@dataclass(slots=True)
class Block:
    """One block's 4-connected fragments: ``labels`` 1..n (0 = nodata) and per-label arrays."""

    box: PixelBox
    classes: np.ndarray  # (h, w) uint8
    labels: np.ndarray  # (h, w) int32
    label_class: np.ndarray  # (n + 1,) uint8, [0] = nodata
    fid: np.ndarray  # (n + 1,) int64: raster index row * width + col of each fragment's first pixel, [0] = -1

    @property
    def n(self) -> int:
        return len(self.fid) - 1

    def edges(self) -> Edges:
        """What the seam join needs of this block: its border lines of labels and classes (copies)."""
        lab, cls = self.labels, self.classes
        return Edges(self.box, self.label_class, self.fid,
                      (lab[0].copy(), lab[-1].copy(), lab[:, 0].copy(), lab[:, -1].copy()),
                      (cls[0].copy(), cls[-1].copy(), cls[:, 0].copy(), cls[:, -1].copy()))


@dataclass(slots=True)
class Edges:
    """A block's fragments as the seam join sees them: ids, classes and the four border lines."""

    box: PixelBox
    label_class: np.ndarray  # (n + 1,) uint8, [0] = nodata
    fid: np.ndarray  # (n + 1,) int64, [0] = -1
    lab: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # labels of the top, bottom, left, right lines
    cls: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # classes of the same lines

    @property
    def n(self) -> int:
        return len(self.fid) - 1


def label_block(classes: np.ndarray, box: PixelBox, width: int) -> Block:
    """4-connected fragments of one block, numbered class by class; each fragment's id is the raster
    index of its first pixel in raster-scan order."""
    from scipy import ndimage

    h, w = classes.shape
    labels = np.zeros((h, w), np.int32)
    lab = np.empty((h, w), np.int32)  # one class's labels, reused
    flat = lab.ravel()
    label_class, fids = [np.array([CLASS_NODATA], np.uint8)], [np.array([-1], np.int64)]
    n = 0
    for c in np.flatnonzero(np.bincount(classes.ravel(), minlength=256)):
        if c == CLASS_NODATA:
            continue
        mask = classes == c
        k = ndimage.label(mask, output=lab)  # default structure: 4-connectivity
        # ndimage numbers regions in raster-scan order of their first pixel, so the first
        # pixels are where the running maximum of the labels steps up.
        running = np.maximum.accumulate(flat)
        first = np.flatnonzero(running[1:] != running[:-1]) + 1
        if flat[0]:
            first = np.r_[0, first]
        fids.append((box.row + first // w) * np.int64(width) + box.col + first % w)
        label_class.append(np.full(k, c, np.uint8))
        np.add(lab, n, out=lab, where=mask)
        labels += lab  # classes do not overlap: 0 outside this class's mask
        n += k
    return Block(box, classes, labels, np.concatenate(label_class), np.concatenate(fids))


class UnionFind:
    """Union-find over fragment ids, keeping each root's members so a closed region can be dropped."""

    def __init__(self):
        self.parent: dict[int, int] = {}
        self.members: dict[int, list[int]] = {}

    def add(self, x: int) -> None:
        self.parent[x] = x
        self.members[x] = [x]

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if len(self.members[ra]) < len(self.members[rb]):
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.members[ra].extend(self.members.pop(rb))

    def pop(self, root: int) -> list[int]:
        members = self.members.pop(root)
        for m in members:
            del self.parent[m]
        return members


Seam = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""``(prev_fid, prev_cls, cur_fid, cur_cls)`` along one seam between blocks."""


class Joiner:
    """Joins fragments across block seams; keeps only the seams' pixels (O(width + block_size))."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.uf = UnionFind()
        self.top_fid = np.full(width, -1, np.int64)
        self.top_cls = np.full(width, CLASS_NODATA, np.uint8)
        self.bot_fid = self.top_fid.copy()
        self.bot_cls = self.top_cls.copy()
        self.left_fid: np.ndarray | None = None  # the previous block's right column (None at a row's start)
        self.left_cls: np.ndarray | None = None

    def seams(self, e: Edges) -> list[Seam]:
        """``[(prev_fid, prev_cls, cur_fid, cur_cls)]`` for the left and top seams of block ``e`` (if internal)."""
        b = e.box
        out: list[Seam] = []
        if b.col > 0:
            # blocks of a row are joined left to right, so `advance` saw the block on the left
            assert self.left_fid is not None and self.left_cls is not None
            out.append((self.left_fid, self.left_cls, e.fid[e.lab[2]], e.cls[2]))
        if b.row > 0:
            sl = slice(b.col, b.col_stop)
            out.append((self.top_fid[sl], self.top_cls[sl], e.fid[e.lab[0]], e.cls[0]))
        return out

    def join(self, e: Edges) -> np.ndarray:
        """Register block ``e``'s fragments on internal edges and join them to their neighbours; returns is_node per label."""
        b, (top, bot, left, right) = e.box, e.lab
        is_node = np.zeros(e.n + 1, bool)
        for internal, edge in ((b.row > 0, top), (b.row_stop < self.height, bot),
                               (b.col > 0, left), (b.col_stop < self.width, right)):
            if internal:
                is_node[edge] = True
        is_node[0] = False
        uf = self.uf
        for f in e.fid[is_node].tolist():
            uf.add(f)
        for prev_fid, prev_cls, cur_fid, cur_cls in self.seams(e):
            same = (prev_cls == cur_cls) & (cur_cls != CLASS_NODATA)
            if same.any():
                pairs = np.unique(np.stack([prev_fid[same], cur_fid[same]], axis=1), axis=0)
                for a, c in pairs.tolist():
                    uf.union(a, c)
        return is_node

    def advance(self, e: Edges) -> None:
        """Remember block ``e``'s right column and bottom row for the blocks that follow."""
        b = e.box
        self.left_fid = e.fid[e.lab[3]]
        self.left_cls = e.cls[3].copy()
        self.bot_fid[b.col:b.col_stop] = e.fid[e.lab[1]]
        self.bot_cls[b.col:b.col_stop] = e.cls[1]

    def open_roots(self, last_row: bool) -> set[int]:
        """Roots of the regions that reach this block row's bottom edge (so may continue below)."""
        if last_row:
            return set()
        fids = np.unique(self.bot_fid[self.bot_fid >= 0]).tolist()
        return {self.uf.find(f) for f in fids}

    def end_row(self, last_row: bool) -> list[list[int]]:
        """Close every region that does not continue below; returns their member fragment ids."""
        keep = self.open_roots(last_row)
        closed = [self.uf.pop(r) for r in list(self.uf.members) if r not in keep]
        self.top_fid, self.bot_fid = self.bot_fid, self.top_fid
        self.top_cls, self.bot_cls = self.bot_cls, self.top_cls
        self.bot_fid.fill(-1)
        self.bot_cls.fill(CLASS_NODATA)
        self.left_fid = self.left_cls = None
        return closed

"""Vectorizing while tiles are still predicted: blocks are polygonized as soon as they are stitched.

:class:`BlockAssembler` (pure numpy, no I/O) collects tile cores, which may arrive in any
order, into the blocks of the vectorizer's block grid and hands each block over once every
one of its pixels has arrived, blocks in row-major order. :class:`StreamingVectorizer` runs
the block-wise pass (:func:`geoseg.vector.polygons.block_pass`) on those blocks in a background
thread and writes the polygons to their file, so that when the last tile lands only the last
block (and the regions it closes) is left to vectorize. The polygons equal those of :func:`~geoseg.vector.polygons.vectorize_to_file`
on the finished class map (same ids, classes, geometry, statistics): the pass is the same,
only its input comes from memory. Minimum mapping units need the whole map first (two
passes), so they are not streamed. Arrays are ``(rows, cols)``; boxes are pixel boxes of the raster.
"""

from __future__ import annotations

import queue
import threading
import time
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geoseg import CLASS_NODATA
from geoseg.tiling import PixelBox
from geoseg.vector.blocks import block_rows
from geoseg.vector.frames import RegionContext
from geoseg.vector.polygons import BlockResult, block_pass, block_result


@dataclass(frozen=True)
class BlockData:
    """One complete block of the vectorizer's block grid: ``box`` (pixels of the raster), ``classes`` (uint8,
    255 nodata) and ``confidence`` (uint8, or None), each ``(box.height, box.width)``."""

    box: PixelBox
    classes: np.ndarray
    confidence: np.ndarray | None


class BlockAssembler:
    """Tile cores in any order -> complete blocks of the vectorizer's block grid
    (:func:`~geoseg.vector.blocks.block_rows`: ``block_size`` px, the last block row split in two), in
    row-major order.

    A block is handed over as soon as every one of its pixels has arrived and every block before it
    has been handed over, so with tiles predicted row by row the vectorizer starts on a block row
    while the tiles of its right-hand part are still running. Every pixel must be given exactly
    once (tile cores partition the raster); pixels of tiles that were skipped (nothing valid) are
    given with :meth:`skip` and stay nodata. Holds only the block rows not fully handed over.
    """

    def __init__(self, width: int, height: int, block_size: int, confidence: bool,
                 conf_nodata: int = CLASS_NODATA):
        self.width = width
        self.confidence, self.conf_nodata = confidence, conf_nodata
        self._rows = list(block_rows(width, height, block_size))  # the vectorizer's block grid, row by row
        self._starts = [row[0].row for row in self._rows]
        self._block = block_size
        self._filled = np.zeros((len(self._rows), len(self._rows[0]) if self._rows else 0), np.int64)  # pixels per block
        self._open: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}  # block row -> (classes, confidence)
        self._next = 0  # the first block (row-major index) not handed over

    def add(self, box: PixelBox, classes: np.ndarray | None, confidence: np.ndarray | None = None) -> list[BlockData]:
        """Give the pixels of ``box`` (``classes`` None: a skipped tile, all nodata); the blocks now complete."""
        ncols = self._filled.shape[1]
        j0, j1 = box.col // self._block, (box.col_stop - 1) // self._block + 1
        for bi in range(bisect_right(self._starts, box.row) - 1, bisect_right(self._starts, box.row_stop - 1)):
            if bi * ncols + j0 < self._next:
                raise ValueError(f"block ({bi}, {j0}): pixels given more than once (it was handed over)")
            r0 = self._starts[bi]
            lo, hi = max(box.row, r0), min(box.row_stop, r0 + self._rows[bi][0].height)
            if classes is not None:
                cls, conf = self._strip(bi)
                cols = slice(box.col, box.col_stop)
                cls[lo - r0 : hi - r0, cols] = classes[lo - box.row : hi - box.row]
                if conf is not None and confidence is not None:
                    conf[lo - r0 : hi - r0, cols] = confidence[lo - box.row : hi - box.row]
            for blk, bj in zip(self._rows[bi][j0:j1], range(j0, j1)):
                self._filled[bi, bj] += (hi - lo) * (min(box.col_stop, blk.col_stop) - max(box.col, blk.col))
        return self._ready()

    def skip(self, box: PixelBox) -> list[BlockData]:
        """Pixels of ``box`` that stay nodata (a tile with nothing valid)."""
        return self.add(box, None)

    @property
    def done(self) -> bool:
        """Whether every block has been handed over."""
        return self._next == self._filled.size

    def _strip(self, bi: int) -> tuple[np.ndarray, np.ndarray | None]:
        if bi not in self._open:
            shape = (self._rows[bi][0].height, self.width)
            conf = np.full(shape, self.conf_nodata, np.uint8) if self.confidence else None
            self._open[bi] = (np.full(shape, CLASS_NODATA, np.uint8), conf)
        return self._open[bi]

    def _ready(self) -> list[BlockData]:
        out = []
        ncols = self._filled.shape[1]
        while self._next < self._filled.size:
            bi, bj = divmod(self._next, ncols)
            box = self._rows[bi][bj]
            if self._filled[bi, bj] < box.width * box.height:
                break
            if self._filled[bi, bj] > box.width * box.height:
                raise ValueError(f"block ({bi}, {bj}): pixels given more than once")
            cls, conf = self._strip(bi)  # a new (nodata) row when only skipped tiles covered it
            cols = slice(box.col, box.col_stop)
            out.append(BlockData(box, cls[:, cols], conf[:, cols] if conf is not None else None))
            if bj == ncols - 1:
                del self._open[bi]  # the handed-over blocks keep their views of it alive until vectorized
            self._next += 1
        return out


_END = object()


class StreamingVectorizer:
    """Polygons of a class map written to ``out_path`` by a background thread, fed block by block.

    ``ctx``: the map's grid and tags (as :meth:`RegionContext.from_dataset` reads them from the
    finished map); ``simplify_m``: see :func:`~geoseg.vector.polygons.vectorize_blocks`; ``style``:
    the GeoPackage's default layer style. :meth:`feed` blocks in row-major order, then :meth:`finish`
    (the polygon count) or :meth:`abort`. At most ``max_queued`` block rows' worth of blocks wait:
    feeding blocks the caller when the thread falls that far behind (memory stays bounded).
    """

    def __init__(self, out_path: str | Path, ctx: RegionContext, block_size: int, simplify_m: float = 0.0,
                 *, conf_nodata: int = CLASS_NODATA, style=None, max_queued: int = 4):
        self.ctx, self.block, self.simplify_m, self.conf_nodata = ctx, block_size, simplify_m, conf_nodata
        self.seconds = 0.0
        """Time the thread spent vectorizing and writing, waits for blocks excluded (set when it ends)."""
        self._waited = 0.0
        self._queue: queue.Queue = queue.Queue(max_queued * -(-ctx.grid.width // block_size))
        self._error: BaseException | None = None
        self._count: int | None = None
        self._thread = threading.Thread(target=self._work, args=(Path(out_path), style), daemon=True,
                                        name="geoseg-vectorize")
        self._thread.start()

    def feed(self, blocks: list[BlockData]) -> None:
        """Queue complete blocks (in row-major order); raises what the thread failed with, if it has."""
        for b in blocks:
            self._put(b)

    def finish(self) -> int:
        """Wait for the last block; the number of polygons written (raises the thread's error)."""
        self._put(_END)
        self._thread.join()
        self._raise()
        assert self._count is not None  # set by a thread that ended without an error
        return self._count

    def abort(self) -> None:
        """Stop without a file (a failed run): the partial output is discarded."""
        if self._thread.is_alive():
            self._drain()
            self._put(None)
            self._thread.join()

    def _put(self, item) -> None:
        while True:
            self._raise()
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                if not self._thread.is_alive():  # ended (with an error, raised above on the next turn)
                    self._raise()
                    return

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _work(self, out_path: Path, style) -> None:
        from geoseg.vector.writers import write_polygons

        t0 = time.perf_counter()
        try:
            self._count = write_polygons(block_pass(self.ctx, self.block, self.simplify_m, self._results()),
                                         out_path, crs=self.ctx.grid.crs, layer="landcover", style=style)
        except BaseException as exc:  # handed to the feeding thread
            self._error = exc
            self._drain()  # unblock a feeder waiting on a full queue
        finally:
            self.seconds = time.perf_counter() - t0 - self._waited

    def _results(self) -> Iterator[BlockResult]:
        W = self.ctx.grid.width
        simplify = self.simplify_m > 0
        for row in block_rows(W, self.ctx.grid.height, self.block):
            for box in row:
                t0 = time.perf_counter()
                block = self._queue.get()
                self._waited += time.perf_counter() - t0
                if block is _END:
                    return
                if block is None:
                    raise RuntimeError("vectorization aborted")
                if block.box != box:
                    raise RuntimeError(f"blocks out of order: block {block.box} given, {box} expected")
                yield block_result(block.classes, box, W, block.confidence, self.conf_nodata,
                                   keep_labels=simplify, nodata_polygons=simplify)
                del block

"""Vectorizing while tiles are still predicted: block rows are polygonized as soon as they are stitched.

:class:`StripAssembler` (pure numpy, no I/O) collects tile cores, which may arrive in any
order, into the block rows of the vectorizer's block grid and hands each row over once every
one of its pixels has arrived, rows in top-to-bottom order. :class:`StreamingVectorizer` runs
the block-wise pass (:func:`geoseg.vector.polygons.block_pass`) on those rows in a background
thread and writes the polygons to their file, so that when the last tile lands only the last
rows are left to vectorize. The polygons equal those of :func:`~geoseg.vector.polygons.vectorize_to_file`
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
from geoseg.vector.blocks import block_rows, row_bands
from geoseg.vector.frames import RegionContext
from geoseg.vector.polygons import BlockResult, block_pass, block_result


@dataclass(frozen=True)
class Strip:
    """One complete block row: ``row`` (first raster row), ``classes`` (uint8, 255 nodata) and
    ``confidence`` (uint8, or None), each ``(height, raster width)``."""

    row: int
    classes: np.ndarray
    confidence: np.ndarray | None


class StripAssembler:
    """Tile cores in any order -> complete block rows (of ``block_size`` px, the last one split in two:
    :func:`~geoseg.vector.blocks.row_bands`), in order.

    Every pixel must be given exactly once (tile cores partition the raster); pixels of
    tiles that were skipped (nothing valid) are given with :meth:`skip` and stay nodata.
    Holds only the rows not handed over yet.
    """

    def __init__(self, width: int, height: int, block_size: int, confidence: bool,
                 conf_nodata: int = CLASS_NODATA):
        self.width = width
        self.confidence, self.conf_nodata = confidence, conf_nodata
        self._bands = row_bands(height, block_size)  # (first row, rows) per block row
        self._starts = [r0 for r0, _ in self._bands]
        self._filled = np.zeros(len(self._bands), np.int64)  # pixels received per block row
        self._open: dict[int, Strip] = {}
        self._next = 0  # the first block row not handed over

    def add(self, box: PixelBox, classes: np.ndarray | None, confidence: np.ndarray | None = None) -> list[Strip]:
        """Give the pixels of ``box`` (``classes`` None: a skipped tile, all nodata); the rows now complete."""
        for bi in range(bisect_right(self._starts, box.row) - 1, bisect_right(self._starts, box.row_stop - 1)):
            r0, h = self._bands[bi]
            lo, hi = max(box.row, r0), min(box.row_stop, r0 + h)
            if classes is not None:
                strip = self._strip(bi)
                cols = slice(box.col, box.col_stop)
                strip.classes[lo - r0 : hi - r0, cols] = classes[lo - box.row : hi - box.row]
                if strip.confidence is not None and confidence is not None:
                    strip.confidence[lo - r0 : hi - r0, cols] = confidence[lo - box.row : hi - box.row]
            self._filled[bi] += (hi - lo) * box.width
        return self._ready()

    def skip(self, box: PixelBox) -> list[Strip]:
        """Pixels of ``box`` that stay nodata (a tile with nothing valid)."""
        return self.add(box, None)

    @property
    def done(self) -> bool:
        """Whether every row has been handed over."""
        return self._next == len(self._filled)

    def _rows(self, bi: int) -> int:
        return self._bands[bi][1]

    def _strip(self, bi: int) -> Strip:
        if bi not in self._open:
            self._open[bi] = self._new_strip(bi)
        return self._open[bi]

    def _new_strip(self, bi: int) -> Strip:
        shape = (self._rows(bi), self.width)
        conf = np.full(shape, self.conf_nodata, np.uint8) if self.confidence else None
        return Strip(self._bands[bi][0], np.full(shape, CLASS_NODATA, np.uint8), conf)

    def _ready(self) -> list[Strip]:
        out = []
        while self._next < len(self._filled) and self._filled[self._next] >= self._rows(self._next) * self.width:
            if self._filled[self._next] > self._rows(self._next) * self.width:
                raise ValueError(f"block row {self._next}: pixels given more than once")
            strip = self._open.pop(self._next, None)
            out.append(strip if strip is not None else self._new_strip(self._next))  # None: skipped tiles only
            self._next += 1
        return out


_END = object()


class StreamingVectorizer:
    """Polygons of a class map written to ``out_path`` by a background thread, fed block row by block row.

    ``ctx``: the map's grid and tags (as :meth:`RegionContext.from_dataset` reads them from the
    finished map); ``simplify_m``: see :func:`~geoseg.vector.polygons.vectorize_blocks`; ``style``:
    the GeoPackage's default layer style. :meth:`feed` rows in order, then :meth:`finish`
    (the polygon count) or :meth:`abort`. At most ``max_queued`` rows wait: feeding blocks
    when the thread falls that far behind (memory stays bounded).
    """

    def __init__(self, out_path: str | Path, ctx: RegionContext, block_size: int, simplify_m: float = 0.0,
                 *, conf_nodata: int = CLASS_NODATA, style=None, max_queued: int = 4):
        self.ctx, self.block, self.simplify_m, self.conf_nodata = ctx, block_size, simplify_m, conf_nodata
        self.seconds = 0.0
        """Time the thread spent vectorizing and writing, waits for rows excluded (set when it ends)."""
        self._waited = 0.0
        self._queue: queue.Queue = queue.Queue(max_queued)
        self._error: BaseException | None = None
        self._count: int | None = None
        self._thread = threading.Thread(target=self._work, args=(Path(out_path), style), daemon=True,
                                        name="geoseg-vectorize")
        self._thread.start()

    def feed(self, strips: list[Strip]) -> None:
        """Queue complete rows (in order); raises what the thread failed with, if it has."""
        for s in strips:
            self._put(s)

    def finish(self) -> int:
        """Wait for the last row; the number of polygons written (raises the thread's error)."""
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
        rows = block_rows(W, self.ctx.grid.height, self.block)
        while True:
            t0 = time.perf_counter()
            strip = self._queue.get()
            self._waited += time.perf_counter() - t0
            if strip is _END:
                return
            if strip is None:
                raise RuntimeError("vectorization aborted")
            row = next(rows)
            if row[0].row != strip.row:
                raise RuntimeError(f"block rows out of order: row {strip.row} given, row {row[0].row} expected")
            for box in row:
                cols = slice(box.col, box.col_stop)
                conf = strip.confidence[:, cols] if strip.confidence is not None else None
                yield block_result(strip.classes[:, cols], box, W, conf, self.conf_nodata,
                                   keep_labels=simplify, nodata_polygons=simplify)

"""``geoseg change``: what changed between two dates, where, and into what, with guards against false change.

Inputs are geoseg class maps (single-band uint8, ids ``0..n-1``, 255 nodata; their
``*_confidence.tif`` is found next to them) or scenes, which are segmented first. All
dates are read on one common grid (:mod:`geoseg.change.align`: the ``after`` grid by default,
nearest neighbour), block by block, in two passes over the grid (memory: a few blocks,
the change patches still open and a few bytes per change patch, see
:mod:`geoseg.change.patches`; never the raster):

1. Per block: pixels valid in both dates are compared. A changed pixel becomes
   *uncertain* (code 254) when either date's confidence is below ``min_confidence``
   or is nodata (confidence guard), or, with ``confirm`` dates (one or more later
   dates), when any of them does not show the ``after`` class (persistence guard: a
   reverted change is flicker; nodata in a confirm date cannot confirm). Surviving
   changes get their from→to code (:mod:`geoseg.change.transitions`) and are labelled into
   4-connected patches of one from→to pair, joined across blocks
   (:class:`geoseg.change.patches.Patches`) with their exact area and confidence sums; a patch
   inside the block that is below the minimum mapping unit (``mmu_ha``) becomes
   uncertain at once.
2. Patches below the MMU that cross block borders become uncertain; the change raster
   (COG) is written and the transition table counted.

Then the kept patches are vectorized by the block-wise vectorizer
(:func:`geoseg.vector.polygons.vectorize_blocks`; one polygon per patch) and written with
their pair, change type, exact area and the mean confidence of both dates; styles, quicklooks,
``report.html`` and STAC records follow (:mod:`geoseg.change.outputs`). Guards apply
in that order, and a pixel removed by several counts for the first. Areas are the
exact ellipsoidal cell areas for geographic grids (planar cell area for projected ones).
All outputs are staged and published together (:class:`geoseg.io.publish.Staging`); with a
``sink`` (PostGIS) the polygons, transitions and statistics are loaded in one transaction that
commits once the files are published (:mod:`geoseg.change.sink`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from geoseg import CLASS_NODATA
from geoseg.change.align import (
    AlignedReader,
    DateMap,
    check_overlap,
    common_grid,
    resolve_dates,
)
from geoseg.change.outputs import EXTRA_FILES, write_extras
from geoseg.change.patches import Patches, write_change_polygons
from geoseg.change.report import (
    POLYGON_LAYER,
    ChangeReport,
    Tally,
    raster_tags,
    report_document,
    write_transitions_csv,
)
from geoseg.change.sink import load_change
from geoseg.change.transitions import (
    MAX_CLASSES,
    UNCERTAIN,
    Legend,
    change_code,
)
from geoseg.config import ChangeConfig
from geoseg.errors import InputError
from geoseg.grid import GeoGrid
from geoseg.io.cog import StitchedRaster, open_scratch
from geoseg.io.lock import OutputLock
from geoseg.io.publish import Staging, naming_write_errors, write_json
from geoseg.io.sink.postgis import LoadReport, RunInfo, open_sink, output_key
from geoseg.tiling import PixelBox

log = logging.getLogger(__name__)

CHANGE_FILES = ("change.tif", "transitions.csv", "change_polygons.gpkg", *EXTRA_FILES, "transitions.json")
"""What ``geoseg change`` publishes, in publication order (``transitions.json`` last): the change raster, tables
and polygons, their styles, quicklooks, ``report.html`` and STAC records (:mod:`geoseg.change.outputs`)."""


@dataclass(frozen=True)
class ChangeResult:
    """What a change run published: the directory, the files (report last), the typed report, and what was
    loaded into the sink (None without one)."""

    output_dir: str
    files: list[str]
    report: ChangeReport
    sink: LoadReport | None = None

    @property
    def document(self) -> dict[str, Any]:
        """The full report, as published in ``transitions.json``."""
        return self.report.document


def confirm_roles(count: int) -> list[str]:
    """The date roles of ``count`` confirm dates: ``confirm``, ``confirm_2``, ``confirm_3``..."""
    return ["confirm" if i == 0 else f"confirm_{i + 1}" for i in range(count)]


def detect_change(before: str, after: str, output: str, *, confirm: str | Sequence[str] | None = None,
                  options: ChangeConfig | None = None, before_confidence: str | None = None,
                  after_confidence: str | None = None, segment_cfg=None, overwrite: bool = False,
                  progress: bool = False, sink: str | None = None) -> ChangeResult:
    """Compare ``before`` and ``after`` (class maps or scenes) and publish :data:`CHANGE_FILES` in ``output``
    (a directory or an ``s3://`` prefix).

    ``confirm``: one or more later dates (class maps or scenes) for the persistence guard: a change
    is kept only where every one of them still shows the ``after`` class (roles :func:`confirm_roles`).
    ``segment_cfg``: :class:`geoseg.config.SegmentConfig` used for scenes (model, runtime).
    ``sink``: a PostGIS URL (:mod:`geoseg.io.sink`) that also receives the polygons, transitions and statistics.
    Raises :class:`InputError` / :class:`ConfigError` / :class:`OutputError` (existing results untouched).
    """
    options = options or ChangeConfig()
    t0 = time.perf_counter()
    confirms = [confirm] if isinstance(confirm, str | Path) else list(confirm or [])
    paths = {"before": before, "after": after, **dict(zip(confirm_roles(len(confirms)), map(str, confirms)))}
    for role, p in {**paths, "before confidence": before_confidence, "after confidence": after_confidence}.items():
        if p and "://" not in str(p) and not Path(p).exists():
            raise InputError(f"{role} {p}: no such file")
    check_overlap(paths)  # before any segmentation, sink or window work
    db = open_sink(sink)  # before any work: the database is reachable and its tables are ready
    lock = OutputLock(output, "change").acquire()  # one writer per output
    try:
        staging = Staging(str(output), overwrite, CHANGE_FILES)
    except BaseException:
        lock.release()
        lock.remove_created_dir()
        raise
    try:
        with naming_write_errors(output):  # a full or read-only disk: say so, naming the output
            dates = resolve_dates(paths, {"before": before_confidence, "after": after_confidence},
                                  segment_cfg, staging.dir, progress)
            names = dates["before"].class_names
            for d in dates.values():
                if d.class_names != names:
                    raise InputError(f"{d.classes}: classes {list(d.class_names)} differ from the "
                                     f"before map's {list(names)}; compare maps of the same class scheme")
            if not 2 <= len(names) <= MAX_CLASSES:
                raise InputError(f"{dates['before'].classes}: {len(names)} classes {list(names)}; change codes support "
                                 f"2..{MAX_CLASSES} classes: merge classes first")
            if options.min_confidence > 0:
                for role in ("before", "after"):
                    if dates[role].confidence is None:
                        raise InputError(
                            f"{dates[role].classes}: no confidence raster found for the {role} date, so the confidence "
                            f"guard cannot apply; pass --{role}-confidence FILE, or --min-confidence 0 to turn it off")
            grid = common_grid(options.grid, dates)
            legend = Legend.for_classes(names)
            doc = _Comparison(dates, grid, legend, options).run(staging)
            doc["seconds"] = round(time.perf_counter() - t0, 3)
            write_json(staging.path("transitions.json"), doc)
            write_extras(staging.dir, dates, grid, legend, doc)
            report = ChangeReport.from_document(doc)
            lock.verify()  # still the only writer: publishing may replace files
            if db is None:
                return ChangeResult(str(output), staging.publish(CHANGE_FILES), report)
            config = {"dates": paths, "options": options.model_dump(mode="json")}
            with db.load(RunInfo("change", output_key(str(output)), config=config)) as load:
                load.replace_output()  # a rerun into this output replaces its rows
                load_change(load, report, staging.path("change_polygons.gpkg"))
                files = staging.publish(CHANGE_FILES)
            return ChangeResult(str(output), files, report, load.report)
    finally:
        staging.discard()
        lock.release()
        lock.remove_created_dir()  # only if this run made it and it is empty


# --------------------------------------------------------------------------- the two passes


@dataclass
class _Comparison:
    """One comparison on the common grid: its inputs, guards and running tallies."""

    dates: dict[str, DateMap]
    grid: GeoGrid
    legend: Legend
    opt: ChangeConfig
    tally: Tally = field(init=False)

    def __post_init__(self) -> None:
        self.tally = Tally(self.legend.n)

    def run(self, staging: Staging) -> dict[str, Any]:
        """Both passes, the change COG and polygons in ``staging``; returns the ``transitions.json`` document."""
        from geoseg.vector.blocks import block_rows

        grid, opt, tally = self.grid, self.opt, self.tally
        n = self.legend.n
        patches = Patches(grid, opt.mmu_ha * 1e4)
        rows = list(block_rows(grid.width, grid.height, opt.block_size))
        raw_path = staging.path(".change-raw.tif")
        readers = _Readers(self.dates, grid)
        try:
            with open_scratch(raw_path, grid) as raw_ds:
                for bi, row in enumerate(rows):
                    for box in row:
                        row_area = grid.row_area_m2(box)
                        raw, b, a, cb, ca = self.pass1(box, row_area, readers)
                        only = np.where((raw != 0) & (raw < UNCERTAIN), raw, CLASS_NODATA).astype(np.uint8)
                        small = patches.add_block(only, box, row_area, cb, ca)  # small patches inside the block
                        if small.any():
                            tally.table.add(b, np.full_like(a, n), small, row_area)
                            tally.removed["mmu"].add(b, a, small, row_area)
                            raw[small] = UNCERTAIN
                        raw_ds.write(raw, 1, window=box.to_window())
                    patches.end_row(bi == len(rows) - 1)
        finally:
            readers.close()
        small, keys, stats = patches.finish()
        only_path = staging.path(".change-only.tif")
        out = StitchedRaster(staging.path("change.tif"), grid, CLASS_NODATA, colormap=self.legend.colormap())
        try:
            with open_scratch(only_path, grid) as only_ds, rasterio.open(raw_path) as raw_src:
                for row in rows:
                    for box in row:
                        raw = raw_src.read(1, window=box.to_window())
                        final, only = self.pass2(raw, box, small)
                        out.write(box, final)
                        only_ds.write(only, 1, window=box.to_window())
            out.to_cog(tags=raster_tags(self.dates, self.legend, opt), band_description="change code",
                       overview_resampling="MODE")
        finally:
            out.close()
        raw_path.unlink(missing_ok=True)
        count = write_change_polygons(only_path, staging.path("change_polygons.gpkg"), self.legend, keys, stats,
                                      self.dates, opt.block_size, POLYGON_LAYER)
        only_path.unlink(missing_ok=True)
        doc = report_document(tally, self.dates, grid, self.legend, opt, patches.small_patches, count)
        write_transitions_csv(staging.path("transitions.csv"), doc["transitions"])
        return doc

    def pass1(self, box: PixelBox, row_area: np.ndarray,
              readers: _Readers) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Pass 1 on one block: raw codes (change, 0, 254, 255), table diagonal and guard removals.

        Returns ``(raw, before classes, after classes, before confidence, after confidence)``.
        """
        dates, n, P = self.dates, self.legend.n, self.opt.min_confidence
        table, removed, nodata = self.tally.table, self.tally.removed, self.tally.nodata
        b = _read_classes(readers.classes["before"], box, dates["before"], n)
        a = _read_classes(readers.classes["after"], box, dates["after"], n)
        cb = readers.confidence["before"].read(box) if readers.confidence["before"] else None
        ca = readers.confidence["after"].read(box) if readers.confidence["after"] else None
        nd_b, nd_a = b == CLASS_NODATA, a == CLASS_NODATA
        q_b, q_a = (_flagged(readers.quality[r], box) & nd for r, nd in (("before", nd_b), ("after", nd_a)))
        for key, mask in (("before", nd_b), ("after", nd_a), ("either", nd_b | nd_a), ("quality_before", q_b),
                          ("quality_after", q_a), ("quality_either", q_b | q_a)):
            nodata[key] += (mask.sum(), (mask * row_area[:, None]).sum())
        nodata["grid"] += (b.size, row_area.sum() * b.shape[1])
        valid = ~(nd_b | nd_a)
        changed = valid & (b != a)
        low = np.zeros_like(changed)
        if P > 0:
            assert cb is not None and ca is not None  # detect_change requires both confidences for the guard
            low = changed & ((cb < P) | (ca < P) | (cb == CLASS_NODATA) | (ca == CLASS_NODATA))
        reverted, unconfirmed = np.zeros_like(changed), np.zeros_like(changed)
        cand = changed & ~low
        for role in (r for r in readers.classes if r.startswith("confirm")):
            c = _read_classes(readers.classes[role], box, dates[role], n)
            reverted |= cand & (c != CLASS_NODATA) & (c != a)
            unconfirmed |= cand & (c == CLASS_NODATA)
        unconfirmed &= ~reverted  # a date showing another class outweighs one that cannot tell
        uncertain = low | reverted | unconfirmed
        raw = np.full(b.shape, CLASS_NODATA, np.uint8)
        raw[valid] = 0
        kept = changed & ~uncertain
        raw[kept] = change_code(b[kept], a[kept], n)
        raw[uncertain] = UNCERTAIN
        table.add(b, a, valid & ~changed, row_area)
        table.add(b, np.full_like(a, n), uncertain, row_area)
        for key, mask in (("confidence", low), ("persistence_reverted", reverted), ("persistence_nodata", unconfirmed)):
            removed[key].add(b, a, mask, row_area)
        return raw, b, a, cb, ca

    def pass2(self, raw: np.ndarray, box: PixelBox, small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pass 2 on one block: small patches -> uncertain; count kept changes and MMU removals."""
        grid, n = self.grid, self.legend.n
        table, mmu_removed = self.tally.table, self.tally.removed["mmu"]
        is_change = (raw != 0) & (raw < UNCERTAIN)
        only = np.where(is_change, raw, CLASS_NODATA).astype(np.uint8)
        final = raw
        drop = np.zeros(raw.shape, bool)
        lo, hi = np.searchsorted(small, [box.row * grid.width, box.row_stop * grid.width])
        if hi > lo and is_change.any():
            from geoseg.vector.blocks import label_block

            blk = label_block(only, box, grid.width)
            hit = np.isin(blk.fid, small[lo:hi])
            hit[0] = False
            drop = hit[blk.labels]
            final = raw.copy()
            final[drop] = UNCERTAIN
            only[drop] = CLASS_NODATA
        if is_change.any():
            row_area = grid.row_area_m2(box)
            code = raw.astype(np.int64) - 1
            src, dst = code // n, code % n
            table.add(src, dst, is_change & ~drop, row_area)
            table.add(src, np.full_like(dst, n), drop, row_area)
            mmu_removed.add(src, dst, drop, row_area)
        return final, only


class _Readers:
    """Aligned readers of every date's classes and confidences (None where a date has none)."""

    def __init__(self, dates: dict[str, DateMap], grid: GeoGrid):
        self.all: list[AlignedReader] = []
        try:
            self.classes = {r: self._open(d.classes, grid) for r, d in dates.items()}
            self.confidence = {r: self._open(d.confidence, grid) if d.confidence else None for r, d in dates.items()}
            self.quality = {r: self._open(d.quality, grid) if d.quality else None for r, d in dates.items()}
        except BaseException:
            self.close()
            raise

    def _open(self, path, grid):
        reader = AlignedReader(path, grid)
        self.all.append(reader)
        return reader

    def close(self) -> None:
        for r in self.all:
            r.close()


def _flagged(reader: AlignedReader | None, box: PixelBox) -> np.ndarray | bool:
    """Where a date's quality layer holds a flag (codes 1..254; 0 is clear, 255 outside it); False without one."""
    if reader is None:
        return False
    q = reader.read(box)
    return (q != 0) & (q != CLASS_NODATA)


def _read_classes(reader: AlignedReader, box: PixelBox, date: DateMap, n: int) -> np.ndarray:
    arr = reader.read(box)
    bad = (arr >= n) & (arr != CLASS_NODATA)
    if bad.any():
        raise InputError(f"{date.classes}: value {int(arr[bad][0])} is not a class id (0..{n - 1}, 255 nodata) of "
                         f"{list(date.class_names)}; remap it, or set the map's class_names tag")
    return arr



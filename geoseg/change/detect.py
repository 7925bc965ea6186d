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
their pair, change type, exact area and the mean confidence of both dates. Guards apply
in that order, and a pixel removed by several counts for the first. Areas are the
exact ellipsoidal cell areas for geographic grids (planar cell area for projected ones).
All outputs are staged and published together (:class:`geoseg.io.publish.Staging`).
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import rasterio

from geoseg import CLASS_NODATA, __version__
from geoseg.change.align import (
    AlignedReader,
    DateMap,
    common_grid,
    resolve_dates,
)
from geoseg.change.patches import Patches, write_change_polygons
from geoseg.change.transitions import (
    MAX_CLASSES,
    UNCERTAIN,
    Legend,
    TransitionCounter,
    by_pair,
    change_code,
    change_type_summary,
    matrix,
    measure,
    transition_rows,
)
from geoseg.config import ChangeConfig
from geoseg.errors import InputError
from geoseg.grid import GeoGrid
from geoseg.io.cog import StitchedRaster, open_scratch
from geoseg.io.publish import Staging, write_json
from geoseg.tiling import PixelBox

log = logging.getLogger(__name__)

CHANGE_FILES = ("change.tif", "transitions.csv", "change_polygons.gpkg", "transitions.json")
"""What ``geoseg change`` publishes, in publication order (the report last)."""
POLYGON_LAYER = "change"


@dataclass
class ChangeResult:
    """What a change run published: the directory, the files (report last) and the report."""

    output_dir: str
    files: list[str]
    report: dict


def confirm_roles(count: int) -> list[str]:
    """The date roles of ``count`` confirm dates: ``confirm``, ``confirm_2``, ``confirm_3``..."""
    return ["confirm" if i == 0 else f"confirm_{i + 1}" for i in range(count)]


def detect_change(before: str, after: str, output: str, *, confirm: str | Sequence[str] | None = None,
                  options: ChangeConfig | None = None, before_confidence: str | None = None,
                  after_confidence: str | None = None, segment_cfg=None, overwrite: bool = False,
                  progress: bool = False) -> ChangeResult:
    """Compare ``before`` and ``after`` (class maps or scenes) and publish :data:`CHANGE_FILES` in ``output``
    (a directory or an ``s3://`` prefix).

    ``confirm``: one or more later dates (class maps or scenes) for the persistence guard: a change
    is kept only where every one of them still shows the ``after`` class (roles :func:`confirm_roles`).
    ``segment_cfg``: :class:`geoseg.config.SegmentConfig` used for scenes (model, runtime).
    Raises :class:`InputError` / :class:`ConfigError` / :class:`OutputError` (existing results untouched).
    """
    options = options or ChangeConfig()
    t0 = time.perf_counter()
    confirms = [confirm] if isinstance(confirm, str | Path) else list(confirm or [])
    paths = {"before": before, "after": after, **dict(zip(confirm_roles(len(confirms)), map(str, confirms)))}
    for role, p in {**paths, "before confidence": before_confidence, "after confidence": after_confidence}.items():
        if p and "://" not in str(p) and not Path(p).exists():
            raise InputError(f"{role} {p}: no such file")
    staging = Staging(str(output), overwrite, CHANGE_FILES)
    try:
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
        report = _compare(dates, grid, legend, options, staging)
        report["seconds"] = round(time.perf_counter() - t0, 3)
        write_json(staging.path("transitions.json"), report)
        files = staging.publish(CHANGE_FILES)
        return ChangeResult(str(output), files, report)
    finally:
        staging.discard()


# --------------------------------------------------------------------------- the two passes


class _Readers:
    """Aligned readers of every date's classes and confidences (None where a date has none)."""

    def __init__(self, dates: dict[str, DateMap], grid: GeoGrid):
        self.all: list[AlignedReader] = []
        try:
            self.classes = {r: self._open(d.classes, grid) for r, d in dates.items()}
            self.confidence = {r: self._open(d.confidence, grid) if d.confidence else None for r, d in dates.items()}
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


def _compare(dates: dict[str, DateMap], grid: GeoGrid, legend: Legend, opt: ChangeConfig, staging: Staging) -> dict:
    from geoseg.vector.blocks import block_rows

    n = legend.n
    P = opt.min_confidence
    table = TransitionCounter(n)  # the published table
    removed = {k: TransitionCounter(n) for k in ("confidence", "persistence_reverted", "persistence_nodata", "mmu")}
    nodata = {k: np.zeros(2) for k in ("before", "after", "either", "grid")}
    patches = Patches(grid, opt.mmu_ha * 1e4)
    rows = list(block_rows(grid.width, grid.height, opt.block_size))
    raw_path = staging.path(".change-raw.tif")
    readers = _Readers(dates, grid)
    try:
        with open_scratch(raw_path, grid) as raw_ds:
            for bi, row in enumerate(rows):
                for box in row:
                    row_area = grid.row_area_m2(box)
                    raw, b, a, cb, ca = _block_pass1(box, row_area, readers, dates, n, P, table, removed, nodata)
                    only = np.where((raw != 0) & (raw < UNCERTAIN), raw, CLASS_NODATA).astype(np.uint8)
                    small = patches.add_block(only, box, row_area, cb, ca)  # small patches inside the block
                    if small.any():
                        table.add(b, np.full_like(a, n), small, row_area)
                        removed["mmu"].add(b, a, small, row_area)
                        raw[small] = UNCERTAIN
                    raw_ds.write(raw, 1, window=box.to_window())
                patches.end_row(bi == len(rows) - 1)
    finally:
        readers.close()
    small, keys, stats = patches.finish()
    only_path = staging.path(".change-only.tif")
    tags = _tags(dates, legend, opt)
    out = StitchedRaster(staging.path("change.tif"), grid, CLASS_NODATA, colormap=legend.colormap())
    try:
        with open_scratch(only_path, grid) as only_ds, rasterio.open(raw_path) as raw_src:
            for row in rows:
                for box in row:
                    raw = raw_src.read(1, window=box.to_window())
                    final, only = _block_pass2(raw, box, grid, small, n, table, removed["mmu"])
                    out.write(box, final)
                    only_ds.write(only, 1, window=box.to_window())
        out.to_cog(tags=tags, band_description="change code", overview_resampling="MODE")
    finally:
        out.close()
    raw_path.unlink(missing_ok=True)
    count = write_change_polygons(only_path, staging.path("change_polygons.gpkg"), legend, keys, stats, dates,
                                  opt.block_size, POLYGON_LAYER)
    only_path.unlink(missing_ok=True)
    report = _report(dates, grid, legend, opt, table, removed, nodata, patches.small_patches, count)
    _write_csv(staging.path("transitions.csv"), report["transitions"])
    return report


def _block_pass1(box, row_area, readers: _Readers, dates, n, P, table, removed, nodata):
    """Pass 1 on one block: raw codes (change, 0, 254, 255), table diagonal and guard removals.

    Returns ``(raw, before classes, after classes, before confidence, after confidence)``.
    """
    b = _read_classes(readers.classes["before"], box, dates["before"], n)
    a = _read_classes(readers.classes["after"], box, dates["after"], n)
    cb = readers.confidence["before"].read(box) if readers.confidence["before"] else None
    ca = readers.confidence["after"].read(box) if readers.confidence["after"] else None
    nd_b, nd_a = b == CLASS_NODATA, a == CLASS_NODATA
    for key, mask in (("before", nd_b), ("after", nd_a), ("either", nd_b | nd_a)):
        nodata[key] += (mask.sum(), (mask * row_area[:, None]).sum())
    nodata["grid"] += (b.size, row_area.sum() * b.shape[1])
    valid = ~(nd_b | nd_a)
    changed = valid & (b != a)
    low = np.zeros_like(changed)
    if P > 0:
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


def _read_classes(reader: AlignedReader, box: PixelBox, date: DateMap, n: int) -> np.ndarray:
    arr = reader.read(box)
    bad = (arr >= n) & (arr != CLASS_NODATA)
    if bad.any():
        raise InputError(f"{date.classes}: value {int(arr[bad][0])} is not a class id (0..{n - 1}, 255 nodata) of "
                         f"{list(date.class_names)}; remap it, or set the map's class_names tag")
    return arr


def _block_pass2(raw, box, grid: GeoGrid, small, n, table, mmu_removed):
    """Pass 2 on one block: small patches -> uncertain; count kept changes and MMU removals."""
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


# --------------------------------------------------------------------------- report


def _tags(dates, legend: Legend, opt: ChangeConfig) -> dict[str, str]:
    n = legend.n
    tags = {
        "change_codes": f"0 no change; 1 + from_id * {n} + to_id for from_id -> to_id; 254 uncertain (removed by a "
                        "guard); 255 nodata",
        "legend": json.dumps([{k: e[k] for k in ("code", "label", "color")} for e in legend.entries]),
        "class_names": ",".join(legend.class_names),
        "class_ids": ",".join(str(i) for i in range(n)),
        "min_confidence": str(opt.min_confidence),
        "mmu_ha": str(opt.mmu_ha),
        "software": f"geoseg {__version__}",
    }
    for role, d in dates.items():
        tags[role] = d.source
        if d.acquired:
            tags[f"acquired_{role}"] = d.acquired
    return tags


def _report(dates, grid: GeoGrid, legend: Legend, opt: ChangeConfig, table, removed, nodata, small_patches, count) -> dict:
    names = legend.class_names
    n = legend.n
    px, m2 = table.total()
    diag_px = int(np.trace(table.pixels[:, :n]))
    diag_m2 = float(np.trace(table.area_m2[:, :n]))
    unc_px, unc_m2 = int(table.pixels[:, n].sum()), float(table.area_m2[:, n].sum())
    confirms = [r for r in dates if r.startswith("confirm")]

    def total(c: TransitionCounter) -> dict:
        return measure(*c.total())

    rev, nod = removed["persistence_reverted"], removed["persistence_nodata"]
    return {
        "geoseg_version": __version__,
        "dates": {r: _date_entry(d) for r, d in dates.items()},
        "grid": {"reference": opt.grid, **grid.to_dict(),
                 "pixel_area": "exact WGS84 ellipsoidal cell area" if grid.crs.is_geographic else "planar cell area of the CRS"},
        "classes": [{"id": i, "name": nm} for i, nm in enumerate(names)],
        "grid_total": measure(*nodata["grid"]),
        "nodata_excluded": {"before": measure(*nodata["before"]), "after": measure(*nodata["after"]),
                            "either": measure(*nodata["either"]),
                            "note": "nodata includes pixels outside that date's footprint; 'either' is what the table excludes"},
        "valid": measure(px, m2),
        "unchanged": measure(diag_px, diag_m2),
        "changed": measure(px - diag_px - unc_px, m2 - diag_m2 - unc_m2),
        "uncertain": measure(unc_px, unc_m2),
        "guards": {
            "order": ["confidence", "persistence", "mmu"],
            "confidence": {"applied": bool(opt.min_confidence > 0), "min_confidence": float(opt.min_confidence),
                           "rule": "both dates' confidence >= min_confidence (percent; nodata confidence fails)",
                           "removed": total(removed["confidence"]), "by_transition": by_pair(removed["confidence"], names)},
            "persistence": {"applied": bool(confirms), "confirm_dates": confirms,
                            "rule": "every confirm date still shows the after class (reverted: one shows another "
                                    "class; confirm_nodata: none does, one or more are nodata)",
                            "removed": measure(rev.total()[0] + nod.total()[0], rev.total()[1] + nod.total()[1]),
                            "reverted": total(rev), "confirm_nodata": total(nod),
                            "by_transition": by_pair(rev, names) + by_pair(nod, names)},
            "mmu": {"applied": bool(opt.mmu_ha > 0), "mmu_ha": float(opt.mmu_ha),
                    "rule": "4-connected patch of one from->to pair smaller than mmu_ha", "patches_removed": small_patches,
                    "removed": total(removed["mmu"]), "by_transition": by_pair(removed["mmu"], names)},
        },
        "transitions": transition_rows(table, names),
        "matrix": matrix(table, names),
        "change_types": change_type_summary(table, names),
        "legend": list(legend.entries),
        "polygons": {"file": "change_polygons.gpkg", "layer": POLYGON_LAYER, "count": count},
    }


def _date_entry(d: DateMap) -> dict:
    """A date in the report; a class map segmented here is not kept, so its paths are null."""
    entry = asdict(d)
    if d.segmented:
        entry.update(classes=None, confidence=None)
    return entry


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["from_class", "to_class", "pixels", "area_ha"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)

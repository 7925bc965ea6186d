"""One map per period from many acquisitions: per pixel, the most frequent class among the clear looks.

Inputs are class maps (geoseg's ``*_classes.tif``: ids ``0..n-1``, 255 nodata; masked
pixels of a quality band are 255 too, so they are not looks), each with its
``*_confidence.tif`` where there is one. All are read on one common grid (the first map's,
or ``grid``) window by window through :class:`~geoseg.change.align.AlignedReader`
(nearest neighbour): memory is a few blocks of every input, whatever the raster size.

Per pixel of the grid (axis order rows, cols):

- ``looks``: how many inputs have a class there (clear observations), 0..N;
- ``classes``: the class seen most often; a tie between classes goes to the larger sum of
  confidence (percent) over the looks of each, then to the lower class id; 255 where
  ``looks < min_looks``;
- ``share``: the winning class's looks as a percentage of the clear looks (0..100, rounded),
  255 where the class is nodata.

Written as COGs ``<name>_classes.tif`` (colour table, class names, QML/SLD styles),
``<name>_share.tif`` and ``<name>_looks.tif`` (ramp styles), and ``<name>_composite.json``
(inputs, ``min_looks``, class areas in ha, pixels per number of looks), staged and published
together (:class:`~geoseg.io.publish.Staging`) under an output lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geoseg import CLASS_NODATA
from geoseg.change.align import AlignedReader, DateMap, class_map_date, read_grid
from geoseg.change.outputs import class_categories
from geoseg.config import BLOCK_SIZE
from geoseg.errors import ConfigError, InputError
from geoseg.grid import GeoGrid
from geoseg.io import styles
from geoseg.io.cog import StitchedRaster
from geoseg.io.lock import OutputLock
from geoseg.io.publish import Staging, naming_write_errors, write_json
from geoseg.io.urls import redact

__all__ = ["CompositeResult", "class_rows", "composite", "composite_block", "composite_files"]

MAX_LOOKS = 254
"""Most inputs one composite takes (``looks`` is uint8, 255 is its nodata)."""


@dataclass(frozen=True)
class CompositeResult:
    """What :func:`composite` published: where, the files, per-class areas (ha) and pixels by number of looks."""

    output: str
    files: list[str]
    inputs: int
    class_area_ha: dict[str, float]
    pixels_by_looks: list[int]
    below_min_looks: int
    document: dict[str, Any] = field(repr=False)


def composite_files(name: str) -> dict[str, str]:
    """Output file names of a composite called ``name``, by kind."""
    files = {"classes": f"{name}_classes.tif", "share": f"{name}_share.tif", "looks": f"{name}_looks.tif",
             "summary": f"{name}_composite.json"}
    for kind in ("classes", "share", "looks"):
        files.update({f"{kind}_{k}": v for k, v in styles.sidecar_names(files[kind], pam=False).items()})
    return files


def class_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Class areas of a composite (its ``<name>_composite.json``) as ``stats.json`` rows of ``geoseg segment``:
    ``class_id, class_name, pixels, area_ha, percent`` (of the mapped area) and ``valid_area_ha``."""
    total = sum(c["area_ha"] for c in document["classes"])
    return [{"class_id": c["class_id"], "class_name": c["name"], "pixels": c["pixels"], "area_ha": c["area_ha"],
             "percent": round(100.0 * c["area_ha"] / total, 4) if total else 0.0, "valid_area_ha": round(total, 4)}
            for c in document["classes"]]


def composite_block(classes: np.ndarray, confidence: np.ndarray | None, n_classes: int,
                    min_looks: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Composite of ``classes`` ``(looks, rows, cols)`` uint8 (255 or ids >= ``n_classes``: not a look).

    ``confidence``: same shape, percent (255 or None: no confidence, ties go to the lower id).
    Returns ``(classes, share, looks)``, each ``(rows, cols)`` uint8, as the module describes.
    """
    valid = classes < n_classes
    looks = valid.sum(axis=0)
    counts = np.stack([(classes == c) & valid for c in range(n_classes)]).sum(axis=1)  # (classes, rows, cols)
    if confidence is not None:
        conf = np.where(valid & (confidence <= 100), confidence, 0).astype(np.int64)
        sums = np.stack([np.where(classes == c, conf, 0).sum(axis=0) for c in range(n_classes)])
    else:
        sums = np.zeros_like(counts)
    # lexicographic: count first, then confidence sum (< 101 x looks <= 25_654 < 2**15); argmax takes the lower id
    best = np.argmax(counts.astype(np.int64) * 2**15 + sums, axis=0)
    top = np.take_along_axis(counts, best[None], axis=0)[0]
    keep = (looks >= max(min_looks, 1))
    out_classes = np.where(keep, best, CLASS_NODATA).astype(np.uint8)
    share = np.where(keep, np.rint(100 * top / np.maximum(looks, 1)), CLASS_NODATA).astype(np.uint8)
    return out_classes, share, looks.astype(np.uint8)


def composite(maps: Sequence[str | Path], output: str | Path, *, name: str = "composite", min_looks: int = 1,
              grid: str | Path | None = None, block_size: int = BLOCK_SIZE, overwrite: bool = False) -> CompositeResult:
    """Combine the class maps ``maps`` of one period into one composite under ``output`` (local or ``s3://``)."""
    maps = [str(m) for m in maps]
    if not maps:
        raise ConfigError("no class maps: give the *_classes.tif of every acquisition of the period")
    if len(maps) > MAX_LOOKS:
        raise ConfigError(f"{len(maps)} class maps: at most {MAX_LOOKS} go into one composite; split the period")
    if len(set(maps)) != len(maps):
        dup = next(m for m in maps if maps.count(m) > 1)
        raise ConfigError(f"{dup}: given more than once; each acquisition counts once")
    if min_looks < 1 or min_looks > len(maps):
        raise ConfigError(f"--min-looks {min_looks}: must be 1..{len(maps)} (the number of class maps given)")
    dates = [class_map_date(f"look {i + 1}", m) for i, m in enumerate(maps)]
    names = dates[0].class_names
    for d in dates[1:]:
        if d.class_names != names:
            raise InputError(f"{d.classes}: classes {', '.join(d.class_names)} differ from {', '.join(names)} of "
                             f"{dates[0].classes}; composite maps of one model (one class scheme)")
    g = read_grid(grid or dates[0].classes)
    lock = OutputLock(output, "composite").acquire()
    try:
        staging = Staging(output, overwrite, composite_files(name).values())
        try:
            with naming_write_errors(output):  # a full or read-only disk: say so, naming the output
                doc = _write(dates, g, staging.dir, name, min_looks, block_size)
                files = staging.publish(composite_files(name).values())
        finally:
            staging.discard()
    finally:
        lock.release()
        lock.remove_created_dir()
    return CompositeResult(str(output), files, len(maps), {c["name"]: c["area_ha"] for c in doc["classes"]},
                           doc["pixels_by_looks"], doc["pixels_below_min_looks"], doc)


def _write(dates: list[DateMap], grid: GeoGrid, staging: Path, name: str, min_looks: int,
           block_size: int) -> dict[str, Any]:
    from geoseg.vector.blocks import block_rows

    files = composite_files(name)
    n = len(dates[0].class_names)
    cats = class_categories(dates[0])
    colormap = {c.value: (*c.rgb, 255) for c in cats}
    outs = {"classes": StitchedRaster(staging / files["classes"], grid, CLASS_NODATA, colormap=colormap),
            "share": StitchedRaster(staging / files["share"], grid, CLASS_NODATA),
            "looks": StitchedRaster(staging / files["looks"], grid, CLASS_NODATA)}
    readers = [AlignedReader(d.classes, grid) for d in dates]
    conf = [AlignedReader(d.confidence, grid) if d.confidence else None for d in dates]
    counts = np.zeros(n, np.int64)
    area = np.zeros(n)
    by_looks = np.zeros(len(dates) + 1, np.int64)
    below = 0
    try:
        for row in block_rows(grid.width, grid.height, block_size):
            for box in row:
                stack = np.stack([r.read(box) for r in readers])
                cstack = None
                if all(c is not None for c in conf):
                    cstack = np.stack([c.read(box) for c in conf if c is not None])
                cls, share, looks = composite_block(stack, cstack, n, min_looks)
                for kind, arr in (("classes", cls), ("share", share), ("looks", looks)):
                    outs[kind].write(box, arr)
                _tally(cls, looks, grid.row_area_m2(box), counts, area, by_looks)
                below += int(((looks > 0) & (looks < min_looks)).sum())
        tags = {"class_names": ",".join(dates[0].class_names), "min_looks": str(min_looks),
                "sources": ",".join(redact(d.classes) for d in dates)}
        outs["classes"].to_cog(tags=tags, band_description="class")
        outs["share"].to_cog(tags={"unit": "percent of clear looks"}, band_description="share",
                             overview_resampling="AVERAGE")
        outs["looks"].to_cog(tags={"unit": "clear looks"}, band_description="looks", overview_resampling="NEAREST")
    finally:
        for o in outs.values():
            o.close()
        for r in [*readers, *(c for c in conf if c is not None)]:
            r.close()
    styles.write_raster_sidecars(staging / files["classes"], styles.raster_qml(cats),
                                 styles.raster_sld(Path(files["classes"]).stem, cats))
    top = max(len(dates), 1)
    looks_ramp = ((0, "#d7191c"), (top / 2, "#ffffbf"), (top, "#1a9641"))
    styles.write_raster_sidecars(staging / files["looks"], styles.ramp_qml(looks_ramp, unit=" looks"),
                                 styles.ramp_sld(Path(files["looks"]).stem, looks_ramp, title="clear looks", unit=" looks"))
    styles.write_raster_sidecars(staging / files["share"], styles.ramp_qml(),
                                 styles.ramp_sld(Path(files["share"]).stem, title="share of clear looks"))
    doc = {
        "inputs": [{"classes": redact(d.classes), "confidence": redact(d.confidence) if d.confidence else None,
                    "source": d.source, "acquired": d.acquired} for d in dates],
        "grid": {"crs": grid.crs.to_string() if grid.crs else None, "width": grid.width, "height": grid.height},
        "min_looks": min_looks,
        "classes": [{"class_id": i, "name": nm, "pixels": int(counts[i]), "area_ha": round(float(area[i]) / 1e4, 4)}
                    for i, nm in enumerate(dates[0].class_names)],
        "pixels_by_looks": [int(v) for v in by_looks],
        "pixels_below_min_looks": below,
    }
    write_json(staging / files["summary"], doc)
    return doc


def _tally(cls: np.ndarray, looks: np.ndarray, row_area: np.ndarray, counts: np.ndarray, area: np.ndarray,
           by_looks: np.ndarray) -> None:
    for c in range(len(counts)):
        hit = cls == c
        counts[c] += int(hit.sum())
        area[c] += float((hit.sum(axis=1) * row_area).sum())
    by_looks += np.bincount(looks.ravel(), minlength=len(by_looks))[: len(by_looks)]

"""The dates of a change comparison, read on one common grid.

A *class map* is a single-band uint8 raster (geoseg's ``*_classes.tif``: ids ``0..n-1``,
255 nodata, class names in the ``class_names`` tag; without the tag the geoseg scheme
``other, forest, water, urban`` is assumed). Its confidence raster is the
``*_confidence.tif`` next to a ``*_classes.tif`` unless one is given. Anything else
(multi-band imagery) is a *scene* and is segmented first with :func:`geoseg.segment.pipeline.segment`.

The common grid is one raster's grid (CRS, transform, size): by default the ``after``
date's. Another raster is read onto it window by window through a GDAL warped VRT
(``rasterio.vrt.WarpedVRT``) with nearest-neighbour resampling, so class ids are never
blended and memory stays bounded by the window; a raster already on the grid is read
directly. Pixels outside a raster's footprint, and its nodata, read as 255.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from geoseg import CLASS_NODATA
from geoseg.errors import ConfigError, InputError
from geoseg.grid import GeoGrid
from geoseg.io import storage
from geoseg.io.raster import acquisition_date, open_raster
from geoseg.io.urls import redact
from geoseg.tiling import PixelBox

log = logging.getLogger(__name__)

GEOSEG_CLASSES = ("other", "forest", "water", "urban")
"""Class names assumed for a class map without a ``class_names`` tag."""


@dataclass(frozen=True, slots=True)
class DateMap:
    """One date as change detection reads it: class map, confidence (or None), provenance."""

    role: str
    classes: str
    confidence: str | None
    source: str
    acquired: str | None
    class_names: tuple[str, ...]
    segmented: bool = False
    quality: str | None = None
    """The date's quality layer (the ``*_quality.tif`` next to a ``*_classes.tif``), None without one."""


def is_class_map(path: str | Path) -> bool:
    """Whether ``path`` is a class map (single band, uint8) rather than a scene to segment."""
    with open_raster(path) as src:
        return src.count == 1 and src.dtypes[0] == "uint8"


def class_map_date(role: str, path: str | Path, confidence: str | Path | None = None,
                   segmented: bool = False) -> DateMap:
    """A :class:`DateMap` of the class map at ``path`` (confidence: given, else the sibling ``*_confidence.tif``)."""
    path = str(path)
    with open_raster(path) as src:
        if src.count != 1 or src.dtypes[0] != "uint8":
            raise InputError(f"{path}: not a class map ({src.count} band(s) of {src.dtypes[0]}); give a geoseg "
                             "*_classes.tif or a scene to segment")
        tags = src.tags()
        names = tuple(tags["class_names"].split(",")) if tags.get("class_names") else GEOSEG_CLASSES
        ids = tags.get("class_ids")
        if ids and [int(i) for i in ids.split(",")] != list(range(len(names))):
            raise InputError(f"{path}: class ids {ids} are not 0..{len(names) - 1}; remap the classes to consecutive "
                             "ids from 0 (255 = nodata)")
        source = redact(tags.get("source") or path)
        acquired = acquisition_date(tags)
    if confidence is None and path.endswith("_classes.tif"):
        sibling = path[: -len("_classes.tif")] + "_confidence.tif"
        confidence = sibling if storage.exists(sibling) else None
    if confidence is not None:
        with open_raster(confidence) as c, open_raster(path) as k:
            if (c.width, c.height) != (k.width, k.height) or not c.transform.almost_equals(k.transform):
                raise InputError(f"{confidence}: confidence raster is not on the grid of {path}; give the "
                                 "*_confidence.tif written with that class map")
    quality = None
    if path.endswith("_classes.tif"):
        sibling = path[: -len("_classes.tif")] + "_quality.tif"
        quality = sibling if storage.exists(sibling) else None
    return DateMap(role, path, str(confidence) if confidence else None, source, acquired, names, segmented, quality)


def resolve_dates(paths: dict[str, str], confidences: dict[str, str | None], segment_cfg, workdir: Path,
                  progress: bool = False) -> dict[str, DateMap]:
    """:class:`DateMap` per role (``before``, ``after``, ``confirm``, ``confirm_2``...): class maps as they are, scenes
    segmented under ``workdir`` with ``segment_cfg`` (a :class:`~geoseg.config.SegmentConfig`; None: defaults)."""
    scenes = {r: p for r, p in paths.items() if not is_class_map(p)}
    out = {r: class_map_date(r, p, confidences.get(r)) for r, p in paths.items() if r not in scenes}
    if scenes:
        for r, p in scenes.items():
            if confidences.get(r):
                raise InputError(f"--{r}-confidence was given but {p} is a scene (segmented here, with its "
                                 "own confidence); drop the option or give a class map")
        out.update(_segment(scenes, segment_cfg, workdir, progress))
    return {r: out[r] for r in paths}


def _segment(scenes: dict[str, str], cfg, workdir: Path, progress: bool) -> dict[str, DateMap]:
    """Segment the scenes (one run when their file names differ) into ``workdir/segment-*``."""
    from geoseg.config import SegmentConfig
    from geoseg.segment.pipeline import segment

    cfg = cfg or SegmentConfig()
    stems = [Path(p).stem for p in scenes.values()]
    groups = [list(scenes)] if len(set(stems)) == len(stems) else [[r] for r in scenes]
    out = {}
    for roles in groups:
        run_dir = workdir / ("segment-" + "-".join(roles))
        run_cfg = cfg.model_copy(update={
            "inputs": [scenes[r] for r in roles], "output": str(run_dir), "overwrite": True, "sink": None,
            "outputs": cfg.outputs.model_copy(update={"polygons": False, "confidence": True})})
        log.info("segmenting %s", ", ".join(f"{r} {scenes[r]}" for r in roles))
        segment(run_cfg, progress=progress)
        for r in roles:
            cls = run_dir / f"{Path(scenes[r]).stem}_classes.tif"
            out[r] = class_map_date(r, cls, segmented=True)
    return out


# --------------------------------------------------------------------------- the common grid


def check_overlap(paths: dict[str, str]) -> None:
    """Refuse dates whose footprints do not all overlap the ``after`` date's (nothing to compare there), before any
    date is segmented or read; raises :class:`InputError` naming both files."""
    grids = {}
    for role, p in paths.items():
        with open_raster(p) as src:
            grids[role] = GeoGrid.from_dataset(src)
    after = grids["after"]
    for role, grid in grids.items():
        if role != "after" and not after.overlaps(grid):
            crs = {r: g.crs.to_string() if g.crs else "no CRS" for r, g in (("after", after), (role, grid))}
            raise InputError(f"{role} {redact(paths[role])} ({crs[role]}) does not overlap after {redact(paths['after'])} "
                             f"({crs['after']}): there is nothing to compare; give two dates of the same area "
                             "(check each file's CRS and extent with `geoseg info`)")


def read_grid(path: str | Path) -> GeoGrid:
    """The grid of the raster at ``path``; raises :class:`InputError` if it has no CRS."""
    with open_raster(path) as src:
        if src.crs is None:
            raise InputError(f"{path}: has no CRS, so it cannot be aligned with another date; assign one "
                             "(e.g. with rio edit-info --crs)")
        return GeoGrid.from_dataset(src)


def common_grid(choice: str, dates: dict[str, DateMap]) -> GeoGrid:
    """The common grid: ``after`` / ``before`` (that date's grid) or the path of a raster whose grid to use.

    Warns when it is a (non-transverse) Mercator projection, whose planar cell areas are not ground areas.
    """
    if choice in ("after", "before"):
        grid = read_grid(dates[choice].classes)
    elif not Path(choice).exists() and "://" not in choice:
        raise ConfigError(f"grid {choice!r}: give 'after', 'before' or the path of a raster whose grid to use")
    else:
        grid = read_grid(choice)
    assert grid.crs is not None  # read_grid refuses a raster without a CRS
    if not grid.crs.is_geographic:
        from pyproj import CRS

        op = CRS.from_wkt(grid.crs.to_wkt()).coordinate_operation
        method = op.method_name if op else ""
        if "Mercator" in method and "Transverse" not in method:
            log.warning("common grid %s is in a Mercator projection (%s): its planar cell areas overstate ground "
                        "areas by 1/cos²(latitude); use --grid with a raster in an equal-area, UTM or "
                        "geographic CRS", choice, grid.crs.to_string())
    return grid


class AlignedReader:
    """Reads a single-band uint8 raster on ``grid`` by window (nearest; nodata -> 255)."""

    def __init__(self, path: str | Path, grid: GeoGrid):
        self.path = str(path)
        self._src = open_raster(path)
        try:
            if self._src.count != 1 or self._src.dtypes[0] != "uint8":
                raise InputError(f"{path}: expected a single-band uint8 raster (class map or confidence), got "
                                 f"{self._src.count} band(s) of {self._src.dtypes[0]}")
            if self._src.crs is None:
                raise InputError(f"{path}: has no CRS, so it cannot be aligned with another date; assign one")
            self._nodata = self._src.nodata
            self.direct = GeoGrid.from_dataset(self._src).almost_equals(grid)
            if self.direct:
                self._ds = self._src
            else:
                src_nodata = self._nodata if self._nodata is not None else CLASS_NODATA
                self._ds = WarpedVRT(self._src, crs=grid.crs, transform=grid.transform, width=grid.width,
                                     height=grid.height, resampling=Resampling.nearest, src_nodata=src_nodata,
                                     nodata=CLASS_NODATA)
                log.info("%s: warped onto the common grid (nearest)", path)
        except BaseException:
            self._src.close()
            raise

    def read(self, box: PixelBox) -> np.ndarray:
        """``(rows, cols)`` uint8 of ``box`` of the common grid; nodata and outside the footprint are 255."""
        arr = self._ds.read(1, window=box.to_window())
        if self.direct and self._nodata is not None and self._nodata != CLASS_NODATA:
            arr[arr == self._nodata] = CLASS_NODATA
        return arr

    def close(self) -> None:
        if self._ds is not self._src:
            self._ds.close()
        self._src.close()

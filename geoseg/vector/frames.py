"""Regions to GeoDataFrames: pixel-space polygons -> CRS coordinates, areas, perimeters and attributes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from geoseg.errors import InputError
from geoseg.grid import GeoGrid
from geoseg.io.raster import acquisition_date
from geoseg.io.urls import redact
from geoseg.tiling import PixelBox
from geoseg.vector.geometry import drop_collinear
from geoseg.vector.reference import EQUAL_AREA_CRS, class_names_from_raster

COLUMNS = ("polygon_id", "class_id", "class_name", "area_m2", "area_ha", "perimeter_m",
           "mean_confidence", "source", "model", "acquired")
"""Attribute columns of every polygon table, in order (``geometry`` follows)."""


@dataclass(frozen=True, slots=True)
class RegionContext:
    """What every batch needs to turn pixel-space regions into attributed polygons: the grid and the tags."""

    source: str
    grid: GeoGrid
    names: tuple[str, ...]
    model: str | None
    acquired: str | None

    @classmethod
    def from_dataset(cls, path, src, class_names) -> RegionContext:
        given = list(class_names) if class_names else class_names_from_raster(src)
        names = tuple(given + ["unknown"] * (256 - len(given)))
        tags = src.tags()
        # `source`: the imagery a geoseg class map was predicted from (its `source` tag), else the map itself
        return cls(redact(tags.get("source") or str(path)), GeoGrid.from_dataset(src), names, tags.get("model") or None,
                   acquisition_date(tags))

    @classmethod
    def for_map(cls, source: str, grid: GeoGrid, class_names: list[str], model: str | None,
                acquired: str | None) -> RegionContext:
        """The context :meth:`from_dataset` reads from a class map written with these tags (``source``
        redacted, ``acquired`` as the ``acquired`` tag)."""
        names = tuple(list(class_names) + ["unknown"] * (256 - len(class_names)))
        return cls(redact(source), grid, names, model or None, acquisition_date({"acquired": acquired or ""}))

    def row_area_m2(self, box: PixelBox) -> np.ndarray:
        """Ground area (m²) of one pixel in each row of ``box``."""
        if self.grid.crs is None:
            raise InputError(f"{self.source}: has no CRS, so areas in m² are unknown; assign a CRS to the file "
                             "(or set mmu_m2/simplify_m to 0)")
        return self.grid.row_area_m2(box)


class RegionBatch:
    """Regions ready to be emitted, in pixel space, turned into a GeoDataFrame by :meth:`emit`."""

    def __init__(self):
        self.parts: list[tuple] = []

    def add(self, pid, cls, geoms, npix, csum, ccnt) -> None:
        if len(pid):
            self.parts.append((pid, cls, geoms, npix, csum, ccnt))

    def geoms(self) -> np.ndarray:
        return np.concatenate([p[2] for p in self.parts]) if self.parts else np.empty(0, object)

    def ids(self) -> np.ndarray:
        return np.concatenate([p[0] for p in self.parts]).astype(np.int64) if self.parts else np.zeros(0, np.int64)

    def set_geoms(self, geoms) -> None:
        i = 0
        for k, p in enumerate(self.parts):
            self.parts[k] = (p[0], p[1], np.asarray(geoms[i:i + len(p[0])], dtype=object), *p[3:])
            i += len(p[0])

    def emit(self, ctx: RegionContext, simplified: bool = False):
        if not self.parts:
            return
        cols = [np.concatenate([p[i] for p in self.parts]) for i in range(6)]
        self.parts = []
        pid, cls, geoms, _npix, csum, ccnt = cols
        if simplified:  # drop the collinear vertices left along pinned strip lines
            geoms = drop_collinear(geoms)
        yield region_frame(ctx, pid.astype(np.int64), cls, geoms, csum, ccnt)


def region_frame(ctx: RegionContext, pid, cls, pix_geoms, csum, ccnt):
    """GeoDataFrame of regions: pixel-space geometry -> CRS coordinates + attributes."""
    import geopandas as gpd
    import pandas as pd

    t = ctx.grid.transform
    xy = shapely.get_coordinates(pix_geoms)
    x, y = xy[:, 0], xy[:, 1]  # GDAL's order of operations: gt0 + gt1 * x + gt2 * y
    # in place (replaces the array's elements), so the pixel-space copies are freed at once
    shapely.set_coordinates(pix_geoms, np.column_stack([t.c + t.a * x + t.b * y, t.f + t.d * x + t.e * y]))
    del xy, x, y
    order = np.argsort(pid)
    pid, cls, geoms, csum, ccnt = pid[order], cls[order], pix_geoms[order], csum[order], ccnt[order]
    area, perim = _area_perimeter(geoms, ctx.grid.crs)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(ccnt > 0, csum / np.maximum(ccnt, 1), np.nan)
    n = len(pid)
    df = pd.DataFrame({
        "polygon_id": pid,
        "class_id": cls.astype(np.int32),
        "class_name": np.asarray(ctx.names, dtype=object)[cls],
        "area_m2": area,
        "area_ha": area / 1e4,
        "perimeter_m": perim,
        "mean_confidence": mean_conf,
        "source": np.full(n, ctx.source, dtype=object),
        "model": np.full(n, ctx.model, dtype=object),
        "acquired": np.full(n, ctx.acquired, dtype=object),
    })
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=ctx.grid.crs), crs=ctx.grid.crs)


def _area_perimeter(geoms: np.ndarray, crs) -> tuple[np.ndarray, np.ndarray]:
    """Areas (m²) and perimeters (m, holes included) of CRS-coordinate polygons.

    Projected CRS: planar, times the CRS unit factor. Geographic: area in EPSG:6933
    (equal-area), perimeter as the geodesic length of every ring on WGS84.
    """
    if crs is None:
        return shapely.area(geoms), shapely.length(geoms)
    if not crs.is_geographic:
        factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
        return shapely.area(geoms) * factor**2, shapely.length(geoms) * factor
    from pyproj import Geod, Transformer

    tr = Transformer.from_crs(crs, EQUAL_AREA_CRS, always_xy=True)
    ea = shapely.transform(geoms, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    geod = Geod(ellps="WGS84")
    rings, idx = shapely.get_rings(geoms, return_index=True)
    ring_len = np.array([geod.line_length(*np.asarray(r.coords).T) for r in rings])
    return shapely.area(ea), np.bincount(idx, weights=ring_len, minlength=len(geoms))

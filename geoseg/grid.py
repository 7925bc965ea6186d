"""The georeferenced grid: one immutable value object for a raster's pixels on the ground.

A :class:`GeoGrid` is a size in pixels, an affine transform (pixel ``(col, row)`` ->
CRS coordinates of the pixel's top-left corner) and a CRS, in the spirit of odc-geo's
``GeoBox``. Segment, vectorize and change all describe their rasters with it. Windows
are :class:`~geoseg.tiling.PixelBox` es of the grid; areas are in m², exact on the
WGS84 ellipsoid for geographic grids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine

from geoseg.errors import InputError
from geoseg.tiling import PixelBox

if TYPE_CHECKING:
    from rasterio.crs import CRS


@dataclass(frozen=True, slots=True)
class GeoGrid:
    """``width x height`` pixels on ``transform`` in ``crs`` (None: not georeferenced)."""

    width: int
    height: int
    transform: Affine
    crs: CRS | None

    @classmethod
    def from_dataset(cls, src: Any) -> GeoGrid:
        """The grid of an open rasterio dataset (reader, writer or VRT)."""
        return cls(src.width, src.height, src.transform, src.crs)

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)``, numpy order."""
        return self.height, self.width

    @property
    def box(self) -> PixelBox:
        """The whole grid as a pixel box."""
        return PixelBox(0, 0, self.width, self.height)

    def window_transform(self, box: PixelBox) -> Affine:
        """Affine transform of the window ``box`` (its top-left pixel becomes ``(0, 0)``)."""
        return self.transform @ Affine.translation(box.col, box.row)

    def bounds(self, box: PixelBox | None = None) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in CRS units of ``box`` (default: the whole grid)."""
        b = box or self.box
        corners = [self.transform * (c, r) for c in (b.col, b.col_stop) for r in (b.row, b.row_stop)]
        xs, ys = zip(*corners, strict=True)
        return min(xs), min(ys), max(xs), max(ys)

    def overlaps(self, other: GeoGrid) -> bool:
        """Whether the two grids' footprints share some area (``other``'s bounds taken into this CRS; two grids
        without a CRS are compared in their own coordinates, and one without a CRS cannot tell: True)."""
        bounds = other.bounds()
        if (self.crs is None) != (other.crs is None):
            return True
        if self.crs is not None and other.crs is not None and self.crs != other.crs:
            from rasterio.warp import transform_bounds

            bounds = transform_bounds(other.crs, self.crs, *bounds, densify_pts=21)
        left, bottom, right, top = self.bounds()
        return bool(bounds[0] < right and bounds[2] > left and bounds[1] < top and bounds[3] > bottom)

    def almost_equals(self, other: GeoGrid) -> bool:
        """Same size, CRS and (to floating-point precision) transform."""
        return ((self.width, self.height) == (other.width, other.height) and self.crs == other.crs
                and self.transform.almost_equals(other.transform))

    def row_area_m2(self, box: PixelBox) -> np.ndarray:
        """Ground area (m²) of one pixel in each row of ``box``, shape ``(box.height,)``."""
        return cell_area_m2(self.crs, self.transform, np.arange(box.row, box.row_stop))

    def pixel_size_m(self) -> float:
        """Side (m) of a square of the ground area of a pixel in the middle row: the pixel size that models
        and sensors are compared by (degrees on geographic grids become metres there)."""
        mid = self.height // 2
        return float(np.sqrt(cell_area_m2(self.crs, self.transform, np.array([mid]))[0]))

    def to_profile(self) -> dict[str, Any]:
        """``width, height, crs, transform`` keywords for ``rasterio.open(..., "w")``."""
        return {"width": self.width, "height": self.height, "crs": self.crs, "transform": self.transform}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (CRS as a string, the six transform coefficients)."""
        return {"crs": self.crs.to_string() if self.crs else None, "transform": list(self.transform)[:6],
                "width": self.width, "height": self.height}


def cell_area_m2(crs: CRS | None, transform: Affine, rows: np.ndarray) -> np.ndarray:
    """Ground area (m²) of one pixel in each of ``rows`` (0-based raster rows).

    Projected CRS: constant ``|a·e - b·d|`` times the unit factor squared. Geographic CRS:
    the area of the lat/lon cell on the WGS84 ellipsoid, which shrinks with latitude.
    """
    if crs is None:
        raise InputError("raster has no CRS: areas in m² cannot be computed; assign a CRS to the file")
    rows = np.asarray(rows)
    if not crs.is_geographic:
        factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
        cell = abs(transform.a * transform.e - transform.b * transform.d) * factor**2
        return np.full(rows.shape, cell, dtype=np.float64)
    if transform.b or transform.d:
        raise InputError("rotated geographic rasters are not supported for area statistics")
    lat_top = transform.f + transform.e * rows
    lat_bot = lat_top + transform.e
    dlon = math.radians(abs(transform.a))
    return np.asarray(np.abs(_ellipsoid_zone_area(lat_top) - _ellipsoid_zone_area(lat_bot)) * dlon)


_WGS84_A = 6378137.0
_WGS84_F = 1 / 298.257223563


def _ellipsoid_zone_area(lat_deg: np.ndarray) -> np.ndarray:
    """Area (m²) per radian of longitude between the equator and ``lat_deg`` on WGS84.

    Exact for cells bounded by parallels and meridians (no projection involved):
    ``b²/2 · [sinφ/(1−e²sin²φ) + atanh(e·sinφ)/e]``.
    """
    e2 = _WGS84_F * (2 - _WGS84_F)
    e = math.sqrt(e2)
    b2 = (_WGS84_A * (1 - _WGS84_F)) ** 2
    s = np.sin(np.radians(lat_deg))
    return np.asarray(0.5 * b2 * (s / (1 - e2 * s * s) + np.arctanh(e * s) / e))

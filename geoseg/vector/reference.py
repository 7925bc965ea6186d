"""Whole-array polygonization: the reference that :mod:`geoseg.vector.polygons` (block-wise, bounded
memory, used by ``segment`` and ``geoseg vectorize``) is benchmarked against, plus shared helpers.

One polygon per 4-connected region of one class.

Geometries are in the class map's CRS, valid (``is_valid``), holes kept. Areas are in
m²: planar in the map's projected CRS, or in an equal-area CRS (EPSG:6933) when the
map is geographic.
"""

from __future__ import annotations

import logging

import numpy as np
import rasterio
from rasterio.features import shapes

from geoseg import CLASS_NODATA

log = logging.getLogger(__name__)

EQUAL_AREA_CRS = "EPSG:6933"
"""WGS 84 / NSIDC EASE-Grid 2.0 Global: equal-area, used for areas of geographic maps."""


def polygons_from_array(classes: np.ndarray, transform, crs, class_names: list[str]):
    """GeoDataFrame of the regions of ``classes`` (``(rows, cols)`` uint8, 255 = nodata).

    Columns: ``class_id, class_name, area_m2, geometry`` (4-connectivity, as GDAL's default).
    """
    import geopandas as gpd
    import shapely

    mask = classes != CLASS_NODATA
    geoms, ids = [], []
    for geom, value in shapes(classes, mask=mask, connectivity=4, transform=transform):
        geoms.append(shapely.geometry.shape(geom))
        ids.append(int(value))
    gdf = gpd.GeoDataFrame(
        {"class_id": np.asarray(ids, dtype=np.int32)},
        geometry=gpd.GeoSeries(geoms, crs=crs),
    )
    invalid = ~gdf.geometry.is_valid
    if invalid.any():  # rare: GDAL rings touching at a vertex
        gdf.loc[invalid, "geometry"] = gdf.geometry[invalid].make_valid()
    names = np.array(class_names + ["unknown"] * (256 - len(class_names)), dtype=object)
    gdf.insert(1, "class_name", names[gdf["class_id"].to_numpy()] if len(gdf) else [])
    gdf.insert(2, "area_m2", area_m2(gdf.geometry))
    return gdf


def area_m2(geoms) -> np.ndarray:
    """Areas in m² of a GeoSeries (equal-area reprojection when its CRS is geographic)."""
    if len(geoms) == 0:
        return np.zeros(0)
    crs = geoms.crs
    if crs is None:
        return geoms.area.to_numpy()
    if crs.is_geographic:
        return geoms.to_crs(EQUAL_AREA_CRS).area.to_numpy()
    factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return geoms.area.to_numpy() * factor**2


def class_names_from_raster(src: rasterio.io.DatasetReader) -> list[str]:
    """Class names stored by geoseg in a class map's metadata (``class_names`` tag)."""
    tag = src.tags().get("class_names")
    return tag.split(",") if tag else []

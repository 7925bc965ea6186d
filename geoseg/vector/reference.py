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


# --------------------------------------------------------------------------- the class scheme of `geoseg vectorize`

CLASSES_HELP = ("ids (7), ranges (33-100), names of the map's classes (forest) or ID=NAME (7=wetland), comma-separated")
"""What ``--classes`` takes."""


def parse_classes(spec: str, scheme: list[str]) -> dict[int, str]:
    """Class id -> name of a ``--classes`` value (:data:`CLASSES_HELP`); names of ``scheme`` (the map's class names,
    index = id) name ids of the scheme, other ids are ``unknown`` unless named. Raises :class:`ConfigError`."""
    from geoseg.errors import ConfigError

    out: dict[int, str] = {}
    for item in (s.strip() for s in spec.split(",")):
        ident, _, name = item.partition("=")
        lo, dash, hi = ident.partition("-")
        try:
            if item in scheme:
                out[scheme.index(item)] = item
                continue
            ids = range(int(lo), int(hi) + 1) if dash else range(int(ident), int(ident) + 1)
        except ValueError:
            known = f"; this map's classes are {', '.join(scheme)}" if scheme else " (this map has no class_names tag)"
            raise ConfigError(f"--classes {spec!r}: {item!r} is not a class id, range or name{known}; give "
                              f"{CLASSES_HELP}") from None
        if not ids or ids.start < 0 or ids.stop > CLASS_NODATA:
            raise ConfigError(f"--classes {spec!r}: {item!r} is not in 0..254 (255 is nodata); give {CLASSES_HELP}")
        for i in ids:
            out[i] = name.strip() or (scheme[i] if i < len(scheme) else "unknown")
    return out


def class_scheme(path: str, src: rasterio.io.DatasetReader, spec: str | None, block_size: int) -> list[str] | None:
    """The class names (index = id) to vectorize the class map ``src`` with, after checking that every value in it is a
    class: one of ``--classes`` ``spec`` (:func:`parse_classes`), else an id of its ``class_names`` tag. None: the
    map has no tag and no ``spec`` was given (another tool's map; its values are taken as they are).

    Reads the map once, ``block_size`` rows at a time. Raises :class:`InputError` naming the values and the flag.
    """
    from rasterio.windows import Window

    from geoseg.errors import InputError

    scheme = class_names_from_raster(src)
    if spec is None and not scheme:
        return None
    accepted = parse_classes(spec, scheme) if spec is not None else dict(enumerate(scheme))
    seen = np.zeros(256, bool)
    for row in range(0, src.height, block_size):
        win = Window(0, row, src.width, min(block_size, src.height - row))
        seen |= np.bincount(src.read(1, window=win).ravel(), minlength=256) > 0
    seen[CLASS_NODATA] = False
    seen[list(accepted)] = False
    bad = np.flatnonzero(seen).tolist()
    if bad:
        values = f"{bad[0]}..{bad[-1]}" if len(bad) > 3 else ", ".join(map(str, bad))
        if spec is not None:
            raise InputError(f"{path}: values {values} are not among --classes {spec!r}; add them to --classes "
                             f"({CLASSES_HELP}), or vectorize the class map they belong to")
        what = " (it is a confidence raster)" if (src.descriptions[0] or "").lower() == "confidence" else ""
        raise InputError(f"{path}: values {values} are not class ids of its class scheme (0..{len(scheme) - 1}: "
                         f"{', '.join(scheme)}, from its class_names tag){what}; vectorize the *_classes.tif, or say "
                         f"which values are classes with --classes (e.g. --classes {bad[0]}-{bad[-1]}; {CLASSES_HELP})")
    names = ["unknown"] * (max(accepted) + 1)
    for i, name in accepted.items():
        names[i] = name
    return names

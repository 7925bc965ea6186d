"""Reference labels: label rasters and labelled polygons on an image grid, and label value mappings.

Used by training (:mod:`geoseg.train.data`) and evaluation (:mod:`geoseg.segment.evaluate`).
Arrays are ``(rows, cols)`` uint8 with 255 (:data:`geoseg.CLASS_NODATA`) where unlabelled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from geoseg import CLASS_NODATA
from geoseg.errors import ConfigError, TrainingError
from geoseg.io.raster import gdal_path

VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".fgb", ".shp", ".parquet")
"""File suffixes read as labelled polygons rather than a label raster."""


def load_class_map(path: str | Path | None) -> dict[int, int] | None:
    """A YAML mapping ``source value: model class id`` (``255`` = ignore), or None."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"class map {p}: no such file")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict) or not all(isinstance(k, int) and isinstance(v, int) for k, v in data.items()):
        raise ConfigError(f"class map {p}: must map integer label values to integer class ids, e.g. `5: 1`")
    return data


def read_label_features(path: str, field: str, crs):
    """Labelled features (polygons, lines or points) of a vector file in ``crs``: a GeoDataFrame with ``field``."""
    import geopandas as gpd

    gdf = gpd.read_parquet(path) if path.lower().endswith(".parquet") else gpd.read_file(gdal_path(path))
    if field not in gdf.columns:
        raise TrainingError(f"{path}: no attribute {field!r}; it has {list(gdf.columns.drop('geometry'))}. "
                            "Set `class_field` for this scene (--class-field)")
    if gdf.crs is None:
        raise TrainingError(f"{path}: labelled features have no CRS; save them with one")
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty].to_crs(crs)
    values = gdf[field].to_numpy()
    if not np.issubdtype(values.dtype, np.integer) or values.min(initial=0) < 0 or values.max(initial=0) > 255:
        raise TrainingError(f"{path}: `{field}` must hold integer label values 0..255, got {values.dtype}")
    return gdf


def burn_labels(gdf, field: str, transform, shape: tuple[int, int]) -> np.ndarray:
    """``gdf``'s features burnt into a ``(rows, cols)`` uint8 raster on a grid (255 where none).

    A pixel takes the value of the polygon covering its centre (GDAL's rule); a point or line labels
    the pixels it touches; where features overlap, the later one wins. Only features whose bounds
    meet the grid are burnt (spatial index), so a window of a large grid is cheap.
    """
    from rasterio.features import rasterize
    from rasterio.transform import array_bounds
    from shapely.geometry import box

    if len(gdf):
        west, south, east, north = array_bounds(shape[0], shape[1], transform)
        gdf = gdf.iloc[gdf.sindex.query(box(west, south, east, north))].sort_index()
    if not len(gdf):
        return np.full(shape, CLASS_NODATA, np.uint8)
    return rasterize(zip(gdf.geometry, gdf[field].to_numpy().astype(int)), out_shape=shape, transform=transform,
                     fill=CLASS_NODATA, dtype="uint8")


def rasterize_labels(path: str, field: str, crs, transform, shape: tuple[int, int]) -> np.ndarray:
    """Burn labelled polygons, lines or points (sparse labels: everything else is 255, ignored) on the image grid."""
    return burn_labels(read_label_features(path, field, crs), field, transform, shape)


def remap_labels(labels: np.ndarray, class_map: dict[int, int] | None, n_classes: int, source: str) -> np.ndarray:
    """Apply a source->model class mapping; values not in the map are an error (255 passes)."""
    present = set(np.unique(labels).tolist()) - {CLASS_NODATA}
    if class_map is None:
        bad = sorted(v for v in present if v >= n_classes)
        if bad:
            raise TrainingError(
                f"{source}: label values {bad} are not model classes 0..{n_classes - 1}; add a class_map for this scene"
            )
        return labels
    unknown = sorted(present - set(class_map))
    if unknown:
        raise TrainingError(
            f"{source}: label values {unknown} are not in class_map {dict(class_map)}; map them to a class id or to 255"
        )
    lut = np.full(256, CLASS_NODATA, np.uint8)
    for k, v in class_map.items():
        if not (0 <= v < n_classes or v == CLASS_NODATA):
            raise TrainingError(f"{source}: class_map sends {k} to {v}, which is not a class id 0..{n_classes - 1} or 255")
        lut[k] = v
    return lut[labels]

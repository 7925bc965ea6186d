"""Streaming polygon writers: GeoPackage, FlatGeobuf and GeoParquet.

:func:`write_polygons` streams batches to GeoPackage (one layer, ``landcover`` by
default, with ``class_id``/``class_name`` fields rather than one layer per class, so
one query and one style cover the map), FlatGeobuf (both through one open GDAL
dataset fed by an Arrow stream: ``pyogrio.write_arrow``) and GeoParquet (a
``pyarrow.parquet.ParquetWriter`` with GeoParquet 1.0.0 ``geo`` metadata whose bbox and
geometry types are written when the file is closed). Files are written under a
temporary name in the target directory and renamed into place when complete. A GeoPackage
can carry a default style (:class:`~geoseg.io.styles.LayerStyle`, QML + SLD) in QGIS's
``layer_styles`` table (:func:`add_layer_style`), so QGIS opens the layer styled.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import shapely

from geoseg.errors import ConfigError, OutputError
from geoseg.io.cog import atomic_path
from geoseg.io.styles import LayerStyle
from geoseg.vector.frames import COLUMNS

log = logging.getLogger(__name__)

FORMATS = {".gpkg": "GPKG", ".fgb": "FlatGeobuf", ".parquet": "Parquet", ".geoparquet": "Parquet"}
"""Output formats by file extension."""


def check_output_path(path: str | Path, overwrite: bool) -> tuple[Path, str]:
    """``(path, driver)`` for a polygon output; raises :class:`OutputError` if it cannot be written."""
    path = Path(path)
    driver = FORMATS.get(path.suffix.lower())
    if driver is None:
        raise OutputError(f"{path}: unknown polygon format {path.suffix!r}; use one of {', '.join(FORMATS)}")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists; add --overwrite to replace it, or choose another path")
    if not path.parent.is_dir():
        raise OutputError(f"{path.parent}: directory does not exist; create it or choose another output path")
    return path, driver


def write_polygons(data, path: str | Path, crs=None, *, overwrite: bool = False, layer: str = "landcover",
                   style: LayerStyle | None = None) -> int:
    """Write a GeoDataFrame, or an iterator of GeoDataFrame batches, to ``path``; returns the row count.

    The format follows the extension (:data:`FORMATS`). ``crs``: output CRS (anything
    pyproj accepts, e.g. ``"EPSG:4326"``); default: the first batch's. Batches are
    reprojected and written one at a time (memory: one batch). The file appears under
    its final name only when complete; an existing file is replaced only with
    ``overwrite=True``. ``style``: the layer's default style (GeoPackage only; ignored otherwise).
    """
    import geopandas as gpd
    from pyproj import CRS

    path, driver = check_output_path(path, overwrite)
    batches: Iterator = iter([data]) if isinstance(data, gpd.GeoDataFrame) else iter(data)
    first = next(batches, None)
    out_crs: CRS | None
    if crs is not None:
        out_crs = CRS.from_user_input(crs)
    else:
        out_crs = first.crs if first is not None else None
    schema = _schema(first)
    gtype = "Polygon" if first is None or (first.geom_type == "Polygon").all() else "Unknown"
    count = [0]
    types: set[str] = set()
    bounds = np.array([np.inf, np.inf, -np.inf, -np.inf])

    def record_batches():
        for gdf in _chain(first, batches):
            gdf = _reproject(gdf, out_crs)
            if len(gdf) == 0:
                continue
            count[0] += len(gdf)
            types.update(gdf.geom_type.unique().tolist())
            b = gdf.total_bounds
            bounds[:2] = np.minimum(bounds[:2], b[:2])
            bounds[2:] = np.maximum(bounds[2:], b[2:])
            yield _record_batch(gdf, schema)

    with atomic_path(path) as tmp:
        if driver == "Parquet":
            _write_parquet(record_batches(), tmp, schema, out_crs, types, bounds)
        else:
            _write_ogr(record_batches(), tmp, schema, driver, layer, gtype, out_crs)
            if style is not None and driver == "GPKG":
                add_layer_style(tmp, layer, style)
    log.info("wrote %d polygons to %s", count[0], path)
    return count[0]


def _chain(first, rest) -> Iterable:
    if first is not None:
        yield first
    yield from rest


def _reproject(gdf, out_crs):
    if out_crs is None or (gdf.crs is not None and gdf.crs == out_crs):
        return gdf
    if gdf.crs is None:
        raise ConfigError(f"polygons have no CRS, so they cannot be written in {out_crs.to_string()}; "
                          "give the class map a CRS first (e.g. rio edit-info --crs) or leave out --crs")
    return gdf.to_crs(out_crs)


def _schema(first):
    """Arrow schema: the polygon columns (:data:`~geoseg.vector.frames.COLUMNS`) with fixed types, others inferred."""
    import pyarrow as pa

    known = {"polygon_id": pa.int64(), "class_id": pa.int32(), "area_m2": pa.float64(), "area_ha": pa.float64(),
             "perimeter_m": pa.float64(), "mean_confidence": pa.float64()}
    columns = list(COLUMNS) if first is None else [c for c in first.columns if c != first.geometry.name]
    fields = []
    for c in columns:
        if c in known:
            t = known[c]
        elif first is None or c in COLUMNS:
            t = pa.string()
        else:
            t = pa.Schema.from_pandas(first[[c]], preserve_index=False).field(c).type
            t = pa.string() if pa.types.is_null(t) else t
        fields.append(pa.field(c, t))
    return pa.schema([*fields, pa.field("geometry", pa.binary())])


def _record_batch(gdf, schema):
    import pyarrow as pa

    arrays = []
    for f in schema:
        if f.name == "geometry":
            arrays.append(pa.array(shapely.to_wkb(gdf.geometry.values), pa.binary()))
        else:
            values = gdf[f.name].to_numpy(dtype=object if pa.types.is_string(f.type) else None)
            arrays.append(pa.array(values, type=f.type, from_pandas=True))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _write_ogr(batches, tmp: Path, schema, driver: str, layer: str, gtype: str, out_crs) -> None:
    import pyarrow as pa
    import pyogrio

    failure: list[BaseException] = []

    def guarded():
        try:
            yield from batches
        except BaseException as exc:  # surface the producer's error, not GDAL's view of a broken stream
            failure.append(exc)
            raise

    reader = pa.RecordBatchReader.from_batches(schema, guarded())
    try:
        pyogrio.write_arrow(reader, tmp, layer=layer, driver=driver, geometry_name="geometry", geometry_type=gtype,
                            crs=out_crs.to_wkt() if out_crs is not None else None)
    except Exception as exc:
        if failure:
            raise failure[0] from None
        raise OutputError(f"{tmp.name.split('.tmp')[0].lstrip('.')}: {driver} write failed ({exc}); "
                          "check the directory is writable and has space") from exc
    if failure:
        raise failure[0]


STYLE_COLUMNS = ("f_table_catalog", "f_table_schema", "f_table_name", "f_geometry_column", "styleName", "styleQML",
                 "styleSLD", "useAsDefault", "description", "owner", "ui", "update_time")
"""Columns of QGIS's ``layer_styles`` table (the names and order QGIS creates)."""


def add_layer_style(gpkg: Path, layer: str, style: LayerStyle) -> None:
    """Add ``style`` as the default style of ``layer`` to the ``layer_styles`` table of ``gpkg`` (created if absent).

    The table is a registered attribute table of the GeoPackage (written through GDAL), laid
    out as QGIS creates it; QGIS applies the row whose ``useAsDefault`` is true when it opens
    the layer. Catalog and schema are empty for a GeoPackage.
    """
    import pandas as pd
    import pyogrio

    geometry_column = pyogrio.read_info(gpkg, layer=layer)["geometry_name"]
    row = ["", "", layer, geometry_column, style.name, style.qml, style.sld, True, style.description, "geoseg", "",
           pd.Timestamp.now(tz="UTC").floor("s")]
    frame = pd.DataFrame([row], columns=list(STYLE_COLUMNS))
    append = "layer_styles" in {name for name, _ in pyogrio.list_layers(gpkg)}
    pyogrio.write_dataframe(frame, gpkg, layer="layer_styles", driver="GPKG", append=append)


def _write_parquet(batches, tmp: Path, schema, out_crs, types: set[str], bounds: np.ndarray) -> None:
    import pyarrow.parquet as pq

    def geo(geometry_types, bbox=None):
        col = {"encoding": "WKB", "geometry_types": geometry_types,
               "crs": out_crs.to_json_dict() if out_crs is not None else None}
        if bbox is not None:
            col["bbox"] = bbox
        return json.dumps({"version": "1.0.0", "primary_column": "geometry", "columns": {"geometry": col}})

    # store_schema=False: the file's key-value metadata is the only copy of "geo", so the
    # final one (with bbox) written at close is what every reader sees.
    writer = pq.ParquetWriter(tmp, schema.with_metadata({"geo": geo([])}), store_schema=False, compression="zstd")
    try:
        for rb in batches:
            writer.write_batch(rb)
        bbox = bounds.tolist() if np.isfinite(bounds).all() else None
        writer.add_key_value_metadata({"geo": geo(sorted(types), bbox)})
    finally:
        writer.close()

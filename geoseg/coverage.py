"""Polygon coverages out of :mod:`geoseg.polygons`: strip simplification and streaming writers.

Simplification across blocks
----------------------------
Each block row (a full-width strip, ``width x block_size`` pixels) is simplified as one
polygon coverage once all its blocks are read: its standalone regions, one piece per
region still open (the union of that region's fragments in the strip) and one piece
for its nodata. The pieces are noded (every pixel corner on an edge becomes a vertex,
so neighbours share vertices exactly) and passed to ``shapely.coverage_simplify``
(GEOS CoverageSimplifier: topology-preserving Visvalingam-Whyatt that simplifies each
shared edge once, for both sides, and never collapses a ring below a triangle) with
``simplify_boundary=False``: the strip's outline, i.e. its top and bottom lines and
the raster's left/right edges, stays fixed. Hence

* inside a strip, neighbours keep identical shared boundaries (no gaps, no overlaps),
  polygons stay valid and keep their holes;
* across strips, both sides of a strip line are the unchanged pixel edges, so pieces
  of one region in consecutive strips fit exactly and their union dissolves the line;
* VW only removes vertices, so every vertex stays a pixel corner (integer in pixel
  space) and the unions are exact on the unit grid.

Limitations: a boundary that crosses a strip line keeps a vertex (and at most one
pixel step) there, so the simplified output depends on ``block_size`` (the unsimplified
output does not); nodata boundaries are simplified like any other, so the data
footprint moves by up to about the tolerance; the tolerance is converted to pixels
with the pixel size at the raster's middle row (geographic rasters: exact there only).

Writers
-------
:func:`write_polygons` streams batches to GeoPackage (one layer, ``landcover`` by
default, with ``class_id``/``class_name`` fields rather than one layer per class, so
one query and one style cover the map), FlatGeobuf (both through one open GDAL
dataset fed by an Arrow stream: ``pyogrio.write_arrow``) and GeoParquet (a
``pyarrow.parquet.ParquetWriter`` with GeoParquet 1.0.0 ``geo`` metadata whose bbox and
geometry types are written when the file is closed). Files are written under a
temporary name in the target directory and renamed into place when complete.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import shapely

from geoseg.errors import ConfigError, OutputError

log = logging.getLogger(__name__)

FORMATS = {".gpkg": "GPKG", ".fgb": "FlatGeobuf", ".parquet": "Parquet", ".geoparquet": "Parquet"}
"""Output formats by file extension."""


def simplify_strip(pieces: np.ndarray, piece_map: np.ndarray, row0: int, tolerance_px: float) -> np.ndarray:
    """Coverage-simplify the pixel-space ``pieces`` of one strip, keeping the strip's outline fixed.

    ``pieces`` tile the strip (no gaps, no overlaps, integer vertices, no collinear
    vertices); ``piece_map`` is the piece index of each pixel of the strip, whose first
    row is raster row ``row0``. The result has one (Multi)Polygon per piece, in order,
    still tiling the strip exactly.
    """
    noded = node_pieces(pieces, *t_junctions(piece_map, row0))
    return shapely.coverage_simplify(noded, tolerance_px, simplify_boundary=False)


def t_junctions(piece_map: np.ndarray, row0: int):
    """Pixel corners where a piece's boundary runs straight on while two other pieces meet it.

    Those are the only places where one piece lacks a vertex that its neighbours have
    (everywhere else all pieces meeting at a corner turn there), so inserting them makes
    the coverage edge-matched (GEOS "noded"). Returns ``(piece, x, y, horizontal)``.
    """
    a, b = piece_map[:-1, :-1], piece_map[:-1, 1:]  # the 2x2 pixels around each interior corner
    c, d = piece_map[1:, :-1], piece_map[1:, 1:]
    pieces, xs, ys, hs = [], [], [], []
    # (owner, its partner, the two others, owner's edge is horizontal)
    for owner, partner, o1, o2, horizontal in ((a, b, c, d, True), (c, d, a, b, True),
                                               (a, c, b, d, False), (b, d, a, c, False)):
        hit = (owner == partner) & (o1 != o2) & (o1 != owner) & (o2 != owner)
        i, j = np.nonzero(hit)
        pieces.append(owner[i, j]), xs.append(j + 1), ys.append(i + 1 + row0)
        hs.append(np.full(len(i), horizontal))
    return (np.concatenate(pieces), np.concatenate(xs).astype(np.float64), np.concatenate(ys).astype(np.float64),
            np.concatenate(hs))


def node_pieces(pieces: np.ndarray, pid: np.ndarray, px: np.ndarray, py: np.ndarray, horizontal: np.ndarray):
    """Insert the points ``(px, py)`` into the boundary of ``pieces[pid]`` (on an axis-parallel edge)."""
    if len(pid) == 0:
        return pieces
    targets = np.unique(pid)
    sub = pieces[targets]
    parts, part_owner = shapely.get_parts(sub, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    owner = targets[part_owner[ring_part[ring_of]]]  # piece of each vertex
    seg = np.flatnonzero(ring_of[:-1] == ring_of[1:])  # segment k: coords[k] -> coords[k + 1]
    x0, y0, x1, y1 = coords[seg, 0], coords[seg, 1], coords[seg + 1, 0], coords[seg + 1, 1]
    ymin = min(coords[:, 1].min(), py.min())
    span = int(max(coords[:, 0].max(), coords[:, 1].max() - ymin, px.max(), py.max() - ymin)) + 2
    k_at = np.full(len(pid), -1, np.int64)
    for is_h in (True, False):
        # segments along x (horizontal) keyed by (piece, y, x_min); vertical ones by (piece, x, y_min)
        along0, along1, across = (x0, x1, y0 - ymin) if is_h else (y0 - ymin, y1 - ymin, x0)
        m = (y0 == y1) & (x0 != x1) if is_h else (x0 == x1) & (y0 != y1)
        lo, hi = np.minimum(along0[m], along1[m]), np.maximum(along0[m], along1[m])
        key = (owner[seg[m]] * span + across[m].astype(np.int64)) * span + lo.astype(np.int64)
        order = np.argsort(key)
        key, lo, hi, segs = key[order], lo[order], hi[order], seg[m][order]
        q = horizontal == is_h
        p_along, p_across = (px[q], py[q] - ymin) if is_h else (py[q] - ymin, px[q])
        qkey = (pid[q] * span + p_across.astype(np.int64)) * span + p_along.astype(np.int64)
        i = np.searchsorted(key, qkey, side="right") - 1
        ok = i >= 0
        i = np.maximum(i, 0)
        ok &= (key[i] // span == qkey // span) & (lo[i] < p_along) & (p_along < hi[i])
        k_at[np.flatnonzero(q)[ok]] = segs[i[ok]]
    found = k_at >= 0
    k, qx, qy = k_at[found], px[found], py[found]
    seg_len = np.abs(coords[k + 1] - coords[k]).sum(axis=1)
    frac = (np.abs(qx - coords[k, 0]) + np.abs(qy - coords[k, 1])) / seg_len
    pos = np.concatenate([np.arange(len(coords), dtype=np.float64), k + frac])
    order = np.argsort(pos, kind="stable")
    all_xy = np.concatenate([coords, np.column_stack([qx, qy])])[order]
    all_ring = np.concatenate([ring_of, ring_of[k]])[order]
    new_rings = shapely.linearrings(all_xy, indices=all_ring)
    new_parts = shapely.polygons(new_rings, indices=ring_part)
    multi = shapely.get_type_id(sub) == 6
    rebuilt = np.empty(len(sub), dtype=object)
    single = ~multi[part_owner]
    rebuilt[part_owner[single]] = new_parts[single]
    if multi.any():
        which, idx = np.unique(part_owner[~single], return_inverse=True)
        rebuilt[which] = shapely.multipolygons(new_parts[~single], indices=idx)
    out = pieces.copy()
    out[targets] = rebuilt
    return out


# --------------------------------------------------------------------------- writers


def check_output_path(path: str | Path, overwrite: bool) -> tuple[Path, str]:
    """``(path, driver)`` for a polygon output; raises :class:`OutputError` if it cannot be written."""
    path = Path(path)
    driver = FORMATS.get(path.suffix.lower())
    if driver is None:
        raise OutputError(f"{path}: unknown polygon format {path.suffix!r}; use one of {', '.join(FORMATS)}")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists; pass overwrite=True (--overwrite) to replace it, or choose another path")
    if not path.parent.is_dir():
        raise OutputError(f"{path.parent}: directory does not exist; create it or choose another output path")
    return path, driver


def write_polygons(data, path: str | Path, crs=None, *, overwrite: bool = False, layer: str = "landcover") -> int:
    """Write a GeoDataFrame, or an iterator of GeoDataFrame batches, to ``path``; returns the row count.

    The format follows the extension (:data:`FORMATS`). ``crs``: output CRS (anything
    pyproj accepts, e.g. ``"EPSG:4326"``); default: the first batch's. Batches are
    reprojected and written one at a time (memory: one batch). The file appears under
    its final name only when complete; an existing file is replaced only with
    ``overwrite=True``.
    """
    import geopandas as gpd
    from pyproj import CRS

    path, driver = check_output_path(path, overwrite)
    batches: Iterator = iter([data]) if isinstance(data, gpd.GeoDataFrame) else iter(data)
    first = next(batches, None)
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

    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        if driver == "Parquet":
            _write_parquet(record_batches(), tmp, schema, out_crs, types, bounds)
        else:
            _write_ogr(record_batches(), tmp, schema, driver, layer, gtype, out_crs)
        os.replace(tmp, path)
    finally:
        for p in (tmp, *(tmp.with_name(tmp.name + s) for s in ("-journal", "-wal", "-shm"))):
            p.unlink(missing_ok=True)
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
                          "set their CRS first or pass crs=None")
    return gdf.to_crs(out_crs)


def _schema(first):
    """Arrow schema: the polygon columns of :mod:`geoseg.polygons` with fixed types, others inferred."""
    import pyarrow as pa

    from geoseg.polygons import COLUMNS

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
    return pa.schema(fields + [pa.field("geometry", pa.binary())])


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

"""Polygon coverages for :mod:`geoseg.vector.polygons`: pixel-space geometry, strip simplification,
the MMU rule, streaming writers and the instance raster.

Simplification across blocks
----------------------------
Each block row (a full-width strip, ``width x block_size`` pixels) is simplified as one
polygon coverage once all its blocks are read: its standalone regions, one piece per
region still open (the union of that region's fragments in the strip) and one piece
for its nodata. The pieces are noded (the pixel corners where a piece's boundary runs
straight past a junction of two others become vertices, so neighbours share vertices
exactly: a valid GEOS coverage) and passed to ``shapely.coverage_simplify`` (GEOS
CoverageSimplifier: topology-preserving Visvalingam-Whyatt that simplifies each shared
edge once for both sides and never collapses a ring below a triangle; the tolerance is
about the square root of the triangle areas removed) with ``simplify_boundary=False``:
the strip's outline, i.e. its top and bottom lines and the raster's left/right edges,
stays fixed. Hence

* inside a strip, neighbours keep identical shared boundaries (no gaps, no overlaps),
  polygons stay valid and keep their holes, and no polygon disappears;
* across strips, both sides of a strip line are the unchanged pixel edges, so pieces
  of one region in consecutive strips fit exactly and their union dissolves the line;
* VW only removes vertices, so every vertex stays a pixel corner (integer in pixel
  space) and joining the pieces computes no new intersection point.

Limitations: where a boundary crosses or runs along a strip line it keeps its pixel
course there (a pinned vertex on the line, plus any staircase step lying on it), so
the simplified output depends on ``block_size`` (the unsimplified output does not) and
is a little less simplified than a whole-coverage ``coverage_simplify`` along those
lines; nodata boundaries are simplified like any other, so the data footprint moves by
up to about the tolerance; the tolerance is converted to pixels with the pixel size at
the raster's middle row (for geographic rasters exact there only).

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

import itertools
import json
import logging
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
import shapely
from rasterio.windows import Window

from geoseg.errors import ConfigError, OutputError
from geoseg.tiling import PixelBox

log = logging.getLogger(__name__)

FORMATS = {".gpkg": "GPKG", ".fgb": "FlatGeobuf", ".parquet": "Parquet", ".geoparquet": "Parquet"}
"""Output formats by file extension."""


# --------------------------------------------------------------------------- pixel-space geometry


def build_polygons(polys: list) -> np.ndarray:
    """Shapely polygons from GeoJSON-like ring lists, built in one vectorized call."""
    rings = [r for p in polys for r in p]
    ring_len = np.fromiter(map(len, rings), np.int64, len(rings))
    coords = np.array(list(itertools.chain.from_iterable(rings)), dtype=np.float64)
    lr = shapely.linearrings(coords, indices=np.repeat(np.arange(len(rings)), ring_len))
    n_rings = np.fromiter(map(len, polys), np.int64, len(polys))
    return shapely.polygons(lr, indices=np.repeat(np.arange(len(polys)), n_rings))


def drop_collinear(geoms):
    """``geoms`` (pixel-space (Multi)Polygons, integer vertices) without collinear vertices.

    Exact integer arithmetic (cross products of pixel-corner coordinates), cyclic over
    each ring, so a collinear ring start goes too; geometry and validity are unchanged.
    """
    single = not isinstance(geoms, np.ndarray)
    geoms = np.atleast_1d(np.asarray(geoms, dtype=object))
    parts, part_owner = shapely.get_parts(geoms, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    last = np.r_[ring_of[1:] != ring_of[:-1], True]  # closing vertex of each ring (repeats the first)
    xy, rid = coords[~last], ring_of[~last]
    start = np.r_[0, np.flatnonzero(rid[1:] != rid[:-1]) + 1]
    length = np.diff(np.r_[start, len(rid)])
    pos = np.arange(len(rid)) - np.repeat(start, length)
    prev = np.repeat(start, length) + (pos - 1) % np.repeat(length, length)
    nxt = np.repeat(start, length) + (pos + 1) % np.repeat(length, length)
    d1, d2 = xy - xy[prev], xy[nxt] - xy
    keep = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0] != 0
    if keep.all():
        return geoms[0] if single else geoms
    xy, rid = xy[keep], rid[keep]
    first = np.r_[True, rid[1:] != rid[:-1]]
    closed_xy = np.insert(xy, np.r_[np.flatnonzero(first)[1:], len(xy)], xy[first], axis=0)
    closed_rid = np.insert(rid, np.r_[np.flatnonzero(first)[1:], len(rid)], rid[first])
    new_parts = shapely.polygons(shapely.linearrings(closed_xy, indices=closed_rid), indices=ring_part)
    out = np.empty(len(geoms), dtype=object)
    multi = shapely.get_type_id(geoms) == 6
    one = ~multi[part_owner]
    out[part_owner[one]] = new_parts[one]
    if multi.any():
        which, idx = np.unique(part_owner[~one], return_inverse=True)
        out[which] = shapely.multipolygons(new_parts[~one], indices=idx)
    return out[0] if single else out


def union_pieces(geoms):
    """Union of pixel-space polygons that meet along shared edges, collinear vertices dropped.

    A list ``geoms`` is emptied (so the caller's copies can be freed early).

    Exact: vertices are integers and pieces meet only along axis-parallel pixel edges, so
    no intersection point is ever rounded. (No ``grid_size``: snap-rounding would move
    the diagonal edges of simplified pieces that pass within half a pixel of a vertex.)
    A hole of a part lies inside that part and meets no other, so only the outer rings
    (far fewer vertices) are unioned and the parts' holes are put back afterwards.
    """
    parts = shapely.get_parts(np.asarray(geoms, dtype=object))
    if isinstance(geoms, list):  # a region can hold most of a map: keep one copy of it at a time
        geoms.clear()
    rings, owner = shapely.get_rings(parts, return_index=True)
    del parts
    is_shell = np.r_[True, owner[1:] != owner[:-1]]
    shells = shapely.polygons(rings[is_shell])
    holes, hole_owner = rings[~is_shell], owner[~is_shell]
    del rings
    outline = drop_collinear(shapely.union_all(shells))
    if len(holes) == 0:
        return outline
    if outline.geom_type == "Polygon":
        return shapely.polygons(outline.exterior, holes=np.concatenate([np.array(outline.interiors, dtype=object), holes]))
    # several disjoint parts (a region's piece within one block row): give each hole to its part
    out_parts = shapely.get_parts(outline)
    with_holes = np.unique(hole_owner)
    inside, part = shapely.STRtree(out_parts).query(shapely.point_on_surface(shells[with_holes]), predicate="within")
    part_of = np.full(len(shells), -1)
    part_of[with_holes[inside]] = part
    hole_part = part_of[hole_owner]
    rebuilt = []
    for k, p in enumerate(out_parts):
        extra = holes[hole_part == k]
        rebuilt.append(p if len(extra) == 0 else shapely.polygons(
            p.exterior, holes=np.concatenate([np.array(p.interiors, dtype=object), extra])))
    return shapely.multipolygons(rebuilt)


# --------------------------------------------------------------------------- strip simplification


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
    """Arrow schema: the polygon columns of :mod:`geoseg.vector.polygons` with fixed types, others inferred."""
    import pyarrow as pa

    from geoseg.vector.polygons import COLUMNS

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


# --------------------------------------------------------------------------- minimum mapping unit


def _pick(src: np.ndarray, cls: np.ndarray, cnt: np.ndarray):
    """Per ``src``, the class with the largest summed ``cnt`` (ties: the lowest class id)."""
    key, inv = np.unique(src * 256 + cls, return_inverse=True)
    tot = np.bincount(inv, weights=cnt)
    s, c = key // 256, key % 256
    order = np.lexsort((c, -tot, s))
    s, c = s[order], c[order]
    first = np.r_[True, s[1:] != s[:-1]]
    return s[first], c[first]


def resolve_mmu(frag_fid, frag_comp, comps, e_src, e_dst, e_dcls, e_cnt) -> tuple[np.ndarray, np.ndarray]:
    """The MMU rule, applied to all regions below the MMU at once.

    * A region below the MMU takes the class it shares the most pixel edges with among
      its neighbouring regions *at or above* the MMU (4-neighbours; ties: lowest class
      id). It then touches a region of that class, so it joins it.
    * A small region with only small neighbours waits: in later rounds it takes the most
      common class among neighbours already resolved (each of which is joined to a
      region at or above the MMU), so it joins them too.
    * A cluster of small regions that touches no region at or above the MMU at all (an
      island among nodata / the raster edge) becomes one region of the class of its
      largest member (ties: lowest class id); it stays below the MMU only when the whole
      island is. Nodata is never a neighbour and is never filled.

    Hence every output region is at least ``mmu_m2`` except such islands.
    """
    comp_id, comp_cls, comp_area = comps
    m = len(comp_id)
    if m == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint8)
    order = np.argsort(comp_id)
    comp_id, comp_cls, comp_area = comp_id[order], comp_cls[order], comp_area[order]
    frag_order = np.argsort(frag_fid)
    frag_fid, frag_comp = frag_fid[frag_order], frag_comp[frag_order]
    frag_idx = np.searchsorted(comp_id, frag_comp)  # comp index of each small fragment

    def lookup(f):
        i = np.clip(np.searchsorted(frag_fid, f), 0, len(frag_fid) - 1)
        return np.where(frag_fid[i] == f, frag_idx[i], -1)

    src, dst = lookup(e_src), lookup(e_dst)
    keep = src >= 0  # the source fragment may be small yet belong to a large region
    src, dst, dcls, cnt = src[keep], dst[keep], e_dcls[keep].astype(np.int64), e_cnt[keep]
    target = np.full(m, -1, np.int64)
    big = dst < 0
    if big.any():
        s, c = _pick(src[big], dcls[big], cnt[big])
        target[s] = c
    while True:
        ok = ~big & (target[src] < 0) & (target[np.maximum(dst, 0)] >= 0)
        if not ok.any():
            break
        s, c = _pick(src[ok], target[dst[ok]], cnt[ok])
        target[s] = c
    left = target < 0
    if left.any():  # islands of small regions: one class per cluster
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        e = ~big & left[src] & left[np.maximum(dst, 0)]
        graph = coo_matrix((np.ones(e.sum()), (src[e], dst[e])), shape=(m, m))
        _, cluster = connected_components(graph, directed=False)
        idx = np.flatnonzero(left)
        order = np.lexsort((comp_cls[idx], -comp_area[idx], cluster[idx]))
        idx = idx[order]
        first = np.r_[True, cluster[idx][1:] != cluster[idx][:-1]]
        winner = dict(zip(cluster[idx][first].tolist(), comp_cls[idx][first].tolist()))
        target[idx] = [winner[c] for c in cluster[idx].tolist()]
    changed = target[frag_idx] != comp_cls[frag_idx]
    log.info("MMU: %d regions below the MMU, %d reassigned", m, int((target != comp_cls).sum()))
    return frag_fid[changed], target[frag_idx][changed].astype(np.uint8)


# --------------------------------------------------------------------------- instance raster




class InstanceWriter:
    """uint32 ``polygon_id`` raster (0 = nodata), written block by block.

    A block is written as soon as it is labelled, with each fragment's own first-pixel
    id; the ids of fragments of multi-block regions are corrected in place once their
    region closes (only the blocks holding them are rewritten), then the scratch file
    is copied to a COG and renamed into place.
    """

    def __init__(self, path, src, block_size: int, overwrite: bool):
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise OutputError(f"{self.path}: already exists; pass overwrite=True to replace it, or choose another path")
        if src.width * src.height + 1 > np.iinfo(np.uint32).max:
            raise ConfigError(f"instance raster: {src.width}x{src.height} px needs ids above 2^32; "
                              "drop instance_path for rasters of more than 4.29e9 pixels")
        if not self.path.parent.is_dir():
            raise OutputError(f"{self.path.parent}: directory does not exist; create it or choose another path")
        self.scratch = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.scratch.tif")
        self.width = src.width
        self._remaps: dict[tuple[int, int], list[tuple[int, int]]] = {}  # block -> (old id, polygon_id)
        bs = max(16, min(512, (block_size + 15) // 16 * 16))
        self._ds = rasterio.open(
            self.scratch, "w+", driver="GTiff", width=src.width, height=src.height, count=1, dtype="uint32",
            crs=src.crs, transform=src.transform, nodata=0, tiled=True, blockxsize=bs, blockysize=bs,
            BIGTIFF="IF_SAFER", SPARSE_OK=True,
        )
        self.block_size = block_size

    def write(self, box: PixelBox, ids: np.ndarray) -> None:
        self._ds.write(ids, 1, window=box.to_window())

    def remap(self, old_ids: np.ndarray, pid: int) -> None:
        """Fragments ``old_ids`` (their own first-pixel ids) belong to region ``pid``."""
        bs = self.block_size
        for old in old_ids[old_ids != pid].tolist():
            r, c = divmod(old - 1, self.width)
            self._remaps.setdefault((r // bs, c // bs), []).append((old, pid))

    def finish(self) -> None:
        bs = self.block_size
        for (br, bc), pairs in self._remaps.items():
            r0, c0 = br * bs, bc * bs
            win = Window(c0, r0, min(bs, self._ds.width - c0), min(bs, self._ds.height - r0))
            ids = self._ds.read(1, window=win)
            old, new = np.array(pairs, np.int64).T
            order = np.argsort(old)
            old, new = old[order], new[order]
            i = np.clip(np.searchsorted(old, ids), 0, len(old) - 1)
            hit = old[i] == ids
            ids[hit] = new[i[hit]]
            self._ds.write(ids, 1, window=win)
        self._ds.update_tags(content="polygon_id of the vector output (0 = nodata)")
        self._ds.close()
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp.tif")
        try:
            rasterio.shutil.copy(self.scratch, tmp, driver="COG", COMPRESS="DEFLATE", PREDICTOR="NO",
                                 OVERVIEW_RESAMPLING="NEAREST", BIGTIFF="IF_SAFER")
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    def discard(self) -> None:
        if not self._ds.closed:
            self._ds.close()
        self.scratch.unlink(missing_ok=True)

"""Pixel-space polygon geometry for the block-wise vectorizer.

Polygons are built in *pixel* coordinates, where every vertex is an integer and unions
of fragments that meet along block seams are exact; :func:`union_pieces` joins them and
:func:`drop_collinear` removes the vertices left along former seams.
"""

from __future__ import annotations

import itertools

import numpy as np
import shapely


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


def union_pieces(geoms, coverage: bool = False):
    """Union of pixel-space polygons that meet along shared edges, collinear vertices dropped.

    A list ``geoms`` is emptied (so the caller's copies can be freed early). ``coverage``: the
    pieces are unsimplified fragments of one region (axis-parallel edges on pixel corners, no
    piece inside another's hole), so their outer rings form a polygonal coverage: once their seam
    edges are cut at each pixel corner (:func:`_seam_vertices`, so neighbours share their seam
    vertices), GEOS's coverage union joins them without overlay noding (3.6x faster on the region
    spanning the 9.4 Mpx benchmark mosaic), with the same result.

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
    if coverage:
        outline = drop_collinear(shapely.coverage_union_all(_seam_vertices(shells)))
    else:
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


def _seam_vertices(shells: np.ndarray) -> np.ndarray:
    """``shells`` (single-ring pixel-space polygons, axis-parallel integer edges) with a vertex at every pixel
    corner along the edges that lie on their own bounding box.

    Pieces of one region meet only along block seams, and a piece's seam edges lie on its bounding
    box (its pixels end at the seam), so after this every shared edge has the same vertices on both
    sides, as a coverage union needs. Exact: integer steps, no interpolation."""
    coords, ring = shapely.get_coordinates(shells, return_index=True)
    x, y = coords[:, 0], coords[:, 1]
    box = shapely.bounds(shells)[ring[:-1]]  # (xmin, ymin, xmax, ymax) of each edge's polygon
    same = ring[1:] == ring[:-1]  # edge i -> i + 1 within one ring
    x0, y0, x1, y1 = x[:-1], y[:-1], x[1:], y[1:]
    horiz = same & (y0 == y1) & ((y0 == box[:, 1]) | (y0 == box[:, 3]))
    vert = same & (x0 == x1) & ((x0 == box[:, 0]) | (x0 == box[:, 2]))
    inner = np.zeros(len(coords), np.int64)  # pixel corners strictly inside edge i
    inner[:-1] = np.where(horiz, np.abs(x1 - x0) - 1, 0) + np.where(vert, np.abs(y1 - y0) - 1, 0)
    np.clip(inner, 0, None, out=inner)
    if not inner.any():
        return shells
    step = np.zeros((len(coords), 2))
    step[:-1] = np.sign(coords[1:] - coords[:-1])
    counts = 1 + inner
    src = np.repeat(np.arange(len(coords)), counts)
    k = np.arange(len(src)) - np.repeat(np.cumsum(counts) - counts, counts)  # 0: the vertex, 1..: inserted
    xy = coords[src] + k[:, None] * step[src]
    return shapely.polygons(shapely.linearrings(xy, indices=ring[src]))


# --------------------------------------------------------------------------- strip simplification

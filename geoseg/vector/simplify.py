"""Coverage simplification of one block row (strip) of the block-wise vectorizer.

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
"""

from __future__ import annotations

import numpy as np
import shapely


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
        pieces.append(owner[i, j])
        xs.append(j + 1)
        ys.append(i + 1 + row0)
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

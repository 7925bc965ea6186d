"""Block-wise vectorization of class maps of any size: exact, seam-free, bounded memory.

The class map (single-band uint8, 255 = nodata) is read window by window in row-major
block order and never whole. Per block, each class is labelled into 4-connected
fragments (``scipy.ndimage.label``, cross structure) and the label raster is
polygonized with ``rasterio.features.shapes`` in *pixel* coordinates, where every
vertex is an integer and unions are exact. A union-find over the fragments that touch
an internal block edge joins them across block seams (same class on both sides of a
seam = same region). Only the last label row of the previous block row (``O(width)``)
and the previous block's last column are kept. A region is complete once, after a
block row, none of its fragments touches that row's bottom edge: its fragments are
unioned, collinear vertices dropped, and it is emitted; fragments that touch no
internal edge are emitted at once (the fragments an open region has in a block row are
unioned into one piece when the row ends). The result is the same set of polygons as
whole-raster ``shapes(classes, mask=classes != 255, connectivity=4)`` (same count,
areas, vertices), whatever the block size. Memory: ``O(width x block_size)`` plus the
geometry of regions still open.

``polygon_id`` is ``row * width + col + 1`` of the region's first pixel in raster
(row-major) order: stable across block sizes, never 0 (0 = nodata in the instance raster).

Minimum mapping unit (``mmu_m2``): two passes. Pass 1 computes every region's area and,
for regions that may be small, the pixel edges they share with each neighbouring
region. Regions below the MMU are then reassigned (see :func:`resolve_mmu` for the
rule, :mod:`geoseg.vector.mmu`); pass 2 vectorizes with the reassignment applied per block.

Simplification (``simplify_m``): see :mod:`geoseg.vector.simplify`: each block row (strip) is
simplified as one polygon coverage with its top and bottom lines pinned, so shared
boundaries stay identical across polygons, strips and blocks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from affine import Affine
from rasterio.features import shapes

from geoseg import CLASS_NODATA
from geoseg.errors import ConfigError, InputError
from geoseg.io.raster import open_raster
from geoseg.tiling import PixelBox
from geoseg.vector.blocks import BlockTask, Edges, Joiner, MapFn, block_rows, close_map, label_block
from geoseg.vector.frames import COLUMNS, RegionBatch, RegionContext
from geoseg.vector.geometry import build_polygons, union_pieces
from geoseg.vector.instance import InstanceWriter
from geoseg.vector.mmu import Remap, mmu_pass
from geoseg.vector.simplify import simplify_strip

if TYPE_CHECKING:
    from geopandas import GeoDataFrame

log = logging.getLogger(__name__)

DEFAULT_BLOCK = 1024
"""Default window side (pixels) of block-wise passes over a raster: vectorize, change, evaluate."""


# --------------------------------------------------------------------------- public API


def vectorize_blocks(
    path: str | Path,
    *,
    block_size: int = DEFAULT_BLOCK,
    mmu_m2: float = 0.0,
    simplify_m: float = 0.0,
    confidence: str | Path | None = None,
    class_names: list[str] | None = None,
    instance_path: str | Path | None = None,
    overwrite: bool = False,
    map_fn: MapFn | None = None,
) -> Iterator[GeoDataFrame]:
    """Polygons of the class map at ``path``, as a stream of GeoDataFrame batches.

    Each batch has the columns :data:`COLUMNS` plus ``geometry`` (Polygons in the class
    map's CRS), rows sorted by ``polygon_id``; every region is in exactly one batch
    (batches come in block order: a region is emitted once complete).

    * ``block_size``: side of the square windows read (pixels); memory grows with
      ``width x block_size``; the unsimplified output does not depend on it.
    * ``mmu_m2``: minimum mapping unit in m² (0: off); regions below it are merged into
      a neighbouring class first (rule: :func:`geoseg.vector.mmu.resolve_mmu`). Two passes.
    * ``simplify_m``: coverage simplification tolerance in metres (0: off), see
      :mod:`geoseg.vector.simplify`; shared boundaries stay shared, polygons stay valid.
    * ``confidence``: a confidence raster on the same grid (uint8 0..100, 255 nodata) for
      ``mean_confidence`` (else null).
    * ``instance_path``: also write a uint32 GeoTIFF (COG) of ``polygon_id`` per pixel
      (0 = nodata), moved into place when the stream is exhausted (``overwrite``: may
      replace an existing file).
    * ``map_fn``: how the per-block work is run: ``map_fn(func, tasks)`` must behave like
      the builtin ``map`` (the default: sequential): return an iterable of ``func(task)``
      for every item of ``tasks``, *in order*; it may be lazy and run ahead in parallel
      (bounded look-ahead keeps memory bounded). Each item is one :class:`BlockTask`
      (a single argument, never a tuple to unpack), ``func`` is :func:`vectorize_block` or
      :func:`mmu_block` (top-level, pure: they open the rasters themselves), and results
      are picklable. The seam join stays sequential, so the output does not depend on it.

    Validation errors (missing file, bad parameters) are raised on the first ``next()``.
    """
    _check_params(block_size, mmu_m2, simplify_m)
    with open_raster(path) as src:
        _check_class_map(path, src)
        ctx = RegionContext.from_dataset(path, src, class_names)
        conf_src = None
        try:
            if confidence is not None:
                conf_src = open_raster(confidence)
                _check_same_grid(path, src, confidence, conf_src)
            map_fn = map if map_fn is None else map_fn
            remap = mmu_pass(path, block_size, mmu_m2, ctx, map_fn) if mmu_m2 > 0 else None
            inst = InstanceWriter(instance_path, ctx.grid, block_size, overwrite) if instance_path else None
            try:
                yield from _vectorize_pass(path, confidence, block_size, simplify_m, remap, ctx, inst, map_fn)
                if inst:
                    inst.finish()
            finally:
                if inst:
                    inst.discard()
        finally:
            if conf_src is not None:
                conf_src.close()


def polygon_frame(path: str | Path, **kwargs):
    """All polygons of :func:`vectorize_blocks` as one GeoDataFrame sorted by ``polygon_id``.

    Keywords (``map_fn`` included) go to :func:`vectorize_blocks`.

    Holds every polygon in memory: for rasters of ordinary size and for tests; stream
    large maps with :func:`vectorize_blocks` / :func:`vectorize_to_file` instead.
    """
    import geopandas as gpd
    import pandas as pd

    batches = list(vectorize_blocks(path, **kwargs))
    if not batches:  # nothing but nodata
        with open_raster(path) as src:
            crs = src.crs
        return gpd.GeoDataFrame({c: [] for c in COLUMNS}, geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    gdf = pd.concat(batches, ignore_index=True) if len(batches) > 1 else batches[0]
    gdf = gpd.GeoDataFrame(gdf, geometry="geometry", crs=batches[0].crs)
    return gdf.sort_values("polygon_id", ignore_index=True)


def vectorize_to_file(
    path: str | Path, out_path: str | Path, *, crs=None, overwrite: bool = False, layer: str = "landcover", **kwargs
) -> int:
    """Vectorize ``path`` block-wise straight into ``out_path`` (.gpkg, .parquet, .fgb); returns the polygon count.

    ``crs``: output CRS (default: the class map's). Other keywords (``map_fn`` included) go
    to :func:`vectorize_blocks` (``instance_path`` obeys the same ``overwrite``). A GeoPackage
    gets a default style by ``class_id`` from the class map's class names and colour table.
    """
    from geoseg.io.styles import categories_from_raster, polygon_style
    from geoseg.vector.writers import check_output_path, write_polygons

    check_output_path(out_path, overwrite)  # fail before the (long) scan, not after
    with open_raster(path) as src:
        crs = src.crs if crs is None else crs  # the class map's, even when it has nothing but nodata
        cats = categories_from_raster(src)
    style = polygon_style(cats, layer) if cats else None
    batches = vectorize_blocks(path, overwrite=overwrite, **kwargs)
    return write_polygons(batches, out_path, crs=crs, overwrite=overwrite, layer=layer, style=style)


# --------------------------------------------------------------------------- validation & context


def _check_params(block_size, mmu_m2, simplify_m) -> None:
    if not isinstance(block_size, (int, np.integer)) or isinstance(block_size, bool) or block_size < 1:
        raise ConfigError(f"block_size must be a positive whole number of pixels, got {block_size!r}")
    for name, v in (("mmu_m2", mmu_m2), ("simplify_m", simplify_m)):
        if not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v) or v < 0:
            raise ConfigError(f"{name} must be a number >= 0 (0 disables it), got {v!r}")


def _check_class_map(path, src) -> None:
    if src.count != 1 or src.dtypes[0] != "uint8":
        raise InputError(
            f"{path}: not a class map ({src.count} band(s) of {src.dtypes[0]}); give the single-band uint8 "
            "*_classes.tif written by `geoseg segment`"
        )


def _check_same_grid(path, src, conf_path, conf) -> None:
    if (conf.width, conf.height) != (src.width, src.height) or not conf.transform.almost_equals(src.transform):
        raise InputError(
            f"{conf_path}: confidence raster is not on the class map's grid ({conf.width}x{conf.height} vs "
            f"{src.width}x{src.height} px of {path}); give the *_confidence.tif written with that class map"
        )


# --------------------------------------------------------------------------- vectorizing pass


class _Frag:
    """A fragment of a region still open (touches an internal block edge)."""

    __slots__ = ("ccnt", "cls", "csum", "geom", "npix", "strip")

    def __init__(self, cls, npix, csum, ccnt, geom, strip):
        self.cls, self.npix, self.csum, self.ccnt, self.geom, self.strip = cls, npix, csum, ccnt, geom, strip


def _polygonize(labels: np.ndarray, box: PixelBox, n: int) -> np.ndarray:
    """Pixel-space polygons (integer vertices) of labels 1..n of one block, indexed by label."""
    geoms = np.empty(n + 1, object)
    found = list(shapes(labels, mask=labels > 0, connectivity=4, transform=Affine.translation(box.col, box.row)))
    if found:
        geoms[np.array([v for _, v in found], np.int64)] = build_polygons([g["coordinates"] for g, _ in found])
    return geoms


def _nodata_polygons(nodata: np.ndarray, box: PixelBox) -> list:
    """Pixel-space polygons of the nodata pixels of one block."""
    found = [g["coordinates"] for g, _ in shapes(nodata.view(np.uint8), mask=nodata, connectivity=4,
                                                 transform=Affine.translation(box.col, box.row))]
    return build_polygons(found).tolist() if found else []


@dataclass(slots=True)
class BlockResult:
    """:func:`vectorize_block`'s result: one block's fragments, polygonized in pixel space, with stats."""

    edges: Edges
    npix: np.ndarray  # (n + 1,) pixels per label
    csum: np.ndarray  # (n + 1,) confidence sum per label (zeros without a confidence raster)
    ccnt: np.ndarray  # (n + 1,) confidence pixel count per label
    geoms: np.ndarray  # (n + 1,) object: pixel-space Polygons, [0] = None
    labels: np.ndarray | None  # (h, w) int32 when ``keep_labels``
    nodata_geoms: list  # pixel-space polygons of the nodata pixels when ``nodata_polygons``


def vectorize_block(task: BlockTask) -> BlockResult:
    """Per-block work of the vectorizing pass (pure, picklable in and out): read, MMU remap,
    label, polygonize in pixel coordinates, per-fragment stats."""
    box = task.box
    with open_raster(task.path) as src:
        classes = src.read(1, window=box.to_window())
    if task.remap is not None:
        classes = Remap(*task.remap).apply(classes, box, task.width)
    conf, conf_nodata = None, CLASS_NODATA
    if task.confidence is not None:
        with open_raster(task.confidence) as conf_src:
            conf_nodata = conf_src.nodata if conf_src.nodata is not None else CLASS_NODATA
            conf = conf_src.read(1, window=box.to_window())
    return block_result(classes, box, task.width, conf, conf_nodata, keep_labels=task.keep_labels,
                        nodata_polygons=task.nodata_polygons)


def block_result(classes: np.ndarray, box: PixelBox, width: int, confidence: np.ndarray | None = None,
                 conf_nodata: float = CLASS_NODATA, *, keep_labels: bool = False,
                 nodata_polygons: bool = False) -> BlockResult:
    """One block's :class:`BlockResult` from its arrays: ``classes`` (uint8, 255 nodata) and ``confidence``
    (same shape, or None) of ``box``, a block of a raster ``width`` pixels wide."""
    blk = label_block(classes, box, width)
    flat = blk.labels.ravel()
    npix = np.bincount(flat, minlength=blk.n + 1)
    csum: np.ndarray  # confidence sum and count per label (float64)
    ccnt: np.ndarray
    if confidence is not None:
        conf = confidence.ravel()
        ok = conf != conf_nodata
        csum = np.bincount(flat, weights=np.where(ok, conf, 0), minlength=blk.n + 1)
        ccnt = np.bincount(flat, weights=ok, minlength=blk.n + 1)
    else:
        csum = ccnt = np.zeros(blk.n + 1)
    geoms = _polygonize(blk.labels, box, blk.n)
    nodata_geoms = []
    if nodata_polygons:
        nd = classes == CLASS_NODATA
        if nd.any():
            nodata_geoms = _nodata_polygons(nd, box)
    return BlockResult(blk.edges(), npix, csum, ccnt, geoms, blk.labels if keep_labels else None, nodata_geoms)


@dataclass
class _Pass:
    """The state of the vectorizing pass: seam join, open fragments, simplification, outputs."""

    ctx: RegionContext
    joiner: Joiner
    tol_px: float
    inst: InstanceWriter | None
    n_rows: int
    frags: dict[int, _Frag] = field(default_factory=dict)


def _vectorize_pass(path: str | Path, confidence: str | Path | None, block_size: int, simplify_m: float,
                    remap: Remap | None, ctx: RegionContext, inst: InstanceWriter | None,
                    map_fn: MapFn = map) -> Iterator[GeoDataFrame]:
    W, H = ctx.grid.width, ctx.grid.height
    keep = simplify_m > 0 or inst is not None
    tasks = (BlockTask(path, box, W, confidence=confidence,
                       remap=remap.for_box(box, W) if remap is not None else None,
                       keep_labels=keep, nodata_polygons=simplify_m > 0)
             for row in block_rows(W, H, block_size) for box in row)
    results = iter(map_fn(vectorize_block, tasks))
    try:
        yield from block_pass(ctx, block_size, simplify_m, results, inst)
    finally:
        close_map(results)


def block_pass(ctx: RegionContext, block_size: int, simplify_m: float, results: Iterator[BlockResult],
               inst: InstanceWriter | None = None) -> Iterator[GeoDataFrame]:
    """The vectorizing pass over ``results``: one :class:`BlockResult` per block of ``ctx.grid``'s block grid
    (``block_size``), in row-major order (``keep_labels`` and ``nodata_polygons`` set when simplifying)."""
    W, H = ctx.grid.width, ctx.grid.height
    tol_px = 0.0
    if simplify_m > 0:
        mid = ctx.row_area_m2(PixelBox(0, H // 2, 1, 1))[0]
        tol_px = simplify_m / float(np.sqrt(mid))
    rows = list(block_rows(W, H, block_size))
    state = _Pass(ctx, Joiner(W, H), tol_px, inst, len(rows))
    for bi, row in enumerate(rows):
        yield from _vectorize_row(state, bi, row, results)


def _vectorize_row(state: _Pass, bi: int, row: list[PixelBox], results: Iterator[BlockResult]) -> Iterator[GeoDataFrame]:
    """Join, emit and (when simplifying) simplify block row ``bi`` from its blocks' results."""
    joiner, frags, tol_px, ctx, inst = state.joiner, state.frags, state.tol_px, state.ctx, state.inst
    last = bi == state.n_rows - 1
    strip = RegionBatch()  # standalone fragments of this block row (held back only when simplifying)
    nodata_geoms, strip_blocks = [], []
    for box in row:
        res = next(results)
        e, npix, csum, ccnt, geoms = res.edges, res.npix, res.csum, res.ccnt, res.geoms
        if e.box != box:
            raise RuntimeError(f"map_fn returned results out of order: {e.box} for {box}")
        if tol_px:
            nodata_geoms.extend(res.nodata_geoms)
            strip_blocks.append((box, res.labels, e.fid))
        is_node = joiner.join(e)
        for i in np.flatnonzero(is_node).tolist():
            frags[int(e.fid[i])] = _Frag(int(e.label_class[i]), int(npix[i]), float(csum[i]), float(ccnt[i]),
                                         geoms[i], bi)
        alone = ~is_node
        alone[0] = False
        strip.add(e.fid[alone] + 1, e.label_class[alone], geoms[alone], npix[alone], csum[alone], ccnt[alone])
        if inst is not None:
            labels = res.labels
            assert labels is not None  # keep_labels is set when there is an instance raster
            inst.write(box, np.where(labels > 0, e.fid[labels] + 1, 0).astype(np.uint32))
        joiner.advance(e)
        del res, geoms
        if not tol_px:
            yield from strip.emit(ctx)
    if tol_px:
        _simplify_row(state, bi, strip, nodata_geoms, strip_blocks)
    rows_out = []  # regions that end in this block row: (pid, class, geometry, pixels, conf sum, conf count)
    for members in joiner.end_row(last):
        parts = [frags.pop(m) for m in members]
        pid = min(members) + 1
        part_geoms = [p.geom for p in parts if p.geom is not None]
        for p in parts:
            p.geom = None
        geom = part_geoms[0] if len(part_geoms) == 1 else union_pieces(part_geoms, coverage=not tol_px)
        rows_out.append((pid, parts[0].cls, geom,
                         sum(p.npix for p in parts), sum(p.csum for p in parts), sum(p.ccnt for p in parts)))
        if inst is not None and len(members) > 1:
            inst.remap(np.array(members, np.int64) + 1, pid)
    if not tol_px:
        _merge_open_pieces(state, bi)
    closed = RegionBatch()
    if rows_out:
        c_pid, c_cls, c_geom, c_npix, c_csum, c_ccnt = zip(*rows_out)
        closed.add(np.array(c_pid, np.int64), np.array(c_cls, np.uint8), np.array(c_geom, dtype=object),
                   np.array(c_npix), np.array(c_csum, np.float64), np.array(c_ccnt, np.float64))
        del rows_out, c_geom
    yield from strip.emit(ctx, simplified=bool(tol_px))
    yield from closed.emit(ctx, simplified=bool(tol_px))


def _merge_open_pieces(state: _Pass, bi: int) -> None:
    """Union, per region still open after block row ``bi``, its fragments of that row into one piece.

    The union a region needs when it closes is then over one piece per block row it spans
    rather than every fragment: most of that work is done while later rows are still
    being predicted, not after the last tile. Exact (integer vertices), so the closed
    region's geometry is the same as a single union of all its fragments."""
    frags = state.frags
    for mine in _row_members(state, bi).values():
        if len(mine) > 1:
            merged = union_pieces([frags[m].geom for m in mine], coverage=True)
            for m in mine[1:]:
                frags[m].geom = None
            frags[mine[0]].geom = merged


def _row_members(state: _Pass, bi: int) -> dict[int, list[int]]:
    """Per open region (union-find root), its fragments of block row ``bi`` that still hold geometry."""
    frags, out = state.frags, {}
    for root, members in state.joiner.uf.members.items():
        mine = [m for m in members if frags[m].strip == bi and frags[m].geom is not None]
        if mine:
            out[root] = mine
    return out


def _simplify_row(state: _Pass, bi: int, strip: RegionBatch, nodata_geoms: list, strip_blocks: list) -> None:
    """Simplify block row ``bi`` as one coverage of pieces: its standalone fragments, one
    piece per open region (the union of its fragments in this row) and one for nodata."""
    joiner, frags, tol_px = state.joiner, state.frags, state.tol_px
    by_root = _row_members(state, bi)
    region_pieces = [union_pieces([frags[m].geom for m in ms], coverage=True) if len(ms) > 1 else frags[ms[0]].geom
                     for ms in by_root.values()]
    nodata = [union_pieces(nodata_geoms)] if nodata_geoms else []
    alone = strip.geoms()
    pieces = np.array(list(alone) + region_pieces + nodata, dtype=object)
    if len(pieces) == 0:
        return
    # piece index of every pixel of the row, to find where pieces must share a vertex
    key_parts = [strip.ids() - 1] + [np.array(ms, np.int64) for ms in by_root.values()]
    val_parts = [np.arange(len(alone))] + [np.full(len(ms), len(alone) + i) for i, ms in enumerate(by_root.values())]
    keys, vals = np.concatenate(key_parts), np.concatenate(val_parts)
    order = np.argsort(keys)
    keys, vals = keys[order], vals[order]
    r0 = strip_blocks[0][0].row
    piece_map = np.empty((strip_blocks[0][0].height, joiner.width), np.int64)
    for box, labels, fid in strip_blocks:
        if len(keys):
            lut = vals[np.clip(np.searchsorted(keys, fid), 0, len(keys) - 1)]
        else:  # a row of nothing but nodata
            lut = np.zeros(len(fid), np.int64)
        lut[0] = len(pieces) - 1  # nodata (only present when the block has nodata)
        piece_map[:, box.col:box.col_stop] = lut[labels]
    out = simplify_strip(pieces, piece_map, r0, tol_px)
    strip.set_geoms(out[: len(alone)])
    for ms, g in zip(by_root.values(), out[len(alone):len(alone) + len(region_pieces)]):
        frags[ms[0]].geom = g
        for m in ms[1:]:
            frags[m].geom = None

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
internal edge are emitted at once. The result is the same set of polygons as
whole-raster ``shapes(classes, mask=classes != 255, connectivity=4)`` (same count,
areas, vertices), whatever the block size. Memory: ``O(width x block_size)`` plus the
geometry of regions still open.

``polygon_id`` is ``row * width + col + 1`` of the region's first pixel in raster
(row-major) order: stable across block sizes, never 0 (0 = nodata in the instance raster).

Minimum mapping unit (``mmu_m2``): two passes. Pass 1 computes every region's area and,
for regions that may be small, the pixel edges they share with each neighbouring
region. Regions below the MMU are then reassigned (see :func:`resolve_mmu` for the
rule); pass 2 vectorizes with the reassignment applied per block.

Simplification (``simplify_m``): see :mod:`geoseg.vector.coverage`: each block row (strip) is
simplified as one polygon coverage with its top and bottom lines pinned, so shared
boundaries stay identical across polygons, strips and blocks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from affine import Affine
from rasterio.features import shapes

from geoseg import CLASS_NODATA
from geoseg.vector.blocks import BlockTask, Edges, Joiner, block_rows, close_map, label_block
from geoseg.vector.coverage import (
    InstanceWriter,
    build_polygons,
    drop_collinear,
    resolve_mmu,
    simplify_strip,
    union_pieces,
)
from geoseg.errors import ConfigError, InputError
from geoseg.io.raster import acquisition_date, open_raster
from geoseg.tiling import PixelBox
from geoseg.vector.reference import EQUAL_AREA_CRS, class_names_from_raster

if TYPE_CHECKING:
    from geopandas import GeoDataFrame

log = logging.getLogger(__name__)

MMU_RTOL = 1e-9
"""Relative tolerance of minimum-mapping-unit comparisons: a region whose area equals the MMU is kept."""

COLUMNS = ("polygon_id", "class_id", "class_name", "area_m2", "area_ha", "perimeter_m",
           "mean_confidence", "source", "model", "acquired")
"""Attribute columns of every polygon table, in order (``geometry`` follows)."""

MapFn = Callable[[Callable[[Any], Any], Iterable[Any]], Iterable[Any]]
"""An ordered map like the builtin ``map``: ``map_fn(func, items)`` yields ``func(item)`` in order."""



# --------------------------------------------------------------------------- public API


def vectorize_blocks(
    path: str | Path,
    *,
    block_size: int = 1024,
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
      a neighbouring class first (rule: :func:`geoseg.vector.coverage.resolve_mmu`). Two passes.
    * ``simplify_m``: coverage simplification tolerance in metres (0: off), see
      :mod:`geoseg.vector.coverage`; shared boundaries stay shared, polygons stay valid.
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
        ctx = _Context.from_dataset(path, src, class_names)
        conf_src = None
        try:
            if confidence is not None:
                conf_src = open_raster(confidence)
                _check_same_grid(path, src, confidence, conf_src)
            map_fn = map if map_fn is None else map_fn
            remap = _mmu_pass(path, src, block_size, mmu_m2, ctx, map_fn) if mmu_m2 > 0 else None
            inst = InstanceWriter(instance_path, src, block_size, overwrite) if instance_path else None
            try:
                yield from _vectorize_pass(path, src, confidence, block_size, simplify_m, remap, ctx, inst, map_fn)
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
    to :func:`vectorize_blocks` (``instance_path`` obeys the same ``overwrite``).
    """
    from geoseg.vector.coverage import check_output_path, write_polygons

    check_output_path(out_path, overwrite)  # fail before the (long) scan, not after
    if crs is None:  # the class map's, even when it has nothing but nodata
        with open_raster(path) as src:
            crs = src.crs
    batches = vectorize_blocks(path, overwrite=overwrite, **kwargs)
    return write_polygons(batches, out_path, crs=crs, overwrite=overwrite, layer=layer)


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


@dataclass(frozen=True, slots=True)
class _Context:
    """What every batch needs to turn pixel-space fragments into attributed polygons."""

    source: str
    width: int
    height: int
    transform: Affine
    crs: object
    names: tuple[str, ...]
    model: str | None
    acquired: str | None

    @classmethod
    def from_dataset(cls, path, src, class_names):
        names = list(class_names) if class_names else class_names_from_raster(src)
        names = tuple(names + ["unknown"] * (256 - len(names)))
        tags = src.tags()
        # `source`: the imagery a geoseg class map was predicted from (its `source` tag), else the map itself
        return cls(tags.get("source") or str(path), src.width, src.height, src.transform, src.crs, names,
                   tags.get("model") or None, acquisition_date(tags))

    def row_area_m2(self, r0: int, r1: int) -> np.ndarray:
        """Ground area (m²) of one pixel in rows ``r0..r1-1``."""
        from geoseg.io.raster import pixel_area_m2

        if self.crs is None:
            raise InputError(f"{self.source}: has no CRS, so areas in m² are unknown; assign a CRS to the file "
                             "(or set mmu_m2/simplify_m to 0)")
        return pixel_area_m2(self.crs, self.transform, np.arange(r0, r1))


# --------------------------------------------------------------------------- minimum mapping unit


@dataclass(frozen=True, slots=True)
class _Remap:
    """Class reassignment from the MMU pass: fragment first-pixel ids (sorted) -> new class."""

    fid: np.ndarray
    new_class: np.ndarray

    def for_box(self, box: PixelBox, width: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The part of the remap inside ``box`` (``(fid, new_class)``), or None when there is none."""
        lo, hi = np.searchsorted(self.fid, [box.row * width, box.row_stop * width])
        fid, cls = self.fid[lo:hi], self.new_class[lo:hi]
        m = (fid % width >= box.col) & (fid % width < box.col_stop)
        return (fid[m], cls[m]) if m.any() else None

    def apply(self, classes: np.ndarray, box: PixelBox, width: int) -> np.ndarray:
        lo, hi = np.searchsorted(self.fid, [box.row * width, box.row_stop * width])
        cols = self.fid[lo:hi] % width
        if not ((cols >= box.col) & (cols < box.col_stop)).any():
            return classes
        blk = label_block(classes, box, width)
        idx = np.clip(np.searchsorted(self.fid, blk.fid), 0, len(self.fid) - 1)
        hit = self.fid[idx] == blk.fid
        lut = blk.label_class.copy()
        lut[hit] = self.new_class[idx[hit]]
        return lut[blk.labels]


def _edge_pairs(labels: np.ndarray):
    """Label pairs of 4-neighbouring pixels in different fragments (both valid)."""
    out_a, out_b = [], []
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1], labels[1:])):
        m = (a != b) & (a > 0) & (b > 0)
        out_a.append(a[m])
        out_b.append(b[m])
    return np.concatenate(out_a), np.concatenate(out_b)


@dataclass(slots=True)
class MmuBlockResult:
    """:func:`mmu_block`'s result: fragments, their areas, and the edges of small fragments inside the block."""

    edges: Edges
    area: np.ndarray  # (n + 1,) m² per label
    small: np.ndarray  # (n + 1,) bool, area < mmu_m2 ([0] False)
    pairs: tuple | None  # (fid_a, fid_b, cls_a, cls_b, small_a, small_b, shared edge count), or None


def mmu_block(task: BlockTask) -> MmuBlockResult:
    """Per-block work of the MMU pass (pure, picklable in and out): read, label, areas, inner edges."""
    box = task.box
    with open_raster(task.path) as src:
        classes = src.read(1, window=box.to_window())
    blk = label_block(classes, box, task.width)
    area = np.bincount(blk.labels.ravel(), weights=np.repeat(task.row_area, box.width), minlength=blk.n + 1)
    small = area < task.mmu_m2
    small[0] = False
    la, lb = _edge_pairs(blk.labels)
    keep = small[la] | small[lb]
    pairs = None
    if keep.any():
        key, cnt = np.unique(la[keep].astype(np.int64) * (blk.n + 1) + lb[keep], return_counts=True)
        a, b = key // (blk.n + 1), key % (blk.n + 1)
        pairs = (blk.fid[a], blk.fid[b], blk.label_class[a], blk.label_class[b], small[a], small[b], cnt)
    return MmuBlockResult(blk.edges(), area, small, pairs)


def _mmu_pass(path, src, block_size: int, mmu_m2: float, ctx: _Context, map_fn: MapFn = map) -> _Remap:
    """Pass 1: region areas and, for regions that may be below ``mmu_m2``, their neighbours."""
    mmu_m2 = mmu_m2 * (1 - MMU_RTOL)  # a region of exactly the MMU stays (0.81 ha * 1e4 > 8100.0 in floats)
    W, H = src.width, src.height
    joiner = Joiner(W, H)
    node_area: dict[int, float] = {}
    node_cls: dict[int, int] = {}
    small_fid, small_comp = [], []  # fragments of regions below the MMU, and their region's id
    comp_id, comp_cls, comp_area = [], [], []  # regions below the MMU
    e_src, e_dst, e_dcls, e_cnt = [], [], [], []  # (small fragment, neighbour fragment, its class, shared edges)
    top_small = np.zeros(W, bool)
    bot_small = np.zeros(W, bool)

    def record(fa, fb, ca, cb, sa, sb, cnt):
        for s, f1, f2, c2 in ((sa, fa, fb, cb), (sb, fb, fa, ca)):
            e_src.append(f1[s]), e_dst.append(f2[s]), e_dcls.append(c2[s]), e_cnt.append(cnt[s])

    rows = list(block_rows(W, H, block_size))
    tasks = (BlockTask(path, box, W, row_area=ctx.row_area_m2(box.row, box.row_stop), mmu_m2=float(mmu_m2))
             for row in rows for box in row)
    results = iter(map_fn(mmu_block, tasks))
    try:
        for bi, row in enumerate(rows):
            left_small = None
            for box in row:
                res = next(results)
                e, area, small = res.edges, res.area, res.small
                if e.box != box:
                    raise RuntimeError(f"map_fn returned results out of order: {e.box} for {box}")
                is_node = joiner.join(e)
                # edges inside the block
                if res.pairs is not None:
                    record(*res.pairs)
                # edges across the left and top seams
                prev_smalls = ([left_small] if box.col > 0 else []) + ([top_small[box.col:box.col_stop]] if box.row > 0 else [])
                cur_smalls = ([small[e.lab[2]]] if box.col > 0 else []) + ([small[e.lab[0]]] if box.row > 0 else [])
                for (pf, pc, cf, cc), ps, cs in zip(joiner.seams(e), prev_smalls, cur_smalls):
                    m = (pc != cc) & (pc != CLASS_NODATA) & (cc != CLASS_NODATA) & (ps | cs)
                    if m.any():
                        pairs, cnt = np.unique(np.stack([pf[m], cf[m], pc[m], cc[m], ps[m], cs[m]], axis=1), axis=0,
                                               return_counts=True)
                        record(pairs[:, 0], pairs[:, 1], pairs[:, 2], pairs[:, 3], pairs[:, 4] > 0, pairs[:, 5] > 0, cnt)
                for f, c, a in zip(e.fid[is_node].tolist(), e.label_class[is_node].tolist(), area[is_node].tolist()):
                    node_area[f], node_cls[f] = a, c
                alone = ~is_node & small
                alone[0] = False
                small_fid.append(e.fid[alone]), small_comp.append(e.fid[alone])
                comp_id.append(e.fid[alone]), comp_cls.append(e.label_class[alone]), comp_area.append(area[alone])
                left_small = small[e.lab[3]]
                bot_small[box.col:box.col_stop] = small[e.lab[1]]
                joiner.advance(e)
            for members in joiner.end_row(bi == len(rows) - 1):
                total = sum(node_area.pop(m) for m in members)
                cls = node_cls[members[0]]
                for m in members:
                    del node_cls[m]
                if total < mmu_m2:
                    small_fid.append(np.array(members, np.int64)), small_comp.append(np.full(len(members), min(members)))
                    comp_id.append(np.array([min(members)])), comp_cls.append(np.array([cls])), comp_area.append(np.array([total]))
            top_small, bot_small = bot_small, top_small
            bot_small.fill(False)
    finally:
        close_map(results)

    def cat(x, dtype):
        return np.concatenate(x).astype(dtype) if x else np.zeros(0, dtype)

    return _Remap(*resolve_mmu(
        cat(small_fid, np.int64), cat(small_comp, np.int64),
        (cat(comp_id, np.int64), cat(comp_cls, np.uint8), cat(comp_area, np.float64)),
        cat(e_src, np.int64), cat(e_dst, np.int64), cat(e_dcls, np.uint8), cat(e_cnt, np.int64),
    ))


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
        classes = _Remap(*task.remap).apply(classes, box, task.width)
    blk = label_block(classes, box, task.width)
    flat = blk.labels.ravel()
    npix = np.bincount(flat, minlength=blk.n + 1)
    if task.confidence is not None:
        with open_raster(task.confidence) as conf_src:
            conf_nodata = conf_src.nodata if conf_src.nodata is not None else CLASS_NODATA
            conf = conf_src.read(1, window=box.to_window()).ravel()
        ok = conf != conf_nodata
        csum = np.bincount(flat, weights=np.where(ok, conf, 0), minlength=blk.n + 1)
        ccnt = np.bincount(flat, weights=ok, minlength=blk.n + 1)
    else:
        csum = ccnt = np.zeros(blk.n + 1)
    geoms = _polygonize(blk.labels, box, blk.n)
    nodata_geoms = []
    if task.nodata_polygons:
        nd = classes == CLASS_NODATA
        if nd.any():
            nodata_geoms = _nodata_polygons(nd, box)
    return BlockResult(blk.edges(), npix, csum, ccnt, geoms, blk.labels if task.keep_labels else None, nodata_geoms)


def _vectorize_pass(path, src, confidence, block_size, simplify_m, remap, ctx, inst, map_fn: MapFn = map):
    W, H = src.width, src.height
    joiner = Joiner(W, H)
    frags: dict[int, _Frag] = {}
    tol_px = 0.0
    if simplify_m > 0:
        mid = ctx.row_area_m2(H // 2, H // 2 + 1)[0]
        tol_px = simplify_m / float(np.sqrt(mid))
    rows = list(block_rows(W, H, block_size))
    tasks = (BlockTask(path, box, W, confidence=confidence,
                       remap=remap.for_box(box, W) if remap is not None else None,
                       keep_labels=bool(tol_px) or inst is not None, nodata_polygons=bool(tol_px))
             for row in rows for box in row)
    results = iter(map_fn(vectorize_block, tasks))
    try:
        for bi, row in enumerate(rows):
            yield from _vectorize_row(bi, row, len(rows), results, joiner, frags, tol_px, ctx, inst)
    finally:
        close_map(results)


def _vectorize_row(bi, row, n_rows, results, joiner, frags, tol_px, ctx, inst):
    """Join, emit and (when simplifying) simplify block row ``bi`` from its blocks' results."""
    last = bi == n_rows - 1
    strip = _Batch()  # standalone fragments of this block row (held back only when simplifying)
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
            inst.write(box, np.where(res.labels > 0, e.fid[res.labels] + 1, 0).astype(np.uint32))
        joiner.advance(e)
        del res, geoms
        if not tol_px:
            yield from strip.emit(ctx)
    if tol_px:
        _simplify_row(joiner, frags, strip, nodata_geoms, strip_blocks, bi, tol_px)
    rows_out = []  # regions that end in this block row: (pid, class, geometry, pixels, conf sum, conf count)
    for members in joiner.end_row(last):
        parts = [frags.pop(m) for m in members]
        pid = min(members) + 1
        geoms = [p.geom for p in parts if p.geom is not None]
        for p in parts:
            p.geom = None
        rows_out.append((pid, parts[0].cls, geoms[0] if len(geoms) == 1 else union_pieces(geoms),
                         sum(p.npix for p in parts), sum(p.csum for p in parts), sum(p.ccnt for p in parts)))
        if inst is not None and len(members) > 1:
            inst.remap(np.array(members, np.int64) + 1, pid)
    closed = _Batch()
    if rows_out:
        pid, cls, geom, npix, csum, ccnt = zip(*rows_out)
        closed.add(np.array(pid, np.int64), np.array(cls, np.uint8), np.array(geom, dtype=object),
                   np.array(npix), np.array(csum, np.float64), np.array(ccnt, np.float64))
        del rows_out, geom
    yield from strip.emit(ctx, simplified=bool(tol_px))
    yield from closed.emit(ctx, simplified=bool(tol_px))


def _simplify_row(joiner, frags, strip, nodata_geoms, strip_blocks, bi, tol_px) -> None:
    """Simplify block row ``bi`` as one coverage of pieces: its standalone fragments, one
    piece per open region (the union of its fragments in this row) and one for nodata."""
    by_root: dict[int, list[int]] = {}
    for root, members in joiner.uf.members.items():
        mine = [m for m in members if frags[m].strip == bi and frags[m].geom is not None]
        if mine:
            by_root[root] = mine
    region_pieces = [union_pieces([frags[m].geom for m in ms]) if len(ms) > 1 else frags[ms[0]].geom
                     for ms in by_root.values()]
    nodata = [union_pieces(nodata_geoms)] if nodata_geoms else []
    alone = strip.geoms()
    pieces = np.array(list(alone) + region_pieces + nodata, dtype=object)
    if len(pieces) == 0:
        return
    # piece index of every pixel of the row, to find where pieces must share a vertex
    keys = [strip.ids() - 1] + [np.array(ms, np.int64) for ms in by_root.values()]
    vals = [np.arange(len(alone))] + [np.full(len(ms), len(alone) + i) for i, ms in enumerate(by_root.values())]
    keys, vals = np.concatenate(keys), np.concatenate(vals)
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


class _Batch:
    """Regions ready to be emitted, in pixel space, turned into a GeoDataFrame by :meth:`emit`."""

    def __init__(self):
        self.parts: list[tuple] = []

    def add(self, pid, cls, geoms, npix, csum, ccnt) -> None:
        if len(pid):
            self.parts.append((pid, cls, geoms, npix, csum, ccnt))

    def geoms(self) -> np.ndarray:
        return np.concatenate([p[2] for p in self.parts]) if self.parts else np.empty(0, object)

    def ids(self) -> np.ndarray:
        return np.concatenate([p[0] for p in self.parts]).astype(np.int64) if self.parts else np.zeros(0, np.int64)

    def set_geoms(self, geoms) -> None:
        i = 0
        for k, p in enumerate(self.parts):
            self.parts[k] = (p[0], p[1], np.asarray(geoms[i:i + len(p[0])], dtype=object), *p[3:])
            i += len(p[0])

    def emit(self, ctx: _Context, simplified: bool = False):
        if not self.parts:
            return
        cols = [np.concatenate([p[i] for p in self.parts]) for i in range(6)]
        self.parts = []
        pid, cls, geoms, _npix, csum, ccnt = cols
        if simplified:  # drop the collinear vertices left along pinned strip lines
            geoms = drop_collinear(geoms)
        yield _frame(ctx, pid.astype(np.int64), cls, geoms, csum, ccnt)


def _frame(ctx: _Context, pid, cls, pix_geoms, csum, ccnt):
    """GeoDataFrame of regions: pixel-space geometry -> CRS coordinates + attributes."""
    import geopandas as gpd
    import pandas as pd

    t = ctx.transform
    xy = shapely.get_coordinates(pix_geoms)
    x, y = xy[:, 0], xy[:, 1]  # GDAL's order of operations: gt0 + gt1 * x + gt2 * y
    # in place (replaces the array's elements), so the pixel-space copies are freed at once
    shapely.set_coordinates(pix_geoms, np.column_stack([t.c + t.a * x + t.b * y, t.f + t.d * x + t.e * y]))
    del xy, x, y
    order = np.argsort(pid)
    pid, cls, geoms, csum, ccnt = pid[order], cls[order], pix_geoms[order], csum[order], ccnt[order]
    area, perim = _area_perimeter(geoms, ctx.crs)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(ccnt > 0, csum / np.maximum(ccnt, 1), np.nan)
    n = len(pid)
    df = pd.DataFrame({
        "polygon_id": pid,
        "class_id": cls.astype(np.int32),
        "class_name": np.asarray(ctx.names, dtype=object)[cls],
        "area_m2": area,
        "area_ha": area / 1e4,
        "perimeter_m": perim,
        "mean_confidence": mean_conf,
        "source": np.full(n, ctx.source, dtype=object),
        "model": np.full(n, ctx.model, dtype=object),
        "acquired": np.full(n, ctx.acquired, dtype=object),
    })
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=ctx.crs), crs=ctx.crs)


def _area_perimeter(geoms: np.ndarray, crs) -> tuple[np.ndarray, np.ndarray]:
    """Areas (m²) and perimeters (m, holes included) of CRS-coordinate polygons.

    Projected CRS: planar, times the CRS unit factor. Geographic: area in EPSG:6933
    (equal-area), perimeter as the geodesic length of every ring on WGS84.
    """
    if crs is None:
        return shapely.area(geoms), shapely.length(geoms)
    if not crs.is_geographic:
        factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
        return shapely.area(geoms) * factor**2, shapely.length(geoms) * factor
    from pyproj import Geod, Transformer

    tr = Transformer.from_crs(crs, EQUAL_AREA_CRS, always_xy=True)
    ea = shapely.transform(geoms, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    geod = Geod(ellps="WGS84")
    rings, idx = shapely.get_rings(geoms, return_index=True)
    ring_len = np.array([geod.line_length(*np.asarray(r.coords).T) for r in rings])
    return shapely.area(ea), np.bincount(idx, weights=ring_len, minlength=len(geoms))

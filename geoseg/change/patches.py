"""Change patches: 4-connected patches of one from→to pair, joined across blocks, and their polygons.

:class:`Patches` labels each block of the change-only raster (a change code per kept
changed pixel, 255 elsewhere) with :func:`geoseg.vector.blocks.label_block` and joins the
fragments across block seams with :class:`geoseg.vector.blocks.Joiner` (the machinery of the
block-wise vectorizer), accumulating each patch's exact area and both dates' confidence
sums; a patch is decided (kept, or below the minimum mapping unit) as soon as it is
complete. A patch that lies inside one block is decided there and then (the caller marks
it uncertain before the block is written); only the fragment ids of small patches that
cross a block border are kept for the second pass. Memory: one block, the patches still
open, 8 bytes per fragment of a small border-crossing patch and 56 bytes per kept patch
(each at least the MMU, so at most valid area / MMU of them).

A patch is below the MMU when its exact area is smaller than ``mmu_m2`` by more than
floating-point rounding (relative 1e-9), so a patch of exactly the MMU (e.g. 9 pixels of
900 m² for 0.81 ha) is kept.

:func:`write_change_polygons` then runs the change-only raster through
:func:`geoseg.vector.polygons.vectorize_blocks`: each kept patch becomes one polygon with the
vectorizer's stable ``polygon_id`` (1 + the raster index of the patch's first pixel),
which is also the patch's key here, so the polygon gets the patch's exact area and
mean confidences.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from geoseg import CLASS_NODATA
from geoseg.change.transitions import Legend, decode
from geoseg.tiling import PixelBox
from geoseg.vector.blocks import Joiner, label_block
from geoseg.vector.mmu import MMU_RTOL

if TYPE_CHECKING:
    from geoseg.grid import GeoGrid


class Patches:
    """4-connected patches of one change code, joined across blocks, with per-patch sums.

    Per patch: ``[area m², pixels, conf-before sum, count, conf-after sum, count]``.
    Patches below ``mmu_m2`` inside one block are returned by :meth:`add_block` as a pixel
    mask; those crossing a block border go to ``small_fids`` (their fragments' ids). The
    others are kept by patch id (the raster index of its first pixel = ``polygon_id - 1``).
    """

    def __init__(self, grid: GeoGrid, mmu_m2: float):
        self.joiner = Joiner(grid.width, grid.height)
        self.width = grid.width
        self.mmu_m2 = mmu_m2 * (1 - MMU_RTOL)
        self.open: dict[int, tuple[int, np.ndarray]] = {}
        self.small_fids: list[np.ndarray] = []
        self.small_patches = 0
        self.keys: list[np.ndarray] = []
        self.stats: list[np.ndarray] = []

    def add_block(self, only: np.ndarray, box: PixelBox, row_area: np.ndarray, cb, ca) -> np.ndarray:
        """Label one block of the change-only raster (``(rows, cols)`` change codes, 255 elsewhere);
        ``row_area``: m² per row; ``cb``/``ca``: both dates' confidence (or None).

        Returns the pixels (bool ``(rows, cols)``) of the patches that lie inside this block and
        are below the MMU: the caller makes them uncertain.
        """
        blk = label_block(only, box, self.width)
        e = blk.edges()
        is_node = self.joiner.join(e)
        flat = blk.labels.ravel()
        k = blk.n + 1
        cols = [np.bincount(flat, weights=np.broadcast_to(row_area[:, None], only.shape).ravel(), minlength=k),
                np.bincount(flat, minlength=k).astype(np.float64)]
        for conf in (cb, ca):
            if conf is None:
                cols += [np.zeros(k), np.zeros(k)]
            else:
                ok = (conf != CLASS_NODATA).ravel()
                cols += [np.bincount(flat, weights=np.where(ok, conf.ravel(), 0), minlength=k),
                         np.bincount(flat, weights=ok, minlength=k)]
        stats = np.stack(cols, axis=1)
        for i in np.flatnonzero(is_node).tolist():
            self.open[int(e.fid[i])] = (int(e.label_class[i]), stats[i])
        alone = ~is_node
        alone[0] = False
        small = alone & (stats[:, 0] < self.mmu_m2)
        self.small_patches += int(small.sum())
        kept = alone & ~small
        if kept.any():
            self.keys.append(e.fid[kept])
            self.stats.append(stats[kept])
        self.joiner.advance(e)
        return small[blk.labels]

    def end_row(self, last: bool) -> None:
        keys, stats, members_small = [], [], []
        for members in self.joiner.end_row(last):
            total = sum(self.open.pop(m)[1] for m in members)
            assert isinstance(total, np.ndarray)  # a closed region has at least one member
            if total[0] < self.mmu_m2:
                members_small.append(np.array(members, np.int64))
                self.small_patches += 1
            else:
                keys.append(min(members))
                stats.append(total)
        if members_small:
            self.small_fids.append(np.concatenate(members_small))
        if keys:
            self.keys.append(np.array(keys, np.int64))
            self.stats.append(np.array(stats))

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(small fragment ids sorted, kept patch ids sorted, their stats)``."""
        small = np.sort(np.concatenate(self.small_fids)) if self.small_fids else np.zeros(0, np.int64)
        if not self.keys:
            return small, np.zeros(0, np.int64), np.zeros((0, 6))
        keys, stats = np.concatenate(self.keys), np.concatenate(self.stats)
        order = np.argsort(keys)
        return small, keys[order], stats[order]


COLUMNS = ("polygon_id", "change_code", "from_id", "to_id", "from_class", "to_class", "change_type", "pixels",
           "area_m2", "area_ha", "perimeter_m", "mean_confidence_before", "mean_confidence_after",
           "source_before", "source_after", "acquired_before", "acquired_after")
"""Attribute columns of the change polygons, in order (``geometry`` follows)."""


def write_change_polygons(only_path: Path, out_path: Path, legend: Legend, keys: np.ndarray, stats: np.ndarray,
                          dates: dict, block_size: int, layer: str) -> int:
    """Vectorize ``only_path`` into ``out_path`` (GeoPackage/GeoParquet by extension); returns the count.

    ``keys``: sorted patch ids (``polygon_id - 1``); ``stats``: per patch ``[area m², pixels,
    conf-before sum, count, conf-after sum, count]``.
    """
    from geoseg.io.raster import open_raster
    from geoseg.vector.writers import write_polygons

    with open_raster(only_path) as src:
        crs = src.crs
    batches = _attributed(only_path, legend, keys, stats, dates, block_size, crs)
    return write_polygons(batches, out_path, crs=crs, layer=layer)


def _attributed(only_path, legend, keys, stats, dates, block_size, crs) -> Iterator:
    from geoseg.vector.polygons import vectorize_blocks

    sent = False
    for gdf in vectorize_blocks(only_path, block_size=block_size):
        if len(gdf):
            yield attribute(gdf, legend, keys, stats, dates)
            sent = True
    if not sent:  # the schema comes from the first batch: give an empty one with the right columns
        yield empty_frame(crs)


def attribute(gdf, legend: Legend, keys: np.ndarray, stats: np.ndarray, dates: dict):
    """The change attributes of a batch of vectorized patches (``class_id`` = change code)."""
    import geopandas as gpd
    import pandas as pd

    pid = gdf["polygon_id"].to_numpy(np.int64)
    idx = np.searchsorted(keys, pid - 1)
    if len(keys) == 0 or (idx >= len(keys)).any() or (keys[np.minimum(idx, len(keys) - 1)] != pid - 1).any():
        raise RuntimeError("change polygons and change patches disagree (internal error)")
    st = stats[idx]
    code = gdf["class_id"].to_numpy(np.int64)
    src, dst = decode(code, legend.n)
    names = np.asarray(legend.class_names, dtype=object)
    kinds = {e["code"]: e["change_type"] for e in legend.pairs()}
    with np.errstate(invalid="ignore", divide="ignore"):
        conf_b = np.where(st[:, 3] > 0, st[:, 2] / np.maximum(st[:, 3], 1), np.nan)
        conf_a = np.where(st[:, 5] > 0, st[:, 4] / np.maximum(st[:, 5], 1), np.nan)
    n = len(gdf)

    def const(role, attr):
        d = dates.get(role)
        return np.full(n, getattr(d, attr) if d else None, dtype=object)

    df = pd.DataFrame({
        "polygon_id": pid,
        "change_code": code.astype(np.int32),
        "from_id": src.astype(np.int32),
        "to_id": dst.astype(np.int32),
        "from_class": names[src],
        "to_class": names[dst],
        "change_type": np.array([kinds[c] for c in code.tolist()], dtype=object),
        "pixels": st[:, 1].astype(np.int64),
        "area_m2": st[:, 0],
        "area_ha": st[:, 0] / 1e4,
        "perimeter_m": gdf["perimeter_m"].to_numpy(),
        "mean_confidence_before": conf_b,
        "mean_confidence_after": conf_a,
        "source_before": const("before", "source"),
        "source_after": const("after", "source"),
        "acquired_before": const("before", "acquired"),
        "acquired_after": const("after", "acquired"),
    })
    return gpd.GeoDataFrame(df, geometry=gdf.geometry.values, crs=gdf.crs)


def empty_frame(crs):
    """A change-polygon frame with no rows and typed columns."""
    import geopandas as gpd
    import pandas as pd

    ints = {"polygon_id", "pixels"}
    i32 = {"change_code", "from_id", "to_id"}
    floats = {"area_m2", "area_ha", "perimeter_m", "mean_confidence_before", "mean_confidence_after"}
    cols = {}
    for c in COLUMNS:
        dtype = np.int64 if c in ints else np.int32 if c in i32 else np.float64 if c in floats else object
        cols[c] = np.zeros(0, dtype)
    return gpd.GeoDataFrame(pd.DataFrame(cols), geometry=gpd.GeoSeries([], crs=crs), crs=crs)

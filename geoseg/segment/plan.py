"""Planning a segment run on the driver: per input, its grid, bands, scene statistics and tiles.

Only the header and a decimated read of each input are touched here; the pixels are
read later by the executors, window by window.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geoseg.config import SegmentConfig
from geoseg.errors import AOIError, ConfigError, InputError
from geoseg.io import storage
from geoseg.io.inputs import SceneInput
from geoseg.io.quality import QualityReader, QualitySource, resolve_quality
from geoseg.io.raster import RasterInfo, box_intersects, load_aoi, open_raster, probe_pixels, resolve_bands
from geoseg.io.urls import redact
from geoseg.model.checkpoint import Checkpoint, ModelCard
from geoseg.model.normalization import MIN_STATS_PIXELS, MIN_STATS_SIDE, BandStats, scene_stats, stats_from_dict
from geoseg.model.predict import SceneJob
from geoseg.tiling import TILE_LAYOUT, Tile, TileGrid

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Tiling:
    """The tile geometry of a run: model input side and halo, pixels."""

    tile_size: int
    halo: int

    @classmethod
    def resolve(cls, cfg: SegmentConfig, ckpt: Checkpoint) -> Tiling:
        """The config's values, else the model card's; :class:`ConfigError` naming the flags if no core is left."""
        t = cls(cfg.tile_size or ckpt.card.tile_size, cfg.halo if cfg.halo is not None else ckpt.card.halo)
        if t.tile_size - 2 * t.halo < 1:
            raise ConfigError(f"--tile-size {t.tile_size} must exceed 2 x --halo {t.halo}, which tiles lose on each "
                              f"side; raise --tile-size or lower --halo (`tile_size`, `halo` in a config; the model "
                              f"card's {ckpt.card.tile_size} and {ckpt.card.halo} where not set)")
        return t


@dataclass
class ScenePlan:
    """One input: where it is, its grid, its tiles (those still to compute), and what its worker job needs."""

    path: str
    stem: str
    info: RasterInfo
    grid: TileGrid
    job: SceneJob
    tiles: list[Tile]
    outside_aoi: int = 0


def plan_scene(scene: SceneInput, cfg: SegmentConfig, ckpt: Checkpoint, tiling: Tiling,
               reference: BandStats | None = None) -> ScenePlan:
    """Open the scene (header and a decimated read only), choose bands, scene stats (``reference``,
    from :func:`reference_stats`, instead when given), tiles."""
    card = ckpt.card
    path = scene.path
    with open_raster(path) as src:
        info = RasterInfo.from_dataset(path, src)
        if info.acquired is None and scene.acquired:
            info = dataclasses.replace(info, acquired=scene.acquired[:10])
        wanted = cfg.bands if cfg.bands is not None else card.bands
        if len(wanted) != len(card.bands):
            raise ConfigError(
                f"--bands: {len(wanted)} band(s) {wanted} given but model {card.name} takes {len(card.bands)} "
                f"({', '.join(card.bands)}); pass one band per model input, in that order (`bands` in a config)"
            )
        idx = resolve_bands(info, list(wanted))
        probe_pixels(src, idx)
        quality = resolve_quality(info, cfg.quality, scene.stem, idx, dict(scene.assets) if scene.assets else None)
        stats = reference if reference is not None else _own_stats(src, idx, card, quality, info)
    if reference is None and (stats.pixels < MIN_STATS_PIXELS or min(info.grid.width, info.grid.height) < MIN_STATS_SIDE):
        log.warning("%s: %d x %d px with %d valid pixel(s): its own percentiles are not those of the scene it "
                    "belongs to, so classes may differ from the same pixels in a larger raster; give the scene it "
                    "was cut from with --stats-from (`stats_from` in a config)", redact(path), info.grid.width,
                    info.grid.height, stats.pixels)
    if info.grid.crs is None:
        raise InputError(f"{path}: has no CRS; outputs must be georeferenced, so assign one (e.g. with rio edit-info)")
    aoi = load_aoi(cfg.aoi, info.grid.crs) if cfg.aoi else None
    grid = TileGrid(info.grid.width, info.grid.height, tiling.tile_size, tiling.halo)
    tiles = list(grid)
    outside = 0
    if aoi is not None:
        kept = [t for t in tiles if box_intersects(aoi, t.core, info.grid)]
        outside = len(tiles) - len(kept)
        if not kept:
            raise AOIError(f"AOI {cfg.aoi} does not overlap {path}; check the AOI and its CRS")
        tiles = kept
    job = SceneJob(path, idx, stats, info.grid, aoi, model_zoom(info, card, cfg.native_resolution), quality)
    return ScenePlan(path, scene.stem, info, grid, job, tiles, outside)


def _own_stats(src, idx: list[int], card: ModelCard, quality: QualitySource | None, info: RasterInfo) -> BandStats:
    """The scene's percentiles over its clear pixels when it has a quality source, else over all valid ones."""
    if quality is None:
        return scene_stats(src, idx, card.normalization)
    reader = QualityReader(quality, info.grid, src)
    try:
        return scene_stats(src, idx, card.normalization, clear=reader.clear_overview)
    finally:
        reader.close()


def reference_stats(cfg: SegmentConfig, card: ModelCard) -> BandStats | None:
    """The scaling ``stats_from`` names, for every input of the run (None when it is not set): the
    scene statistics of a raster (over the bands ``cfg.bands`` or the card's, resolved on that raster),
    or the first input's ``normalization_stats`` of a geoseg ``manifest.json``."""
    source = cfg.stats_from
    if source is None:
        return None
    shown = f"--stats-from {redact(source)}"
    if source.lower().endswith(".json"):
        import json

        if not storage.exists(source):
            raise InputError(f"{shown}: no such file; give a raster or the manifest.json of a geoseg run")
        try:
            entries = json.loads(storage.read_bytes(source))["inputs"]
            data = entries[0]["normalization_stats"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise InputError(f"{shown}: not a geoseg manifest.json (no inputs[0].normalization_stats); give "
                             "the manifest.json a segment run wrote, or a raster") from exc
        return stats_from_dict(data, len(card.bands), shown)
    try:
        with open_raster(source) as src:
            info = RasterInfo.from_dataset(source, src)
            idx = resolve_bands(info, list(cfg.bands if cfg.bands is not None else card.bands))
            stats = scene_stats(src, idx, card.normalization)
    except (InputError, ConfigError) as exc:  # the message names the file; say which flag gave it
        raise type(exc)(f"--stats-from: {exc}") from exc
    log.info("%s: every input scaled by this raster's percentiles (bands %s)", shown, idx)
    return stats


RESAMPLE_TOLERANCE = 0.2
"""Inputs whose pixel size is within this share of the model's ``gsd_m`` run at their native size."""


def model_zoom(info: RasterInfo, card: ModelCard, native: bool) -> float:
    """Model pixels per input pixel for ``info`` (1.0: native): input pixel size / ``card.gsd_m``."""
    if native or card.gsd_m is None:
        return 1.0
    ratio = info.grid.pixel_size_m() / card.gsd_m
    if abs(ratio - 1) <= RESAMPLE_TOLERANCE:
        return 1.0
    log.info("%s: %.1f m pixels, model trained for %.1f m: tiles resampled by %.3f for the model "
             "(outputs stay on the input grid; --native-resolution to skip)", info.path,
             info.grid.pixel_size_m(), card.gsd_m, ratio)
    return round(ratio, 6)


def journal_key(ckpt: Checkpoint, plans: list[ScenePlan], tiling: Tiling, device: str) -> dict[str, Any]:
    """What the journaled tiles depend on, and nothing that differs between two runs of the same job.

    Inputs and their grids/bands/stats, model weights and card (classes, normalisation,
    architecture), the device setting (CPU fp32 and GPU fp16 results differ), tiling, and
    per scene the AOI *geometry* in the raster's CRS (an AOI file edited in place changes
    the masks of the tiles; the same AOI under another path does not) and the quality source
    (file, band, format, masked flags; a local mask file's size and modification time).
    """

    def aoi(p: ScenePlan) -> str | None:
        return hashlib.sha256(p.job.aoi.wkb).hexdigest() if p.job.aoi is not None else None

    def quality(p: ScenePlan) -> dict[str, Any] | None:
        q = p.job.quality
        if q is None:
            return None
        local = Path(q.path)  # a local mask edited in place changes size or modification time
        stamp = [local.stat().st_size, local.stat().st_mtime_ns] if q.separate and local.is_file() else None
        return {**q.describe(redact), "file": stamp}

    return {
        "model": ckpt.weights_sha256, "card": hashlib.sha256(ckpt.card.model_dump_json().encode()).hexdigest(),
        "device": device, "tile_size": tiling.tile_size, "halo": tiling.halo, "layout": TILE_LAYOUT,
        "scenes": [{"path": redact(p.path), "size": [p.info.grid.width, p.info.grid.height],
                    "transform": list(p.info.grid.transform)[:6],
                    "crs": p.info.grid.crs.to_string() if p.info.grid.crs else None, "bands": p.job.band_indexes,
                    "stats": p.job.stats.to_dict(), "aoi": aoi(p), "zoom": p.job.zoom,
                    "quality": quality(p), "tiles": [t.index for t in p.tiles]} for p in plans],
    }

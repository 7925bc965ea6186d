"""``segment``: the driver side of the job, from inputs to published outputs.

Per input raster: plan tiles, stream them through an executor (Ray actors or
in-process), stitch tile cores into scratch rasters as results arrive, then write the
class and confidence COGs, polygons, statistics and the manifest, and publish them
atomically. The driver only ever holds the results of the tiles in flight.
"""

from __future__ import annotations

import glob
import logging
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from geoseg import CLASS_NODATA, __version__
from geoseg.config import SegmentConfig
from geoseg.errors import AOIError, ConfigError, InputError, TileError
from geoseg.model import Checkpoint, checkpoint_payload, load_checkpoint, sha256_file
from geoseg.normalization import scene_stats
from geoseg.outputs import RUN_FILES, Staging, StitchedRaster, output_names, write_json
from geoseg.predict import CONFIDENCE_NODATA, SceneJob
from geoseg.raster import RasterInfo, box_intersects, load_aoi, open_raster, resolve_bands
from geoseg.runtime import Task, make_executor
from geoseg.stats import class_table, write_stats_csv
from geoseg.tiling import TileGrid

log = logging.getLogger(__name__)


@dataclass
class ScenePlan:
    """One input: where it is, its grid, its tiles, and what its worker job needs."""

    path: str
    stem: str
    info: RasterInfo
    grid: TileGrid
    job: SceneJob
    tiles: list
    outside_aoi: int = 0


@dataclass
class SceneProgress:
    counts: np.ndarray
    area_m2: np.ndarray
    remaining: int
    done: int = 0
    skipped: int = 0
    failed: list[dict] = field(default_factory=list)


@dataclass
class RunSummary:
    output_dir: Path
    files: list[Path]
    manifest: dict
    ok: bool


def expand_inputs(inputs: list[str]) -> list[str]:
    """Expand local globs; keep URLs and existing paths as they are. Errors name the missing input."""
    out: list[str] = []
    for item in inputs:
        if "://" in item or item.startswith("/vsi"):
            out.append(item)
        elif any(ch in item for ch in "*?["):
            hits = sorted(glob.glob(item))
            if not hits:
                raise InputError(f"input pattern {item!r} matches no file")
            out.extend(hits)
        elif not Path(item).exists():
            raise InputError(f"input {item}: no such file")
        else:
            out.append(item)
    if not out:
        raise ConfigError("no input rasters: pass INPUT paths or set `inputs` in the config")
    stems = [Path(p).stem for p in out]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise InputError(f"inputs share file names {dupes}: outputs are named by stem; rename or run them separately")
    return out


def plan_scene(path: str, cfg: SegmentConfig, ckpt: Checkpoint, tile_size: int, halo: int) -> ScenePlan:
    """Open ``path`` (header and a decimated read only), choose bands, scene stats, tiles."""
    card = ckpt.card
    with open_raster(path) as src:
        info = RasterInfo.from_dataset(path, src)
        wanted = cfg.bands if cfg.bands is not None else card.bands
        if len(wanted) != len(card.bands):
            raise ConfigError(
                f"bands: {len(wanted)} band(s) {wanted} given but model {card.name} takes {len(card.bands)} "
                f"({', '.join(card.bands)}); pass one band per model input, in that order"
            )
        idx = resolve_bands(info, list(wanted))
        stats = scene_stats(src, idx, card.normalization)
    if info.crs is None:
        raise InputError(f"{path}: has no CRS; outputs must be georeferenced, so assign one (e.g. with rio edit-info)")
    aoi = load_aoi(cfg.aoi, info.crs) if cfg.aoi else None
    grid = TileGrid(info.width, info.height, tile_size, halo)
    tiles = list(grid)
    outside = 0
    if aoi is not None:
        kept = [t for t in tiles if box_intersects(aoi, t.core, info.transform)]
        outside = len(tiles) - len(kept)
        if not kept:
            raise AOIError(f"AOI {cfg.aoi} does not overlap {path}; check the AOI and its CRS")
        tiles = kept
    job = SceneJob(path, idx, stats, info.transform, info.crs, aoi)
    return ScenePlan(path, Path(path).stem, info, grid, job, tiles, outside)


def segment(cfg: SegmentConfig, progress: bool = True) -> RunSummary:
    """Run the whole job for ``cfg``; raises :class:`TileError` if any tile failed."""
    from tqdm import tqdm

    from geoseg.vectorize import vectorize_file

    started = datetime.now(timezone.utc)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    if not cfg.output:
        raise ConfigError("output: no output directory; pass --output DIR or set `output` in the config")
    inputs = expand_inputs(cfg.inputs)
    ckpt = load_checkpoint(cfg.model)
    card = ckpt.card
    tile_size = cfg.tile_size or card.tile_size
    halo = cfg.halo if cfg.halo is not None else card.halo
    t0 = time.perf_counter()
    plans = [plan_scene(p, cfg, ckpt, tile_size, halo) for p in inputs]
    timings["plan"] = time.perf_counter() - t0

    out_dir = Path(cfg.output)
    names = [n for p in plans for n in _scene_files(p.stem, cfg).values()] + list(RUN_FILES)
    staging = Staging(out_dir, cfg.overwrite, names)
    ncls = len(card.classes)
    sinks: dict[int, tuple[StitchedRaster, StitchedRaster | None]] = {}
    try:
        for i, p in enumerate(plans):
            f = _scene_files(p.stem, cfg)
            cls_sink = StitchedRaster(staging.path(f["classes"]), p.info.width, p.info.height, p.info.crs,
                                      p.info.transform, CLASS_NODATA, cfg.outputs.blocksize, cfg.outputs.compress,
                                      colormap={**{c.id: c.rgba() for c in card.classes}, CLASS_NODATA: (0, 0, 0, 0)})
            conf_sink = (StitchedRaster(staging.path(f["confidence"]), p.info.width, p.info.height, p.info.crs,
                                        p.info.transform, CONFIDENCE_NODATA, cfg.outputs.blocksize, cfg.outputs.compress)
                         if cfg.outputs.confidence else None)
            sinks[i] = (cls_sink, conf_sink)
        progress_by_scene = {i: SceneProgress(np.zeros(ncls, np.int64), np.zeros(ncls), len(p.tiles)) for i, p in enumerate(plans)}
        tasks = [
            Task(i, tuple(p.tiles[k : k + cfg.runtime.tiles_per_task]))
            for i, p in enumerate(plans)
            for k in range(0, len(p.tiles), cfg.runtime.tiles_per_task)
        ]
        t0 = time.perf_counter()
        executor = make_executor(checkpoint_payload(ckpt), cfg.device, cfg.runtime, cfg.batch_size)
        timings["startup"] = time.perf_counter() - t0
        log.info("running on %s", executor.description)
        t0 = time.perf_counter()
        stage_seconds = {"read": 0.0, "predict": 0.0, "stitch": 0.0}
        try:
            total_tiles = sum(len(p.tiles) for p in plans)
            bar = tqdm(total=total_tiles, unit="tile", desc="segment", disable=not progress, dynamic_ncols=True)
            for outcome in executor.run([p.job for p in plans], tasks, cfg.runtime.max_task_retries):
                sp = progress_by_scene[outcome.task.scene]
                if outcome.results is None:
                    sp.failed.extend({"tile": t.index, "window": list(t.core.to_window().flatten()), "error": outcome.error}
                                     for t in outcome.task.tiles)
                else:
                    ts = time.perf_counter()
                    cls_sink, conf_sink = sinks[outcome.task.scene]
                    for r in outcome.results:
                        for k in ("read", "predict"):
                            stage_seconds[k] += r.seconds.get(k, 0.0)
                        if r.skipped:
                            sp.skipped += 1
                            continue
                        cls_sink.write(r.tile.core, r.classes)
                        if conf_sink is not None:
                            conf_sink.write(r.tile.core, r.confidence)
                        sp.counts += r.counts
                        sp.area_m2 += r.area_m2
                        sp.done += 1
                    stage_seconds["stitch"] += time.perf_counter() - ts
                bar.update(len(outcome.task.tiles))
            bar.close()
        finally:
            executor.close()
        timings["tiles"] = time.perf_counter() - t0
        timings.update({f"worker_{k}": v for k, v in stage_seconds.items() if k != "stitch"})
        timings["stitch"] = stage_seconds["stitch"]
        failed = {plans[i].path: sp.failed for i, sp in progress_by_scene.items() if sp.failed}

        t0 = time.perf_counter()
        written: list[str] = []
        per_input_stats: dict[str, list[dict]] = {}
        polygons: dict[str, int] = {}
        if not failed:
            for i, p in enumerate(plans):
                f = _scene_files(p.stem, cfg)
                cls_sink, conf_sink = sinks[i]
                tags = {
                    "class_names": ",".join(card.class_names),
                    "class_ids": ",".join(str(c.id) for c in card.classes),
                    "model": ckpt.model_id,
                    "source": p.path,
                    "software": f"geoseg {__version__}",
                }
                cls_sink.to_cog(staging.path(f["classes"]), tags=tags, band_description="class", overview_resampling="MODE")
                written.append(f["classes"])
                if conf_sink is not None:
                    conf_sink.to_cog(staging.path(f["confidence"]), tags={**tags, "units": "percent (max softmax probability)"},
                                     band_description="confidence", overview_resampling="AVERAGE")
                    written.append(f["confidence"])
                timings.setdefault("cog", 0.0)
                if cfg.outputs.polygons:
                    tv = time.perf_counter()
                    polygons[p.stem] = vectorize_file(staging.path(f["classes"]), staging.path(f["polygons"]), card.class_names)
                    timings["vectorize"] = timings.get("vectorize", 0.0) + time.perf_counter() - tv
                    written.append(f["polygons"])
                sp = progress_by_scene[i]
                per_input_stats[p.stem] = class_table(sp.counts, sp.area_m2, card.class_names)
        timings["write"] = time.perf_counter() - t0 - timings.get("vectorize", 0.0)

        ended = datetime.now(timezone.utc)
        timings["total"] = time.perf_counter() - t_start
        manifest = _manifest(cfg, ckpt, plans, progress_by_scene, per_input_stats, polygons, timings, started, ended,
                             failed, executor.description, tile_size, halo)
        if failed:
            write_json(staging.path("manifest.json"), manifest)
            for cls_sink, conf_sink in sinks.values():
                cls_sink.close()
                if conf_sink is not None:
                    conf_sink.close()
            n = sum(len(v) for v in failed.values())
            first = next(iter(failed.values()))[0]
            raise TileError(
                f"{n} tile(s) failed after retries; no outputs were published (existing results are untouched). "
                f"First failure: tile {first['tile']} of {next(iter(failed))}: {first['error']}. "
                f"Details: {staging.path('manifest.json')}"
            )
        stats_doc = {
            "inputs": {
                stem: {"classes": rows, "valid_pixels": int(sum(r["pixels"] for r in rows)),
                       "valid_area_ha": round(sum(r["area_ha"] for r in rows), 4)}
                for stem, rows in per_input_stats.items()
            }
        }
        write_json(staging.path("stats.json"), stats_doc)
        write_stats_csv(staging.path("stats.csv"), per_input_stats)
        write_json(staging.path("manifest.json"), manifest)
        files = staging.publish(written + list(RUN_FILES))
        staging.discard()
        return RunSummary(out_dir, files, manifest, True)
    except BaseException:
        for cls_sink, conf_sink in sinks.values():
            cls_sink.close()
            if conf_sink is not None:
                conf_sink.close()
        if not (staging.dir / "manifest.json").exists():
            staging.discard()
        raise


def _scene_files(stem: str, cfg: SegmentConfig) -> dict[str, str]:
    names = output_names(stem)
    if not cfg.outputs.confidence:
        names.pop("confidence")
    if not cfg.outputs.polygons:
        names.pop("polygons")
    return names


def _manifest(cfg, ckpt, plans, progress, stats, polygons, timings, started, ended, failed, runtime, tile_size, halo) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for pkg in ("geoseg", "torch", "segmentation-models-pytorch", "ray", "rasterio", "numpy", "shapely", "geopandas", "pyogrio"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    import rasterio

    versions["gdal"] = rasterio.__gdal_version__
    inputs = []
    for i, p in enumerate(plans):
        sp = progress[i]
        entry = {
            "path": p.path,
            "width": p.info.width,
            "height": p.info.height,
            "crs": p.info.crs.to_string() if p.info.crs else None,
            "bands": [p.info.band_names[b - 1] for b in p.job.band_indexes],
            "band_indexes": p.job.band_indexes,
            "normalization_stats": p.job.stats.to_dict(),
            "tiles": {"total": len(p.grid), "outside_aoi": p.outside_aoi, "processed": sp.done,
                      "skipped_nodata": sp.skipped, "failed": len(sp.failed)},
            "polygons": polygons.get(p.stem),
        }
        local = Path(p.path)
        if local.is_file():
            entry["size_bytes"] = local.stat().st_size
            entry["sha256"] = sha256_file(local)
        if sp.failed:
            entry["failed_tiles"] = sp.failed
        inputs.append(entry)
    return {
        "geoseg_version": __version__,
        "status": "failed" if failed else "success",
        "started": started.isoformat(),
        "ended": ended.isoformat(),
        "inputs": inputs,
        "model": {"id": ckpt.model_id, "path": str(ckpt.path), "name": ckpt.card.name, "version": ckpt.card.version,
                  "weights_sha256": ckpt.weights_sha256, "arch": ckpt.card.arch, "encoder": ckpt.card.encoder},
        "tile_size": tile_size,
        "halo": halo,
        "tiles": {
            "total": sum(len(p.grid) for p in plans),
            "outside_aoi": sum(p.outside_aoi for p in plans),
            "processed": sum(s.done for s in progress.values()),
            "skipped": sum(s.skipped for s in progress.values()),
            "failed": sum(len(s.failed) for s in progress.values()),
        },
        "runtime": runtime,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "config": cfg.model_dump(mode="json"),
        "versions": versions,
        "platform": {"python": platform.python_version(), "machine": platform.machine(), "node": platform.node()},
    }

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
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from geoseg import __version__
from geoseg.config import SegmentConfig
from geoseg.errors import AOIError, ConfigError, InputError, TileError
from geoseg.model import Checkpoint, checkpoint_payload, load_checkpoint, sha256_file
from geoseg.normalization import scene_stats
from geoseg.outputs import RUN_FILES, Staging, write_json
from geoseg.predict import SceneJob
from geoseg.raster import (
    RasterInfo,
    box_intersects,
    load_aoi,
    open_raster,
    resolve_bands,
)
from geoseg.runtime import Task, make_executor
from geoseg.stats import class_table, write_stats_csv
from geoseg.stitch import SceneWriter, scene_files
from geoseg.tiling import TileGrid

log = logging.getLogger(__name__)

PARALLEL_VECTORIZE_MIN_CPUS = 4
"""Cluster CPUs from which block-wise vectorization runs its per-block work as Ray tasks."""


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
class RunSummary:
    """What a successful run published: the output directory, the files (manifest last), the manifest."""

    output_dir: Path
    files: list[Path]
    manifest: dict


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
    started = datetime.now(timezone.utc)
    t_start = time.perf_counter()
    if not cfg.output:
        raise ConfigError("output: no output directory; pass --output DIR or set `output` in the config")
    inputs = expand_inputs(cfg.inputs)
    ckpt = load_checkpoint(cfg.model)
    tile_size = cfg.tile_size or ckpt.card.tile_size
    halo = cfg.halo if cfg.halo is not None else ckpt.card.halo
    plans = [plan_scene(p, cfg, ckpt, tile_size, halo) for p in inputs]
    timings = {"plan": time.perf_counter() - t_start}

    out = cfg.outputs
    names = [n for p in plans for n in scene_files(p.stem, out.confidence, out.polygons).values()] + list(RUN_FILES)
    staging = Staging(Path(cfg.output), cfg.overwrite, names)
    writers: list[SceneWriter] = []
    keep_staging = False
    try:
        writers = [
            SceneWriter(p.info, p.stem, staging.dir, ckpt.card, confidence=out.confidence, polygons=out.polygons,
                        blocksize=out.blocksize, compress=out.compress,
                        vectorize={"mmu_m2": out.mmu_ha * 1e4, "simplify_m": out.simplify_m,
                                   "block_size": out.vectorize_block})
            for p in plans
        ]
        t0 = time.perf_counter()
        executor = make_executor(checkpoint_payload(ckpt), cfg.device, cfg.runtime, cfg.batch_size)
        timings["startup"] = time.perf_counter() - t0
        try:
            _run_tiles(cfg, executor, plans, writers, timings, progress)
            executor.release_actors()  # inference is over: free the cores/GPUs for the write stage
            failed = any(w.failed for w in writers)
            # per-block vectorization on the cluster pays off with cores to spare (measured: slower on 2)
            map_fn = executor.map if executor.cpus >= PARALLEL_VECTORIZE_MIN_CPUS else None
            written = [] if failed else [n for w in writers for n in w.finish(ckpt.model_id, map_fn)]
        finally:
            executor.close()
        runtime = executor.description
        for key in ("stitch", "cog", "vectorize"):
            timings[key] = sum(w.seconds[key] for w in writers)
        timings["total"] = time.perf_counter() - t_start
        manifest = _manifest(cfg, ckpt, plans, writers, timings, started, runtime, tile_size, halo)
        write_json(staging.path("manifest.json"), manifest)
        if failed:
            keep_staging = True
            bad = [(w, f) for w in writers for f in w.failed]
            w, first = bad[0]
            raise TileError(
                f"{len(bad)} tile(s) failed after retries; no outputs were published (existing results are untouched). "
                f"First failure: tile {first['tile']} of {w.info.path}: {first['error']}. "
                f"Details: {staging.path('manifest.json')}"
            )
        tables = {w.stem: class_table(w.counts, w.area_m2, ckpt.card.class_names) for w in writers}
        write_json(staging.path("stats.json"), {"inputs": {
            stem: {"classes": rows, "valid_pixels": int(sum(r["pixels"] for r in rows)),
                   "valid_area_ha": round(sum(r["area_ha"] for r in rows), 4)}
            for stem, rows in tables.items()
        }})
        write_stats_csv(staging.path("stats.csv"), tables)
        files = staging.publish(written + list(RUN_FILES))
        staging.discard()
        return RunSummary(Path(cfg.output), files, manifest)
    except BaseException:
        for w in writers:
            w.close()
        if not keep_staging:
            staging.discard()
        raise


def _run_tiles(cfg: SegmentConfig, executor, plans: list[ScenePlan], writers: list[SceneWriter],
               timings: dict[str, float], progress: bool) -> None:
    """Stream every tile of every scene through one executor queue into the writers."""
    from tqdm import tqdm

    per_task = cfg.runtime.tiles_per_task
    tasks = (Task(i, tuple(p.tiles[k : k + per_task])) for i, p in enumerate(plans) for k in range(0, len(p.tiles), per_task))
    log.info("running on %s", executor.description)
    t0 = time.perf_counter()
    worker = {"read": 0.0, "predict": 0.0}
    bar = tqdm(total=sum(len(p.tiles) for p in plans), unit="tile", desc="segment", disable=not progress, dynamic_ncols=True)
    try:
        for outcome in executor.run([p.job for p in plans], tasks, cfg.runtime.max_task_retries):
            writer = writers[outcome.task.scene]
            if outcome.results is None:
                writer.fail(outcome.task.tiles, outcome.error)
            else:
                writer.add(outcome.results)
                for r in outcome.results:
                    for k in worker:
                        worker[k] += r.seconds.get(k, 0.0)
            bar.update(len(outcome.task.tiles))
    finally:
        bar.close()
    timings["tiles"] = time.perf_counter() - t0
    timings.update({f"worker_{k}": v for k, v in worker.items()})


def _manifest(cfg, ckpt, plans, writers, timings, started, runtime, tile_size, halo) -> dict:
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
    for p, sp in zip(plans, writers):
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
            "polygons": sp.polygon_count,
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
        "status": "failed" if any(w.failed for w in writers) else "success",
        "started": started.isoformat(),
        "ended": datetime.now(timezone.utc).isoformat(),
        "inputs": inputs,
        "model": {"id": ckpt.model_id, "path": str(ckpt.path), "name": ckpt.card.name, "version": ckpt.card.version,
                  "weights_sha256": ckpt.weights_sha256, "arch": ckpt.card.arch, "encoder": ckpt.card.encoder},
        "tile_size": tile_size,
        "halo": halo,
        "tiles": {
            "total": sum(len(p.grid) for p in plans),
            "outside_aoi": sum(p.outside_aoi for p in plans),
            "processed": sum(w.done for w in writers),
            "skipped": sum(w.skipped for w in writers),
            "failed": sum(len(w.failed) for w in writers),
        },
        "runtime": runtime,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "config": cfg.model_dump(mode="json"),
        "versions": versions,
        "platform": {"python": platform.python_version(), "machine": platform.machine(), "node": platform.node()},
    }

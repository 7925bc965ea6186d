"""``segment``: the driver side of the job, from inputs to published outputs.

Per input raster: plan tiles, stream them through an executor (Ray actors or
in-process), stitch tile cores into scratch rasters as results arrive, then write the
class and confidence COGs, polygons, statistics and the manifest, and publish them
atomically. The driver only ever holds the results of the tiles in flight.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from geoseg import __version__
from geoseg.config import SegmentConfig
from geoseg.errors import AOIError, ConfigError, GeosegError, InputError, TileError
from geoseg.io import storage
from geoseg.io.inputs import SceneInput, expand_inputs
from geoseg.io.publish import Staging, json_default, write_json
from geoseg.io.raster import (
    RasterInfo,
    box_intersects,
    load_aoi,
    open_raster,
    resolve_bands,
)
from geoseg.model.checkpoint import Checkpoint, checkpoint_payload, load_checkpoint, sha256_file
from geoseg.model.normalization import scene_stats
from geoseg.model.predict import SceneJob
from geoseg.runtime.executors import Task, make_executor
from geoseg.segment.journal import TileJournal, run_key
from geoseg.segment.stats import class_table, write_stats_csv
from geoseg.segment.stitch import SceneWriter, scene_files
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
    """What a successful run published: the output directory or ``s3://`` prefix, the files (manifest last), the manifest."""

    output_dir: str
    files: list[str]
    manifest: dict


RUN_FILES = ("stats.json", "stats.csv", "manifest.json")
"""Files of the whole run, published after the per-input files (``manifest.json`` last)."""

FAILED_MANIFEST = "manifest.failed.json"
"""Published instead of the outputs when tiles failed: which tiles, and why."""


def plan_scene(scene: SceneInput, cfg: SegmentConfig, ckpt: Checkpoint, tile_size: int, halo: int) -> ScenePlan:
    """Open the scene (header and a decimated read only), choose bands, scene stats, tiles."""
    card = ckpt.card
    path = scene.path
    with open_raster(path) as src:
        info = RasterInfo.from_dataset(path, src)
        if info.acquired is None and scene.acquired:
            info = dataclasses.replace(info, acquired=scene.acquired[:10])
        wanted = cfg.bands if cfg.bands is not None else card.bands
        if len(wanted) != len(card.bands):
            raise ConfigError(
                f"bands: {len(wanted)} band(s) {wanted} given but model {card.name} takes {len(card.bands)} "
                f"({', '.join(card.bands)}); pass one band per model input, in that order"
            )
        idx = resolve_bands(info, list(wanted))
        stats = scene_stats(src, idx, card.normalization)
    if info.grid.crs is None:
        raise InputError(f"{path}: has no CRS; outputs must be georeferenced, so assign one (e.g. with rio edit-info)")
    aoi = load_aoi(cfg.aoi, info.grid.crs) if cfg.aoi else None
    grid = TileGrid(info.grid.width, info.grid.height, tile_size, halo)
    tiles = list(grid)
    outside = 0
    if aoi is not None:
        kept = [t for t in tiles if box_intersects(aoi, t.core, info.grid)]
        outside = len(tiles) - len(kept)
        if not kept:
            raise AOIError(f"AOI {cfg.aoi} does not overlap {path}; check the AOI and its CRS")
        tiles = kept
    job = SceneJob(path, idx, stats, info.grid, aoi)
    return ScenePlan(path, scene.stem, info, grid, job, tiles, outside)


def segment(cfg: SegmentConfig, progress: bool = True) -> RunSummary:
    """Run the whole job for ``cfg``; raises :class:`TileError` if any tile failed.

    Every tile of every scene goes through one queue. Finished tiles are journaled under
    the output (:mod:`geoseg.segment.journal`) unless ``cfg.resume`` is off, so rerunning an
    interrupted job skips them.
    """
    started = datetime.now(UTC)
    t_start = time.perf_counter()
    if not cfg.output:
        raise ConfigError("output: no output directory; pass --output DIR or set `output` in the config")
    scenes = expand_inputs(cfg.inputs, cfg.stac_asset)
    ckpt = load_checkpoint(cfg.model)
    tile_size = cfg.tile_size or ckpt.card.tile_size
    halo = cfg.halo if cfg.halo is not None else ckpt.card.halo
    plans = [plan_scene(s, cfg, ckpt, tile_size, halo) for s in scenes]
    timings = {"plan": time.perf_counter() - t_start}

    out = cfg.outputs
    names = [n for p in plans for n in scene_files(p.stem, out.confidence, out.polygons).values()] + list(RUN_FILES)
    staging = Staging(cfg.output, cfg.overwrite, names)
    journal = None
    if cfg.resume:
        key = run_key(_journal_key(ckpt, plans, tile_size, halo, cfg.device))
        journal = TileJournal(cfg.output, key, [p.grid for p in plans],
                              cfg.runtime.checkpoint_tiles, cfg.runtime.checkpoint_seconds)
    writers: list[SceneWriter] = []
    try:
        writers = [
            SceneWriter(p.info, p.stem, staging.dir, ckpt.card, confidence=out.confidence, polygons=out.polygons,
                        blocksize=out.blocksize, compress=out.compress,
                        vectorize={"mmu_m2": out.mmu_ha * 1e4, "simplify_m": out.simplify_m,
                                   "block_size": out.vectorize_block})
            for p in plans
        ]
        t0 = time.perf_counter()
        resumed = _replay(journal, plans, writers) if journal else 0
        timings["resume"] = time.perf_counter() - t0
        todo = sum(len(p.tiles) for p in plans)
        executor, runtime, map_fn = None, "none (all tiles resumed from the journal)", None
        if todo:
            t0 = time.perf_counter()
            executor = make_executor(checkpoint_payload(ckpt), cfg.device, cfg.runtime, cfg.batch_size)
            timings["startup"] = time.perf_counter() - t0
            runtime = executor.description
        try:
            if executor is not None:
                try:
                    _run_tiles(cfg, executor, plans, writers, journal, timings, progress)
                finally:
                    if journal:
                        journal.flush()  # interrupted or not, finished tiles are kept
                executor.release_actors()  # inference is over: free the cores/GPUs for the write stage
                # per-block vectorization as tasks pays off with cores to spare (measured: slower on 2); the
                # tasks read the staged rasters, so they run on this (the driver's) node: its CPUs count
                map_fn = executor.map if executor.cpus >= PARALLEL_VECTORIZE_MIN_CPUS else None
            failed = any(w.failed for w in writers)
            written = [] if failed else [n for w in writers for n in w.finish(ckpt.model_id, map_fn)]
        finally:
            if executor is not None:
                executor.close()
        for key in ("stitch", "cog", "vectorize"):
            timings[key] = sum(w.seconds[key] for w in writers)
        if journal:
            timings["journal_write"] = journal.seconds
        timings["total"] = time.perf_counter() - t_start
        manifest = _manifest(cfg, ckpt, plans, writers, timings, started, runtime, tile_size, halo, resumed)
        if failed:
            failed_uri = storage.join(cfg.output, FAILED_MANIFEST)
            storage.write_bytes(failed_uri, json.dumps(manifest, indent=2, default=json_default).encode() + b"\n")
            bad = [(w, f) for w in writers for f in w.failed]
            w, first = bad[0]
            which = "; ".join(f"{x.info.path}: tiles {_brief([f['tile'] for f in x.failed])}" for x in writers if x.failed)
            attempts = sorted({f["attempts"] for _, f in bad})
            tries = (f"{attempts[0]} attempt(s) each" if len(attempts) == 1
                     else f"{attempts[0]} to {attempts[-1]} attempt(s)")
            raise TileError(
                f"{len(bad)} tile(s) failed after {tries}; no outputs were published "
                f"(existing results are untouched). Failed: {which}. "
                f"First error: tile {first['tile']} of {w.info.path}: {first['error']}. "
                f"Every failed tile and its error: {failed_uri}. Rerunning the same command retries only the failed tiles"
                + (" (the others are journaled)." if journal else ".")
            )
        write_json(staging.path("manifest.json"), manifest)
        tables = {w.stem: class_table(w.counts, w.area_m2, ckpt.card.class_names) for w in writers}
        write_json(staging.path("stats.json"), {"inputs": {
            stem: {"classes": rows, "valid_pixels": int(sum(r["pixels"] for r in rows)),
                   "valid_area_ha": round(sum(r["area_ha"] for r in rows), 4)}
            for stem, rows in tables.items()
        }})
        write_stats_csv(staging.path("stats.csv"), tables)
        files = staging.publish(written + list(RUN_FILES))
        staging.discard()
        try:  # the result is published: failing to tidy up is not a failed run
            if journal:
                journal.clear()
            storage.delete(storage.join(cfg.output, FAILED_MANIFEST))
        except (GeosegError, OSError) as exc:
            log.warning("outputs published, but the journal / %s could not be removed: %s", FAILED_MANIFEST, exc)
        return RunSummary(cfg.output, files, manifest)
    except BaseException:
        for w in writers:
            w.close()
        staging.discard()
        raise


def _brief(ids: list[int], limit: int = 20) -> str:
    ids = sorted(ids)
    return str(ids) if len(ids) <= limit else f"{ids[:limit]} and {len(ids) - limit} more"


def _journal_key(ckpt: Checkpoint, plans: list[ScenePlan], tile_size: int, halo: int, device: str) -> dict:
    """What the journaled tiles depend on, and nothing that differs between two runs of the same job.

    Inputs and their grids/bands/stats, model weights and card (classes, normalisation,
    architecture), the device setting (CPU fp32 and GPU fp16 results differ), tiling, and
    per scene the AOI *geometry* in the raster's CRS (an AOI file edited in place changes
    the masks of the tiles; the same AOI under another path does not).
    """
    import hashlib

    def aoi(p: ScenePlan) -> str | None:
        return hashlib.sha256(p.job.aoi.wkb).hexdigest() if p.job.aoi is not None else None

    return {
        "model": ckpt.weights_sha256, "card": hashlib.sha256(ckpt.card.model_dump_json().encode()).hexdigest(),
        "device": device, "tile_size": tile_size, "halo": halo,
        "scenes": [{"path": p.path, "size": [p.info.grid.width, p.info.grid.height],
                    "transform": list(p.info.grid.transform)[:6],
                    "crs": p.info.grid.crs.to_string() if p.info.grid.crs else None, "bands": p.job.band_indexes,
                    "stats": p.job.stats.to_dict(), "aoi": aoi(p), "tiles": [t.index for t in p.tiles]} for p in plans],
    }


def _replay(journal: TileJournal, plans: list[ScenePlan], writers: list[SceneWriter]) -> int:
    """Feed journaled tiles to the writers and drop them from the plans; return how many were resumed."""
    done: list[set[int]] = [set() for _ in plans]
    for scene, results in journal.restore():
        fresh = [r for r in results if r.tile.index not in done[scene]]
        writers[scene].add(fresh)
        done[scene].update(r.tile.index for r in fresh)
    resumed = sum(len(d) for d in done)
    if resumed:
        for p, d in zip(plans, done):
            p.tiles = [t for t in p.tiles if t.index not in d]
        log.info("resuming: %d tile(s) already finished by an earlier run (journal %s)", resumed, journal.root)
    return resumed


def _run_tiles(cfg: SegmentConfig, executor, plans: list[ScenePlan], writers: list[SceneWriter],
               journal: TileJournal | None, timings: dict[str, float], progress: bool) -> None:
    """Stream every tile of every scene through one executor queue into the writers (and the journal)."""
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
                writer.fail(outcome.task.tiles, outcome.error, outcome.attempts)
            else:
                writer.add(outcome.results)
                if journal:
                    journal.record(outcome.task.scene, outcome.results)
                for r in outcome.results:
                    for k in worker:
                        worker[k] += r.seconds.get(k, 0.0)
            bar.update(len(outcome.task.tiles))
    finally:
        bar.close()
    timings["tiles"] = time.perf_counter() - t0
    timings.update({f"worker_{k}": v for k, v in worker.items()})


def _manifest(cfg, ckpt, plans, writers, timings, started, runtime, tile_size, halo, resumed=0) -> dict:
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
            "width": p.info.grid.width,
            "height": p.info.grid.height,
            "crs": p.info.grid.crs.to_string() if p.info.grid.crs else None,
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
        "ended": datetime.now(UTC).isoformat(),
        "inputs": inputs,
        "model": {"id": ckpt.model_id, "path": cfg.model if cfg.model and storage.is_remote(cfg.model) else str(ckpt.path),
                  "name": ckpt.card.name, "version": ckpt.card.version,
                  "weights_sha256": ckpt.weights_sha256, "arch": ckpt.card.arch, "encoder": ckpt.card.encoder},
        "tile_size": tile_size,
        "halo": halo,
        "tiles": {
            "total": sum(len(p.grid) for p in plans),
            "outside_aoi": sum(p.outside_aoi for p in plans),
            "processed": sum(w.done for w in writers),
            "skipped": sum(w.skipped for w in writers),
            "failed": sum(len(w.failed) for w in writers),
            "resumed": resumed,
        },
        "runtime": runtime,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "config": cfg.model_dump(mode="json"),
        "versions": versions,
        "platform": {"python": platform.python_version(), "machine": platform.machine(), "node": platform.node()},
    }

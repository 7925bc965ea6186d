"""``segment``: the driver side of the job, from inputs to published outputs.

Per input raster: plan tiles (:mod:`geoseg.segment.plan`), stream them through an
executor (Ray actors or in-process, :mod:`geoseg.runtime.executors`), stitch tile cores
into scratch rasters as results arrive (:mod:`geoseg.segment.stitch`), then write the
class and confidence COGs, polygons, statistics and the manifest
(:mod:`geoseg.segment.manifest`), the STAC Items, Collection and ``report.html``
(:mod:`geoseg.segment.records`), and publish them atomically. The driver only ever
holds the results of the tiles in flight. With a ``sink`` (PostGIS, :mod:`geoseg.io.sink`),
the polygons and class areas are loaded in one transaction that commits only once the files
are published.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime

from geoseg.config import SegmentConfig
from geoseg.errors import ConfigError, ExitCode, GeosegError, RunInterrupted, TileError
from geoseg.io import storage
from geoseg.io.inputs import expand_inputs
from geoseg.io.lock import OutputLock
from geoseg.io.publish import Staging, json_text, naming_write_errors, write_json
from geoseg.io.sink.postgis import RunInfo, Sink, open_sink, output_key
from geoseg.io.urls import redact
from geoseg.model.checkpoint import checkpoint_payload, load_checkpoint
from geoseg.model.engines import prepare_payload
from geoseg.runtime.executors import Executor, Task, make_executor
from geoseg.runtime.local import lower_thread_priority
from geoseg.segment.journal import JOURNAL_DIR, TileJournal, run_key
from geoseg.segment.manifest import (
    InputResult,
    RunRecord,
    RunSummary,
    build_manifest,
    failure_message,
)
from geoseg.segment.plan import ScenePlan, Tiling, journal_key, plan_scene, reference_stats
from geoseg.segment.records import RECORD_FILES, item_name, write_records
from geoseg.segment.stats import class_table, stats_document, write_stats_csv
from geoseg.segment.stitch import SceneWriter, scene_files

log = logging.getLogger(__name__)

PARALLEL_VECTORIZE_MIN_CPUS = 4
"""Cluster CPUs from which block-wise vectorization runs its per-block work as Ray tasks."""

RUN_FILES = ("stats.json", "stats.csv", "manifest.json")
"""Files of the whole run, published after the per-input files (``manifest.json`` last)."""

FAILED_MANIFEST = "manifest.failed.json"
"""Published instead of the outputs when tiles failed: which tiles, and why."""


def segment(cfg: SegmentConfig, progress: bool = True) -> RunSummary:
    """Run the whole job for ``cfg``; raises :class:`TileError` if any tile failed.

    Every tile of every scene goes through one queue. Finished tiles are journaled under
    the output (:mod:`geoseg.segment.journal`) unless ``cfg.resume`` is off, so rerunning
    an interrupted job skips them. The output is locked for the whole run
    (:class:`~geoseg.io.lock.OutputLock`: one writer per output); a run that fails leaves no
    output folder it created, unless it holds tiles to resume from or the list of failed tiles.
    Ctrl-C and SIGTERM become :class:`RunInterrupted` saying how many tiles are saved.
    """
    started = datetime.now(UTC)
    t_start = time.perf_counter()
    if not cfg.output:
        raise ConfigError("output: no output directory; pass --output DIR or set `output` in the config")
    lock = OutputLock(cfg.output, "segment").acquire()
    run: RunRecord | None = None
    journal: TileJournal | None = None
    try:
        # a full or read-only disk (OSError, or GDAL's errors in the OS's words): an error naming the output
        with naming_write_errors(cfg.output, "; finished tiles are kept for a rerun where the journal "
                                             "could be written"):
            sink = open_sink(cfg.sink)  # before any model work: the database is reachable and its tables are ready
            scenes = expand_inputs(cfg.inputs, cfg.stac_asset)
            ckpt = load_checkpoint(cfg.model)
            tiling = Tiling.resolve(cfg, ckpt)
            reference = reference_stats(cfg, ckpt.card)
            run = RunRecord(cfg, ckpt, [plan_scene(s, cfg, ckpt, tiling, reference) for s in scenes], tiling, started)
            run.timings["plan"] = time.perf_counter() - t_start
            staging = Staging(cfg.output, cfg.overwrite, _final_names(run))
            if cfg.resume:
                journal = TileJournal(cfg.output, run_key(journal_key(ckpt, run.plans, tiling, cfg.device)),
                                      [p.grid for p in run.plans], cfg.runtime.checkpoint_tiles,
                                      cfg.runtime.checkpoint_seconds)
            return _run(run, staging, journal, sink, lock, progress, t_start)
    except (KeyboardInterrupt, SystemExit) as exc:
        code = ExitCode.TERMINATED if isinstance(exc, SystemExit) and exc.code == ExitCode.TERMINATED else None
        if isinstance(exc, SystemExit) and code is None:
            raise
        raise RunInterrupted(_interrupt_message(cfg, run, journal, code), code or ExitCode.INTERRUPTED) from None
    finally:
        lock.release()
        lock.remove_created_dir()  # only if this run made it and nothing is left in it


def _final_names(run: RunRecord) -> list[str]:
    """Every file name the run may publish (checked for existing outputs before any work)."""
    out = run.cfg.outputs
    names = [n for p in run.plans
             for n in (*scene_files(p.stem, out.confidence, out.polygons, p.job.quality is not None).values(),
                       item_name(p.stem))]
    return [*names, *RECORD_FILES, *RUN_FILES]


def _interrupt_message(cfg: SegmentConfig, run: RunRecord | None, journal: TileJournal | None,
                       code: ExitCode | None) -> str:
    what = "terminated (SIGTERM)" if code == ExitCode.TERMINATED else "interrupted (Ctrl-C)"
    untouched = "nothing was published and existing results are untouched"
    if run is None or not run.plans:
        return f"{what} before any tile ran; {untouched}"
    total = sum(len(p.grid) for p in run.plans)
    if journal is None:
        return f"{what}: {untouched}; no tiles were saved (`resume: false`): a rerun starts again"
    saved = run.resumed + journal.tiles_written
    if not saved:
        return f"{what} before any of the {total} tiles finished; {untouched}"
    return (f"{what}: {saved} of {total} tiles are saved in {storage.join(redact(str(cfg.output)), JOURNAL_DIR)}; "
            f"{untouched}. Rerun the same command to resume from them")


def _run(run: RunRecord, staging: Staging, journal: TileJournal | None, sink: Sink | None, lock: OutputLock,
         progress: bool, t_start: float) -> RunSummary:
    """Tiles, scene outputs and publishing of a planned ``run``; staging is discarded whatever happens."""
    cfg = run.cfg
    assert cfg.output is not None  # `segment` refuses a config without an output
    try:
        run.writers = [_scene_writer(p, cfg, run, staging) for p in run.plans]
        t0 = time.perf_counter()
        run.resumed = _replay(journal, run.plans, run.writers) if journal else 0
        run.timings["resume"] = time.perf_counter() - t0
        written = _compute_and_write(run, journal, progress)
        for key in ("stitch", "cog", "quicklook", "vectorize"):
            run.timings[key] = sum(w.seconds[key] for w in run.writers)
        if journal:
            run.timings["journal_write"] = journal.seconds
        run.timings["total"] = time.perf_counter() - t_start
        manifest = build_manifest(run)
        if run.failed:
            failed_uri = storage.join(cfg.output, FAILED_MANIFEST)
            storage.write_bytes(failed_uri, json_text(manifest).encode())
            raise TileError(failure_message(run, failed_uri, journal is not None))
        lock.verify()  # still the only writer: publishing may replace files
        return _publish(run, manifest, staging, written, journal, sink)
    finally:
        for w in run.writers:
            w.close()
        staging.discard()


def _scene_writer(p: ScenePlan, cfg: SegmentConfig, run: RunRecord, staging: Staging) -> SceneWriter:
    out = cfg.outputs
    return SceneWriter(p.info, p.stem, staging.dir, run.ckpt.card, confidence=out.confidence, polygons=out.polygons,
                       blocksize=out.blocksize, compress=out.compress,
                       vectorize={"mmu_m2": out.mmu_ha * 1e4, "simplify_m": out.simplify_m,
                                  "block_size": out.vectorize_block}, quality=p.job.quality, model_id=run.ckpt.model_id)


def _compute_and_write(run: RunRecord, journal: TileJournal | None, progress: bool) -> list[str]:
    """Run the tiles left after the replay, then (unless tiles failed) finish every scene; staged file names."""
    executor, map_fn = None, None
    pending: Future | None = None  # the journal's last chunk, written while the COGs are
    t_tail = time.perf_counter()  # the tail: from the last tile (the journal's last chunk included) to the end
    if sum(len(p.tiles) for p in run.plans):
        t0 = time.perf_counter()
        cfg = run.cfg
        payload = prepare_payload(checkpoint_payload(run.ckpt), cfg.engine, cfg.device)
        mpx = sum(t.core.width * t.core.height for p in run.plans for t in p.tiles) / 1e6
        executor = make_executor(payload, cfg.device, cfg.runtime, cfg.batch_size, mpx)
        run.timings["startup"] = time.perf_counter() - t0
        run.runtime = executor.description
    try:
        if executor is not None:
            try:
                _run_tiles(run, executor, journal, progress)
                t_tail = time.perf_counter()
            except BaseException:
                if journal:
                    journal.flush()  # interrupted or failed: finished tiles are kept
                raise
            if journal:  # kept whatever happens next; written beside the COGs (both mostly outside the GIL)
                pool = ThreadPoolExecutor(1, thread_name_prefix="geoseg-journal", initializer=lower_thread_priority)
                pending = pool.submit(journal.flush)
                pool.shutdown(wait=False)  # its thread ends with the job (no idle thread per run)
            executor.release_actors()  # inference is over: free the cores/GPUs for the write stage
            # per-block vectorization as tasks pays off with cores to spare (measured: slower on 2); the
            # tasks read the staged rasters, so they run on this (the driver's) node: its CPUs count
            map_fn = executor.map if executor.cpus >= PARALLEL_VECTORIZE_MIN_CPUS else None
        if run.failed:
            return []
        names = [n for w in run.writers for n in w.finish(run.ckpt.model_id, map_fn)]
        if pending is not None:
            pending.result()  # a journal that could not be written fails the run, as during the tiles
        run.timings["after_tiles"] = time.perf_counter() - t_tail  # journal, COGs, quicklooks, the last polygons
        return names
    finally:
        if pending is not None:
            _wait_quietly(pending)  # finished tiles are on disk before the run ends, whatever happened
        if executor is not None:
            executor.close()


def _wait_quietly(job: Future) -> None:
    """Wait for ``job``; an error of its own is logged (a run that is already failing keeps its error)."""
    exc = job.exception()
    if exc is not None:
        log.warning("the journal's last chunk could not be written: %s", exc)


def _publish(run: RunRecord, manifest: dict, staging: Staging, written: list[str],
             journal: TileJournal | None, sink: Sink | None) -> RunSummary:
    """Write the run files, publish everything (manifest last), tidy up; the typed summary.

    With a sink, the polygons and class areas are loaded first, in a transaction that is
    committed after the files are published (a failed load publishes nothing; a failed
    publish loads nothing).
    """
    cfg = run.cfg
    assert cfg.output is not None  # `segment` refuses a config without an output
    info = RunInfo("segment", output_key(cfg.output), run.ckpt.model_id, manifest["config"], started=run.started)
    if sink is not None:
        manifest["sink"] = {"url": sink.target.masked, "schema": sink.target.schema, "run_id": str(info.run_id)}
    names = [*written, *(item_name(w.stem) for w in run.writers), *RECORD_FILES, *RUN_FILES]  # what write_records writes
    manifest["files"] = sorted(n for n in names if n != "manifest.json")  # what --overwrite replaces next time
    write_json(staging.path("manifest.json"), manifest)
    tables = {w.stem: class_table(w.counts, w.area_m2, run.ckpt.card.class_names) for w in run.writers}
    quality = {w.stem: w.quality_summary() for w in run.writers if w.quality_source is not None}
    write_json(staging.path("stats.json"), stats_document(tables, quality))
    write_stats_csv(staging.path("stats.csv"), tables)
    records = write_records(run, staging.dir, tables)
    assert set(records) <= set(names), records  # every record is listed in the manifest
    loaded = None
    if sink is None:
        files = staging.publish(names)
    else:
        with sink.load(info) as load:
            load.replace_output()  # a rerun into this output replaces its rows
            for w in run.writers:
                load.insert("class_areas", [asdict(r) for r in tables[w.stem]], input=w.stem)
                if "polygons" in w.files:
                    load.copy_polygons("landcover_polygons", staging.path(w.files["polygons"]), input=w.stem)
            files = staging.publish(names)
        loaded = load.report
    try:  # the result is published: failing to tidy up is not a failed run
        if journal:
            journal.clear()
        storage.delete(storage.join(cfg.output, FAILED_MANIFEST))
    except (GeosegError, OSError) as exc:
        log.warning("outputs published, but the journal / %s could not be removed: %s", FAILED_MANIFEST, exc)
    inputs = tuple(InputResult(p.path, p.stem, p.info.grid.width, p.info.grid.height, tuple(tables[p.stem]))
                   for p in run.plans)
    return RunSummary(cfg.output, files, inputs, run.tile_counts(), run.runtime, dict(run.timings), manifest, loaded)


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



def _run_tiles(run: RunRecord, executor: Executor, journal: TileJournal | None, progress: bool) -> None:
    """Stream every tile of every scene through one executor queue into the writers (and the journal)."""
    from tqdm import tqdm

    cfg, plans, writers = run.cfg, run.plans, run.writers
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
    run.timings["tiles"] = time.perf_counter() - t0
    run.timings.update({f"worker_{k}": v for k, v in worker.items()})

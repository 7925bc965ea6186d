"""Scheduled change monitoring: segment each region's new periods, compare, append to the history store.

A run, for every region of the catalogue (``configs/monitor_*.yaml``, :class:`MonitorConfig`):

1. finds the periods that have imagery (:func:`discover`, forms below);
2. segments, in period order, every period newer than the last one stored (the first
   run backfills them all), with the AOI of the region (:func:`geoseg.segment.pipeline.segment`),
   and stores its class areas (:class:`geoseg.change.history.HistoryStore`); a period of several images
   (acquisitions) is segmented image by image into ``acquisitions/`` and composited
   (:func:`geoseg.change.composite.composite`, ``min_looks``) into one map, ``<period>_classes.tif``,
   whose share of clear looks (0-100) is also its ``<period>_confidence.tif``: its areas are stored
   and it is what change detection compares (:func:`_segment_period`);
3. compares each stored period with the one before it, unless already done
   (:func:`geoseg.change.detect.detect_change`; with ``guards.persistence: k`` the next ``k``
   periods must confirm the change, so the newest ``k`` periods wait for later runs), and
   appends the change polygons, the transition table and a summary to the history.

After a run that stored something, the static STAC catalog of the history (one Item per
region and period) and ``history/report.html`` are rebuilt (:mod:`geoseg.change.catalog`).

Idempotent: a period or comparison already in ``history/state.json`` is skipped, so a
rerun with no new imagery reads the state and writes nothing (no model work, Ray is
not even started). Periods older than the last stored one are reported and skipped
(the history is append-only). A region that fails is reported and the others go on;
the run then exits with :attr:`MonitorError.exit_code` naming the failed regions.

With a ``sink`` (PostGIS), each region's history is then brought up to date in the database, in
one transaction per region (:func:`geoseg.change.sink.load_region`): each region and period once,
a load that failed is caught up by the next run, and a failed load fails only its region.

``imagery`` forms (local or ``s3://``):

* a pattern with ``{period}``: ``data/pucallpa/landsat_{period}.tif``; periods are the
  values of ``{period}`` in the files that exist (or the listed ``periods``);
* a STAC ItemCollection / Item JSON (``.json``): the period of an Item is its
  ``datetime`` cut to ``stac_period`` (``year`` ``2020``, ``month`` ``2020-07`` or ``date``
  ``2020-07-14``); the asset is ``stac_asset`` or the first GeoTIFF/COG asset;
* a prefix ending in ``/`` (``s3://bucket/scenes/``): every ``.tif`` directly under it,
  the period being the first date-like token of its name (``2020``, ``2020-07``, ``2020-07-14``).

Several images of one period (STAC items cut to the same period, prefix files with the same token, or
the matches of an extra ``*`` in the pattern, ``landsat_{period}_*.tif``, whose period must then be a
date-like token) make that period a composite; :func:`discover` lists them.

Periods are ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` strings, which sort chronologically; a
listed period of another form is a config error, a discovered one (``landsat_2020_old.tif``
for the pattern ``landsat_{period}.tif``) is skipped with a warning.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from geoseg.change.report import summary_row
from geoseg.config import PERIOD_FORMAT, ChangeConfig, MonitorConfig, RegionConfig
from geoseg.errors import ConfigError, GeosegError, InputError
from geoseg.io import storage
from geoseg.io.sink.postgis import RunInfo, Sink, open_sink, output_key
from geoseg.runtime.cluster import RaySession

log = logging.getLogger(__name__)

@dataclass
class RegionResult:
    """What a run did for one region (``error`` set when it failed)."""

    name: str
    segmented: list[str] = field(default_factory=list)
    changes: list[dict] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    skipped_older: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)
    """What was loaded into the sink (``period 2000``, ``change 1985 -> 2000``)."""
    error: str | None = None


def run_monitor(cfg: MonitorConfig, progress: bool = False) -> list[RegionResult]:
    """One scheduled run over every region; failures are caught per region (see :class:`RegionResult`)."""
    from geoseg.change.history import HistoryStore
    from geoseg.model.checkpoint import load_checkpoint

    store = HistoryStore(cfg.output_root)
    sink = open_sink(cfg.sink)  # before any model work: the database is reachable and its tables are ready
    load_checkpoint(cfg.segment.model)  # a broken model fails the run (exit 2) before Ray starts, not each region
    run = RunInfo("monitor", output_key(cfg.output_root), cfg.segment.model, cfg.model_dump(mode="json"))
    ray = RaySession(cfg.segment.runtime.address, local=bool(cfg.segment.runtime.local))
    results = []
    try:
        for region in cfg.regions:
            res = RegionResult(region.name)
            try:
                _run_region(region, cfg, store, ray, res, progress)
            except Exception as exc:  # a failed region must not stop the others
                _fail(res, exc)
            if sink is not None:  # what the store holds, even when a later period of the region failed
                _load_region(sink, store, region.name, run, res)
            results.append(res)
    finally:
        ray.close()
    if any(r.segmented or r.changes for r in results):
        _publish_history(store)
    return results


def _publish_history(store) -> None:
    """Rebuild the STAC catalog and ``history/report.html`` (:mod:`geoseg.change.catalog`) after new results."""
    from geoseg.change.catalog import write_catalog, write_report

    try:
        write_catalog(store)
        write_report(store)
    except Exception as exc:  # the history itself is stored: a catalog that fails to build must not hide it
        log.error("the history is stored, but its STAC catalog / report could not be written: %s", exc, exc_info=True)


def _fail(res: RegionResult, exc: Exception) -> None:
    error = str(exc) if isinstance(exc, GeosegError) else f"{type(exc).__name__}: {exc}"
    res.error = f"{res.error}; {error}" if res.error else error
    log.error("region %s failed: %s", res.name, error, exc_info=not isinstance(exc, GeosegError))


def _load_region(sink: Sink, store, region: str, run: RunInfo, res: RegionResult) -> None:
    from geoseg.change.sink import load_region

    try:
        res.loaded = load_region(sink, store, region, run)
    except Exception as exc:  # like a failed region: reported, and the others go on
        note = " (the history files are up to date; the next run loads the rest)"
        _fail(res, GeosegError(f"{exc}{note}") if isinstance(exc, GeosegError) else exc)


def _run_region(region: RegionConfig, cfg: MonitorConfig, store, ray: RaySession, res: RegionResult, progress: bool) -> None:
    images = discover(region.imagery, region.periods or cfg.periods, stac_asset=region.stac_asset,
                      stac_period=region.stac_period)
    stored = store.region_state(region.name)["periods"]
    last = max(stored) if stored else None
    for period, image in images.items():
        if period in stored:
            continue
        if last is not None and period < last:
            res.skipped_older.append(period)
            log.warning("region %s: period %s is older than the last stored period %s; skipped (append-only)",
                        region.name, period, last)
            continue
        ray.ensure()
        log.info("region %s: segmenting period %s (%s)", region.name, period, image)
        rows, entry = _segment_period(region, cfg, store, period, image, progress)
        store.record_period(region.name, period, rows, entry)
        res.segmented.append(period)
    _compare_periods(region, cfg, store, res)


LOOKS_DIR = "acquisitions"
"""Sub-folder of a period with several images: the segment outputs of each, composited into the period."""


def _segment_period(region: RegionConfig, cfg: MonitorConfig, store, period: str, image: str | list[str],
                    progress: bool) -> tuple[list[dict], dict]:
    """Segment a period's image(s) with the region's AOI: ``(class-area rows, state entry)`` of its class map.

    One image: its segment outputs in the period folder. Several: each segmented into ``acquisitions/``,
    then composited (:func:`geoseg.change.composite.composite`, ``min_looks``) into ``<period>_classes.tif``;
    the composite's share of clear looks (0-100) is written as ``<period>_confidence.tif`` too, the
    confidence that change detection's ``min_confidence`` guard reads. Areas are the composite's, and so are
    the land-cover polygons (``<period>_polygons.gpkg``) when ``segment.outputs.polygons`` is on.
    """
    from geoseg.segment.pipeline import segment

    images = [image] if isinstance(image, str) else list(image)
    out = store.period_dir(region.name, period)
    seg_out = out if len(images) == 1 else storage.join(out, LOOKS_DIR)
    summary = segment(cfg.segment.model_copy(update={"inputs": images, "output": seg_out, "aoi": region.aoi,
                                                     "overwrite": True}), progress=progress)
    names = {storage.name(f): f for f in summary.files}
    rel = ("regions", region.name, "periods", period)
    entry = {"image": image, "model": summary.manifest["model"]["id"]}
    if len(images) == 1:
        classes = next(n for n in names if n.endswith("_classes.tif"))
        stats = json.loads(storage.read_bytes(storage.join(out, "stats.json")))
        (s,) = stats["inputs"].values()
        confidence = classes[:-len("_classes.tif")] + "_confidence.tif"
        rows = [{**r, "valid_area_ha": s["valid_area_ha"]} for r in s["classes"]]
        entry.update({"classes": "/".join((*rel, classes)),
                      "confidence": "/".join((*rel, confidence)) if confidence in names else None})
    else:
        from geoseg.change.composite import class_rows, composite, composite_files

        maps = sorted(f for n, f in names.items() if n.endswith("_classes.tif"))
        min_looks = min(cfg.min_looks, len(maps))
        if min_looks < cfg.min_looks:
            log.warning("region %s: period %s has %d image(s), fewer than min_looks %d: a pixel needs all of them",
                        region.name, period, len(maps), cfg.min_looks)
        result = composite(maps, out, name=period, min_looks=min_looks, block_size=cfg.block_size, overwrite=True)
        files = composite_files(period)
        confidence = f"{period}_confidence.tif"
        storage.write_bytes(storage.join(out, confidence), storage.read_bytes(storage.join(out, files["share"])))
        rows = class_rows(result.document)
        if cfg.segment.outputs.polygons:
            _composite_polygons(cfg, storage.join(out, files["classes"]), storage.join(out, f"{period}_polygons.gpkg"))
        entry.update({"classes": "/".join((*rel, files["classes"])), "confidence": "/".join((*rel, confidence)),
                      "composite": "/".join((*rel, files["summary"])), "min_looks": min_looks,
                      "acquisitions": ["/".join((*rel, LOOKS_DIR, storage.name(m))) for m in maps]})
    entry["processed"] = datetime.now(UTC).isoformat()
    return rows, entry


def _composite_polygons(cfg: MonitorConfig, classes: str, polygons: str) -> None:
    """Land-cover polygons of a composite class map (local or ``s3://``), with the segment outputs' MMU and
    simplification, written to ``polygons`` (the layer a period's ``*_polygons.gpkg`` has)."""
    import tempfile
    from pathlib import Path

    from geoseg.vector.polygons import vectorize_to_file

    o = cfg.segment.outputs
    with tempfile.TemporaryDirectory(prefix="geoseg-composite-") as tmp:
        src = storage.download(classes, Path(tmp) / storage.name(classes)) if storage.is_remote(classes) else classes
        dst = Path(tmp) / storage.name(polygons)
        vectorize_to_file(src, dst, overwrite=True, mmu_m2=o.mmu_ha * 1e4, simplify_m=o.simplify_m,
                          block_size=o.vectorize_block)
        storage.upload(dst, polygons)


def _compare_periods(region: RegionConfig, cfg: MonitorConfig, store, res: RegionResult) -> None:
    from geoseg.change.detect import POLYGON_LAYER, detect_change

    state = store.region_state(region.name)
    periods = sorted(state["periods"])
    g = cfg.guards
    opts = ChangeConfig(min_confidence=g.min_confidence, mmu_ha=g.mmu_ha, grid="after", block_size=cfg.block_size)
    for i in range(1, len(periods)):
        before, after = periods[i - 1], periods[i]
        if after in state["changes"]:
            continue
        confirm = periods[i + 1:i + 1 + g.persistence]
        if len(confirm) < g.persistence:
            res.pending.append(after)
            continue

        def classes(p: str) -> str:
            return store.uri(*state["periods"][p]["classes"].split("/"))

        out = store.change_dir(region.name, before, after)
        log.info("region %s: change %s -> %s%s", region.name, before, after,
                 f" (confirmed by {', '.join(confirm)})" if confirm else "")
        result = detect_change(classes(before), classes(after), out, confirm=[classes(p) for p in confirm],
                               options=opts, overwrite=True)
        r = result.report
        summary = summary_row(r, confirm)
        polygons = store.read_polygons(storage.join(out, "change_polygons.gpkg"), POLYGON_LAYER)
        transitions = [{k: t[k] for k in ("from_class", "to_class", "pixels", "area_ha")} for t in r.document["transitions"]]
        store.record_change(region.name, before, after, polygons, transitions, summary, {
            "before": before, "confirm": confirm or None, "dir": "/".join(("regions", region.name, "changes", storage.name(out))),
            "processed": datetime.now(UTC).isoformat()})
        res.changes.append({"before": before, "after": after, **summary})


# --------------------------------------------------------------------------- imagery discovery


PERIOD_TOKEN = re.compile(r"(?<!\d)(\d{4}(?:-\d{2}(?:-\d{2})?)?)(?!\d)")
STAC_CUT = {"year": 4, "month": 7, "date": 10}


def discover(imagery: str, periods: list[str] | None = None, *, stac_asset: str | None = None,
             stac_period: str = "date") -> dict[str, str | list[str]]:
    """``{period: image}`` in period order; with ``periods``, exactly those (a missing one is an error).

    A period with one image maps to its path or URI (as it always did), one with several (STAC items cut to
    the same ``stac_period``, files of a prefix with the same period token, a pattern with an extra ``*``)
    to the sorted list of them.
    """
    if imagery.lower().endswith(".json"):
        found = _from_stac(imagery, stac_asset, stac_period)
    elif "{period}" in imagery:
        if periods is not None:
            out = {p: _pattern_images(imagery, p) for p in periods}
            absent = [(p, imagery.replace("{period}", p)) for p, u in out.items() if not u]
            if absent:
                p, u = absent[0]
                raise InputError(f"no image for period {p}: {u} does not exist ({len(absent)} of {len(out)} periods "
                                 "missing); add the image or remove the period from `periods`")
            return {p: _one_or_list(out[p]) for p in sorted(out)}
        found = _from_pattern(imagery)
    elif imagery.endswith("/"):
        found = _from_prefix(imagery)
    else:
        raise ConfigError(f"imagery {imagery!r}: give a pattern with {{period}} (e.g. data/landsat_{{period}}.tif), "
                          "a STAC ItemCollection .json, or a directory/s3:// prefix ending in /")
    odd = sorted(p for p in found if not re.match(PERIOD_FORMAT, p))
    if odd:
        log.warning("imagery %s: skipped %s: not a period (YYYY, YYYY-MM or YYYY-MM-DD)", imagery,
                    ", ".join(", ".join(found.pop(p)) for p in odd))
    if periods is not None:
        missing = [p for p in periods if p not in found]
        if missing:
            raise InputError(f"imagery {imagery}: no image for period(s) {missing} (found {sorted(found)}); add "
                             "the imagery or remove them from `periods`")
        found = {p: found[p] for p in periods}
    if not found:
        raise InputError(f"imagery {imagery}: no image found; check the pattern/prefix and that the files exist")
    return {p: _one_or_list(found[p]) for p in sorted(found)}


def _one_or_list(images: list[str]) -> str | list[str]:
    return images[0] if len(images) == 1 else sorted(images)


def _pattern_images(pattern: str, period: str) -> list[str]:
    """The images of one listed ``period``: the file itself, or the matches of the pattern's extra ``*``."""
    path = pattern.replace("{period}", period)
    if "*" in pattern:
        return storage.glob(path)
    return [path] if storage.exists(path) else []


def _from_pattern(pattern: str) -> dict[str, list[str]]:
    """Periods of the files matching ``pattern``; with an extra ``*``, the period is a ``YYYY[-MM[-DD]]`` token."""
    head, _, tail = pattern.partition("{period}")
    wildcard = pattern.replace("{period}", "*")
    hits = storage.glob(wildcard)
    tail = tail.replace("{period}", "")
    if "*" in pattern:  # the glob could take any part of the name: the period must look like one
        def esc(part: str) -> str:
            return "[^/]*".join(re.escape(x) for x in part.split("*"))
        rx = re.compile(esc(head) + r"(?<!\d)(?P<period>\d{4}(?:-\d{2}(?:-\d{2})?)?)(?!\d)" + esc(tail) + "$")
    else:
        rx = re.compile(re.escape(head) + r"(?P<period>[^/]+?)" + re.escape(tail) + "$")
    out: dict[str, list[str]] = {}
    for h in hits:
        m = rx.match(h)
        if m:
            out.setdefault(m["period"], []).append(h)
    return out


def _from_prefix(prefix: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in storage.listdir(prefix):
        if not name.lower().endswith((".tif", ".tiff")):
            continue
        m = PERIOD_TOKEN.search(name)
        if m is not None:
            out.setdefault(m[1], []).append(storage.join(prefix, name))
    return out


def _from_stac(uri: str, asset: str | None, cut: str) -> dict[str, list[str]]:
    from geoseg.io.inputs import read_stac

    out: dict[str, list[str]] = {}
    for scene in read_stac(uri, asset):
        if not scene.acquired:
            raise InputError(f"{uri}: item {scene.stem!r} has no properties.datetime, so its period is unknown")
        out.setdefault(scene.acquired[: STAC_CUT[cut]], []).append(scene.path)
    return out


def format_result(r: RegionResult) -> str:
    """One region's outcome as a few lines of text."""
    if r.error:
        return f"region {r.name}: FAILED: {r.error}"
    if not (r.segmented or r.changes or r.pending or r.skipped_older or r.loaded):
        return f"region {r.name}: up to date (nothing new)"
    lines = [f"region {r.name}: {len(r.segmented)} new period(s) {r.segmented}, {len(r.changes)} comparison(s)"]
    for c in r.changes:
        lines.append(f"  {c['before']} -> {c['after']}: forest lost {c['deforestation_ha']:.1f} ha, gained "
                     f"{c['reforestation_ha']:.1f} ha, urbanization {c['urbanization_ha']:.1f} ha, water gain "
                     f"{c['water_gain_ha']:.1f} / loss {c['water_loss_ha']:.1f} ha (uncertain {c['uncertain_ha']:.1f} ha)")
    if r.pending:
        lines.append(f"  waiting for confirming period(s): {r.pending}")
    if r.skipped_older:
        lines.append(f"  skipped (older than the last stored period): {r.skipped_older}")
    if r.loaded:
        lines.append(f"  loaded into the sink: {', '.join(r.loaded)}")
    return "\n".join(lines)

"""What a segment run reports: typed results for callers, ``manifest.json`` and the failure message.

:class:`RunSummary` is what :func:`geoseg.segment.pipeline.segment` returns; its
``manifest`` is the JSON document published as ``manifest.json`` (inputs, model,
resolved config, versions, tile counts, seconds per stage).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from geoseg import __version__
from geoseg.config import SegmentConfig
from geoseg.io import storage
from geoseg.io.sink.postgis import LoadReport
from geoseg.io.urls import redact, redact_text
from geoseg.model.checkpoint import Checkpoint, sha256_file
from geoseg.segment.plan import ScenePlan, Tiling
from geoseg.segment.stats import ClassArea
from geoseg.segment.stitch import SceneWriter

VERSIONED_PACKAGES = ("geoseg", "torch", "segmentation-models-pytorch", "ray", "rasterio", "numpy", "shapely",
                      "geopandas", "pyogrio")
"""Packages whose versions every manifest records (plus GDAL's)."""


@dataclass(frozen=True, slots=True)
class TileCounts:
    """Tiles of a run: in the grids, outside the AOI, computed, all-nodata, failed, replayed from the journal."""

    total: int
    outside_aoi: int
    processed: int
    skipped: int
    failed: int
    resumed: int


@dataclass(frozen=True, slots=True)
class InputResult:
    """One input of a finished run: its size in pixels and the area of each class."""

    path: str
    stem: str
    width: int
    height: int
    classes: tuple[ClassArea, ...]


@dataclass(frozen=True)
class RunSummary:
    """What a successful run published: where, the files (manifest last), per-input results, the manifest,
    and what was loaded into the sink (None without one)."""

    output_dir: str
    files: list[str]
    inputs: tuple[InputResult, ...]
    tiles: TileCounts
    runtime: str
    timings: dict[str, float]
    manifest: dict[str, Any] = field(repr=False)
    sink: LoadReport | None = None

    @property
    def pixels(self) -> int:
        return sum(i.width * i.height for i in self.inputs)


@dataclass
class RunRecord:
    """The state of a run that the manifest describes (filled in as the run goes)."""

    cfg: SegmentConfig
    ckpt: Checkpoint
    plans: list[ScenePlan]
    tiling: Tiling
    started: datetime
    writers: list[SceneWriter] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    runtime: str = "none (all tiles resumed from the journal)"
    resumed: int = 0

    @property
    def failed(self) -> bool:
        return any(w.failed for w in self.writers)

    def tile_counts(self) -> TileCounts:
        return TileCounts(
            total=sum(len(p.grid) for p in self.plans),
            outside_aoi=sum(p.outside_aoi for p in self.plans),
            processed=sum(w.done for w in self.writers),
            skipped=sum(w.skipped for w in self.writers),
            failed=sum(len(w.failed) for w in self.writers),
            resumed=self.resumed,
        )


def build_manifest(run: RunRecord) -> dict[str, Any]:
    """The ``manifest.json`` document of ``run``."""
    cfg, ckpt = run.cfg, run.ckpt
    inputs = []
    for p, w in zip(run.plans, run.writers, strict=True):
        g = p.info.grid
        entry: dict[str, Any] = {
            "path": redact(p.path),
            "width": g.width,
            "height": g.height,
            "crs": g.crs.to_string() if g.crs else None,
            "bands": [p.info.band_names[b - 1] for b in p.job.band_indexes],
            "band_indexes": p.job.band_indexes,
            "normalization_stats": p.job.stats.to_dict(),
            "pixel_size_m": round(g.pixel_size_m(), 3),
            "model_zoom": p.job.zoom,
            "tiles": {"total": len(p.grid), "outside_aoi": p.outside_aoi, "processed": w.done,
                      "skipped_nodata": w.skipped, "failed": len(w.failed)},
            "polygons": w.polygon_count,
        }
        local = Path(p.path)
        if local.is_file():
            entry["size_bytes"] = local.stat().st_size
            entry["sha256"] = sha256_file(local)
        if w.quality_source is not None:
            entry["quality"] = {**w.quality_source.describe(redact), **w.quality_summary()}
        if w.failed:
            entry["failed_tiles"] = w.failed
        inputs.append(entry)
    tiles = run.tile_counts()
    return {
        "geoseg_version": __version__,
        "status": "failed" if run.failed else "success",
        "started": run.started.isoformat(),
        "ended": datetime.now(UTC).isoformat(),
        "inputs": inputs,
        "model": {"id": ckpt.model_id, "path": redact(cfg.model) if cfg.model and storage.is_remote(cfg.model) else str(ckpt.path),
                  "name": ckpt.card.name, "version": ckpt.card.version,
                  "weights_sha256": ckpt.weights_sha256, "arch": ckpt.card.arch, "encoder": ckpt.card.encoder},
        "tile_size": run.tiling.tile_size,
        "halo": run.tiling.halo,
        "tiles": {"total": tiles.total, "outside_aoi": tiles.outside_aoi, "processed": tiles.processed,
                  "skipped": tiles.skipped, "failed": tiles.failed, "resumed": tiles.resumed},
        "runtime": run.runtime,
        "timings_s": {k: round(v, 3) for k, v in run.timings.items()},
        "config": redacted_config(cfg),
        "versions": versions(),
        "platform": {"python": platform.python_version(), "machine": platform.machine(), "node": platform.node()},
    }


def redacted_config(cfg: SegmentConfig) -> dict[str, Any]:
    """The resolved config as written: every input, output, model, AOI, stats source and mask location :func:`redact`-ed."""
    doc = cfg.model_dump(mode="json")
    doc["inputs"] = [redact(i) for i in doc["inputs"]]
    for key in ("output", "model", "aoi", "stats_from"):
        if doc.get(key):
            doc[key] = redact(doc[key])
    if doc["quality"].get("mask"):
        doc["quality"]["mask"] = redact(doc["quality"]["mask"])
    return doc


def versions() -> dict[str, str | None]:
    """Installed versions of :data:`VERSIONED_PACKAGES` and GDAL."""
    from importlib.metadata import PackageNotFoundError, version

    import rasterio

    out: dict[str, str | None] = {}
    for pkg in VERSIONED_PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    out["gdal"] = rasterio.__gdal_version__
    return out


def failure_message(run: RunRecord, failed_uri: str, journaled: bool) -> str:
    """What the user reads when tiles failed: how many, which, the first error, where the list is."""
    bad = [(w, f) for w in run.writers for f in w.failed]
    w, first = bad[0]
    which = "; ".join(f"{redact(x.info.path)}: tiles {_brief([f['tile'] for f in x.failed])}" for x in run.writers if x.failed)
    attempts = sorted({f["attempts"] for _, f in bad})
    tries = f"{attempts[0]} attempt(s) each" if len(attempts) == 1 else f"{attempts[0]} to {attempts[-1]} attempt(s)"
    return (
        f"{len(bad)} tile(s) failed after {tries}; no outputs were published "
        f"(existing results are untouched). Failed: {which}. "
        f"First error: tile {first['tile']} of {redact(w.info.path)}: {redact_text(str(first['error']))}. "
        f"Every failed tile and its error: {failed_uri}. Rerunning the same command retries only the failed tiles"
        + (" (the others are journaled)." if journaled else ".")
    )


def _brief(ids: list[int], limit: int = 20) -> str:
    ids = sorted(ids)
    return str(ids) if len(ids) <= limit else f"{ids[:limit]} and {len(ids) - limit} more"

"""What a change comparison reports: the tallies of the two passes, ``transitions.json`` and a typed view.

:class:`Tally` accumulates the transition table, the guards' removals and the nodata
areas block by block; :func:`report_document` turns it into the ``transitions.json``
document; :class:`ChangeReport` is the typed summary callers read (CLI, monitor).
Areas are in hectares (rounded to 1 m²), pixel counts on the common grid.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geoseg import __version__
from geoseg.change.align import DateMap
from geoseg.change.transitions import (
    Legend,
    TransitionCounter,
    by_pair,
    change_type_summary,
    matrix,
    measure,
    transition_rows,
)
from geoseg.config import ChangeConfig
from geoseg.grid import GeoGrid

POLYGON_LAYER = "change"
"""Layer name of ``change_polygons.gpkg``."""

GUARDS = ("confidence", "persistence", "mmu")
"""The guards against false change, in the order they apply."""


@dataclass
class Tally:
    """Running totals of a comparison with ``n`` classes: the published table, removals per guard, nodata."""

    n: int
    table: TransitionCounter = field(init=False)
    removed: dict[str, TransitionCounter] = field(init=False)
    nodata: dict[str, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        self.table = TransitionCounter(self.n)
        self.removed = {k: TransitionCounter(self.n) for k in ("confidence", "persistence_reverted",
                                                               "persistence_nodata", "mmu")}
        self.nodata = {k: np.zeros(2) for k in ("before", "after", "either", "grid", "quality_before", "quality_after",
                                                "quality_either")}


@dataclass(frozen=True, slots=True)
class Area:
    """A measured area: pixels on the common grid and hectares."""

    pixels: int
    area_ha: float

    @classmethod
    def of(cls, d: dict[str, Any]) -> Area:
        return cls(int(d["pixels"]), float(d["area_ha"]))


@dataclass(frozen=True)
class ChangeReport:
    """The typed summary of ``transitions.json`` (:attr:`document`, the full report)."""

    valid: Area
    unchanged: Area
    changed: Area
    uncertain: Area
    nodata_before: Area
    nodata_after: Area
    quality_excluded: Area
    """The part of the nodata of either date that a quality mask flagged (cloud, shadow, ...): never change."""
    removed: dict[str, Area]
    """Hectares each guard made uncertain, by guard (:data:`GUARDS`)."""
    change_types: dict[str, Area]
    polygons: int
    document: dict[str, Any] = field(repr=False)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> ChangeReport:
        nd, g = doc["nodata_excluded"], doc["guards"]
        return cls(
            valid=Area.of(doc["valid"]), unchanged=Area.of(doc["unchanged"]), changed=Area.of(doc["changed"]),
            uncertain=Area.of(doc["uncertain"]), nodata_before=Area.of(nd["before"]), nodata_after=Area.of(nd["after"]),
            quality_excluded=Area.of(doc.get("quality_excluded", {}).get("either") or {"pixels": 0, "area_ha": 0.0}),
            removed={k: Area.of(g[k]["removed"]) for k in GUARDS},
            change_types={k: Area.of(v) for k, v in doc["change_types"].items()},
            polygons=int(doc["polygons"]["count"]), document=doc,
        )


def summary_row(report: ChangeReport, confirm: list[str]) -> dict:
    """One history row of a change report: areas (ha), named change types, guard removals.

    ``confirm``: the periods that confirmed the change (persistence guard), joined by ``,``.
    """
    return {
        "confirm_period": ",".join(confirm),
        "valid_ha": report.valid.area_ha,
        "unchanged_ha": report.unchanged.area_ha,
        "changed_ha": report.changed.area_ha,
        "uncertain_ha": report.uncertain.area_ha,
        **{f"{k}_ha": v.area_ha for k, v in report.change_types.items()},
        **{f"removed_{k}_ha": report.removed[k].area_ha for k in GUARDS},
        "nodata_before_ha": report.nodata_before.area_ha,
        "nodata_after_ha": report.nodata_after.area_ha,
        "polygons": report.polygons,
    }


def raster_tags(dates: dict[str, DateMap], legend: Legend, opt: ChangeConfig) -> dict[str, str]:
    """Tags of ``change.tif``: code scheme, legend, classes, guards, the dates' sources and acquisition dates."""
    n = legend.n
    tags = {
        "change_codes": f"0 no change; 1 + from_id * {n} + to_id for from_id -> to_id; 254 uncertain (removed by a "
                        "guard); 255 nodata",
        "legend": json.dumps([{k: e[k] for k in ("code", "label", "color")} for e in legend.entries]),
        "class_names": ",".join(legend.class_names),
        "class_ids": ",".join(str(i) for i in range(n)),
        "min_confidence": str(opt.min_confidence),
        "mmu_ha": str(opt.mmu_ha),
        "software": f"geoseg {__version__}",
    }
    for role, d in dates.items():
        tags[role] = d.source
        if d.acquired:
            tags[f"acquired_{role}"] = d.acquired
    return tags



def report_document(tally: Tally, dates: dict[str, DateMap], grid: GeoGrid, legend: Legend, opt: ChangeConfig,
                    small_patches: int, polygons: int) -> dict[str, Any]:
    """The ``transitions.json`` document: dates, grid, areas, guard removals, the table, change types, legend."""
    table, removed, nodata = tally.table, tally.removed, tally.nodata
    assert grid.crs is not None  # the common grid has a CRS (see align.read_grid)
    names = legend.class_names
    n = legend.n
    px, m2 = table.total()
    diag_px = int(np.trace(table.pixels[:, :n]))
    diag_m2 = float(np.trace(table.area_m2[:, :n]))
    unc_px, unc_m2 = int(table.pixels[:, n].sum()), float(table.area_m2[:, n].sum())
    confirms = [r for r in dates if r.startswith("confirm")]

    def total(c: TransitionCounter) -> dict:
        return measure(*c.total())

    rev, nod = removed["persistence_reverted"], removed["persistence_nodata"]
    return {
        "geoseg_version": __version__,
        "dates": {r: _date_entry(d) for r, d in dates.items()},
        "grid": {"reference": opt.grid, **grid.to_dict(),
                 "pixel_area": "exact WGS84 ellipsoidal cell area" if grid.crs.is_geographic else "planar cell area of the CRS"},
        "classes": [{"id": i, "name": nm} for i, nm in enumerate(names)],
        "grid_total": measure(*nodata["grid"]),
        "nodata_excluded": {"before": measure(*nodata["before"]), "after": measure(*nodata["after"]),
                            "either": measure(*nodata["either"]),
                            "note": "nodata includes pixels outside that date's footprint; 'either' is what the table "
                                    "excludes; it includes quality_excluded"},
        "quality_excluded": {"before": measure(*nodata["quality_before"]), "after": measure(*nodata["quality_after"]),
                             "either": measure(*nodata["quality_either"]),
                             "layers": {r: d.quality for r, d in dates.items() if r in ("before", "after")},
                             "note": "pixels masked by a quality flag (cloud, shadow, snow, fill, ...; the date's "
                                     "*_quality.tif) in that date: part of nodata_excluded, never change"},
        "valid": measure(px, m2),
        "unchanged": measure(diag_px, diag_m2),
        "changed": measure(px - diag_px - unc_px, m2 - diag_m2 - unc_m2),
        "uncertain": measure(unc_px, unc_m2),
        "guards": {
            "order": ["confidence", "persistence", "mmu"],
            "confidence": {"applied": bool(opt.min_confidence > 0), "min_confidence": float(opt.min_confidence),
                           "rule": "both dates' confidence >= min_confidence (percent; nodata confidence fails)",
                           "removed": total(removed["confidence"]), "by_transition": by_pair(removed["confidence"], names)},
            "persistence": {"applied": bool(confirms), "confirm_dates": confirms,
                            "rule": "every confirm date still shows the after class (reverted: one shows another "
                                    "class; confirm_nodata: none does, one or more are nodata)",
                            "removed": measure(rev.total()[0] + nod.total()[0], rev.total()[1] + nod.total()[1]),
                            "reverted": total(rev), "confirm_nodata": total(nod),
                            "by_transition": by_pair(rev, names) + by_pair(nod, names)},
            "mmu": {"applied": bool(opt.mmu_ha > 0), "mmu_ha": float(opt.mmu_ha),
                    "rule": "4-connected patch of one from->to pair smaller than mmu_ha", "patches_removed": small_patches,
                    "removed": total(removed["mmu"]), "by_transition": by_pair(removed["mmu"], names)},
        },
        "transitions": transition_rows(table, names),
        "matrix": matrix(table, names),
        "change_types": change_type_summary(table, names),
        "legend": list(legend.entries),
        "polygons": {"file": "change_polygons.gpkg", "layer": POLYGON_LAYER, "count": polygons},
    }



def _date_entry(d: DateMap) -> dict:
    """A date in the report; a class map segmented here is not kept, so its paths are null."""
    entry = asdict(d)
    if d.segmented:
        entry.update(classes=None, confidence=None)
    return entry


def write_transitions_csv(path: Path, rows: list[dict]) -> None:
    """``transitions.csv``: ``from_class, to_class, pixels, area_ha`` for every cell of the table."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["from_class", "to_class", "pixels", "area_ha"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)

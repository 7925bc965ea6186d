"""Change results and the monitor's history into the PostGIS sink (:mod:`geoseg.io.sink`).

:func:`load_change` writes one comparison into an open load: its change polygons (from the
``change_polygons.gpkg`` it wrote), its transition table and its statistics (areas, named
change types, guard removals). ``geoseg change`` calls it for its run;
:func:`load_region` calls it for the monitor's comparisons.

:func:`load_region` brings the sink up to date with one region of the monitor's history
store (:class:`~geoseg.change.history.HistoryStore`), in one transaction under the region's
lock: every period (class areas, from the composite for a period of several acquisitions, and
land-cover polygons when the periods keep them) and
every comparison whose ``processed`` stamp in ``history/state.json`` the sink does not hold
yet is loaded, replacing the rows the sink had for that region and period. So a rerun
loads nothing twice, a period redone in the store replaces its rows, two monitor runs at
once load each region and period once (the second waits, then finds it loaded), and a
run whose load failed is caught up by the next one without any model work.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from geoseg.change.history import HistoryStore
from geoseg.change.report import POLYGON_LAYER, ChangeReport, summary_row
from geoseg.io import storage
from geoseg.io.sink.postgis import Load, RunInfo, Sink

LANDCOVER_LAYER = "landcover"
"""Layer of the ``*_polygons.gpkg`` files ``geoseg segment`` writes."""

TRANSITION_COLUMNS = ("from_class", "to_class", "pixels", "area_ha")


def stats_row(report: ChangeReport, confirm: list[str] | None = None) -> dict[str, Any]:
    """The ``change_stats`` row of ``report``: :func:`summary_row` with the named change types as one jsonb."""
    row = summary_row(report, confirm or [])
    row["change_types"] = {k: row.pop(f"{k}_ha") for k in report.change_types}
    row["confirm_period"] = row["confirm_period"] or None
    return row


def load_change(load: Load, report: ChangeReport, polygons: str | Path, confirm: list[str] | None = None,
                **key: Any) -> None:
    """Write one comparison (its report and the polygon file it wrote) with the columns ``key`` added."""
    load.insert("transitions", [{k: t[k] for k in TRANSITION_COLUMNS} for t in report.document["transitions"]], **key)
    load.insert("change_stats", [stats_row(report, confirm)], **key)
    with _local(polygons) as path:
        load.copy_polygons("change_polygons", path, POLYGON_LAYER, **key)


def load_region(sink: Sink, store: HistoryStore, region: str, run: RunInfo) -> list[str]:
    """Load what the sink lacks of ``region``'s history in ``store`` (one transaction); what was loaded."""
    state = store.region_state(region)
    done: list[str] = []
    with sink.load(run) as load:
        load.lock("monitor", region)
        have = load.loaded_items(region)
        for period, entry in sorted(state["periods"].items()):
            if have.get(("period", period)) != entry["processed"]:
                _load_period(load, store, region, period, entry)
                load.mark_item(region, "period", period, entry["processed"])
                done.append(f"period {period}")
        for period, entry in sorted(state["changes"].items()):
            if have.get(("change", period)) != entry["processed"]:
                _load_comparison(load, store, region, period, entry)
                load.mark_item(region, "change", period, entry["processed"], entry["before"])
                done.append(f"change {entry['before']} -> {period}")
    return done


def _load_period(load: Load, store: HistoryStore, region: str, period: str, entry: dict) -> None:
    """Class areas (and land-cover polygons, when kept) of one stored period, replacing the sink's."""
    key = {"region": region, "period": period}
    for table in ("class_areas", "landcover_polygons"):
        load.delete(table, **key)
    out = store.period_dir(region, period)
    stem = storage.name(entry["classes"])[: -len("_classes.tif")]
    if entry.get("composite"):  # several acquisitions: the composite's areas
        from geoseg.change.composite import class_rows

        doc = json.loads(storage.read_bytes(store.uri(*entry["composite"].split("/"))))
        rows = [{k: v for k, v in r.items() if k != "valid_area_ha"} for r in class_rows(doc)]
    else:
        stats = json.loads(storage.read_bytes(storage.join(out, "stats.json")))
        rows = stats["inputs"][stem]["classes"]
    load.insert("class_areas", rows, input=stem, **key)
    polygons = storage.join(out, f"{stem}_polygons.gpkg")
    if storage.exists(polygons):
        with _local(polygons) as path:
            load.copy_polygons("landcover_polygons", path, LANDCOVER_LAYER, input=stem, **key)


def _load_comparison(load: Load, store: HistoryStore, region: str, period: str, entry: dict) -> None:
    """One stored comparison (``entry["before"]`` -> ``period``), replacing the sink's rows of it."""
    for table in ("change_polygons", "transitions", "change_stats"):
        load.delete(table, region=region, period=period)
    out = store.uri(*entry["dir"].split("/"))
    report = ChangeReport.from_document(json.loads(storage.read_bytes(storage.join(out, "transitions.json"))))
    load_change(load, report, storage.join(out, "change_polygons.gpkg"), entry.get("confirm") or [],
                region=region, period_before=entry["before"], period=period)


@contextmanager
def _local(uri: str | Path) -> Iterator[Path]:
    """A local path of ``uri`` for GDAL to read (a temporary download for ``s3://``)."""
    path = storage.local_copy(uri, suffix=".gpkg")
    try:
        yield path
    finally:
        if storage.is_remote(uri):
            path.unlink(missing_ok=True)

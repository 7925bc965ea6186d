"""What a change run writes besides the change raster, polygons and tables: styles, quicklooks, STAC, report.

:func:`write_extras` runs in the staging directory once ``change.tif``, ``change_polygons.gpkg``
and the transition tables exist, and writes :data:`EXTRA_FILES`: the change raster's QML,
SLD and raster attribute table (code, pixels, label, colour), quicklook PNGs of the change
and of both dates' class maps on the common grid, ``report.html`` (maps with layer toggles,
the transition matrix, change types, guard removals, class areas of both dates) and a STAC
Item + Collection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geoseg.change.align import DateMap
from geoseg.change.transitions import NODATA, Legend
from geoseg.grid import GeoGrid
from geoseg.io import styles
from geoseg.io.publish import write_json
from geoseg.io.raster import open_raster
from geoseg.report import html, quicklook, stac
from geoseg.report.charts import bar_chart, line_chart
from geoseg.vector.writers import add_layer_style

EXTRA_FILES = ("change.qml", "change.sld", "change.tif.aux.xml", "change.png", "before.png", "after.png",
               "report.html", "change_item.json", "collection.json")
"""Files written by :func:`write_extras`, in the order they are written."""

FALLBACK_COLORS = {"other": "#e3d9a6", "forest": "#1b7837", "water": "#2166ac", "urban": "#d6301d"}
"""Colours of classes whose class map has no colour table (the bundled models' scheme), else grey."""

TYPE_COLORS = {"deforestation": "#d7191c", "reforestation": "#1a9641", "urbanization": "#c51b8a",
               "water_gain": "#2c7bb6", "water_loss": "#b15928"}


def code_counts(doc: dict[str, Any], n: int) -> dict[int, int]:
    """Pixels per change code from the transition table (0: unchanged, pairs, 254: uncertain)."""
    px = doc["matrix"]["pixels"]
    counts = {0: sum(px[i][i] for i in range(n)), 254: sum(px[i][n] for i in range(n))}
    for f in range(n):
        for t in range(n):
            if f != t:
                counts[1 + f * n + t] = px[f][t]
    return counts


def change_categories(legend: Legend, doc: dict[str, Any] | None = None) -> list[styles.Category]:
    """Categories of the change codes (nodata left out), with pixel counts from ``doc`` if given."""
    counts = code_counts(doc, legend.n) if doc else {}
    return [styles.Category(e["code"], e["label"], e["color"], counts.get(e["code"]) if doc else None)
            for e in legend.entries if e["color"]]


def class_categories(date: DateMap) -> list[styles.Category]:
    """Categories of a date's class map: its tags and colour table, else the fallback colours."""
    with open_raster(date.classes) as src:
        cats = styles.categories_from_raster(src)
    if cats and all(c.name in date.class_names for c in cats):
        return cats
    return [styles.Category(i, nm, FALLBACK_COLORS.get(nm, "#999999")) for i, nm in enumerate(date.class_names)]


def write_extras(staging: Path, dates: dict[str, DateMap], grid: GeoGrid, legend: Legend,
                 doc: dict[str, Any]) -> list[str]:
    """Write :data:`EXTRA_FILES` in ``staging`` (``doc``: the ``transitions.json`` document); their names."""
    cats = change_categories(legend, doc)
    styles.write_raster_sidecars(staging / "change.tif", styles.raster_qml(cats), styles.raster_sld("change", cats),
                                 styles.pam_xml(cats))
    layer = doc["polygons"]["layer"]
    add_layer_style(staging / "change_polygons.gpkg", layer,
                    styles.polygon_style(change_categories(legend), layer, "change_code", "geoseg change"))
    quicklook.write_categorical(staging / "change.tif", staging / "change.png", cats, NODATA)
    for role in ("before", "after"):
        quicklook.write_categorical(dates[role].classes, staging / f"{role}.png", class_categories(dates[role]),
                                    grid=grid)
    (staging / "report.html").write_text(report_html(staging, dates, legend, doc), encoding="utf-8")
    item = change_item(staging, dates, grid, legend, doc)
    write_json(staging / "change_item.json", item)
    coll = stac.collection(item["id"], "Land-cover change between two dates (geoseg change): change codes, "
                           "polygons and transition tables.", [("./change_item.json", item)],
                           title=f"geoseg change {item['id']}")
    write_json(staging / "collection.json", coll)
    return list(EXTRA_FILES)


ASSETS = {"change.tif": ("change", "change codes (COG)", ["data"]),
          "change_polygons.gpkg": ("polygons", "change polygons (GeoPackage, layer change, styled)", ["data"]),
          "transitions.csv": ("transitions", "transition table (CSV)", ["metadata"]),
          "transitions.json": ("report_json", "transition table, guards, legend (JSON)", ["metadata"]),
          "change.qml": ("change_qml", "QGIS style of the change map", ["style"]),
          "change.sld": ("change_sld", "SLD style of the change map", ["style"]),
          "change.tif.aux.xml": ("change_rat", "GDAL PAM: change labels and raster attribute table", ["metadata"]),
          "change.png": ("change_quicklook", "quicklook of the change map", ["overview"]),
          "before.png": ("before_quicklook", "quicklook of the before class map", ["overview"]),
          "after.png": ("after_quicklook", "quicklook of the after class map", ["overview"]),
          "report.html": ("report", "HTML report of the change", ["metadata"])}


def change_item(staging: Path, dates: dict[str, DateMap], grid: GeoGrid, legend: Legend,
                doc: dict[str, Any]) -> dict[str, Any]:
    """The STAC Item of the comparison (datetime: the after date; start/end: both dates when known)."""
    from datetime import UTC, datetime

    assets = {}
    valid = doc["valid"]["pixels"] or 1
    for name, (key, title, roles) in ASSETS.items():
        extra: dict[str, Any] = {}
        if name == "change.tif":
            cats = change_categories(legend, doc)
            extra["classification:classes"] = stac.class_objects(cats, NODATA, [100 * (c.count or 0) / valid for c in cats])
        assets[key] = stac.asset(staging / name, f"./{name}", title, roles, **extra)
    b, a = dates["before"], dates["after"]
    now = datetime.now(UTC)
    props: dict[str, Any] = {"title": f"change {date_label(b)} → {date_label(a)}",
                             "geoseg:before": b.source, "geoseg:after": a.source}
    if b.acquired and a.acquired:
        props.update(start_datetime=stac.stac_datetime(b.acquired, now), end_datetime=stac.stac_datetime(a.acquired, now))
    item_id = stac.stac_id(f"change-{date_label(b)}-{date_label(a)}")
    return stac.item(item_id, grid, stac.stac_datetime(a.acquired, now), assets, props, collection=item_id,
                     links=stac.up_links("./collection.json"))


def date_label(d: DateMap) -> str:
    """How a date is named in the report: its acquisition date, else its file name."""
    return d.acquired or Path(d.source).stem


def report_html(staging: Path, dates: dict[str, DateMap], legend: Legend, doc: dict[str, Any]) -> str:
    """The change report: maps of both dates and the change, the matrix, change types, guards, class areas."""
    b, a = dates["before"], dates["after"]
    label_b, label_a = date_label(b), date_label(a)
    cats_a = class_categories(a)
    layers = [html.MapLayer(f"before classes ({label_b})", staging / "before.png", visible=False, base=True),
              html.MapLayer(f"after classes ({label_a})", staging / "after.png", base=True),
              html.MapLayer("change", staging / "change.png")]
    keys = [(c.name, c.color) for c in change_categories(legend)] + [(f"class: {c.name}", c.color) for c in cats_a]
    m = doc["matrix"]
    n = len(m["rows"])
    types = doc["change_types"]
    g = doc["guards"]
    summary = html.table(["", "pixels", "area (ha)"], [
        (k, doc[k]["pixels"], doc[k]["area_ha"]) for k in ("valid", "unchanged", "changed", "uncertain")] + [
        (f"nodata {r}", doc["nodata_excluded"][r]["pixels"], doc["nodata_excluded"][r]["area_ha"]) for r in ("before", "after")] + [
        (f"of which masked for quality ({r})", doc["quality_excluded"][r]["pixels"], doc["quality_excluded"][r]["area_ha"])
        for r in ("before", "after")])
    guards = html.table(["guard", "applied", "setting", "removed (ha)"], [
        ("confidence", "yes" if g["confidence"]["applied"] else "no", f"min {g['confidence']['min_confidence']:g} %",
         g["confidence"]["removed"]["area_ha"]),
        ("persistence", "yes" if g["persistence"]["applied"] else "no", ", ".join(g["persistence"]["confirm_dates"]) or "-",
         g["persistence"]["removed"]["area_ha"]),
        ("minimum mapping unit", "yes" if g["mmu"]["applied"] else "no", f"{g['mmu']['mmu_ha']:g} ha",
         g["mmu"]["removed"]["area_ha"])])
    before_ha = [sum(row) for row in m["area_ha"]]
    after_ha = [sum(m["area_ha"][i][j] for i in range(n)) for j in range(n)]
    colors = {c.name: c.color for c in cats_a}
    series = [(nm, [before_ha[i], after_ha[i]], colors.get(nm, "#999999")) for i, nm in enumerate(m["rows"])]
    sections = [
        html.section("Summary", html.facts([("before", f"{label_b}: {b.source}"), ("after", f"{label_a}: {a.source}"),
                                            ("polygons", f"{doc['polygons']['count']} in change_polygons.gpkg")]), summary),
        html.map_section("map-change", f"Change {label_b} → {label_a}", layers, keys,
                         note="Change over the after date's classes; uncertain: a change removed by a guard."),
        html.section("Change types", bar_chart(list(types), [t["area_ha"] for t in types.values()],
                                               [TYPE_COLORS.get(k, "#999999") for k in types], title="area per change type"),
                     '<p class="note">Types overlap: forest → urban counts as deforestation and urbanization.</p>'),
        html.section("Transition matrix", html.matrix(m["rows"], m["columns"], m["area_ha"])),
        html.section("Class areas of both dates (valid in both)",
                     line_chart([label_b, label_a], series, title="area per class"),
                     html.table(["class", f"{label_b} (ha)", f"{label_a} (ha)", "difference (ha)"],
                                [(nm, before_ha[i], after_ha[i], after_ha[i] - before_ha[i]) for i, nm in enumerate(m["rows"])])),
        html.section("Guards against false change", guards),
    ]
    return html.page(f"geoseg change {label_b} → {label_a}",
                     f"Changed {doc['changed']['area_ha']:,.1f} ha of {doc['valid']['area_ha']:,.1f} ha valid in both "
                     f"dates; deforestation {types.get('deforestation', {}).get('area_ha', 0):,.1f} ha.", sections)

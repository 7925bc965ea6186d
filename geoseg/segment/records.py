"""What a segment run writes for people and catalogues: a STAC Item per input, a Collection, ``report.html``.

Written into the staging directory after the statistics, before publication
(:func:`write_records`): ``report.html`` first (the Items list it as an asset), then one
``<stem>_item.json`` per input (its files as assets, with sizes and checksums, and the class
values, names, colours, pixel counts and percentages), then ``collection.json``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from geoseg.io.publish import write_json
from geoseg.io.styles import categories
from geoseg.io.urls import redact
from geoseg.report import html, stac
from geoseg.report.charts import bar_chart
from geoseg.segment.stats import ClassArea

RECORD_FILES = ("report.html", "collection.json")
"""Run-level files written here (plus one ``<stem>_item.json`` per input)."""

ASSETS = {  # scene_files kind -> (asset key, title, roles)
    "classes": ("classes", "land-cover classes (COG)", ["data"]),
    "confidence": ("confidence", "confidence: maximum softmax probability, percent (COG)", ["data", "quality"]),
    "polygons": ("polygons", "land-cover polygons (GeoPackage, layer landcover, styled)", ["data"]),
    "classes_qml": ("classes_qml", "QGIS style of the class map", ["style"]),
    "classes_sld": ("classes_sld", "SLD style of the class map", ["style"]),
    "classes_pam": ("classes_rat", "GDAL PAM: class names and raster attribute table of the class map", ["metadata"]),
    "confidence_qml": ("confidence_qml", "QGIS style of the confidence map", ["style"]),
    "confidence_sld": ("confidence_sld", "SLD style of the confidence map", ["style"]),
    "classes_png": ("classes_quicklook", "quicklook of the class map", ["overview"]),
    "confidence_png": ("confidence_quicklook", "quicklook of the confidence map", ["overview"]),
    "input_png": ("input_quicklook", "quicklook of the input", ["overview"]),
    "quality": ("quality", "quality flags: 0 clear, 1 fill, 2 cloud, 3 cloud shadow, 4 cirrus, 5 snow, 6 saturated, "
                "7 dilated cloud, 8 flagged (binary mask) (COG)", ["data", "quality"]),
    "quality_qml": ("quality_qml", "QGIS style of the quality flags", ["style"]),
    "quality_sld": ("quality_sld", "SLD style of the quality flags", ["style"]),
    "quality_pam": ("quality_rat", "GDAL PAM: flag names and raster attribute table of the quality flags", ["metadata"]),
}
RUN_ASSETS = {"stats.json": ("statistics", "area per class and input (JSON)", ["metadata"]),
              "stats.csv": ("statistics_csv", "area per class and input (CSV)", ["metadata"]),
              "report.html": ("report", "HTML report of the run", ["metadata"]),
              "manifest.json": ("manifest", "run manifest: inputs, model, config, versions, timings", ["metadata"])}


def item_name(stem: str) -> str:
    return f"{stem}_item.json"


def write_records(run, staging_dir: Path, tables: dict[str, list[ClassArea]]) -> list[str]:
    """Write ``report.html``, the Items and the Collection of ``run`` in ``staging_dir``; their file names."""
    (staging_dir / "report.html").write_text(report_html(run, staging_dir, tables), encoding="utf-8")
    coll_id = stac.stac_id(f"geoseg-{Path(redact(str(run.cfg.output)).rstrip('/')).name}")
    items = []
    for p, w in zip(run.plans, run.writers, strict=True):
        doc = scene_item(run, p, w, staging_dir, tables[w.stem], coll_id)
        write_json(staging_dir / item_name(w.stem), doc)
        items.append((f"./{item_name(w.stem)}", doc))
    card = run.ckpt.card
    summaries = {"classification:classes": stac.class_objects(categories(card.classes)),
                 "proj:epsg": sorted({it["properties"]["proj:epsg"] for _, it in items}, key=str)}
    coll = stac.collection(coll_id, f"Land-cover classes ({', '.join(card.class_names)}) predicted by the model "
                           f"{run.ckpt.model_id} for {len(items)} input(s); one Item per input.", items,
                           title=f"geoseg segment: {coll_id}", summaries=summaries)
    write_json(staging_dir / "collection.json", coll)
    return [item_name(w.stem) for w in run.writers] + list(RECORD_FILES)


def scene_item(run, plan, writer, staging_dir: Path, rows: list[ClassArea], coll_id: str) -> dict[str, Any]:
    """The STAC Item of one input: its output files (and the run's) as assets."""
    card = run.ckpt.card
    assets: dict[str, dict] = {}
    for kind, name in writer.files.items():
        key, title, roles = ASSETS[kind]
        extra: dict[str, Any] = {}
        if kind == "classes":
            extra["classification:classes"] = stac.class_objects(categories(card.classes, writer.counts),
                                                                 percent=[r.percent for r in rows])
        assets[key] = stac.asset(staging_dir / name, f"./{name}", title, roles, **extra)
    for name, (key, title, roles) in RUN_ASSETS.items():
        if (staging_dir / name).exists():
            assets[key] = stac.asset(staging_dir / name, f"./{name}", title, roles)
    when = stac.stac_datetime(plan.info.acquired, run.started)
    props = {"title": f"{writer.stem}: land cover", "geoseg:source": redact(plan.path), "geoseg:model": run.ckpt.model_id,
             "geoseg:quicklook_bands": writer.composite}
    if not plan.info.acquired:
        props["geoseg:datetime"] = "processing time (the input has no acquisition date)"
    return stac.item(stac.stac_id(writer.stem), plan.info.grid, when, assets, props, collection=coll_id,
                     links=stac.up_links("./collection.json"))


def report_html(run, staging_dir: Path, tables: dict[str, list[ClassArea]]) -> str:
    """The segment report: per input, the class map over the input quicklook, the area table and bar chart."""
    card = run.ckpt.card
    legend = [(c.name, c.color) for c in card.classes]
    colors = {c.name: c.color for c in card.classes}
    counts = run.tile_counts()
    secs: list[str] = []
    for p, w in zip(run.plans, run.writers, strict=True):
        f = w.files
        layers = [html.MapLayer(f"input ({w.composite})", staging_dir / f["input_png"], base=True),
                  html.MapLayer("classes", staging_dir / f["classes_png"])]
        if "confidence_png" in f:
            layers.append(html.MapLayer("confidence (red: unsure, green: sure)", staging_dir / f["confidence_png"],
                                        visible=False))
        rows = tables[w.stem]
        g = p.info.grid
        secs.append(html.map_section(f"map-{len(secs)}", f"{w.stem}: classes over the input", layers, legend,
                                     note=f"{g.width} x {g.height} px, {g.crs.to_string() if g.crs else 'no CRS'}; "
                                          f"acquired {p.info.acquired or 'unknown'}; input {redact(p.path)}"))
        secs.append(html.section(
            f"{w.stem}: area per class",
            html.table(["class", "pixels", "area (ha)", "% of valid area"],
                       [(r.class_name, r.pixels, r.area_ha, r.percent) for r in rows]),
            bar_chart([r.class_name for r in rows], [r.area_ha for r in rows], [colors[r.class_name] for r in rows],
                      title=f"{w.stem}: area per class")))
        if w.quality_source is not None:
            q = w.quality_summary()
            secs.append(html.section(
                f"{w.stem}: quality flags ({q['masked_area_ha']} ha masked, left out of the areas above)",
                html.table(["flag", "pixels", "area (ha)", "masked"],
                           [(k, v["pixels"], v["area_ha"], "yes" if v["masked"] else "no") for k, v in q["flags"].items()])))
    intro = (f"{len(run.plans)} input(s) segmented by {run.ckpt.model_id} into {', '.join(card.class_names)}; "
             f"{counts.processed} tiles processed, {counts.skipped} skipped (nodata), {counts.failed} failed.")
    facts = html.facts([("model", run.ckpt.model_id), ("started", run.started.isoformat(timespec="seconds")),
                        ("written", datetime.now(run.started.tzinfo).isoformat(timespec="seconds")),
                        ("output", redact(str(run.cfg.output))), ("catalogue", "collection.json (STAC 1.1), one Item per input"),
                        ("in QGIS", "open the *_polygons.gpkg and *_classes.tif: styles load with them")])
    return html.page("geoseg segment report", intro, [html.section("Run", facts), *secs])

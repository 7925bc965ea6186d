"""The monitor's static STAC catalog and ``history/report.html``, rebuilt from the history store.

Layout under the output root::

    history/stac/catalog.json                   root Catalog: one child Collection per region
    history/stac/<region>/collection.json       the region: one Item per stored period
    history/stac/<region>/<period>.json         Item: that period's segment outputs (a composite of several
                                                acquisitions: the composite's files), and the change
                                                from the previous period once compared (``change_*`` assets)
    history/report.html                         per region: class-area and change-type time series, the
                                                latest change map and transition matrix

Items are made from the STAC Items that ``segment`` and ``change`` wrote next to their outputs
(sizes and checksums are not computed again), their hrefs made relative to the Item. Both are
rebuilt whole after a run that stored something (a few small JSON reads per period).
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from geoseg.change.outputs import TYPE_COLORS
from geoseg.io import storage
from geoseg.report import html, stac
from geoseg.report.charts import line_chart

STAC_DIR = ("history", "stac")


def _rebase(assets: dict[str, dict], prefix: str, key_prefix: str = "") -> dict[str, dict]:
    """Assets with ``./name`` hrefs made relative to an Item three levels below the root (``prefix/name``)."""
    return {key_prefix + k: {**a, "href": f"{prefix}/{a['href'].removeprefix('./')}"} for k, a in assets.items()}


def _item_of(store, uri: str, name_suffix: str) -> dict[str, Any] | None:
    names = [n for n in storage.listdir(uri) if n.endswith(name_suffix)] if storage.exists(uri) else []
    return json.loads(storage.read_bytes(storage.join(uri, names[0]))) if names else None


def period_item(store, region: str, period: str, state: dict) -> dict[str, Any] | None:
    """The Item of one region and period, or None when its segment Item is missing (outputs of an older geoseg)."""
    seg = _item_of(store, store.period_dir(region, period), "_item.json")
    if seg is None and state["periods"].get(period, {}).get("composite"):
        seg = _composite_item(store, region, period)
    if seg is None:
        return None
    assets = _rebase(seg["assets"], f"../../../regions/{region}/periods/{period}")
    props = {k: v for k, v in seg["properties"].items() if k.startswith("proj:")}
    props.update({"title": f"{region} {period}", "geoseg:region": region, "geoseg:period": period,
                  "geoseg:model": seg["properties"].get("geoseg:model")})
    change = state["changes"].get(period)
    if change:
        ch = _item_of(store, store.uri(*change["dir"].split("/")), "change_item.json")
        if ch is not None:
            assets.update(_rebase(ch["assets"], f"../../../{change['dir']}", "change_"))
            props["geoseg:compared_with"] = change["before"]
    doc = dict(seg, id=stac.stac_id(f"{region}-{period}"), collection=stac.stac_id(region), assets=assets,
               links=stac.up_links("./collection.json", root="../catalog.json"))
    doc["properties"] = {"datetime": stac.stac_datetime(period, datetime.now(UTC)), "created": stac.now(),
                         **props}
    return doc


def _composite_item(store, region: str, period: str) -> dict[str, Any] | None:
    """A period of several acquisitions: its first acquisition's Item with the composite's files as assets."""
    from geoseg.change.composite import composite_files

    first = _item_of(store, storage.join(store.period_dir(region, period), "acquisitions"), "_item.json")
    if first is None:
        return None
    names = {**composite_files(period), "confidence": f"{period}_confidence.tif"}
    classes = first["assets"].get("classes", {}).get("classification:classes", [])
    assets: dict[str, dict[str, Any]] = {}
    for key, title, role in (("classes", "composite class map", "data"),
                             ("confidence", "share of clear looks, percent (the period's confidence)", "data"),
                             ("share", "share of clear looks, percent", "data"), ("looks", "clear looks", "data"),
                             ("summary", "composite summary", "metadata")):
        name = names[key]
        assets[key] = {"href": f"./{name}", "title": title, "roles": [role],
                       "type": stac.MEDIA_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")}
    polygons = f"{period}_polygons.gpkg"
    if storage.exists(storage.join(store.period_dir(region, period), polygons)):
        assets["polygons"] = {"href": f"./{polygons}", "title": "land-cover polygons of the composite",
                              "roles": ["data"], "type": stac.MEDIA_TYPES[".gpkg"]}
    assets["classes"]["classification:classes"] = [{k: v for k, v in c.items() if k != "percent"} for c in classes]
    return dict(first, assets=assets)


def write_catalog(store) -> list[str]:
    """Rebuild ``history/stac`` from the store's state; returns the URIs written."""
    regions = store.state()["regions"]
    written, children = [], []
    for region, st in sorted(regions.items()):
        items = []
        for period in sorted(st.get("periods", {})):
            doc = period_item(store, region, period, st)
            if doc is not None:
                uri = store.uri(*STAC_DIR, region, f"{period}.json")
                storage.write_bytes(uri, _json(doc))
                written.append(uri)
                items.append((f"./{period}.json", doc))
        if not items:
            continue
        coll = stac.collection(stac.stac_id(region), f"Land cover and change of the monitored region {region}, one "
                               "Item per period.", items, title=f"region {region}", root="../catalog.json")
        uri = store.uri(*STAC_DIR, region, "collection.json")
        storage.write_bytes(uri, _json(coll))
        written.append(uri)
        children.append({"rel": "child", "href": f"./{region}/collection.json", "type": stac.JSON, "title": region})
    root = stac.catalog("geoseg-monitor", "geoseg monitoring history: one Collection per region, one Item per "
                        "region and period.", children)
    storage.write_bytes(store.uri(*STAC_DIR, "catalog.json"), _json(root))
    return [*written, store.uri(*STAC_DIR, "catalog.json")]


def _json(doc: dict) -> bytes:
    return (json.dumps(doc, indent=2) + "\n").encode()


def write_report(store) -> str:
    """Rebuild ``history/report.html``; returns its URI."""
    areas, summary, trans = store.table("class_areas.csv"), store.table("change_summary.csv"), store.table("transitions.csv")
    state = store.state()["regions"]
    sections = []
    with tempfile.TemporaryDirectory() as tmp:
        for region in sorted(state):
            sections.extend(_region_sections(store, region, state[region], areas, summary, trans, Path(tmp)))
        doc = html.page("geoseg monitoring history", f"{len(state)} region(s); class areas per period and the change "
                        "between consecutive periods (after the guards).", sections)
    uri = store.uri("history", "report.html")
    storage.write_bytes(uri, doc.encode("utf-8"))
    return uri


def _region_sections(store, region, st, areas, summary, trans, tmp: Path) -> list[str]:
    out = []
    a = areas[areas["region"] == region] if len(areas) else areas
    if len(a):
        periods = sorted(a["period"].unique())
        colors = _class_colors(store, region, st)
        series = [(name, [_value(a, p, name) for p in periods], colors.get(name, "#999999"))
                  for name in a.sort_values("class_id")["class_name"].unique()]
        out.append(html.section(f"{region}: area per class", line_chart(periods, series, title=f"{region}: area per class")))
    s = summary[summary["region"] == region] if len(summary) else summary
    if len(s):
        s = s.sort_values("period")
        periods = list(s["period"])
        series = [(k, [float(v) for v in s[f"{k}_ha"]], c) for k, c in TYPE_COLORS.items() if f"{k}_ha" in s]
        out.append(html.section(f"{region}: change since the previous period",
                                line_chart(periods, series, title=f"{region}: change per period"),
                                html.table(["period", "before", "changed (ha)", "uncertain (ha)", "deforestation (ha)"],
                                           [(r.period, r.period_before, r.changed_ha, r.uncertain_ha, r.deforestation_ha)
                                            for r in s.itertuples()])))
        last = periods[-1]
        t = trans[(trans["region"] == region) & (trans["period"] == last)]
        names = list(dict.fromkeys(t["from_class"]))
        cols = [*names, "uncertain"]
        m = [[float(t[(t["from_class"] == f) & (t["to_class"] == c)]["area_ha"].sum()) for c in cols] for f in names]
        change = st["changes"][last]
        png = tmp / f"{region}-change.png"
        parts = [html.matrix(names, cols, m)]
        try:
            png.write_bytes(storage.read_bytes(store.uri(*change["dir"].split("/"), "change.png")))
            after = tmp / f"{region}-after.png"
            after.write_bytes(storage.read_bytes(store.uri(*change["dir"].split("/"), "after.png")))
            layers = [html.MapLayer(f"classes {last}", after, base=True), html.MapLayer("change", png)]
            ch = _item_of(store, store.uri(*change["dir"].split("/")), "change_item.json") or {"assets": {}}
            legend = [(c["title"], "#" + c["color_hint"]) for c in
                      ch["assets"].get("change", {}).get("classification:classes", []) if "color_hint" in c]
            out.append(html.map_section(f"map-{region}", f"{region}: change {change['before']} → {last}", layers,
                                        legend))
        except Exception:  # outputs of an older geoseg: no quicklooks
            pass
        out.append(html.section(f"{region}: transitions {change['before']} → {last}", *parts))
    return out


def _value(frame, period: str, name: str) -> float | None:
    v = frame[(frame["period"] == period) & (frame["class_name"] == name)]["area_ha"]
    return float(v.iloc[0]) if len(v) else None


def _class_colors(store, region: str, st: dict) -> dict[str, str]:
    """Class colours from a period's STAC Item (``classification:classes`` of the class map)."""
    for period in sorted(st.get("periods", {}), reverse=True):
        seg = _item_of(store, store.period_dir(region, period), "_item.json")
        if seg and "classes" in seg["assets"]:
            return {c["title"]: "#" + c["color_hint"] for c in seg["assets"]["classes"]["classification:classes"]
                    if "color_hint" in c}
    return {}

"""STAC 1.1 records of the outputs: Items, a Collection per run, a static Catalog; plain JSON, relative links.

An Item describes one result on one grid (a segmented input, a change between two dates):
its footprint in WGS84, ``datetime`` (acquisition date when known, else processing time), the
projection of the grid (``proj:`` fields), and its files as assets with relative hrefs,
roles, media types, ``file:size`` and ``file:checksum`` (SHA2-256 multihash) and, on class
and change maps, their values, names and colours (``classification:classes``). Extensions:
:data:`EXTENSIONS`. The documents are built as dicts here and written by
:func:`write_json`; they are validated offline against the STAC JSON schemas in the tests.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from geoseg import CLASS_NODATA, __version__
from geoseg.grid import GeoGrid
from geoseg.io.styles import Category

STAC_VERSION = "1.1.0"
EXTENSIONS = {
    "classification": "https://stac-extensions.github.io/classification/v2.0.0/schema.json",
    "projection": "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "file": "https://stac-extensions.github.io/file/v2.1.0/schema.json",
}
"""The STAC extensions geoseg's records use (their schemas are shipped with the tests)."""

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
MEDIA_TYPES = {".tif": COG, ".gpkg": "application/geopackage+sqlite3", ".json": "application/json",
               ".csv": "text/csv", ".png": "image/png", ".html": "text/html", ".qml": "application/xml",
               ".sld": "application/vnd.ogc.sld+xml", ".xml": "application/xml", ".parquet": "application/vnd.apache.parquet"}
"""Media type of an asset by file suffix."""

JSON = "application/json"


def stac_id(text: str) -> str:
    """``text`` as an id or class name STAC accepts everywhere (letters, digits, ``-`` and ``_``)."""
    return re.sub(r"[^0-9A-Za-z_-]+", "_", text.replace("→", " to ")).strip("_") or "unnamed"


def file_fields(path: Path) -> dict[str, Any]:
    """``file:size`` and ``file:checksum`` (multihash: ``1220`` + SHA-256 hex) of a local file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"file:size": path.stat().st_size, "file:checksum": "1220" + h.hexdigest()}


def asset(path: Path, href: str, title: str, roles: Sequence[str], **fields: Any) -> dict[str, Any]:
    """An asset for the local file ``path`` published at the relative ``href``."""
    return {"href": href, "type": MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream"), "title": title,
            "roles": list(roles), **file_fields(path), **fields}


def class_objects(cats: Sequence[Category], nodata: int | None = CLASS_NODATA,
                  percent: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """``classification:classes`` of categories (name made STAC-safe, the original as title), nodata last."""
    out = []
    for i, c in enumerate(cats):
        obj: dict[str, Any] = {"value": c.value, "name": stac_id(c.name), "title": c.name,
                               "color_hint": c.color.lstrip("#").upper()}
        if c.count is not None:
            obj["count"] = int(c.count)
        if percent is not None:
            obj["percentage"] = round(float(percent[i]), 4)
        out.append(obj)
    if nodata is not None:
        out.append({"value": nodata, "name": "nodata", "title": "nodata", "nodata": True})
    return out


def projection(grid: GeoGrid) -> dict[str, Any]:
    """``proj:`` fields of a grid: EPSG code (else WKT2), shape, transform and native bbox."""
    out: dict[str, Any] = {}
    if grid.crs is not None:
        epsg = grid.crs.to_epsg()
        out["proj:epsg"] = epsg
        if epsg is None:
            out["proj:wkt2"] = grid.crs.to_wkt(version="WKT2_2019")
    else:
        out["proj:epsg"] = None
    t = grid.transform
    out.update({"proj:shape": [grid.height, grid.width], "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
                "proj:bbox": list(grid.bounds())})
    return out


def footprint(grid: GeoGrid) -> tuple[dict[str, Any], list[float]]:
    """The grid's outline in WGS84 (GeoJSON Polygon, 21 points a side) and its bbox."""
    from rasterio.warp import transform as reproject_points

    left, bottom, right, top = grid.bounds()
    steps = [i / 20 for i in range(21)]
    xs = ([left + (right - left) * s for s in steps] + [right] * 21 + [right - (right - left) * s for s in steps]
          + [left] * 21)
    ys = ([bottom] * 21 + [bottom + (top - bottom) * s for s in steps] + [top] * 21
          + [top - (top - bottom) * s for s in steps])
    if grid.crs is not None and grid.crs.to_epsg() != 4326:
        xs, ys = reproject_points(grid.crs, "EPSG:4326", xs, ys)
    ring = [[round(x, 7), round(y, 7)] for x, y in zip(xs, ys)]
    ring = [p for i, p in enumerate(ring) if i == 0 or p != ring[i - 1]]
    if ring[-1] != ring[0]:
        ring.append(ring[0])
    bbox = [min(p[0] for p in ring), min(p[1] for p in ring), max(p[0] for p in ring), max(p[1] for p in ring)]
    return {"type": "Polygon", "coordinates": [ring]}, bbox


def stac_datetime(date: str | None, fallback: datetime) -> str:
    """An RFC 3339 UTC timestamp: the acquisition ``date`` (``YYYY[-MM[-DD]]...``) if parseable, else ``fallback``."""
    if date:
        m = re.match(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?", date)
        if m:
            return f"{m[1]}-{m[2] or '01'}-{m[3] or '01'}T00:00:00Z"
    return fallback.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def item(item_id: str, grid: GeoGrid, when: str, assets: dict[str, dict], properties: dict[str, Any],
         collection: str | None = None, links: Iterable[dict] = ()) -> dict[str, Any]:
    """A STAC Item on ``grid`` (footprint, bbox, projection) with ``assets`` and extra ``properties``."""
    geometry, bbox = footprint(grid)
    doc: dict[str, Any] = {
        "type": "Feature", "stac_version": STAC_VERSION, "stac_extensions": list(EXTENSIONS.values()),
        "id": item_id, "geometry": geometry, "bbox": bbox,
        "properties": {"datetime": when, **projection(grid), "created": now(), "geoseg:version": __version__,
                       **properties},
        "links": list(links), "assets": assets,
    }
    if collection is not None:
        doc["collection"] = collection
    return doc


def collection(coll_id: str, description: str, items: Sequence[tuple[str, dict]], *, title: str | None = None,
               summaries: dict[str, Any] | None = None, links: Iterable[dict] = (),
               root: str = "./collection.json") -> dict[str, Any]:
    """A STAC Collection of ``items`` (``(relative href, item)``): extent from them, item links.

    ``root``: the catalog it belongs to (default: itself); another root is also its parent.
    """
    bboxes = [it["bbox"] for _, it in items]
    times = sorted(it["properties"]["datetime"] for _, it in items)
    bbox = ([min(b[0] for b in bboxes), min(b[1] for b in bboxes), max(b[2] for b in bboxes), max(b[3] for b in bboxes)]
            if bboxes else [-180.0, -90.0, 180.0, 90.0])
    doc: dict[str, Any] = {
        "type": "Collection", "stac_version": STAC_VERSION, "stac_extensions": list(EXTENSIONS.values()),
        "id": coll_id, "title": title or coll_id, "description": description, "license": "other",
        "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [[times[0], times[-1]] if times else [now(), None]]}},
        "links": [*(up_links(root) if root != "./collection.json" else [{"rel": "root", "href": root, "type": JSON}]),
                  *({"rel": "item", "href": href, "type": JSON, "title": it["id"]} for href, it in items), *links],
    }
    if summaries:
        doc["summaries"] = summaries
    return doc


def catalog(cat_id: str, description: str, links: Iterable[dict], title: str | None = None) -> dict[str, Any]:
    """A STAC Catalog whose root is itself (``catalog.json``), with ``links`` (children, items)."""
    return {"type": "Catalog", "stac_version": STAC_VERSION, "id": cat_id, "title": title or cat_id,
            "description": description, "links": [{"rel": "root", "href": "./catalog.json", "type": JSON}, *links]}


def up_links(parent: str, root: str | None = None) -> list[dict[str, Any]]:
    """``root`` and ``parent`` links (relative hrefs) of a record; ``collection`` too when the parent is one."""
    links = [{"rel": "root", "href": root or parent, "type": JSON}, {"rel": "parent", "href": parent, "type": JSON}]
    if parent.endswith("collection.json"):
        links.append({"rel": "collection", "href": parent, "type": JSON})
    return links


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

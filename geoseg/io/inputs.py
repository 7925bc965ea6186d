"""What a job reads: input lists expanded into scenes (local globs, ``s3://`` globs, STAC JSON).

A job's ``inputs`` may mix local paths, local or S3 globs (``s3://bucket/2024/*.tif``)
and STAC JSON files (an ItemCollection / FeatureCollection of Items, or one Item,
local or on S3). Each scene gets a ``stem`` that names its outputs: the file stem for
rasters, the Item ``id`` for STAC Items (their assets are often all called ``visual.tif``).
"""

from __future__ import annotations

import json
import logging
import posixpath
from dataclasses import dataclass
from pathlib import Path

from geoseg.errors import ConfigError, InputError
from geoseg.io import storage
from geoseg.io.urls import stem_of

log = logging.getLogger(__name__)

RASTER_MEDIA = ("image/tiff", "image/vnd.stac.geotiff", "application/x-geotiff", "image/jp2")


@dataclass(frozen=True, slots=True)
class SceneInput:
    """One input raster: where GDAL reads it (path or ``s3://`` URI) and the stem of its outputs.

    ``assets``: for a STAC Item, every asset's ``(key, href)`` (hrefs resolved), e.g. its quality band's.
    """

    path: str
    stem: str
    acquired: str | None = None
    assets: tuple[tuple[str, str], ...] = ()


def expand_inputs(inputs: list[str], stac_asset: str | None = None) -> list[SceneInput]:
    """Expand ``inputs`` into scenes, in the given order; errors name the input at fault."""
    out: list[SceneInput] = []
    for item in inputs:
        if item.lower().endswith(".json"):
            out.extend(read_stac(item, stac_asset))
        elif any(ch in item for ch in "*?[") and (storage.is_remote(item) or not ("://" in item or item.startswith("/vsi"))):
            hits = storage.glob(item)
            if not hits:
                raise InputError(f"input pattern {item!r} matches no {'object' if storage.is_remote(item) else 'file'}")
            out.extend(SceneInput(h, _stem(h)) for h in hits)
        elif storage.is_remote(item) or "://" in item or item.startswith("/vsi"):
            out.append(SceneInput(item, _stem(item)))
        elif not Path(item).exists():
            raise InputError(f"input {item}: no such file")
        else:
            out.append(SceneInput(item, _stem(item)))
    if not out:
        raise ConfigError("no input rasters: pass INPUT paths or set `inputs` in the config")
    stems = [s.stem for s in out]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise InputError(f"inputs share the output name(s) {dupes}: outputs are named by file stem (STAC: item id); "
                         "rename them or run them separately")
    return out


def read_stac(uri: str, asset: str | None = None) -> list[SceneInput]:
    """Scenes of a STAC ItemCollection / FeatureCollection / Item JSON (local or ``s3://``).

    ``asset``: the asset key to read (e.g. ``"visual"``); None: the Item's first asset
    with a raster media type (GeoTIFF/COG/JP2), else the first asset whose href ends in
    ``.tif``. Relative hrefs resolve against the JSON's location.
    """
    try:
        doc = json.loads(storage.read_bytes(uri))
    except ValueError as exc:
        raise InputError(f"{uri}: not valid JSON ({exc}); give a STAC ItemCollection or Item") from exc
    kind = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
    if kind == "Feature":
        items = [doc]
    elif kind == "FeatureCollection":
        items = doc.get("features") or []
    else:
        raise InputError(f"{uri}: not a STAC Item or ItemCollection (\"type\" is {kind!r}); "
                         "give a FeatureCollection of STAC Items")
    if not items:
        raise InputError(f"{uri}: the ItemCollection has no items")
    scenes = []
    for n, it in enumerate(items):
        item_id = it.get("id") if isinstance(it, dict) else None
        if not item_id or not isinstance(item_id, str):
            raise InputError(f"{uri}: feature {n} has no STAC \"id\" (outputs are named by it); give STAC Items")
        if "/" in item_id or "\\" in item_id:
            raise InputError(f"{uri}: item id {item_id!r} contains a path separator, but outputs are named by it "
                             "(<id>_classes.tif); rename the item")
        assets = it.get("assets") or {}
        key = asset if asset is not None else _pick_asset(assets)
        if key is None or key not in assets:
            raise InputError(
                f"{uri}: item {item_id!r} has no asset {asset!r} (assets: {sorted(assets)}); set `stac_asset` to one of them"
                if asset is not None else f"{uri}: item {item_id!r} has no GeoTIFF/COG asset; set `stac_asset`"
            )
        href = (assets[key] or {}).get("href")
        if not href:
            raise InputError(f"{uri}: asset {key!r} of item {item_id!r} has no href; fix the catalog or set `stac_asset`")
        href = _resolve_href(uri, href)
        hrefs = tuple((k, _resolve_href(uri, a["href"])) for k, a in assets.items() if isinstance(a, dict) and a.get("href"))
        scenes.append(SceneInput(href, item_id, (it.get("properties") or {}).get("datetime"), hrefs))
    return scenes


def _resolve_href(doc_uri: str, href: str) -> str:
    """``href`` of an asset as a path/URI GDAL can open; relative hrefs resolve against ``doc_uri``'s folder."""
    href = href.removeprefix("file://")
    if "://" in href or href.startswith("/"):
        return href
    if storage.is_remote(doc_uri):
        bucket, key = storage.split_s3(doc_uri)
        return f"s3://{bucket}/" + posixpath.normpath(posixpath.join(posixpath.dirname(key), href))
    return str((Path(doc_uri).resolve().parent / href).resolve())


def _pick_asset(assets: dict) -> str | None:
    for k, a in assets.items():
        if any(m in str(a.get("type", "")) for m in RASTER_MEDIA):
            return k
    for k, a in assets.items():
        if str(a.get("href", "")).lower().endswith((".tif", ".tiff")):
            return k
    return None


def _stem(path: str) -> str:
    return stem_of(path)

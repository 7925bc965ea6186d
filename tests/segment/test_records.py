"""A segment run's STAC Items and Collection, styles and quicklooks (geoseg.segment.records, SceneWriter).

Oracles: the STAC 1.1 JSON schemas and the extension schemas (offline, tests/stac_schemas), pystac reading
the catalogue, SHA-256 of the published files, the class map itself (quicklook colours, pixel counts),
stats.json, pyproj for the footprint, SQLite for the GeoPackage's layer_styles table.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import rasterio
from jsonschema import ValidationError

from geoseg.segment.pipeline import segment
from geoseg.segment.records import item_name
from tests.helpers import CLASSES, NC_IMAGE, SPECTRAL_MODEL, read_png, segment_config, validate_stac

STEM = NC_IMAGE.stem


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    d = tmp_path_factory.mktemp("records") / "run"
    segment(segment_config([NC_IMAGE], d, model=str(SPECTRAL_MODEL)), progress=False)
    return d


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_item_and_collection_are_valid_stac_with_the_extensions(out):
    item, coll = load(out / item_name(STEM)), load(out / "collection.json")
    for doc in (item, coll):
        validate_stac(doc)
    assert {"classification", "projection", "file"} <= {u.split("/")[3] for u in item["stac_extensions"]}
    # the validator is not a rubber stamp: broken copies fail
    bad = copy.deepcopy(item)
    bad["assets"]["classes"]["classification:classes"][0]["name"] = "not a name"
    with pytest.raises(ValidationError):
        validate_stac(bad)
    bad = copy.deepcopy(item)
    bad["assets"]["classes"]["file:checksum"] = "XYZ"
    with pytest.raises(ValidationError):
        validate_stac(bad)
    bad = copy.deepcopy(item)
    del bad["properties"]["datetime"]
    with pytest.raises(ValidationError):
        validate_stac(bad)


def test_assets_resolve_with_their_size_checksum_and_type(out):
    item = load(out / item_name(STEM))
    assert {"classes", "confidence", "polygons", "statistics", "report", "classes_quicklook"} <= set(item["assets"])
    for key, a in item["assets"].items():
        assert a["href"].startswith("./"), key
        f = out / a["href"]
        assert f.is_file(), key
        assert a["file:size"] == f.stat().st_size
        assert a["file:checksum"] == "1220" + hashlib.sha256(f.read_bytes()).hexdigest()
    assert item["assets"]["classes"]["type"] == "image/tiff; application=geotiff; profile=cloud-optimized"
    assert item["assets"]["polygons"]["type"] == "application/geopackage+sqlite3"
    assert "data" in item["assets"]["classes"]["roles"] and "overview" in item["assets"]["classes_quicklook"]["roles"]


def test_class_values_names_colours_and_counts_match_the_map_and_stats(out):
    item = load(out / item_name(STEM))
    classes = item["assets"]["classes"]["classification:classes"]
    with rasterio.open(out / f"{STEM}_classes.tif") as src:
        arr = src.read(1)
    stats = {r["class_id"]: r for r in load(out / "stats.json")["inputs"][STEM]["classes"]}
    for c, ref in zip(classes, CLASSES):
        assert (c["value"], c["name"], "#" + c["color_hint"].lower()) == (ref["id"], ref["name"], ref["color"])
        assert c["count"] == int((arr == ref["id"]).sum()) == stats[ref["id"]]["pixels"]
        assert c["percentage"] == pytest.approx(stats[ref["id"]]["percent"])
    assert classes[-1] == {"value": 255, "name": "nodata", "title": "nodata", "nodata": True}


def test_geometry_and_projection_describe_the_grid(out):
    from pyproj import Transformer

    item = load(out / item_name(STEM))
    with rasterio.open(NC_IMAGE) as src:
        b, crs, t, shape = src.bounds, src.crs, src.transform, (src.height, src.width)
    p = item["properties"]
    assert p["proj:epsg"] == crs.to_epsg() and p["proj:shape"] == list(shape)
    assert p["proj:transform"] == pytest.approx(list(t)[:6]) and p["proj:bbox"] == pytest.approx(list(b))
    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    for x, y in ((b.left, b.bottom), (b.left, b.top), (b.right, b.bottom), (b.right, b.top)):
        lon, lat = tr.transform(x, y)
        assert item["bbox"][0] - 1e-6 <= lon <= item["bbox"][2] + 1e-6 and item["bbox"][1] - 1e-6 <= lat <= item["bbox"][3] + 1e-6


def test_pystac_reads_the_collection_and_its_items(out):
    import pystac
    from pystac.extensions.classification import ClassificationExtension

    coll = pystac.Collection.from_file(str(out / "collection.json"))
    items = list(coll.get_items())
    assert [i.id for i in items] == [STEM]
    classes = ClassificationExtension.ext(items[0].assets["classes"]).classes
    assert [(c.value, c.name) for c in classes][:4] == [(c["id"], c["name"]) for c in CLASSES]
    assert Path(items[0].assets["classes"].get_absolute_href()).resolve() == (out / f"{STEM}_classes.tif").resolve()


def test_styles_travel_with_the_outputs(out):
    con = sqlite3.connect(out / f"{STEM}_polygons.gpkg")
    rows = con.execute("SELECT f_table_schema, f_table_name, f_geometry_column, useAsDefault, styleQML, styleSLD "
                       "FROM layer_styles").fetchall()
    geom = con.execute("SELECT column_name FROM gpkg_geometry_columns WHERE table_name='landcover'").fetchone()[0]
    assert con.execute("SELECT data_type FROM gpkg_contents WHERE table_name='layer_styles'").fetchone() == ("attributes",)
    assert len(rows) == 1 and rows[0][:4] == ("", "landcover", geom, 1)
    assert 'attr="class_id"' in rows[0][4] and all(f'label="{c["name"]}"' in rows[0][4] for c in CLASSES)
    assert all(c["color"] in rows[0][5] for c in CLASSES)
    for name in (f"{STEM}_classes.qml", f"{STEM}_classes.sld", f"{STEM}_classes.tif.aux.xml", f"{STEM}_confidence.qml",
                 f"{STEM}_confidence.sld"):
        assert (out / name).stat().st_size > 0, name


def test_the_class_quicklook_is_the_class_map_in_its_colours(out):
    with rasterio.open(out / f"{STEM}_classes.tif") as src:
        arr = src.read(1)
    png = read_png(out / f"{STEM}_classes.png")
    assert png.shape == (*arr.shape, 4)  # smaller than the quicklook size: full resolution
    for c in CLASSES:
        h = c["color"].lstrip("#")
        want = np.array([int(h[:2], 16), int(h[2:4], 16), int(h[4:], 16), 255], np.uint8)
        assert (png[arr == c["id"]] == want).all()
    assert (png[arr == 255][:, 3] == 0).all()
    scene = read_png(out / f"{STEM}_input.png")
    assert scene.shape == png.shape and scene[..., :3].std() > 10

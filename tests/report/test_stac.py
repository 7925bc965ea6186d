"""STAC building blocks (geoseg.report.stac). Oracles: hashlib, pyproj, the STAC schemas (offline)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from affine import Affine
from rasterio.crs import CRS

from geoseg.grid import GeoGrid
from geoseg.io.styles import Category
from geoseg.report import stac
from tests.helpers import validate_stac


def test_ids_and_datetimes():
    assert stac.stac_id("forest → urban") == "forest_to_urban" and stac.stac_id("a b/c") == "a_b_c"
    assert stac.stac_datetime("2015-08-18", datetime(2000, 1, 1, tzinfo=UTC)) == "2015-08-18T00:00:00Z"
    assert stac.stac_datetime("2020", datetime(2000, 1, 1, tzinfo=UTC)) == "2020-01-01T00:00:00Z"
    assert stac.stac_datetime(None, datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)) == "2001-02-03T04:05:06Z"


def test_file_fields_are_size_and_multihash(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"geoseg" * 1000)
    assert stac.file_fields(f) == {"file:size": 6000, "file:checksum": "1220" + hashlib.sha256(f.read_bytes()).hexdigest()}


def test_an_item_on_a_utm_grid_is_valid_and_its_footprint_is_in_wgs84(tmp_path):
    from pyproj import Transformer

    grid = GeoGrid(100, 50, Affine(30, 0, 500000, 0, -30, 4200000), CRS.from_epsg(32612))
    f = tmp_path / "c.tif"
    f.write_bytes(b"x")
    cats = [Category(0, "bare soil", "#aabbcc", 7)]
    assets = {"classes": stac.asset(f, "./c.tif", "classes", ["data"], **{"classification:classes": stac.class_objects(cats)})}
    item = stac.item("i", grid, "2020-01-01T00:00:00Z", assets, {}, collection="c", links=stac.up_links("./collection.json"))
    validate_stac(item)
    assert assets["classes"]["classification:classes"][0]["name"] == "bare_soil"
    lon, lat = Transformer.from_crs(32612, 4326, always_xy=True).transform(500000 + 1500, 4200000 - 750)
    west, south, east, north = item["bbox"]
    assert west < lon < east and south < lat < north
    assert item["properties"]["proj:epsg"] == 32612 and item["properties"]["proj:shape"] == [50, 100]
    coll = stac.collection("c", "d", [("./i.json", item)])
    validate_stac(coll)
    assert coll["extent"]["spatial"]["bbox"] == [item["bbox"]]
    validate_stac(stac.catalog("root", "d", [{"rel": "child", "href": "./c/collection.json"}]))


def test_a_grid_without_epsg_code_gets_wkt2():
    crs = CRS.from_wkt(CRS.from_proj4("+proj=aea +lat_1=10 +lat_2=20 +lon_0=5 +datum=WGS84").to_wkt())
    p = stac.projection(GeoGrid(10, 10, Affine(1, 0, 0, 0, -1, 0), crs))
    assert p["proj:epsg"] is None and "PROJCRS" in p["proj:wkt2"]
    with pytest.raises(KeyError):
        stac.projection(GeoGrid(10, 10, Affine(1, 0, 0, 0, -1, 0), None))["proj:wkt2"]

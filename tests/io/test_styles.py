"""Layer styles (geoseg.io.styles): QML, SLD and GDAL raster attribute tables from class colours and names.

Oracles: the XML parsed back (every class with its value, colour and label), GDAL's own reading of the PAM
sidecar (``gdalinfo -json``: category names and the raster attribute table), and QGIS opening the files
(tests/system/test_qgis.py).
"""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from geoseg.config import ClassInfo
from geoseg.io import styles
from tests.helpers import CLASSES, require_tool, write_raster

SLD = "{http://www.opengis.net/sld}"
OGC = "{http://www.opengis.net/ogc}"


@pytest.fixture
def cats():
    return styles.categories([ClassInfo(**c) for c in CLASSES], [10, 20, 0, 5])


def test_raster_qml_is_a_paletted_renderer_with_every_class(cats):
    root = ET.fromstring(styles.raster_qml(cats).split("\n", 1)[1])
    r = root.find("pipe/rasterrenderer")
    assert r.get("type") == "paletted" and r.get("band") == "1"
    entries = [(int(e.get("value")), e.get("color"), e.get("label")) for e in r.iter("paletteEntry")]
    assert entries == [(c["id"], c["color"], c["name"]) for c in CLASSES]


def test_ramp_qml_and_sld_interpolate_from_0_to_100():
    r = ET.fromstring(styles.ramp_qml().split("\n", 1)[1]).find("pipe/rasterrenderer")
    assert r.get("type") == "singlebandpseudocolor"
    shader = r.find("rastershader/colorrampshader")
    assert shader.get("colorRampType") == "INTERPOLATED"
    assert [float(i.get("value")) for i in shader.iter("item")] == [v for v, _ in styles.CONFIDENCE_RAMP]
    cmap = ET.fromstring(styles.ramp_sld("conf")).find(f".//{SLD}ColorMap")
    assert cmap.get("type") == "ramp" and [e.get("quantity") for e in cmap] == ["0", "50", "75", "90", "100"]


def test_vector_qml_and_sld_categorise_on_the_attribute(cats):
    root = ET.fromstring(styles.vector_qml("class_id", cats).split("\n", 1)[1])
    r = root.find("renderer-v2")
    assert r.get("type") == "categorizedSymbol" and r.get("attr") == "class_id"
    cat_rows = [(c.get("value"), c.get("label"), c.get("symbol")) for c in r.iter("category")]
    assert cat_rows == [(str(c["id"]), c["name"], str(i)) for i, c in enumerate(CLASSES)]
    fills = {s.get("name"): s.find("layer/Option/Option[@name='color']").get("value") for s in r.iter("symbol")}
    for i, c in enumerate(CLASSES):
        h = c["color"].lstrip("#")
        assert fills[str(i)] == f"{int(h[:2], 16)},{int(h[2:4], 16)},{int(h[4:], 16)},255"
    sld = ET.fromstring(styles.vector_sld("landcover", "class_id", cats))
    rules = sld.findall(f".//{SLD}Rule")
    assert [r.find(f"{SLD}Name").text for r in rules] == [c["name"] for c in CLASSES]
    for rule, c in zip(rules, CLASSES):
        assert rule.find(f".//{OGC}PropertyName").text == "class_id"
        assert rule.find(f".//{OGC}Literal").text == str(c["id"])
        assert rule.find(f".//{SLD}Fill/{SLD}CssParameter").text == c["color"]


def test_raster_sld_lists_every_class_as_a_value(cats):
    cmap = ET.fromstring(styles.raster_sld("x", cats)).find(f".//{SLD}ColorMap")
    assert cmap.get("type") == "values"
    assert [(e.get("quantity"), e.get("color"), e.get("label")) for e in cmap] == [
        (str(c["id"]), c["color"], c["name"]) for c in CLASSES]


def test_gdal_reads_category_names_and_the_attribute_table(tmp_path, cats):
    gdalinfo = require_tool("gdalinfo")
    tif = write_raster(tmp_path / "x_classes.tif", np.array([[0, 1], [3, 255]], np.uint8), nodata=255)
    names = styles.write_raster_sidecars(tif, styles.raster_qml(cats), styles.raster_sld("x", cats), styles.pam_xml(cats))
    assert names == ["x_classes.qml", "x_classes.sld", "x_classes.tif.aux.xml"]
    info = json.loads(subprocess.run([gdalinfo, "-json", str(tif)], capture_output=True, text=True, check=True).stdout)
    band = info["bands"][0]
    assert band["categories"] == [c["name"] for c in CLASSES]
    rat = info["rat"]
    assert rat["tableType"] == "thematic"
    # GDAL's field usages: 5 MinMax (the value), 1 PixelCount, 2 Name, 6/7/8 Red/Green/Blue
    assert [(f["name"], f["usage"]) for f in rat["fieldDefn"]] == [
        ("Value", 5), ("Count", 1), ("Class_Name", 2), ("Red", 6), ("Green", 7), ("Blue", 8)]
    rows = [r["f"] for r in rat["row"]]
    assert [(r[0], r[1], r[2]) for r in rows] == [(0, 10, "other"), (1, 20, "forest"), (2, 0, "water"), (3, 5, "urban")]
    assert rows[1][3:] == [0x1B, 0x78, 0x37]


def test_categories_from_a_class_map_use_its_tags_and_colour_table(tmp_path):
    import rasterio

    path = write_raster(tmp_path / "c.tif", np.zeros((4, 4), np.uint8), nodata=255,
                        tags={"class_names": "bare,trees", "class_ids": "0,1"})
    with rasterio.open(path, "r+") as ds:
        ds.write_colormap(1, {0: (1, 2, 3, 255), 1: (250, 251, 252, 255)})
    with rasterio.open(path) as src:
        assert styles.categories_from_raster(src) == [styles.Category(0, "bare", "#010203"),
                                                      styles.Category(1, "trees", "#fafbfc")]
    plain = write_raster(tmp_path / "p.tif", np.zeros((4, 4), np.uint8))
    with rasterio.open(plain) as src:
        assert styles.categories_from_raster(src) == []

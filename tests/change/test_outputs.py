"""Styles, quicklooks, STAC records and the report of a change run (geoseg.change.outputs).

Oracles: the change raster (pixel counts per code, quicklook colours), transitions.json, the STAC schemas
(offline), SHA-256 of the files, GDAL (gdalinfo) reading the raster attribute table, SQLite for layer_styles.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess

import numpy as np
import pytest
import rasterio

from geoseg.change.detect import CHANGE_FILES, detect_change
from geoseg.change.transitions import Legend
from geoseg.config import ChangeConfig
from tests.helpers import CLASS_NAMES, blobs, read_png, require_tool, validate_stac, write_pair


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    d = tmp_path_factory.mktemp("change")
    b, a = blobs(3, (40, 50)), blobs(4, (40, 50))
    b[:3] = 255
    before, after = write_pair(d, b, a)
    res = detect_change(before, after, str(d / "out"), options=ChangeConfig(min_confidence=0, mmu_ha=0, block_size=16))
    assert [f.rsplit("/", 1)[-1] for f in res.files] == list(CHANGE_FILES)
    return d / "out"


def counts(out) -> dict[int, int]:
    with rasterio.open(out / "change.tif") as src:
        vals, n = np.unique(src.read(1), return_counts=True)
    return dict(zip(vals.tolist(), n.tolist()))


def test_stac_item_and_collection_validate_and_describe_the_files(out):
    item = json.loads((out / "change_item.json").read_text())
    validate_stac(item)
    validate_stac(json.loads((out / "collection.json").read_text()))
    for key, a in item["assets"].items():
        f = out / a["href"]
        assert a["file:checksum"] == "1220" + hashlib.sha256(f.read_bytes()).hexdigest(), key
    have = counts(out)
    for c in item["assets"]["change"]["classification:classes"]:
        if not c.get("nodata"):
            assert c["count"] == have.get(c["value"], 0), c


def test_the_change_raster_attribute_table_counts_every_code(out):
    gdalinfo = require_tool("gdalinfo")
    info = json.loads(subprocess.run([gdalinfo, "-json", str(out / "change.tif")], capture_output=True, text=True,
                                     check=True).stdout)
    rows = {r["f"][0]: (r["f"][1], r["f"][2]) for r in info["rat"]["row"]}
    legend = {e["code"]: e["label"] for e in Legend.for_classes(CLASS_NAMES).entries if e["color"]}
    have = counts(out)
    assert {k: v[1] for k, v in rows.items()} == legend
    assert all(rows[k][0] == have.get(k, 0) for k in rows)
    names = info["bands"][0]["categories"]  # indexed by code: 0 .. 254 (uncertain)
    assert len(names) == 255 and all(names[code] == label for code, label in legend.items())


def test_change_polygons_open_styled_by_change_code(out):
    con = sqlite3.connect(out / "change_polygons.gpkg")
    (qml,) = con.execute("SELECT styleQML FROM layer_styles WHERE f_table_name='change' AND useAsDefault").fetchone()
    assert 'attr="change_code"' in qml and 'label="forest → urban"' in qml


def test_quicklooks_and_report(out):
    with rasterio.open(out / "change.tif") as src:
        arr, cmap = src.read(1), src.colormap(1)
    png = read_png(out / "change.png")
    for code in np.unique(arr):
        if code != 255:
            assert (png[arr == code][:, :3] == cmap[int(code)][:3]).all()
    assert (png[arr == 255][:, 3] == 0).all()
    assert read_png(out / "before.png")[:3, :, 3].max() == 0  # the before map's nodata rows are transparent
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "Transition matrix" in page and "http" not in page.split("<body>")[1].replace("http://www.w3.org/2000/svg", "")

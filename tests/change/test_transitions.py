"""Change codes and their legend (geoseg.change.transitions) as published in the change raster.

Oracles: one forest -> urban patch of 100 px; the legend's codes, labels, colours and change types
read back from the COG's colour table and tags; pyproj's geodesic cell areas for the transition table.
"""

import json

import numpy as np
import pytest
import rasterio

from geoseg.change.detect import detect_change
from geoseg.change.transitions import UNCERTAIN, Legend, change_code, decode
from geoseg.config import ChangeConfig
from tests.helpers import CLASS_NAMES, transitions_table, write_pair


def test_change_raster_is_a_cog_with_colours_and_legend(tmp_path):
    before = np.ones((40, 40), np.uint8)
    after = before.copy()
    after[10:20, 10:20] = 3
    b, a = write_pair(tmp_path, before, after)
    res = detect_change(b, a, str(tmp_path / "o"), options=ChangeConfig(min_confidence=0, mmu_ha=0))
    legend = Legend.for_classes(CLASS_NAMES)
    with rasterio.open(tmp_path / "o" / "change.tif") as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.nodata == 255 and src.descriptions == ("change code",)
        cmap = src.colormap(1)
        for code, rgba in legend.colormap().items():
            assert cmap[code] == rgba
        tag_legend = {e["code"]: e["label"] for e in json.loads(src.tags()["legend"])}
    code = int(change_code(1, 3, 4))
    assert tag_legend[code] == "forest → urban" and tag_legend[0] == "no change" and UNCERTAIN in tag_legend
    entry = next(e for e in res.document["legend"] if e["code"] == code)
    assert entry["change_types"] == ["deforestation", "urbanization"] and entry["change_type"] == "deforestation"
    assert decode(code, 4) == (1, 3)
    types = res.document["change_types"]
    assert types["deforestation"]["pixels"] == types["urbanization"]["pixels"] == 100
    assert types["reforestation"]["pixels"] == types["water_gain"]["pixels"] == types["water_loss"]["pixels"] == 0


def test_transition_areas_on_a_high_latitude_geographic_grid_match_geodesic_areas(tmp_path):
    """0.01° cells at 75-75.6° N (cells shrink by ~4 % over the 60 rows), change in every row, 16 px blocks.
    Oracle: pyproj's geodesic area of every changed cell, summed per transition."""
    from pyproj import Geod
    from rasterio.transform import from_origin

    d, lon0, lat0 = 0.01, 20.0, 75.6
    rows, cols = np.mgrid[0:60, 0:40]
    before = np.ones((60, 40), np.uint8)  # forest
    after = before.copy()
    after[cols < rows % 7 + 1] = 3  # forest -> urban: 1..7 px per row
    after[(cols >= 30) & (rows >= 20)] = 2  # forest -> water: 10 px per row in rows 20..59
    b, a = write_pair(tmp_path, before, after, crs="EPSG:4326", transform=from_origin(lon0, lat0, d, d))
    detect_change(b, a, str(tmp_path / "o"), options=ChangeConfig(min_confidence=0, mmu_ha=0, block_size=16))
    geod = Geod(ellps="WGS84")
    cell = [abs(geod.polygon_area_perimeter([lon0, lon0 + d, lon0 + d, lon0],
                                            [lat0 - (r + 1) * d, lat0 - (r + 1) * d, lat0 - r * d, lat0 - r * d])[0])
            for r in range(60)]
    table = transitions_table(tmp_path / "o")
    for cls, name in ((3, "urban"), (2, "water")):
        pixels, area_ha = table[("forest", name)]
        changed = after == cls
        assert pixels == changed.sum()
        assert area_ha == pytest.approx(sum(cell[r] * n for r, n in enumerate(changed.sum(axis=1))) / 1e4, rel=1e-7)
    assert table[("forest", "forest")][1] == pytest.approx(sum(cell[r] * n for r, n in enumerate((after == 1).sum(axis=1))) / 1e4, rel=1e-7)


def test_transitions_json_rows_matrix_and_legend_of_a_hand_made_change(tmp_path):
    """16 px forest -> urban kept, 1 px forest -> water below the MMU (uncertain): the document's rows,
    matrix and legend entries, counted by hand; pixel counts are JSON integers."""
    before = np.ones((20, 20), np.uint8)
    after = before.copy()
    after[2:6, 2:6] = 3
    after[10, 10] = 2
    b, a = write_pair(tmp_path, before, after)
    detect_change(b, a, str(tmp_path / "o"), options=ChangeConfig(min_confidence=0, mmu_ha=0.2))
    doc = json.loads((tmp_path / "o" / "transitions.json").read_text())
    cells = {(r["from_id"], r["to_id"]): (r["from_class"], r["to_class"], r["pixels"], r["area_ha"])
             for r in doc["transitions"]}
    assert len(cells) == 4 * 5
    assert cells[(1, 1)] == ("forest", "forest", 383, 34.47) and cells[(1, 3)] == ("forest", "urban", 16, 1.44)
    assert cells[(1, None)] == ("forest", "uncertain", 1, 0.09) and cells[(1, 2)] == ("forest", "water", 0, 0.0)
    m = doc["matrix"]
    assert m["rows"] == CLASS_NAMES and m["columns"] == [*CLASS_NAMES, "uncertain"]
    assert m["pixels"][1] == [0, 383, 0, 16, 1] and all(type(v) is int for row in m["pixels"] for v in row)
    assert m["area_ha"][1] == [0.0, 34.47, 0.0, 1.44, 0.09] and sum(map(sum, m["pixels"])) == 400
    legend = {e["code"]: e for e in doc["legend"]}
    code = int(change_code(1, 3, 4))
    assert {k: legend[code][k] for k in ("from_id", "to_id", "from_class", "to_class", "label")} == {
        "from_id": 1, "to_id": 3, "from_class": "forest", "to_class": "urban", "label": "forest → urban"}
    assert legend[UNCERTAIN]["label"] == "uncertain (change removed by a guard)"
    assert legend[255]["label"] == "nodata (either date)" and legend[255]["color"] is None
    assert legend[0]["label"] == "no change"

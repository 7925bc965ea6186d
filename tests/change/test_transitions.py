"""Change codes and their legend (geoseg.change.transitions) as published in the change raster.

Oracle: one forest -> urban patch of 100 px; the legend's codes, labels, colours and change types
read back from the COG's colour table and tags.
"""

import json

import numpy as np
import rasterio

from geoseg.change.detect import detect_change
from geoseg.change.transitions import UNCERTAIN, Legend, change_code, decode
from geoseg.config import ChangeConfig
from tests.helpers import CLASS_NAMES, write_pair


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

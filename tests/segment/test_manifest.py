"""The run's report (geoseg.segment.manifest): the typed summary and manifest.json say what the files hold.

Oracles: the published stats.json and class raster (pixel counts by numpy), and the input's size.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio

from geoseg.segment.manifest import VERSIONED_PACKAGES, RunSummary, TileCounts, versions
from geoseg.segment.pipeline import segment
from tests.helpers import NC_IMAGE, segment_config


def test_typed_summary_matches_the_published_files(tmp_path):
    s = segment(segment_config([NC_IMAGE], tmp_path / "o", outputs={"polygons": False}), progress=False)
    assert isinstance(s, RunSummary) and Path(s.files[-1]).name == "manifest.json"
    manifest = json.loads(Path(s.files[-1]).read_text())
    stats = json.loads((tmp_path / "o" / "stats.json").read_text())
    (only,) = s.inputs
    with rasterio.open(tmp_path / "o" / f"{only.stem}_classes.tif") as src:
        classes = src.read(1)
        assert (only.width, only.height) == (src.width, src.height) == (manifest["inputs"][0]["width"], src.height)
    assert [c.pixels for c in only.classes] == [int((classes == k).sum()) for k in range(4)]
    assert [c.area_ha for c in only.classes] == [r["area_ha"] for r in stats["inputs"][only.stem]["classes"]]
    assert s.tiles == TileCounts(**manifest["tiles"]) and s.tiles.processed + s.tiles.skipped == s.tiles.total
    assert s.runtime == manifest["runtime"] and s.pixels == classes.size
    assert s.manifest["inputs"] == manifest["inputs"] and manifest["status"] == "success"
    assert np.isclose(s.timings["total"], manifest["timings_s"]["total"], atol=1e-3)


def test_versions_name_every_package_and_gdal():
    v = versions()
    assert set(v) == {*VERSIONED_PACKAGES, "gdal"} and v["geoseg"] and v["gdal"] == rasterio.__gdal_version__


def test_the_written_config_names_inputs_output_model_and_aoi_without_query_strings_or_user_info():
    from geoseg.config import SegmentConfig
    from geoseg.segment.manifest import redacted_config

    cfg = SegmentConfig(inputs=["https://u:p@h/a.tif?X-Amz-Signature=s1", "/local/b#1.tif"], output="s3://bk/out",
                        model="https://h/model?token=t", aoi="https://h/aoi.geojson?sig=s2",
                        stats_from="https://u:p@h/scene.tif?X-Amz-Signature=s3")
    doc = redacted_config(cfg)
    assert doc["inputs"] == ["https://h/a.tif", "/local/b#1.tif"] and doc["output"] == "s3://bk/out"
    assert doc["model"] == "https://h/model" and doc["aoi"] == "https://h/aoi.geojson"
    assert doc["stats_from"] == "https://h/scene.tif"
    assert cfg.inputs[0].endswith("s1")  # what the run reads is untouched

"""`geoseg change`: class maps or scenes of two (or more) dates in, change products and a summary out."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from geoseg.change.detect import CHANGE_FILES
from geoseg.cli import main
from tests.helpers import PUCALLPA, SPECTRAL_MODEL, UNET_MODEL, write_map, write_pair


def test_cli_change_end_to_end(tmp_path):
    import geopandas as gpd

    before = np.ones((40, 40), np.uint8)
    after = before.copy()
    after[5:15, 5:15] = 3
    after[30, 30] = 0
    conf = np.full(before.shape, 90, np.uint8)
    b, a = write_pair(tmp_path, before, after, conf, conf)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["change", b, a, "--output", str(out), "--mmu-ha", "0.5", "--min-confidence", "60"])
    assert r.exit_code == 0, r.output
    assert "changed 9.00 ha" in r.output and "mmu 0.09 ha" in r.output and "deforestation 9.00 ha" in r.output
    assert sorted(p.name for p in out.iterdir()) == sorted(CHANGE_FILES)
    assert (out / "transitions.csv").read_text().splitlines()[0] == "from_class,to_class,pixels,area_ha"
    gdf = gpd.read_file(out / "change_polygons.gpkg", layer="change")
    assert len(gdf) == 1 and gdf.from_class[0] == "forest" and gdf.to_class[0] == "urban"
    assert gdf.area_ha[0] == pytest.approx(9.0) and gdf.mean_confidence_after[0] == 90
    rep = json.loads((out / "transitions.json").read_text())
    assert rep["guards"]["confidence"]["min_confidence"] == 60 and rep["valid"]["pixels"] == 1600

    r = CliRunner().invoke(main, ["change", "--before", b, "--after", a, "--output", str(out)])
    assert r.exit_code == 2 and "overwrite" in r.output
    flicker = before.copy()  # the forest -> urban patch reverted in a later date: persistence removes it
    flicker[30, 30] = 0
    later = write_map(tmp_path / "later_classes.tif", flicker)
    r = CliRunner().invoke(main, ["change", b, a, "--output", str(tmp_path / "p"), "--mmu-ha", "0",
                                  "--min-confidence", "0", "--confirm", later])
    assert r.exit_code == 0, r.output
    assert "persistence 9.00 ha" in r.output and "changed 0.09 ha" in r.output
    lasting = write_map(tmp_path / "lasting_classes.tif", after)  # still urban: confirms the change
    r = CliRunner().invoke(main, ["change", b, a, "--output", str(tmp_path / "p2"), "--mmu-ha", "0",
                                  "--min-confidence", "0", "--confirm", lasting, "--confirm", later])
    assert r.exit_code == 0, r.output  # both later dates count: the second one reverts the patch
    assert "persistence 9.00 ha" in r.output
    r = CliRunner().invoke(main, ["change", b, a, "--output", str(tmp_path / "p3"), "--mmu-ha", "0",
                                  "--min-confidence", "0", "--confirm", lasting, "--confirm", lasting])
    assert r.exit_code == 0 and "persistence 0.00 ha" in r.output, r.output
    r = CliRunner().invoke(main, ["change", b, "--output", str(tmp_path / "x")])
    assert r.exit_code == 2 and "two dates" in r.output
    r = CliRunner().invoke(main, ["change", b, str(tmp_path / "missing.tif"), "--output", str(tmp_path / "x")])
    assert r.exit_code == 2 and "missing.tif: no such file" in r.output
    assert not (tmp_path / "x").exists()  # nothing created for a run that could not start


def test_cli_change_segments_scenes_first(tmp_path):
    """Scenes (multi-band imagery) are segmented with the given model, then compared."""
    src_dir = PUCALLPA
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["-q", "change", str(src_dir / "landsat_1985.tif"), str(src_dir / "landsat_2020.tif"),
                                  "--output", str(out), "--model", str(SPECTRAL_MODEL),
                                  "--local", "--mmu-ha", "2"])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "transitions.json").read_text())
    assert rep["dates"]["before"]["segmented"] and rep["dates"]["after"]["source"].endswith("landsat_2020.tif")
    assert rep["dates"]["before"]["classes"] is None  # segmented in the staging directory, not kept
    assert rep["grid"]["crs"] == "EPSG:4326" and rep["grid"]["width"] == 697
    assert rep["valid"]["pixels"] + rep["nodata_excluded"]["either"]["pixels"] == 697 * 377
    assert sum(t["pixels"] for t in rep["transitions"]) == rep["valid"]["pixels"]
    assert sorted(p.name for p in out.iterdir()) == sorted(CHANGE_FILES)


def test_cli_change_native_resolution_segments_the_scenes_as_segment_does(tmp_path):
    """``--native-resolution`` reaches the segmentation of scenes: the change map equals the one computed from
    class maps that ``geoseg segment --native-resolution`` wrote (the bundled U-Net is trained for 28.5 m, the
    Pucallpa scenes are 89 m, so without the flag they would be enlarged 3x and the maps would differ)."""
    import rasterio

    scenes = [str(PUCALLPA / f"landsat_{y}.tif") for y in (1985, 2020)]
    r = CliRunner().invoke(main, ["-q", "segment", *scenes, "--output", str(tmp_path / "seg"), "--model", str(UNET_MODEL),
                                  "--native-resolution", "--local"])
    assert r.exit_code == 0, r.output
    maps = [str(tmp_path / "seg" / f"landsat_{y}_classes.tif") for y in (1985, 2020)]
    guards = ["--mmu-ha", "2", "--min-confidence", "60", "--local"]
    r = CliRunner().invoke(main, ["-q", "change", *maps, "--output", str(tmp_path / "from_maps"), *guards])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["-q", "change", *scenes, "--output", str(tmp_path / "from_scenes"), "--model",
                                  str(UNET_MODEL), "--native-resolution", *guards])
    assert r.exit_code == 0, r.output
    with rasterio.open(tmp_path / "from_maps" / "change.tif") as a, rasterio.open(tmp_path / "from_scenes" / "change.tif") as b:
        expected, got = a.read(1), b.read(1)
    assert (expected == got).all() and (expected != 0).any()

"""``geoseg composite``: the real CLI on cloudy looks of one map (oracle: the pixel-by-pixel rule)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from geoseg.change.composite import composite_files
from geoseg.cli import main
from geoseg.errors import ExitCode
from tests.change.test_composite import COLORS, cloudy_looks, oracle
from tests.helpers import PX_HA, blobs, read_band, write_map


def test_geoseg_composite_writes_the_period_map_share_and_looks(tmp_path):
    truth, stack, paths = cloudy_looks(tmp_path)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["composite", *paths, "--output", str(out), "--name", "2024", "--min-looks", "2",
                                  "--block-size", "16"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == sorted(composite_files("2024").values())
    conf = np.stack([read_band(tmp_path / f"d{i}_confidence.tif") for i in range(len(paths))])
    want = oracle(stack, conf, 4, 2)
    got = [read_band(out / f"2024_{k}.tif") for k in ("classes", "share", "looks")]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)  # block-wise (16 px) equals the whole-array rule
    clear = want[2] >= 2
    assert (got[0][clear] == truth[clear]).mean() > 0.97  # the clouds and the noise are voted away
    assert (got[0][~clear] == 255).all() and clear.mean() > 0.8
    doc = json.loads((out / "2024_composite.json").read_text())
    assert doc["pixels_by_looks"] == np.bincount(want[2].ravel(), minlength=5).tolist()
    assert doc["pixels_below_min_looks"] == int(((want[2] > 0) & (want[2] < 2)).sum())
    for c in doc["classes"]:
        assert c["area_ha"] == pytest.approx((want[0] == c["class_id"]).sum() * PX_HA)
    with rasterio.open(out / "2024_classes.tif") as src:
        assert {k: src.colormap(1)[k] for k in COLORS} == COLORS  # the inputs' colour table
        assert src.tags()["class_names"] == "other,forest,water,urban" and src.nodata == 255
    assert "class_names" not in (out / "2024_looks.qml").read_text() and "looks" in (out / "2024_looks.qml").read_text()


def test_composite_refuses_what_it_cannot_combine_and_leaves_the_output(tmp_path):
    _, _, paths = cloudy_looks(tmp_path, n=2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "2024_classes.tif").write_bytes(b"an earlier result")
    other = write_map(tmp_path / "x_classes.tif", blobs(3))
    with rasterio.open(other, "r+") as dst:
        dst.update_tags(class_names="a,b,c,d", class_ids="0,1,2,3")
    cases = [
        (["--min-looks", "3"], "--min-looks 3: must be 1..2"),
        ([paths[0]], "given more than once"),
        ([other], "x_classes.tif: classes a, b, c, d differ from other, forest, water, urban"),
        ([], "outputs already exist (2024_classes.tif); pass --overwrite"),
    ]
    for extra, want in cases:
        r = CliRunner().invoke(main, ["composite", *paths, *extra, "--output", str(out), "--name", "2024"])
        assert r.exit_code == ExitCode.BAD_INPUT, (extra, r.output)
        assert want in r.output, (want, r.output)
        assert sorted(p.name for p in out.iterdir()) == ["2024_classes.tif"]
        assert (out / "2024_classes.tif").read_bytes() == b"an earlier result"

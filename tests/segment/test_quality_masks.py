"""Quality masks in ``segment``: flagged pixels are nodata, everything else is what an unmasked run gives
when scaled like the masked one (the scene's percentiles over its clear pixels only).

Oracles: the same scene without its quality band run with ``stats_from`` the masked run's manifest
(pixel-identical elsewhere), numpy's percentiles over the clear pixels, the bit patterns written into the
QA band, pixel count x pixel area for the masked hectares.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin
from rasterio.windows import Window

from geoseg.cli import main
from geoseg.errors import ConfigError, InputError
from geoseg.io.quality import CODES, FLAGS
from geoseg.segment.pipeline import segment
from tests.helpers import NC_IMAGE, UTM12_30M, segment_config, write_raster

SIZE = 200
QA_CLEAR = 0b0101_0101_0100_0000  # bit 6 clear
QA_CLOUD = 0b0101_0111_0000_1000  # bit 3 cloud (high confidence)
QA_SHADOW = 0b0101_0111_0001_0000  # bit 4 cloud shadow
QA_SNOW = 0b0111_0101_0010_0000  # bit 5 snow
CLOUD = (slice(40, 90), slice(60, 140))
SHADOW = (slice(120, 140), slice(20, 50))
SNOW = (slice(150, 170), slice(150, 190))
PIXEL_M2 = 30.0 * 30.0
FAST = {"polygons": False}


def _bands() -> np.ndarray:
    with rasterio.open(NC_IMAGE) as src:
        names = list(src.descriptions)
        data = src.read([names.index(b) + 1 for b in ("blue", "green", "red", "nir")], window=Window(100, 100, SIZE, SIZE))
    return data.astype(np.uint16)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """A 4-band scene with a QA_PIXEL band (cloud, shadow and snow blocks) and the same scene without it."""
    d = tmp_path_factory.mktemp("quality")
    bands = _bands()
    qa = np.full((SIZE, SIZE), QA_CLEAR, np.uint16)
    qa[CLOUD], qa[SHADOW], qa[SNOW] = QA_CLOUD, QA_SHADOW, QA_SNOW
    names = ["blue", "green", "red", "nir"]
    masked = write_raster(d / "scene.tif", np.concatenate([bands, qa[None]]), nodata=0, descriptions=[*names, "QA_PIXEL"])
    (d / "plain").mkdir()
    plain = write_raster(d / "plain" / "scene.tif", bands, nodata=0, descriptions=names)
    return {"masked": masked, "plain": plain, "dir": d}


@pytest.fixture(scope="module")
def runs(scenes):
    d = scenes["dir"]
    segment(segment_config([scenes["plain"]], d / "plain_out", tile_size=128, halo=16, outputs=FAST), progress=False)
    segment(segment_config([scenes["masked"]], d / "masked_out", tile_size=128, halo=16, outputs=FAST), progress=False)
    return d / "plain_out", d / "masked_out"


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(1)


def _plain_like(scenes, masked_out, out) -> np.ndarray:
    """Classes of the scene without its quality band, scaled like the masked run ``masked_out``."""
    segment(segment_config([scenes["plain"]], out, tile_size=128, halo=16, outputs=FAST,
                           stats_from=str(masked_out / "manifest.json")), progress=False)
    return _read(out / "scene_classes.tif")


def test_scene_percentiles_come_from_the_clear_pixels_only(scenes, runs):
    """A bright cloud no longer stretches the scaling: the masked run's stats are numpy's 2/98 % percentiles
    of the clear, valid pixels (the decimated read is every pixel at this size); the plain run's differ."""
    plain, masked = runs
    bands = _bands()[1:]  # green, red, nir
    clear = (bands != 0).all(axis=0)
    for block in (CLOUD, SHADOW, SNOW):
        clear[block] = False
    lo, hi = np.percentile(bands[:, clear].astype(float), [2, 98], axis=1)
    got = json.loads((masked / "manifest.json").read_text())["inputs"][0]["normalization_stats"]
    np.testing.assert_allclose(got["offset"], lo)
    np.testing.assert_allclose(got["scale"], hi - lo)
    other = json.loads((plain / "manifest.json").read_text())["inputs"][0]["normalization_stats"]
    assert other != got


def test_flagged_pixels_are_nodata_and_the_rest_equals_an_unmasked_run(scenes, runs):
    _, masked = runs
    flagged = np.zeros((SIZE, SIZE), bool)
    for block in (CLOUD, SHADOW, SNOW):
        flagged[block] = True
    like = masked.parent / "plain_like_masked"
    _plain_like(scenes, masked, like)
    for kind in ("classes", "confidence"):
        a, b = _read(like / f"scene_{kind}.tif"), _read(masked / f"scene_{kind}.tif")
        assert (b[flagged] == 255).all()
        np.testing.assert_array_equal(b[~flagged], a[~flagged])
    assert (_read(like / "scene_classes.tif")[flagged] != 255).any()  # the blocks did hold classes before


def test_stats_exclude_the_masked_area_and_report_it_per_flag(runs):
    plain, masked = runs
    a = json.loads((plain / "stats.json").read_text())["inputs"]["scene"]
    b = json.loads((masked / "stats.json").read_text())["inputs"]["scene"]
    n = {"cloud": 50 * 80, "cloud_shadow": 20 * 30, "snow": 20 * 40}
    nodata_before = SIZE * SIZE - a["valid_pixels"]
    assert b["valid_pixels"] == a["valid_pixels"] - sum(n.values())
    q = b["quality"]
    for flag, count in n.items():
        assert q["flags"][flag] == {"pixels": count, "area_ha": round(count * PIXEL_M2 / 1e4, 4), "masked": True}
    assert q["flags"]["fill"]["pixels"] == nodata_before  # the input's own nodata is fill
    assert q["masked_pixels"] == sum(n.values()) + nodata_before
    assert q["masked_area_ha"] == pytest.approx(q["masked_pixels"] * PIXEL_M2 / 1e4)
    assert q["clear_pixels"] == b["valid_pixels"]
    m = json.loads((masked / "manifest.json").read_text())["inputs"][0]
    assert m["quality"]["format"] == "landsat_qa_pixel" and m["quality"]["band"] == 5
    assert m["quality"]["flags"] == q["flags"] and m["bands"] == ["green", "red", "nir"]
    assert "quality" not in json.loads((plain / "manifest.json").read_text())["inputs"][0]


def test_the_quality_layer_holds_the_flag_codes(runs):
    plain, masked = runs
    assert not (plain / "scene_quality.tif").exists()
    with rasterio.open(masked / "scene_quality.tif") as ds:
        q = ds.read(1)
        assert ds.nodata == 255 and ds.tags()["flag_names"].split(",") == ["clear", *FLAGS]
        assert ds.colormap(1)[CODES["cloud"]][:3] == (255, 255, 255)
        assert ds.descriptions == ("quality",)
    assert (q[CLOUD] == CODES["cloud"]).all() and (q[SHADOW] == CODES["cloud_shadow"]).all()
    assert (q[SNOW] == CODES["snow"]).all()
    classes = _read(masked / "scene_classes.tif")
    np.testing.assert_array_equal(q == 0, classes != 255)  # clear exactly where there is a class
    assert (masked / "scene_quality.qml").exists() and (masked / "scene_quality.tif.aux.xml").exists()
    assert "scene: quality flags (" in (masked / "report.html").read_text()
    item = json.loads((masked / "scene_item.json").read_text())
    assert "quality" in item["assets"]


def test_flags_left_out_of_masked_flags_are_reported_but_keep_their_classes(scenes, runs, tmp_path):
    plain, _ = runs
    flags = [f for f in FLAGS if f != "snow"]
    segment(segment_config([scenes["masked"]], tmp_path / "o", tile_size=128, halo=16, outputs=FAST,
                           quality={"masked_flags": flags}), progress=False)
    classes = _read(tmp_path / "o" / "scene_classes.tif")
    np.testing.assert_array_equal(classes[SNOW], _plain_like(scenes, tmp_path / "o", tmp_path / "p")[SNOW])
    assert (classes[CLOUD] == 255).all()
    q = json.loads((tmp_path / "o" / "stats.json").read_text())["inputs"]["scene"]["quality"]
    assert q["flags"]["snow"] == {"pixels": 800, "area_ha": 800 * PIXEL_M2 / 1e4, "masked": False}
    assert (_read(tmp_path / "o" / "scene_quality.tif")[SNOW] == CODES["snow"]).all()


def test_cli_mask_file_on_a_finer_grid_is_reprojected_by_nearest_neighbour(scenes, runs, tmp_path):
    plain, _ = runs
    # a 0/1 mask at 10 m on the same CRS and origin: 30 m pixel (r, c) has its centre in 10 m pixel (3r+1, 3c+1)
    fine = np.zeros((SIZE * 3, SIZE * 3), np.uint8)
    fine[30:90, 60:120] = 1  # 30 m rows 10..29, cols 20..39
    mask = write_raster(tmp_path / "clouds.tif", fine, transform=from_origin(500000, 4200000, 10, 10))
    out = tmp_path / "o"
    r = CliRunner().invoke(main, ["-q", "segment", str(scenes["plain"]), "--output", str(out), "--local", "--tile-size",
                                  "128", "--halo", "16", "--device", "cpu", "--mask", str(mask), "--mask-format",
                                  "binary"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "masked" in r.output and "flagged 36.0 ha" in r.output
    flagged = np.zeros((SIZE, SIZE), bool)
    flagged[10:30, 20:40] = True
    classes, ref = _read(out / "scene_classes.tif"), _read(plain / "scene_classes.tif")
    assert (classes[flagged] == 255).all()
    np.testing.assert_array_equal(classes[~flagged], ref[~flagged])
    assert (_read(out / "scene_quality.tif")[flagged] == CODES["flagged"]).all()
    q = json.loads((out / "manifest.json").read_text())["inputs"][0]["quality"]
    assert q["reprojected"] is True and q["flags"]["flagged"]["pixels"] == 400


def test_a_mask_that_does_not_overlap_names_the_file_and_what_to_give(scenes, tmp_path):
    far = write_raster(tmp_path / "far_mask.tif", np.zeros((10, 10), np.uint8), crs="EPSG:4326",
                       transform=from_origin(10, 50, 0.01, 0.01))
    with pytest.raises(InputError, match=r"--mask .*far_mask.tif \(EPSG:4326\) does not overlap .*scene.tif"):
        segment(segment_config([scenes["plain"]], tmp_path / "o", quality={"mask": str(far), "format": "binary"}),
                progress=False)


def test_a_missing_mask_names_the_flag(scenes, tmp_path):
    with pytest.raises(InputError, match=r"--mask \(`quality.mask`\): .*nope.tif: cannot open"):
        segment(segment_config([scenes["plain"]], tmp_path / "o", quality={"mask": str(tmp_path / "nope.tif")}),
                progress=False)


def test_a_mask_of_unknown_format_asks_for_mask_format(scenes, tmp_path):
    m = write_raster(tmp_path / "m.tif", np.zeros((SIZE, SIZE), np.uint8), transform=UTM12_30M)
    with pytest.raises(ConfigError, match="--mask .*m.tif: cannot tell its format.*--mask-format"):
        segment(segment_config([scenes["plain"]], tmp_path / "o", quality={"mask": str(m)}), progress=False)


def test_a_quality_band_the_input_lacks_names_the_key_and_the_bands(scenes, tmp_path):
    from geoseg.errors import BandError

    with pytest.raises(BandError, match=r"scene.tif: no band named 'SCL'; the file has bands 1:blue, .*5:QA_PIXEL. "
                       r"Set `quality.band` to .* or give --mask FILE"):
        segment(segment_config([scenes["masked"]], tmp_path / "o", quality={"band": "SCL"}), progress=False)


def test_the_quality_band_is_never_a_model_input(scenes, tmp_path):
    with pytest.raises(ConfigError, match="band 5:QA_PIXEL .* is a quality band"):
        segment(segment_config([scenes["masked"]], tmp_path / "o", bands=["green", "red", "QA_PIXEL"]), progress=False)


def test_the_journal_key_depends_on_the_quality_source(scenes):
    from geoseg.io.inputs import expand_inputs
    from geoseg.model.checkpoint import load_checkpoint
    from geoseg.segment.plan import Tiling, journal_key, plan_scene

    ckpt = load_checkpoint(None)
    keys = []
    for q in ({}, {"band": None}, {"masked_flags": ["cloud"]}):
        cfg = segment_config([scenes["masked"]], "/tmp/unused", quality=q)
        t = Tiling.resolve(cfg, ckpt)
        plans = [plan_scene(s, cfg, ckpt, t) for s in expand_inputs(cfg.inputs)]
        keys.append(json.dumps(journal_key(ckpt, plans, t, "cpu"), sort_keys=True))
        assert pickle.loads(pickle.dumps(plans[0].job)) == plans[0].job  # travels to Ray actors as it is
    assert len(set(keys)) == 3


def test_an_interrupted_masked_run_resumes_to_the_same_outputs(scenes, runs, tmp_path, monkeypatch):
    from geoseg.errors import TileError
    from geoseg.model.predict import TileProcessor

    _, masked = runs
    real, calls = TileProcessor.process, {"n": 0}

    def crash_after_the_first_task(self, job, tiles):
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("simulated crash")
        return real(self, job, tiles)

    monkeypatch.setattr(TileProcessor, "process", crash_after_the_first_task)
    cfg = segment_config([scenes["masked"]], tmp_path / "o", tile_size=128, halo=16, outputs=FAST,
                         runtime={"local": True, "checkpoint_tiles": 1, "max_task_retries": 0, "tiles_per_task": 2})
    with pytest.raises(TileError, match="simulated crash"):
        segment(cfg, progress=False)
    monkeypatch.undo()
    summary = segment(cfg, progress=False)
    assert summary.tiles.resumed == 2  # the first task's tiles (of 2 x 2) came from the journal, flag codes included
    for kind in ("classes", "confidence", "quality"):
        np.testing.assert_array_equal(_read(tmp_path / "o" / f"scene_{kind}.tif"), _read(masked / f"scene_{kind}.tif"))
    q = [json.loads((d / "stats.json").read_text())["inputs"]["scene"]["quality"] for d in (tmp_path / "o", masked)]
    assert q[0] == q[1]


def test_an_scl_file_on_the_input_grid_is_found_by_its_name(scenes, runs, tmp_path):
    plain, _ = runs
    scl = np.full((SIZE, SIZE), 4, np.uint8)  # 4: vegetation (clear)
    scl[:20, :] = 9  # cloud, high probability
    scl[20:30, :] = 10  # thin cirrus
    scl[30:35, :] = 2  # dark area pixels: clear
    mask = write_raster(tmp_path / "S2A_T33TWM_20230601_SCL_20m.tif", scl)
    segment(segment_config([scenes["plain"]], tmp_path / "o", tile_size=128, halo=16, outputs=FAST,
                           quality={"mask": str(mask)}), progress=False)
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())["inputs"][0]["quality"]
    assert m["format"] == "s2_scl" and m["reprojected"] is False and m["separate"] is True
    assert m["flags"]["cloud"]["pixels"] == 20 * SIZE and m["flags"]["cirrus"]["pixels"] == 10 * SIZE
    classes = _read(tmp_path / "o" / "scene_classes.tif")
    assert (classes[:30] == 255).all()
    np.testing.assert_array_equal(classes[30:], _plain_like(scenes, tmp_path / "o", tmp_path / "p")[30:])


def test_a_stac_asset_is_the_mask_of_each_item(scenes, runs, tmp_path):
    """`--mask stac:qa_pixel`: each STAC Item's `qa_pixel` asset (a QA_PIXEL raster, relative href) masks its image;
    the result equals the run whose QA_PIXEL is a band of the input."""
    _, masked = runs
    qa = np.full((SIZE, SIZE), QA_CLEAR, np.uint16)
    qa[CLOUD], qa[SHADOW], qa[SNOW] = QA_CLOUD, QA_SHADOW, QA_SNOW
    write_raster(tmp_path / "scene_QA.tif", qa)  # the name says nothing: the format comes from the asset key
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "scene", "properties": {"datetime": "2000-05-01T00:00:00Z"},
            "geometry": None, "links": [],
            "assets": {"image": {"href": str(scenes["plain"]), "type": "image/tiff; application=geotiff"},
                       "qa_pixel": {"href": "./scene_QA.tif", "type": "image/tiff; application=geotiff"}}}
    stac = tmp_path / "items.json"
    stac.write_text(json.dumps({"type": "FeatureCollection", "features": [item]}))
    out = tmp_path / "o"
    r = CliRunner().invoke(main, ["-q", "segment", str(stac), "--output", str(out), "--local", "--tile-size", "128",
                                  "--halo", "16", "--mask", "stac:qa_pixel"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    for kind in ("classes", "confidence"):
        np.testing.assert_array_equal(_read(out / f"scene_{kind}.tif"), _read(masked / f"scene_{kind}.tif"))
    q = json.loads((out / "manifest.json").read_text())["inputs"][0]["quality"]
    assert q["format"] == "landsat_qa_pixel" and q["path"] == str(tmp_path / "scene_QA.tif")
    r = CliRunner().invoke(main, ["-q", "segment", str(stac), "--output", str(tmp_path / "o2"), "--local",
                                  "--mask", "stac:scl"])
    assert r.exit_code == 2 and "--mask stac:scl: the STAC Item 'scene' has no asset 'scl' (assets: ['image', " \
                                 "'qa_pixel']); pass --mask stac:KEY with one of them" in r.output
    r = CliRunner().invoke(main, ["-q", "segment", str(scenes["plain"]), "--output", str(tmp_path / "o3"), "--local",
                                  "--mask", "stac:qa_pixel"])
    assert r.exit_code == 2 and "is not a STAC input, so it has no asset 'qa_pixel'" in r.output

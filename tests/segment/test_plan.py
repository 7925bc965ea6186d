"""Planning: tile geometry from the config or the card, AOI filtering, and a journal key that changes with
everything a tile's result depends on (and nothing else)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from shapely.geometry import box, mapping

from geoseg.config import SegmentConfig
from geoseg.errors import AOIError
from geoseg.io.inputs import SceneInput
from geoseg.model.checkpoint import Checkpoint, load_checkpoint
from geoseg.segment.journal import run_key
from geoseg.segment.plan import Tiling, journal_key, plan_scene, reference_stats
from tests.helpers import NC_IMAGE, ZION_IMAGE


@pytest.fixture(scope="module")
def ckpt():
    return load_checkpoint(None)


def _scene(make_raster, seed=0, **kw):
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 4000, size=(3, 300, 260)).astype(np.uint16)
    return SceneInput(str(make_raster(arr, descriptions=["green", "red", "nir"], **kw)), "s")


def _key(ckpt, plans, tiling=Tiling(128, 16), device="auto"):
    return run_key(journal_key(ckpt, plans, tiling, device))


def test_tiling_from_card_unless_configured(ckpt):
    assert Tiling.resolve(SegmentConfig(), ckpt) == Tiling(ckpt.card.tile_size, ckpt.card.halo)
    assert Tiling.resolve(SegmentConfig(tile_size=256, halo=0), ckpt) == Tiling(256, 0)


def test_aoi_keeps_only_tiles_whose_core_it_touches(make_raster, ckpt, tmp_path):
    import json

    scene = _scene(make_raster)
    plan = plan_scene(scene, SegmentConfig(), ckpt, Tiling(128, 16))
    assert len(plan.tiles) == len(plan.grid) and plan.outside_aoi == 0
    x0, y0 = 500000, 4200000  # the fixture's origin, 30 m pixels: a 10 x 10 px AOI in the top-left core
    aoi = tmp_path / "aoi.geojson"
    from pyproj import Transformer

    tr = Transformer.from_crs("EPSG:32612", "EPSG:4326", always_xy=True)
    (lon0, lat0), (lon1, lat1) = tr.transform(x0 + 30, y0 - 300), tr.transform(x0 + 300, y0 - 30)
    aoi.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": mapping(box(lon0, lat0, lon1, lat1))}]}))
    plan = plan_scene(scene, SegmentConfig(aoi=str(aoi)), ckpt, Tiling(128, 16))
    assert [t.index for t in plan.tiles] == [0] and plan.outside_aoi == len(plan.grid) - 1
    far = tmp_path / "far.geojson"
    far.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": mapping(box(10, 10, 11, 11))}))
    with pytest.raises(AOIError, match="does not overlap"):
        plan_scene(scene, SegmentConfig(aoi=str(far)), ckpt, Tiling(128, 16))


def test_journal_key_tracks_what_tiles_depend_on(make_raster, ckpt):
    scene = _scene(make_raster)
    base = [plan_scene(scene, SegmentConfig(), ckpt, Tiling(128, 16))]
    same = [plan_scene(scene, SegmentConfig(), ckpt, Tiling(128, 16))]
    assert _key(ckpt, base) == _key(ckpt, same)  # deterministic
    other_bands = [plan_scene(scene, SegmentConfig(bands=["nir", "red", "green"]), ckpt, Tiling(128, 16))]
    other_stats = [plan_scene(_scene(make_raster, seed=1, name="b.tif"), SegmentConfig(), ckpt, Tiling(128, 16))]
    other_weights = Checkpoint(ckpt.path, ckpt.card, "0" * 64)
    other_card = Checkpoint(ckpt.path, ckpt.card.model_copy(update={"version": "other"}), ckpt.weights_sha256)
    keys = {
        "bands": _key(ckpt, other_bands),
        "normalisation": _key(ckpt, [dataclasses.replace(base[0], job=dataclasses.replace(base[0].job, stats=other_stats[0].job.stats))]),
        "weights": _key(other_weights, base),
        "card": _key(other_card, base),
        "tiling": _key(ckpt, base, Tiling(128, 8)),
        "device": _key(ckpt, base, device="cpu"),
    }
    assert base[0].job.stats != other_stats[0].job.stats
    for what, k in keys.items():
        assert k != _key(ckpt, base), f"journal key ignores {what}"
    assert len(set(keys.values())) == len(keys)


def test_plan_resolves_bands_stats_and_the_stac_acquisition_date(make_raster, ckpt):
    """The job carries the resolved band indexes and the scene statistics (numpy percentiles of those
    bands); a raster without a date tag takes the date of its STAC item."""
    scene = _scene(make_raster)
    plan = plan_scene(SceneInput(scene.path, "s", acquired="2015-08-18T17:55:12Z"),
                      SegmentConfig(bands=["nir", "red", "green"]), ckpt, Tiling(128, 16))
    assert plan.job.band_indexes == [3, 2, 1] and plan.job.path == scene.path and plan.stem == "s"
    assert plan.info.acquired == "2015-08-18"
    import rasterio

    with rasterio.open(scene.path) as src:
        data = src.read([3, 2, 1]).reshape(3, -1).astype(float)
    norm = ckpt.card.normalization
    lo, hi = np.percentile(data, [norm.low, norm.high], axis=1)
    np.testing.assert_allclose(plan.job.stats.offset, lo)
    np.testing.assert_allclose(plan.job.stats.scale, hi - lo)
    assert plan.job.grid == plan.info.grid and plan.grid.tile_size == 128 and len(plan.tiles) == len(plan.grid)


def _with_gsd(ckpt: Checkpoint, tmp_path, gsd_m):
    """A copy of the bundled model whose card says it was trained for ``gsd_m`` metre pixels."""
    import shutil

    from geoseg.model.checkpoint import CARD_NAME, WEIGHTS_NAME

    out = tmp_path / f"gsd{gsd_m}"
    out.mkdir()
    shutil.copy(ckpt.path / WEIGHTS_NAME, out / WEIGHTS_NAME)
    (out / CARD_NAME).write_text(ckpt.card.model_copy(update={"gsd_m": gsd_m}).model_dump_json())
    return out


def test_inputs_at_another_pixel_size_are_resampled_for_the_model_and_written_on_their_own_grid(ckpt, tmp_path):
    """A 10 m raster that is the 30 m Zion crop with each pixel repeated 3 x 3, segmented by a model trained for
    30 m: resampled, its class map is (nearly) the 30 m map repeated 3 x 3, and much closer to it than the
    native-resolution prediction. Oracle: the 30 m run, upsampled by hand (np.repeat)."""
    import json

    import rasterio

    from geoseg.segment.pipeline import segment
    from tests.helpers import ZION_IMAGE, segment_config, write_raster

    model = _with_gsd(ckpt, tmp_path, 30.0)
    with rasterio.open(ZION_IMAGE) as src:
        win = ((0, 160), (0, 160))
        data, t = src.read(window=win), src.window_transform(win)
        crs, names = src.crs.to_string(), list(src.descriptions)
    coarse = write_raster(tmp_path / "coarse.tif", data, crs=crs, transform=t, descriptions=names)
    fine_t = rasterio.Affine(t.a / 3, 0, t.c, 0, t.e / 3, t.f)
    fine = write_raster(tmp_path / "fine.tif", data.repeat(3, axis=1).repeat(3, axis=2), crs=crs, transform=fine_t,
                        descriptions=names)
    maps = {}
    for name, path, native in (("coarse", coarse, False), ("zoomed", fine, False), ("native", fine, True)):
        segment(segment_config([path], tmp_path / name, model=str(model), native_resolution=native,
                               outputs={"polygons": False}), progress=False)
        with rasterio.open(tmp_path / name / f"{path.stem}_classes.tif") as out:
            maps[name] = out.read(1)
            assert out.transform == rasterio.open(path).transform  # the input's own grid
        manifest = json.loads((tmp_path / name / "manifest.json").read_text())
        zoom = manifest["inputs"][0]["model_zoom"]
        assert zoom == (pytest.approx(1 / 3, abs=1e-4) if name == "zoomed" else 1.0)
    oracle = maps["coarse"].repeat(3, axis=0).repeat(3, axis=1)
    agree = {k: float((maps[k] == oracle).mean()) for k in ("zoomed", "native")}
    assert agree["zoomed"] >= 0.9, agree
    assert agree["zoomed"] > agree["native"] + 0.02, agree


def test_stats_from_a_raster_are_its_percentiles_over_the_models_bands_and_replace_each_inputs_own():
    """Oracle: numpy's 2/98 % percentiles of the NC scene's green, red, nir (bands 2-4), nodata 0 excluded."""
    import rasterio

    ckpt = load_checkpoint()
    cfg = SegmentConfig(stats_from=str(NC_IMAGE))
    ref = reference_stats(cfg, ckpt.card)
    with rasterio.open(NC_IMAGE) as src:
        data = src.read([2, 3, 4]).reshape(3, -1).astype(float)
    data = data[:, (data != 0).all(axis=0)]
    lo, hi = np.percentile(data, [2, 98], axis=1)
    np.testing.assert_allclose(ref.offset, lo)
    np.testing.assert_allclose(ref.scale, hi - lo)
    zion = plan_scene(SceneInput(str(ZION_IMAGE), "zion"), cfg, ckpt, Tiling(256, 32), ref)
    assert zion.job.stats == ref and reference_stats(SegmentConfig(), ckpt.card) is None

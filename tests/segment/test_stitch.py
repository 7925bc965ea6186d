"""Stitching (geoseg.segment.stitch): tiled prediction equals one pass over the whole scene; tile results
arriving in any order give the same rasters and class areas.

Oracles: a single forward pass of the model over the whole scene (its class and max-softmax confidence); hand-made tile results whose
stitched map and counts are known.
"""

import numpy as np
import pytest
import rasterio
from rasterio.features import rasterize

from geoseg.config import SegmentConfig
from geoseg.segment.pipeline import segment
from tests.helpers import NC_IMAGE, ZION_IMAGE, crop_raster, normalized_scene


def _single_pass(path, predictor, checkpoint):
    """Class and confidence (max softmax probability, percent) of one forward pass over the whole scene."""
    x, valid = normalized_scene(path, checkpoint.card)
    probs = predictor.probabilities(x[None])[0]
    return np.where(valid, probs.argmax(0), 255), np.where(valid, np.round(probs.max(0) * 100), 255)


@pytest.fixture(scope="module")
def nc_crop(tmp_path_factory):
    """The NC scene cropped to 480 x 416 px (multiples of 32), so the single pass needs no padding."""
    from rasterio.windows import Window

    return crop_raster(NC_IMAGE, tmp_path_factory.mktemp("crop") / "nc_crop.tif", Window(0, 0, 480, 416))


@pytest.mark.parametrize("scene", ["nc", "zion"], ids=["nc_landsat7_uint8", "zion_landsat8_uint16"])
@pytest.mark.parametrize("tile_size,halo", [(128, 32), (256, 48)])
def test_tiled_prediction_matches_single_pass(tmp_path, predictor, default_checkpoint, nc_crop, scene, tile_size, halo):
    """Acceptance: >= 99.5 % of valid pixels agree with one forward pass over the whole scene.

    Scenes are multiples of 32 px so that the single pass needs no padding (padding the
    reference would change its own edge predictions; tiles never pad).
    """
    image = nc_crop if scene == "nc" else ZION_IMAGE
    reference, ref_conf = _single_pass(image, predictor, default_checkpoint)
    cfg = SegmentConfig(inputs=[str(image)], output=str(tmp_path / "out"), tile_size=tile_size, halo=halo,
                        runtime={"local": True}, outputs={"polygons": False}, device="cpu")
    segment(cfg, progress=False)
    with rasterio.open(tmp_path / "out" / f"{image.stem}_classes.tif") as src:
        tiled = src.read(1)
    with rasterio.open(tmp_path / "out" / f"{image.stem}_confidence.tif") as src:
        conf = src.read(1).astype(np.int32)
    valid = reference != 255
    agreement = (tiled[valid] == reference[valid]).mean()
    assert (tiled == 255).sum() == (~valid).sum() == (conf == 255).sum()
    assert agreement >= 0.995, f"tiled/single-pass agreement {agreement:.4f} at tile {tile_size}, halo {halo}"
    # the confidence raster: the same pixels' max softmax probability, within a point or two (halo context)
    close = (np.abs(conf[valid] - ref_conf[valid]) <= 2).mean()
    assert close >= 0.995, f"tiled/single-pass confidence within 2 points at {close:.4f} of pixels"


def _tile_results(truth: np.ndarray, conf: np.ndarray, tile_size: int, halo: int) -> list:
    """What workers send back for ``truth``: each tile core's classes, confidence, counts and areas (900 m²
    pixels); tiles with no valid pixel are skipped."""
    from geoseg.model.predict import TileResult
    from geoseg.tiling import TileGrid

    out = []
    for t in TileGrid(truth.shape[1], truth.shape[0], tile_size, halo):
        k, c = truth[t.core.to_slices()], conf[t.core.to_slices()]
        counts = np.bincount(k[k != 255], minlength=4)
        if not counts.any():
            out.append(TileResult(t, None, None, np.zeros(4, np.int64), np.zeros(4), skipped=True))
        else:
            out.append(TileResult(t, k.copy(), c.copy(), counts, counts * 900.0))
    return out


@pytest.mark.parametrize("model_id", [None, "model@test"], ids=["polygons_after_tiles", "polygons_streamed"])
@pytest.mark.parametrize("tile_size,halo,seed", [(64, 8, 0), (96, 16, 1), (32, 0, 2)])
def test_scene_writer_is_invariant_to_arrival_order_and_tile_size(tmp_path, tile_size, halo, seed, model_id):
    """Tile results in shuffled batches: the class and confidence COGs are the map they were cut from,
    the class areas its pixel counts, the polygons its areas; a failed tile is reported with its window."""
    import geopandas as gpd

    from geoseg.grid import GeoGrid
    from geoseg.io.raster import RasterInfo
    from geoseg.segment.stitch import SceneWriter, scene_files
    from tests.helpers import UTM12_30M, blobs, small_card, write_raster

    h, w = 150, 170
    truth = blobs(seed, (h, w))
    truth[:, :90] = 255  # a nodata strip wide enough to skip whole tiles (edge cores: 56-80 px)
    truth[100:110, 100:140] = 255
    conf = np.where(truth == 255, 255, (np.arange(w)[None, :] + np.arange(h)[:, None]) % 76 + 25).astype(np.uint8)
    scene = write_raster(tmp_path / "scene.tif", np.stack([truth] * 3).astype(np.uint16),
                         descriptions=["green", "red", "nir"])  # the input the quicklook is made of
    info = RasterInfo(str(scene), GeoGrid(w, h, UTM12_30M, rasterio.crs.CRS.from_epsg(32612)), "uint16",
                      ("green", "red", "nir"), 0)
    results = _tile_results(truth, conf, tile_size, halo)
    order = np.random.default_rng(seed).permutation(len(results))
    staging = tmp_path / "staging"
    staging.mkdir()
    card = small_card()
    writer = SceneWriter(info, "scene", staging, card, blocksize=64, model_id=model_id)
    assert writer.seconds == {"stitch": 0.0, "cog": 0.0, "vectorize": 0.0, "quicklook": 0.0} and writer.done == writer.skipped == 0
    for batch in np.array_split(order, 5):
        writer.add([results[i] for i in batch])
    writer.fail((results[0].tile,), "simulated", attempts=3)
    names = writer.finish("model@test")

    assert sorted(names) == sorted(scene_files("scene").values()) and all((staging / n).is_file() for n in names)
    with rasterio.open(staging / "scene_classes.tif") as cls, rasterio.open(staging / "scene_confidence.tif") as cf:
        np.testing.assert_array_equal(cls.read(1), truth)
        np.testing.assert_array_equal(cf.read(1), conf)
        assert cls.transform == UTM12_30M and cls.tags()["class_names"] == "other,forest,water,urban"
        assert cls.tags()["model"] == "model@test" and cls.tags()["source"] == str(scene)
        assert cls.tags()["class_ids"] == "0,1,2,3" and cls.tags()["software"].startswith("geoseg ")
        assert cls.descriptions == ("class",)
        assert cf.tags()["units"].startswith("percent") and cf.descriptions == ("confidence",)
        cmap = cls.colormap(1)  # the card's colours, nodata transparent
        assert {k: cmap[k] for k in range(4)} == {c.id: c.rgba() for c in card.classes}
        assert cmap[255] == (0, 0, 0, 0)
        for src in (cls, cf):  # the blocksize and compression asked for
            assert src.block_shapes == [(64, 64)] and src.compression.name == "deflate"
    counts = np.bincount(truth[truth != 255], minlength=4)
    assert writer.counts.tolist() == counts.tolist()
    np.testing.assert_allclose(writer.area_m2, counts * 900.0)
    skipped = sum(r.skipped for r in results)
    assert skipped > 0 and (writer.done, writer.skipped) == (len(results) - skipped, skipped)
    assert writer.failed == [{"tile": results[0].tile.index, "window": list(results[0].tile.core.to_window().flatten()),
                              "error": "simulated", "attempts": 3}]
    gdf = gpd.read_file(staging / "scene_polygons.gpkg", layer="landcover")
    assert writer.polygon_count == len(gdf) and (gdf.model == "model@test").all() and (gdf.source == str(scene)).all()
    np.testing.assert_allclose(gdf.groupby("class_id").area_m2.sum().reindex(range(4), fill_value=0), counts * 900.0)
    # each polygon's mean confidence: the mean of the confidence raster over its pixels
    burned = rasterize(zip(gdf.geometry, gdf.index + 1), out_shape=truth.shape, transform=UTM12_30M, dtype="int32")
    want = [conf[burned == i + 1].mean() for i in range(len(gdf))]
    np.testing.assert_allclose(gdf["mean_confidence"], want, atol=0.01)


def test_scene_writer_without_confidence_and_with_a_minimum_mapping_unit(tmp_path):
    """No confidence raster: polygons without mean confidence; the vectorize options reach the vectorizer
    (no polygon below the MMU, the same total area)."""
    import geopandas as gpd

    from geoseg.grid import GeoGrid
    from geoseg.io.raster import RasterInfo
    from geoseg.segment.stitch import SceneWriter, scene_files
    from tests.helpers import UTM12_30M, blobs, small_card, write_raster

    truth = blobs(5, (90, 110))
    scene = write_raster(tmp_path / "s.tif", np.stack([truth] * 3).astype(np.uint16))  # the quicklook's input
    info = RasterInfo(str(scene), GeoGrid(110, 90, UTM12_30M, rasterio.crs.CRS.from_epsg(32612)), "uint16",
                      ("green", "red", "nir"), 0)
    writer = SceneWriter(info, "s", tmp_path, small_card(), confidence=False, vectorize={"mmu_m2": 8 * 900.0})
    writer.add(_tile_results(truth, np.zeros_like(truth), 64, 8))
    assert sorted(writer.finish("m")) == sorted(scene_files("s", confidence=False).values())
    gdf = gpd.read_file(tmp_path / "s_polygons.gpkg")
    assert gdf["mean_confidence"].isna().all() and not (tmp_path / "s_confidence.tif").exists()
    assert gdf["area_m2"].min() >= 8 * 900.0 - 1e-6 and gdf["area_m2"].sum() == pytest.approx(truth.size * 900.0)


def test_the_class_cog_has_mode_overviews(tmp_path):
    """A 1024 x 1536 scene stitched from tile results: the class map's first overview is the majority class of
    each 2 x 2 block (numpy oracle: ``majority_blocks``), the confidence's is each block's mean."""
    from geoseg.grid import GeoGrid
    from geoseg.io.raster import RasterInfo
    from geoseg.segment.stitch import SceneWriter
    from tests.helpers import UTM12_30M, majority_blocks, small_card, write_raster

    h, w = 1024, 1536
    truth, mode = majority_blocks(2, h, w)
    conf = np.where(np.indices((h, w)).sum(axis=0) % 2 == 0, 40, 80).astype(np.uint8)  # each 2x2 block: mean 60
    scene = write_raster(tmp_path / "scene.tif", np.stack([truth] * 3).astype(np.uint16))  # the quicklook's input
    info = RasterInfo(str(scene), GeoGrid(w, h, UTM12_30M, rasterio.crs.CRS.from_epsg(32612)), "uint16",
                      ("green", "red", "nir"), 0)
    staging = tmp_path / "staging"
    staging.mkdir()
    writer = SceneWriter(info, "scene", staging, small_card(), polygons=False)
    writer.add(_tile_results(truth, conf, 512, 0))
    writer.finish("model@test")
    with rasterio.open(staging / "scene_classes.tif", overview_level=0) as ov:
        np.testing.assert_array_equal(ov.read(1), mode)
    with rasterio.open(staging / "scene_confidence.tif", overview_level=0) as ov:
        assert (ov.read(1) == 60).all()


def test_a_failed_tile_is_recorded_with_the_urls_in_its_error_redacted(tmp_path):
    from geoseg.grid import GeoGrid
    from geoseg.io.raster import RasterInfo
    from geoseg.segment.stitch import SceneWriter
    from geoseg.tiling import TileGrid
    from tests.helpers import UTM12_30M, small_card

    info = RasterInfo("https://h/s.tif?X-Amz-Signature=abc", GeoGrid(64, 64, UTM12_30M, rasterio.crs.CRS.from_epsg(32612)),
                      "uint16", ("green", "red", "nir"), 0)
    writer = SceneWriter(info, "s", tmp_path, small_card(), confidence=False, polygons=False)
    tile = next(iter(TileGrid(64, 64, 64, 0)))
    writer.fail((tile,), "RasterioIOError: HTTP response code: 403 on https://h/s.tif?X-Amz-Signature=abc", attempts=3)
    assert writer.failed == [{"tile": tile.index, "window": [0, 0, 64, 64], "attempts": 3,
                              "error": "RasterioIOError: HTTP response code: 403 on https://h/s.tif"}]

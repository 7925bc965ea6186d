"""The segment job end to end in-process (no Ray; geoseg.segment.pipeline): outputs, nodata, AOI, stats,
atomic publication.

Oracles: the input rasters (grid, bands, nodata, masks), class-map pixel counts for stats and
polygon areas, runs without the option under test (bands by name, no AOI, the plain scene).
"""

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate
from shapely.geometry import box

from geoseg.errors import AOIError, BandError, OutputError
from geoseg.segment.pipeline import segment
from tests.helpers import NC_IMAGE, ZION_IMAGE, segment_config


@pytest.fixture(scope="module")
def nc_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("nc") / "out"
    summary = segment(segment_config([NC_IMAGE], out), progress=False)
    return out, summary


def test_outputs_are_named_by_input_stem(nc_run):
    out, summary = nc_run
    stem = NC_IMAGE.stem
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"{stem}_classes.tif", f"{stem}_confidence.tif", f"{stem}_polygons.gpkg",
                            "stats.json", "stats.csv", "manifest.json", f"{stem}_item.json", "collection.json",
                            "report.html", f"{stem}_input.png", f"{stem}_classes.png", f"{stem}_confidence.png",
                            f"{stem}_classes.qml", f"{stem}_classes.sld", f"{stem}_classes.tif.aux.xml",
                            f"{stem}_confidence.qml", f"{stem}_confidence.sld"])
    assert summary.manifest["status"] == "success" and [Path(p).name for p in summary.files][-1] == "manifest.json"


def test_class_map_is_a_valid_cog_on_the_input_grid(nc_run):
    out, _ = nc_run
    path = out / f"{NC_IMAGE.stem}_classes.tif"
    is_valid, errors, _ = cog_validate(str(path))
    assert is_valid, errors
    with rasterio.open(path) as cls, rasterio.open(NC_IMAGE) as src:
        assert cls.dtypes[0] == "uint8" and cls.nodata == 255
        assert cls.crs == src.crs and cls.transform == src.transform and cls.shape == src.shape
        assert cls.tags()["class_names"] == "other,forest,water,urban"
        cmap = cls.colormap(1)
        assert cmap[1] == (0x1B, 0x78, 0x37, 255)
        assert cls.compression.name.upper() in ("DEFLATE", "ZSTD")
        assert cls.overviews(1) == [] or cls.overviews(1)[0] == 2
        assert set(np.unique(cls.read(1))) <= {0, 1, 2, 3, 255}


def test_confidence_is_a_percent_cog_on_the_same_grid(nc_run):
    out, _ = nc_run
    path = out / f"{NC_IMAGE.stem}_confidence.tif"
    assert cog_validate(str(path))[0]
    with rasterio.open(path) as conf, rasterio.open(out / f"{NC_IMAGE.stem}_classes.tif") as cls:
        c, k = conf.read(1), cls.read(1)
        assert conf.transform == cls.transform and conf.nodata == 255
        assert ((c == 255) == (k == 255)).all()
        assert c[c != 255].min() >= 25 and c[c != 255].max() <= 100  # 4 classes: max softmax >= 1/4


def test_stats_add_up_to_the_valid_area(nc_run):
    out, _ = nc_run
    stats = json.loads((out / "stats.json").read_text())["inputs"][NC_IMAGE.stem]
    with rasterio.open(out / f"{NC_IMAGE.stem}_classes.tif") as cls:
        k = cls.read(1)
        cell_m2 = abs(cls.transform.a * cls.transform.e)
    counts = np.bincount(k[k != 255], minlength=4)
    assert [r["pixels"] for r in stats["classes"]] == counts.tolist()
    assert stats["valid_pixels"] == int((k != 255).sum())
    assert sum(r["area_ha"] for r in stats["classes"]) == pytest.approx(stats["valid_pixels"] * cell_m2 / 1e4, rel=1e-6)
    assert sum(r["percent"] for r in stats["classes"]) == pytest.approx(100, abs=1e-3)
    csv_rows = (out / "stats.csv").read_text().strip().splitlines()
    assert csv_rows[0] == "input,class_id,class_name,pixels,area_ha,percent" and len(csv_rows) == 5


def test_polygons_are_valid_and_cover_the_class_map(nc_run):
    out, _ = nc_run
    gdf = gpd.read_file(out / f"{NC_IMAGE.stem}_polygons.gpkg")
    with rasterio.open(out / f"{NC_IMAGE.stem}_classes.tif") as cls:
        k = cls.read(1)
        crs = cls.crs
        cell = abs(cls.transform.a * cls.transform.e)
    assert list(gdf.columns[:4]) == ["polygon_id", "class_id", "class_name", "area_m2"]
    assert gdf.polygon_id.is_unique and gdf.mean_confidence.between(25, 100).all()
    assert (gdf.source == str(NC_IMAGE)).all() and gdf.model.str.startswith("landcover-unet-mnv2@").all()
    assert gdf.crs == crs and gdf.geometry.is_valid.all()
    for cid in range(4):
        sub = gdf[gdf.class_id == cid]
        assert sub.area_m2.sum() == pytest.approx((k == cid).sum() * cell, rel=1e-9)
        assert (sub.class_name == ["other", "forest", "water", "urban"][cid]).all()


def test_polygons_vectorized_while_tiles_ran_equal_those_of_the_published_maps(nc_run, tmp_path):
    # oracle: the file-based block-wise pass over the published class and confidence COGs (what
    # `geoseg vectorize` would write); the run streamed block rows to the vectorizer as tiles landed
    from geoseg.vector.polygons import vectorize_to_file

    out, summary = nc_run
    stem = NC_IMAGE.stem
    n = vectorize_to_file(out / f"{stem}_classes.tif", tmp_path / "again.gpkg", confidence=out / f"{stem}_confidence.tif",
                          class_names=["other", "forest", "water", "urban"])
    got = gpd.read_file(out / f"{stem}_polygons.gpkg", layer="landcover").sort_values("polygon_id", ignore_index=True)
    want = gpd.read_file(tmp_path / "again.gpkg", layer="landcover").sort_values("polygon_id", ignore_index=True)
    assert len(got) == n > 100
    assert got.drop(columns="geometry").equals(want.drop(columns="geometry"))
    assert got.geometry.geom_equals_exact(want.geometry, tolerance=0).all()
    t = summary.timings
    assert 0 < t["after_tiles"] < t["total"] and t["vectorize"] > 0  # the tail is timed on its own


def test_the_tail_is_timed_from_the_last_tile_the_journals_last_chunk_included(tmp_path, monkeypatch):
    """The last journal chunk is written after the last tile: a slow one shows in `after_tiles`."""
    import time

    from geoseg.segment.journal import TileJournal

    real = TileJournal.flush

    def slow_flush(self):
        pending = bool(self._buffer)
        real(self)
        if pending:
            time.sleep(0.5)

    monkeypatch.setattr(TileJournal, "flush", slow_flush)
    summary = segment(segment_config([NC_IMAGE], tmp_path / "o", outputs={"polygons": False}), progress=False)
    assert summary.timings["after_tiles"] >= 0.5


def test_manifest_records_inputs_model_config_and_timings(nc_run):
    out, _ = nc_run
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "success"
    inp = m["inputs"][0]
    assert inp["sha256"] and inp["size_bytes"] == NC_IMAGE.stat().st_size and inp["bands"] == ["green", "red", "nir"]
    assert m["model"]["weights_sha256"] and m["config"]["tile_size"] == 256
    assert m["tiles"]["total"] == 6 and m["tiles"]["failed"] == 0
    assert {"plan", "tiles", "total"} <= set(m["timings_s"]) and m["versions"]["torch"]


def test_nodata_in_gives_255_out_and_never_a_class(make_raster, tmp_path):
    with rasterio.open(ZION_IMAGE) as src:
        arr = src.read()
        profile = dict(transform=src.transform, crs=src.crs.to_string(), descriptions=list(src.descriptions))
    arr[:, 100:180, 200:330] = 65535          # a hole
    arr[2, 400, 10] = 65535                   # one band only
    arr[:, :, :112] = 65535                   # a fully nodata strip: the 5 tiles whose 112-px edge cores lie in it are skipped
    path = make_raster(arr, nodata=65535, name="holes.tif", **profile)
    segment(segment_config([path], tmp_path / "o", tile_size=128, halo=16, outputs={"polygons": False}), progress=False)
    with rasterio.open(tmp_path / "o" / "holes_classes.tif") as cls:
        k = cls.read(1)
    invalid = (arr == 65535).any(axis=0)
    assert (k[invalid] == 255).all() and (k[~invalid] != 255).all()
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert m["tiles"]["skipped"] == 5


def test_bands_by_index_give_the_same_map_as_by_name(tmp_path):
    a = segment(segment_config([NC_IMAGE], tmp_path / "a", bands=["green", "red", "nir"], outputs={"polygons": False}), progress=False)
    b = segment(segment_config([NC_IMAGE], tmp_path / "b", bands=[2, 3, 4], outputs={"polygons": False}), progress=False)
    with rasterio.open(Path(a.output_dir) / f"{NC_IMAGE.stem}_classes.tif") as x, rasterio.open(Path(b.output_dir) / f"{NC_IMAGE.stem}_classes.tif") as y:
        np.testing.assert_array_equal(x.read(1), y.read(1))


def test_missing_band_fails_before_writing_anything(tmp_path):
    with pytest.raises(BandError, match="swir2"):
        segment(segment_config([NC_IMAGE], tmp_path / "o", bands=["green", "red", "swir2"]), progress=False)
    assert not (tmp_path / "o").exists()


def test_aoi_restricts_tiles_and_masks_outside(tmp_path):
    with rasterio.open(NC_IMAGE) as src:
        b = src.bounds
        crs = src.crs
    # left third of the scene, written in EPSG:4326 to exercise reprojection
    aoi = gpd.GeoDataFrame(geometry=[box(b.left, b.bottom, b.left + (b.right - b.left) / 3, b.top)], crs=crs).to_crs(4326)
    aoi_path = tmp_path / "aoi.geojson"
    aoi.to_file(aoi_path, driver="GeoJSON")
    s = segment(segment_config([NC_IMAGE], tmp_path / "o", tile_size=128, halo=16, aoi=str(aoi_path), outputs={"polygons": False}),
                progress=False)
    segment(segment_config([NC_IMAGE], tmp_path / "full", tile_size=128, halo=16, outputs={"polygons": False}), progress=False)
    with rasterio.open(tmp_path / "o" / f"{NC_IMAGE.stem}_classes.tif") as cls:
        k = cls.read(1)
    with rasterio.open(tmp_path / "full" / f"{NC_IMAGE.stem}_classes.tif") as cls:
        full = cls.read(1)
    third = k.shape[1] // 3
    assert (k[:, third + 3 :] == 255).all()  # outside: masked
    np.testing.assert_array_equal(k[:, : third - 3], full[:, : third - 3])  # inside: as without an AOI
    assert s.manifest["tiles"]["outside_aoi"] > 0


def test_aoi_that_misses_the_raster_is_a_clear_error(tmp_path):
    gpd.GeoDataFrame(geometry=[box(10, 10, 11, 11)], crs=4326).to_file(tmp_path / "far.geojson", driver="GeoJSON")
    with pytest.raises(AOIError, match="does not overlap"):
        segment(segment_config([NC_IMAGE], tmp_path / "o", aoi=str(tmp_path / "far.geojson")), progress=False)


def test_existing_outputs_are_never_clobbered_without_overwrite(nc_run, tmp_path):
    out, _ = nc_run
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(OutputError, match="--overwrite"):
        segment(segment_config([NC_IMAGE], out), progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_a_failed_run_with_overwrite_leaves_the_previous_result_intact(tmp_path, monkeypatch):
    out = tmp_path / "o"
    segment(segment_config([NC_IMAGE], out, outputs={"polygons": False}), progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    import geoseg.model.predict

    def broken(self, batch, zoom=1.0):
        raise RuntimeError("simulated model crash")

    monkeypatch.setattr(geoseg.model.predict.Predictor, "classify", broken)
    from geoseg.errors import TileError

    with pytest.raises(TileError, match="simulated model crash"):
        segment(segment_config([NC_IMAGE], out, overwrite=True, outputs={"polygons": False}), progress=False)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != "manifest.failed.json"}
    assert after == before
    assert not list(out.glob(".geoseg-staging-*")), "a failed run must not leave its staging directory behind"
    m = json.loads((out / "manifest.failed.json").read_text())
    assert m["status"] == "failed" and m["tiles"]["failed"] == 6  # NC: 2 x 3 tiles of 256 px
    assert "simulated model crash" in m["inputs"][0]["failed_tiles"][0]["error"]


def test_geographic_input_areas_are_in_square_metres(make_raster, tmp_path):
    from affine import Affine

    with rasterio.open(NC_IMAGE) as src:
        arr = src.read()
        desc = list(src.descriptions)
    # same pixels, placed on a 0.0003 deg grid near 8.4 deg S (like the Pucallpa scenes)
    path = make_raster(arr, crs="EPSG:4326", transform=Affine(0.0003, 0, -74.6, 0, -0.0003, -8.3), nodata=0,
                       descriptions=desc, name="geo.tif")
    s = segment(segment_config([path], tmp_path / "o"), progress=False)
    stats = json.loads((tmp_path / "o" / "stats.json").read_text())["inputs"]["geo"]
    gdf = gpd.read_file(tmp_path / "o" / "geo_polygons.gpkg")
    assert gdf.crs.to_epsg() == 4326
    # cell ~ 33.4 m x 33.0 m at 8.3 deg S
    approx_cell = 0.0003 * 111320 * np.cos(np.radians(8.35)) * 0.0003 * 110600
    assert stats["valid_area_ha"] == pytest.approx(stats["valid_pixels"] * approx_cell / 1e4, rel=0.01)
    assert gdf.area_m2.sum() / 1e4 == pytest.approx(stats["valid_area_ha"], rel=1e-3)
    assert s.manifest["status"] == "success"


@pytest.mark.parametrize("dtype", ["int16", "float32"])
def test_other_radiometries_give_the_same_map(make_raster, tmp_path, dtype):
    """Per-scene percentile scaling makes the map invariant to a linear change of units (DN -> reflectance)."""
    with rasterio.open(ZION_IMAGE) as src:
        dn = src.read().astype(np.float64)
        kw = dict(transform=src.transform, crs=src.crs.to_string(), descriptions=list(src.descriptions))
    if dtype == "int16":
        arr, nodata = (dn / 4 - 2000).astype(np.int16), -32768
    else:
        arr, nodata = (dn * 2.75e-5 - 0.2).astype(np.float32), -9999.0
    path = make_raster(arr, nodata=nodata, name=f"zion_{dtype}.tif", **kw)
    segment(segment_config([ZION_IMAGE, path], tmp_path / "o", outputs={"polygons": False}), progress=False)
    with rasterio.open(tmp_path / "o" / f"{ZION_IMAGE.stem}_classes.tif") as a, \
            rasterio.open(tmp_path / "o" / f"zion_{dtype}_classes.tif") as b:
        ref, got = a.read(1), b.read(1)
    assert (ref == got).mean() > 0.999


def test_vrt_mosaic_input(tmp_path):
    from benchmarks.bench_segment import build_mosaic

    vrt = build_mosaic(ZION_IMAGE, 2, tmp_path / "mosaic.vrt")
    segment(segment_config([vrt], tmp_path / "o", outputs={"polygons": False, "confidence": False}), progress=False)
    segment(segment_config([ZION_IMAGE], tmp_path / "single", outputs={"polygons": False, "confidence": False}), progress=False)
    with rasterio.open(tmp_path / "o" / "mosaic_classes.tif") as m, \
            rasterio.open(tmp_path / "single" / f"{ZION_IMAGE.stem}_classes.tif") as s:
        mosaic, single = m.read(1), s.read(1)
        assert m.shape == (1024, 1024) and cog_validate(m.name)[0]
    # the mosaic repeats the scene; away from the copies' seams the map repeats it too
    inner = (slice(40, 472), slice(40, 472))
    for r0, c0 in [(0, 0), (512, 512)]:
        block = mosaic[r0 : r0 + 512, c0 : c0 + 512]
        assert (block[inner] == single[inner]).mean() > 0.99


def test_internal_mask_marks_nodata(tmp_path):
    with rasterio.open(ZION_IMAGE) as src:
        profile = {**src.profile, "nodata": None}
        data = src.read()
        desc = src.descriptions
    path = tmp_path / "masked.tif"
    mask = np.full(data.shape[1:], 255, np.uint8)
    mask[200:260, 100:400] = 0
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
            dst.write_mask(mask)
            dst.descriptions = desc
    segment(segment_config([path], tmp_path / "o", outputs={"polygons": False}), progress=False)
    with rasterio.open(tmp_path / "o" / "masked_classes.tif") as cls:
        k = cls.read(1)
    assert (k[mask == 0] == 255).all() and (k[mask == 255] != 255).all()


def test_acquisition_date_flows_from_input_to_class_map_and_polygons(tmp_path):
    import shutil

    img = tmp_path / "dated.tif"
    shutil.copy(ZION_IMAGE, img)
    with rasterio.open(img, "r+") as dst:
        dst.update_tags(ACQUISITION_DATE="2015-08-18T17:50:00Z")
    segment(segment_config([img], tmp_path / "o"), progress=False)
    with rasterio.open(tmp_path / "o" / "dated_classes.tif") as cls:
        assert cls.tags()["acquired"] == "2015-08-18"
    gdf = gpd.read_file(tmp_path / "o" / "dated_polygons.gpkg")
    assert (gdf.acquired == "2015-08-18").all()

"""`geoseg change`: exact transition tables, alignment of grids, guards, outputs, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin
from scipy import ndimage

from geoseg.change.detect import ChangeOptions, detect_change
from geoseg.change.transitions import UNCERTAIN, Legend, change_code, decode
from geoseg.cli import main
from geoseg.errors import InputError, OutputError
from tests.helpers import (
    CHANGE_CRS,
    CHANGE_ORIGIN,
    CLASS_NAMES,
    PUCALLPA,
    PX_HA,
    SPECTRAL_MODEL,
    expected_codes,
    read_band,
    transitions_table,
    write_map,
    write_pair,
)


def test_exact_transition_matrix_codes_and_polygons(tmp_path):
    """Random maps, no guards: the table, the change raster and the polygons are exactly what numpy counts."""
    import geopandas as gpd

    rng = np.random.default_rng(3)
    before = ndimage.zoom(rng.integers(0, 4, (12, 14)), 5, order=0).astype(np.uint8)  # 60 x 70, blocky
    after = before.copy()
    flip = rng.random(before.shape) < 0.15
    after[flip] = rng.integers(0, 4, flip.sum())
    before[:3, :10] = 255
    after[50:, 60:] = 255
    b, a = write_pair(tmp_path, before, after)
    out = tmp_path / "out"
    res = detect_change(b, a, str(out), options=ChangeOptions(0, 0, block_size=16))

    valid = (before != 255) & (after != 255)
    names = CLASS_NAMES
    got = transitions_table(out)
    assert len(got) == 4 * 5
    for f in range(4):
        for t in range(4):
            n = int((valid & (before == f) & (after == t)).sum())
            assert got[(names[f], names[t])] == (n, pytest.approx(n * PX_HA, abs=1e-4))
        assert got[(names[f], "uncertain")] == (0, 0.0)
    assert sum(p for p, _ in got.values()) == valid.sum() == res.report["valid"]["pixels"]
    np.testing.assert_array_equal(read_band(out / "change.tif"), expected_codes(before, after))
    nd = res.report["nodata_excluded"]
    assert nd["before"]["pixels"] == 30 and nd["after"]["pixels"] == 100 and nd["either"]["pixels"] == 130
    assert res.report["changed"]["pixels"] == (valid & (before != after)).sum()

    # one polygon per 4-connected patch of one from->to pair, areas summing to the table
    gdf = gpd.read_file(out / "change_polygons.gpkg", layer="change")
    codes = expected_codes(before, after)
    patches = sum(ndimage.label(codes == c)[1] for c in np.unique(codes) if 0 < c < UNCERTAIN)
    assert len(gdf) == patches and gdf.geometry.is_valid.all()
    for (f, t), grp in gdf.groupby(["from_class", "to_class"]):
        assert grp["pixels"].sum() == got[(f, t)][0]
        assert grp["area_ha"].sum() == pytest.approx(got[(f, t)][1], abs=1e-3)
        assert np.allclose(grp.geometry.area / 1e4, grp["area_ha"])  # planar UTM: pixel sums = polygon areas
    assert set(gdf.columns) >= {"from_class", "to_class", "area_ha", "change_type", "mean_confidence_before",
                                "mean_confidence_after"}
    assert (gdf.loc[gdf.from_class == "forest", "change_type"] == "deforestation").all()


def test_change_raster_is_a_cog_with_colours_and_legend(tmp_path):
    before = np.ones((40, 40), np.uint8)
    after = before.copy()
    after[10:20, 10:20] = 3
    b, a = write_pair(tmp_path, before, after)
    res = detect_change(b, a, str(tmp_path / "o"))
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
    entry = next(e for e in res.report["legend"] if e["code"] == code)
    assert entry["change_types"] == ["deforestation", "urbanization"] and entry["change_type"] == "deforestation"
    assert decode(code, 4) == (1, 3)
    types = res.report["change_types"]
    assert types["deforestation"]["pixels"] == types["urbanization"]["pixels"] == 100
    assert types["reforestation"]["pixels"] == types["water_gain"]["pixels"] == types["water_loss"]["pixels"] == 0


def test_confidence_and_mmu_guards_remove_exactly_the_expected_patches(tmp_path):
    """Block size 16: patches crossing block seams are joined before the MMU decides."""
    before = np.ones((48, 48), np.uint8)  # forest
    after = before.copy()
    conf_b = np.full(before.shape, 90, np.uint8)
    conf_a = np.full(before.shape, 80, np.uint8)
    after[2:6, 2:6] = 0          # A: 16 px forest->other, confident: kept
    after[2:4, 10:12] = 0        # B: 4 px (0.36 ha < 0.5): MMU
    after[20:23, 2:5] = 3        # C: 9 px forest->urban, after confidence 40: confidence guard
    conf_a[20:23, 2:5] = 40
    after[14:18, 15:17] = 2      # D: 8 px forest->water across the row-16 and col-16 seams: kept
    after[31:33, 31:33] = 0      # E: 4 px across both seams (four blocks): MMU
    after[40:42, 20:23] = 0      # F: 6 px, 3 of them low before-confidence -> 3 px left < MMU
    conf_b[40:41, 20:23] = 30
    after[44, 44] = 1            # same class: unchanged even with low confidence
    conf_b[44, 44] = 10
    b, a = write_pair(tmp_path, before, after, conf_b, conf_a)
    out = tmp_path / "out"
    res = detect_change(b, a, str(out), options=ChangeOptions(min_confidence=50, mmu_ha=0.5, block_size=16))
    g = res.report["guards"]
    assert g["confidence"]["removed"] == {"pixels": 9 + 3, "area_ha": pytest.approx(12 * PX_HA)}
    assert g["mmu"]["removed"] == {"pixels": 4 + 4 + 3, "area_ha": pytest.approx(11 * PX_HA)}
    assert g["mmu"]["patches_removed"] == 3
    assert g["persistence"]["applied"] is False and g["persistence"]["removed"]["pixels"] == 0
    assert {(r["from_class"], r["to_class"], r["pixels"]) for r in g["confidence"]["by_transition"]} == {
        ("forest", "urban", 9), ("forest", "other", 3)}

    codes = read_band(out / "change.tif")
    exp = np.zeros_like(codes)
    exp[2:6, 2:6] = change_code(1, 0, 4)
    exp[14:18, 15:17] = change_code(1, 2, 4)
    for sl in [(slice(2, 4), slice(10, 12)), (slice(20, 23), slice(2, 5)), (slice(31, 33), slice(31, 33)),
               (slice(40, 42), slice(20, 23))]:
        exp[sl] = UNCERTAIN
    np.testing.assert_array_equal(codes, exp)
    t = transitions_table(out)
    assert t[("forest", "other")][0] == 16 and t[("forest", "water")][0] == 8 and t[("forest", "urban")][0] == 0
    assert t[("forest", "uncertain")] == (23, pytest.approx(23 * PX_HA))
    assert t[("forest", "forest")][0] == 48 * 48 - 16 - 8 - 23
    assert res.report["valid"]["pixels"] == 48 * 48

    import geopandas as gpd

    gdf = gpd.read_file(out / "change_polygons.gpkg").sort_values("pixels")
    assert list(gdf["pixels"]) == [8, 16] and list(gdf["to_class"]) == ["water", "other"]
    assert gdf["area_ha"].tolist() == pytest.approx([8 * PX_HA, 16 * PX_HA])
    assert gdf["mean_confidence_before"].tolist() == [90, 90] and gdf["mean_confidence_after"].tolist() == [80, 80]


def test_persistence_guard_removes_flicker(tmp_path):
    before = np.ones((30, 30), np.uint8)
    after = before.copy()
    after[0:3, 0:3] = 0      # persists
    after[10:13, 0:3] = 0    # reverted to forest in the confirm date: flicker
    after[20:23, 0:3] = 3    # confirm nodata: unconfirmed
    after[0:3, 20:23] = 0    # confirm shows urban, not the after class: not confirmed
    confirm = after.copy()
    confirm[10:13, 0:3] = 1
    confirm[20:23, 0:3] = 255
    confirm[0:3, 20:23] = 3
    confirm[25:, 25:] = 2    # a later change in the confirm date alone is not a change here
    b, a = write_pair(tmp_path, before, after)
    c = write_map(tmp_path / "confirm_classes.tif", confirm)
    res = detect_change(b, a, str(tmp_path / "o"), confirm=c, options=ChangeOptions(0, 0))
    p = res.report["guards"]["persistence"]
    assert p["applied"] and p["reverted"]["pixels"] == 18 and p["confirm_nodata"]["pixels"] == 9
    assert p["removed"] == {"pixels": 27, "area_ha": pytest.approx(27 * PX_HA)}
    assert res.report["changed"]["pixels"] == 9 and res.report["uncertain"]["pixels"] == 27
    assert res.report["dates"]["confirm"]["classes"] == c


def test_persistence_over_two_later_dates(tmp_path):
    """Two confirm dates: a change is kept only if both still show the after class."""
    before = np.ones((30, 30), np.uint8)
    after = before.copy()
    for r in (0, 5, 10, 15, 20):
        after[r:r + 3, 0:3] = 0
    c1, c2 = after.copy(), after.copy()
    c2[5:8, 0:3] = 1       # confirmed once, then reverted: flicker
    c1[10:13, 0:3] = 3     # changed again in the first confirm date, back in the second: not confirmed
    c2[15:18, 0:3] = 255   # first confirms, second is nodata: cannot be confirmed
    c1[20:23, 0:3] = 255   # nodata in the first and reverted in the second: reverted wins
    c2[20:23, 0:3] = 1
    b, a = write_pair(tmp_path, before, after)
    paths = [write_map(tmp_path / f"c{i}_classes.tif", c) for i, c in enumerate((c1, c2))]
    res = detect_change(b, a, str(tmp_path / "o"), confirm=paths, options=ChangeOptions(0, 0))
    p = res.report["guards"]["persistence"]
    assert p["applied"] and p["confirm_dates"] == ["confirm", "confirm_2"]
    assert p["reverted"]["pixels"] == 27 and p["confirm_nodata"]["pixels"] == 9
    assert res.report["changed"]["pixels"] == 9 and res.report["uncertain"]["pixels"] == 36
    assert res.report["dates"]["confirm_2"]["classes"] == paths[1]
    codes = read_band(tmp_path / "o" / "change.tif")
    assert (codes[0:3, 0:3] == change_code(1, 0, 4)).all() and (codes[5:23, 0:3][codes[5:23, 0:3] > 0] == UNCERTAIN).all()
    # a single confirm date given as a string is the role "confirm", as before
    one = detect_change(b, a, str(tmp_path / "o1"), confirm=paths[0], options=ChangeOptions(0, 0)).report
    assert one["guards"]["persistence"]["confirm_dates"] == ["confirm"] and one["changed"]["pixels"] == 27


def test_mmu_keeps_a_patch_of_exactly_the_mmu(tmp_path):
    """0.81 ha = 9 px of 900 m² although 0.81 * 1e4 > 8100 in floating point; inside a block and across seams."""
    before = np.ones((40, 40), np.uint8)
    after = before.copy()
    after[2:5, 2:5] = 0        # 9 px inside block (0, 0): kept
    after[2:4, 8:12] = 0       # 8 px inside the block: removed
    after[14:17, 15:18] = 2    # 9 px across the row-16 and col-16 seams: kept
    after[30:32, 14:18] = 2    # 8 px across the col-16 seam: removed
    b, a = write_pair(tmp_path, before, after)
    res = detect_change(b, a, str(tmp_path / "o"), options=ChangeOptions(0, 0.81, block_size=16))
    assert res.report["guards"]["mmu"]["patches_removed"] == 2
    assert res.report["guards"]["mmu"]["removed"]["pixels"] == 16 and res.report["changed"]["pixels"] == 18
    assert res.report["polygons"]["count"] == 2


@pytest.mark.parametrize("seed", [0, 1])
def test_random_maps_with_every_guard_match_a_whole_raster_reference(tmp_path, seed):
    """Noisy maps, confidences with nodata, two confirm dates and an MMU, read in small blocks: the change raster,
    the table, the guard removals and the polygons equal a whole-raster numpy/scipy computation."""
    import geopandas as gpd

    rng = np.random.default_rng(seed)
    h, w = 70, 83

    def blocky():
        return ndimage.zoom(rng.integers(0, 4, (h // 5 + 1, w // 5 + 1)), 5, order=0)[:h, :w]

    before = blocky().astype(np.uint8)
    after = np.where(rng.random((h, w)) < 0.6, before, blocky()).astype(np.uint8)
    noise = rng.random((h, w)) < 0.08
    after[noise] = rng.integers(0, 4, noise.sum())
    before[rng.random((h, w)) < 0.03] = 255
    cb, ca = (rng.integers(20, 101, (h, w)).astype(np.uint8) for _ in range(2))
    ca[rng.random((h, w)) < 0.02] = 255
    confirms = [np.where(rng.random((h, w)) < 0.9, after, blocky()).astype(np.uint8) for _ in range(2)]
    confirms[1][rng.random((h, w)) < 0.02] = 255
    b, a = write_pair(tmp_path, before, after, cb, ca)
    cpaths = [write_map(tmp_path / f"c{i}_classes.tif", c) for i, c in enumerate(confirms)]
    P, mmu = 45, 0.27
    res = detect_change(b, a, str(tmp_path / "o"), confirm=cpaths,
                        options=ChangeOptions(P, mmu, block_size=int(rng.integers(16, 30))))

    valid = (before != 255) & (after != 255)
    changed = valid & (before != after)
    low = changed & ((cb < P) | (ca < P) | (ca == 255))
    flicker = changed & ~low & np.any([c != after for c in confirms], axis=0)
    code = np.where(changed & ~low & ~flicker, change_code(before, after, 4), 0)
    exp = np.where(valid, 0, 255).astype(np.uint8)
    exp[low | flicker] = UNCERTAIN
    small_px, small_patches, kept = 0, 0, 0
    for c in np.unique(code[code > 0]):
        lab, _ = ndimage.label(code == c)
        sizes = np.bincount(lab.ravel())[1:]
        for i in np.flatnonzero(sizes * 0.09 < mmu - 1e-9) + 1:
            exp[lab == i] = UNCERTAIN
        small_patches += int((sizes * 0.09 < mmu - 1e-9).sum())
        small_px += int(sizes[sizes * 0.09 < mmu - 1e-9].sum())
        kept += int((sizes * 0.09 >= mmu - 1e-9).sum())
        exp[(code == c) & (exp != UNCERTAIN)] = c
    np.testing.assert_array_equal(read_band(tmp_path / "o" / "change.tif"), exp)
    g = res.report["guards"]
    assert g["confidence"]["removed"]["pixels"] == low.sum()
    assert g["persistence"]["removed"]["pixels"] == flicker.sum()
    assert (g["mmu"]["patches_removed"], g["mmu"]["removed"]["pixels"]) == (small_patches, small_px) and small_px > 0
    got = transitions_table(tmp_path / "o")
    names = CLASS_NAMES
    certain = exp < UNCERTAIN  # unchanged or reported change
    for f in range(4):
        for t in range(4):
            assert got[(names[f], names[t])][0] == (certain & (before == f) & (after == t)).sum()
        assert got[(names[f], "uncertain")][0] == ((exp == UNCERTAIN) & (before == f)).sum()
    assert sum(px for px, _ in got.values()) == valid.sum()
    gdf = gpd.read_file(tmp_path / "o" / "change_polygons.gpkg")
    assert len(gdf) == kept == res.report["polygons"]["count"] and gdf["pixels"].sum() == ((exp > 0) & (exp < UNCERTAIN)).sum()


def test_grids_shifted_by_whole_pixels_in_another_crs_align_exactly(tmp_path):
    """`before` is on a grid shifted by (3, -2) px, 5 px narrower, in a CRS that is UTM 18S with another false
    easting: on the after grid it must read back exactly; pixels outside its footprint are before-nodata."""
    rng = np.random.default_rng(0)
    after = rng.integers(0, 4, (40, 50)).astype(np.uint8)
    truth = rng.integers(0, 4, (40, 50)).astype(np.uint8)  # before, on the after grid
    shifted_crs = "+proj=tmerc +lat_0=0 +lon_0=-75 +k=0.9996 +x_0=600000 +y_0=10000000 +datum=WGS84 +units=m +no_defs"
    # before's pixel (0, 0) is after's (col 3, row 2); covers after cols 3..47, rows 2..39 (plus 2 rows below)
    tr = from_origin(CHANGE_ORIGIN[0] + 100000 + 3 * 30, CHANGE_ORIGIN[1] - 2 * 30, 30, 30)
    before_arr = np.full((40, 45), 255, np.uint8)
    before_arr[:38, :45] = truth[2:40, 3:48]
    before_arr[38:] = 2  # south of the after grid: never read
    b = write_map(tmp_path / "before_classes.tif", before_arr, crs=shifted_crs, transform=tr)
    a = write_map(tmp_path / "after_classes.tif", after)
    conf_truth = rng.integers(20, 101, (40, 50)).astype(np.uint8)  # before's confidence, on the after grid
    conf_b = np.full((40, 45), 100, np.uint8)
    conf_b[:38] = conf_truth[2:40, 3:48]
    write_map(tmp_path / "before_confidence.tif", conf_b, crs=shifted_crs, transform=tr, tags=False)
    write_map(tmp_path / "after_confidence.tif", np.full((40, 50), 100, np.uint8), tags=False)
    res = detect_change(b, a, str(tmp_path / "o"), options=ChangeOptions(0, 0, block_size=16))
    aligned = np.full((40, 50), 255, np.uint8)
    aligned[2:40, 3:48] = truth[2:40, 3:48]
    np.testing.assert_array_equal(read_band(tmp_path / "o" / "change.tif"), expected_codes(aligned, after))
    # the confidence is aligned the same way (nearest): the guard removes exactly the changes below 60 there
    detect_change(b, a, str(tmp_path / "c"), options=ChangeOptions(60, 0, block_size=16))
    exp = expected_codes(aligned, after)
    exp[(exp > 0) & (exp < UNCERTAIN) & (conf_truth < 60)] = UNCERTAIN
    np.testing.assert_array_equal(read_band(tmp_path / "c" / "change.tif"), exp)
    outside = 40 * 50 - 38 * 45
    assert res.report["nodata_excluded"]["before"]["pixels"] == outside
    assert res.report["valid"]["pixels"] == 38 * 45
    assert res.report["grid"]["crs"] == CHANGE_CRS and res.report["grid"]["width"] == 50


def test_reprojected_geographic_before_aligns_and_areas_are_equal_area(tmp_path):
    """A before map warped to EPSG:4326 (finer cells) reads back onto the UTM grid with change only at class
    edges; on the geographic grid the areas are ellipsoidal (equal to a geodesic polygon area)."""
    from pyproj import Geod
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    after = ndimage.zoom(np.arange(16).reshape(4, 4) % 4, 15, order=0).astype(np.uint8)  # 60 x 60, 15-px blocks
    a = write_map(tmp_path / "after_classes.tif", after)
    bounds = rasterio.transform.array_bounds(60, 60, from_origin(*CHANGE_ORIGIN, 30, 30))
    dst_tr, w, h = calculate_default_transform(CHANGE_CRS, "EPSG:4326", 60, 60, *bounds, resolution=0.0001)
    geo = np.full((h, w), 255, np.uint8)
    reproject(after, geo, src_transform=from_origin(*CHANGE_ORIGIN, 30, 30), src_crs=CHANGE_CRS, dst_transform=dst_tr,
              dst_crs="EPSG:4326", resampling=Resampling.nearest, src_nodata=255, dst_nodata=255)
    b = write_map(tmp_path / "before_classes.tif", geo, crs="EPSG:4326", transform=dst_tr)
    res = detect_change(b, a, str(tmp_path / "o"), options=ChangeOptions(0, 0))
    codes = read_band(tmp_path / "o" / "change.tif")
    changed = (codes > 0) & (codes < UNCERTAIN)
    near_edge = (np.arange(60) % 15 <= 1) | (np.arange(60) % 15 >= 14)  # within 1 px of a class edge
    assert res.report["valid"]["pixels"] == 3600
    assert not changed[~near_edge[:, None] & ~near_edge[None, :]].any()
    assert changed.sum() < 0.02 * 3600

    # the geographic grid: its valid area is the ellipsoidal area of its cells
    res = detect_change(b, a, str(tmp_path / "g"), options=ChangeOptions(0, 0, grid="before"))
    assert res.report["grid"]["crs"] == "EPSG:4326"
    lon0, lat0 = dst_tr.c, dst_tr.f
    lon1, lat1 = lon0 + w * dst_tr.a, lat0 + h * dst_tr.e
    full, _ = Geod(ellps="WGS84").polygon_area_perimeter([lon0, lon1, lon1, lon0], [lat0, lat0, lat1, lat1])
    assert res.report["grid_total"]["area_ha"] == pytest.approx(abs(full) / 1e4, rel=1e-6)
    assert res.report["valid"]["area_ha"] == pytest.approx(3600 * PX_HA, rel=0.01)


def test_a_web_mercator_grid_warns_that_its_areas_are_not_ground_areas(tmp_path, caplog):
    before = np.ones((20, 20), np.uint8)
    b, a = write_pair(tmp_path, before, before, crs="EPSG:3857", transform=from_origin(-8.3e6, -9.5e5, 30, 30))
    with caplog.at_level("WARNING", logger="geoseg.change.align"):
        detect_change(b, a, str(tmp_path / "o"), options=ChangeOptions(0, 0))
    assert "Mercator projection (EPSG:3857)" in caplog.text
    caplog.clear()
    b, a = write_pair(tmp_path, before, before)
    with caplog.at_level("WARNING", logger="geoseg.change.align"):
        detect_change(b, a, str(tmp_path / "u"), options=ChangeOptions(0, 0))  # UTM (transverse Mercator): fine
    assert "Mercator" not in caplog.text


def test_bad_inputs_fail_clearly_and_never_clobber_results(tmp_path):
    before = np.ones((20, 20), np.uint8)
    after = before.copy()
    after[:5, :5] = 0
    b, a = write_pair(tmp_path, before, after)
    out = tmp_path / "out"
    detect_change(b, a, str(out), options=ChangeOptions(0, 0))
    stamp = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(OutputError, match="overwrite"):
        detect_change(b, a, str(out), options=ChangeOptions(0, 0))
    bad = write_map(tmp_path / "bad_classes.tif", np.full((20, 20), 7, np.uint8))
    with pytest.raises(InputError, match=r"bad_classes\.tif: value 7 is not a class id"):
        detect_change(b, bad, str(out), options=ChangeOptions(0, 0), overwrite=True)
    with pytest.raises(InputError, match="--min-confidence 0"):
        detect_change(b, a, str(out), options=ChangeOptions(min_confidence=50), overwrite=True)
    other = tmp_path / "other_classes.tif"
    write_map(other, after)
    with rasterio.open(other, "r+") as ds:
        ds.update_tags(class_names="bare,trees,lake,town", class_ids="0,1,2,3")
    with pytest.raises(InputError, match="same class scheme"):
        detect_change(b, str(other), str(out), options=ChangeOptions(0, 0), overwrite=True)
    with pytest.raises(InputError, match="no such file"):
        detect_change(b, str(tmp_path / "nope.tif"), str(out), options=ChangeOptions(0, 0), overwrite=True)
    many = ",".join(f"c{i}" for i in range(16))
    for path in (b, a):
        with rasterio.open(path, "r+") as ds:
            ds.update_tags(class_names=many, class_ids=",".join(map(str, range(16))))
    with pytest.raises(InputError, match=r"before_classes\.tif: 16 classes .* 2\.\.15 classes"):
        detect_change(b, a, str(out), options=ChangeOptions(0, 0), overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == stamp  # no staging left, results untouched


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
    assert sorted(p.name for p in out.iterdir()) == ["change.tif", "change_polygons.gpkg", "transitions.csv",
                                                      "transitions.json"]
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
    assert sorted(p.name for p in out.iterdir()) == ["change.tif", "change_polygons.gpkg", "transitions.csv",
                                                      "transitions.json"]

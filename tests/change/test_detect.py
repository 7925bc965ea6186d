"""Change detection (geoseg.change.detect): exact transition tables, the guards, outputs, bad inputs.

Oracles: transition tables, change rasters, guard removals and polygon counts computed with numpy
and whole-raster scipy labelling on the same maps; hand-placed patches whose fate under each guard
is known. (Grid alignment: test_align.py; the legend: test_transitions.py; the CLI: tests/cli.)
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from scipy import ndimage

from geoseg.change.detect import detect_change
from geoseg.change.transitions import UNCERTAIN, change_code
from geoseg.config import ChangeConfig
from geoseg.errors import InputError, OutputError
from tests.helpers import (
    CLASS_NAMES,
    PX_HA,
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
    res = detect_change(b, a, str(out), options=ChangeConfig(min_confidence=0, mmu_ha=0, block_size=16))

    valid = (before != 255) & (after != 255)
    names = CLASS_NAMES
    got = transitions_table(out)
    assert len(got) == 4 * 5
    for f in range(4):
        for t in range(4):
            n = int((valid & (before == f) & (after == t)).sum())
            assert got[(names[f], names[t])] == (n, pytest.approx(n * PX_HA, abs=1e-4))
        assert got[(names[f], "uncertain")] == (0, 0.0)
    assert sum(p for p, _ in got.values()) == valid.sum() == res.document["valid"]["pixels"]
    np.testing.assert_array_equal(read_band(out / "change.tif"), expected_codes(before, after))
    nd = res.document["nodata_excluded"]
    assert nd["before"]["pixels"] == 30 and nd["after"]["pixels"] == 100 and nd["either"]["pixels"] == 130
    assert res.document["changed"]["pixels"] == (valid & (before != after)).sum()

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
    res = detect_change(b, a, str(out), options=ChangeConfig(min_confidence=50, mmu_ha=0.5, block_size=16))
    g = res.document["guards"]
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
    assert res.document["valid"]["pixels"] == 48 * 48

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
    res = detect_change(b, a, str(tmp_path / "o"), confirm=c, options=ChangeConfig(min_confidence=0, mmu_ha=0))
    p = res.document["guards"]["persistence"]
    assert p["applied"] and p["reverted"]["pixels"] == 18 and p["confirm_nodata"]["pixels"] == 9
    assert p["removed"] == {"pixels": 27, "area_ha": pytest.approx(27 * PX_HA)}
    assert res.document["changed"]["pixels"] == 9 and res.document["uncertain"]["pixels"] == 27
    assert res.document["dates"]["confirm"]["classes"] == c


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
    res = detect_change(b, a, str(tmp_path / "o"), confirm=paths, options=ChangeConfig(min_confidence=0, mmu_ha=0))
    p = res.document["guards"]["persistence"]
    assert p["applied"] and p["confirm_dates"] == ["confirm", "confirm_2"]
    assert p["reverted"]["pixels"] == 27 and p["confirm_nodata"]["pixels"] == 9
    assert res.document["changed"]["pixels"] == 9 and res.document["uncertain"]["pixels"] == 36
    assert res.document["dates"]["confirm_2"]["classes"] == paths[1]
    codes = read_band(tmp_path / "o" / "change.tif")
    assert (codes[0:3, 0:3] == change_code(1, 0, 4)).all() and (codes[5:23, 0:3][codes[5:23, 0:3] > 0] == UNCERTAIN).all()
    # a single confirm date given as a string is the role "confirm", as before
    one = detect_change(b, a, str(tmp_path / "o1"), confirm=paths[0], options=ChangeConfig(min_confidence=0, mmu_ha=0)).document
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
    res = detect_change(b, a, str(tmp_path / "o"), options=ChangeConfig(min_confidence=0, mmu_ha=0.81, block_size=16))
    assert res.document["guards"]["mmu"]["patches_removed"] == 2
    assert res.document["guards"]["mmu"]["removed"]["pixels"] == 16 and res.document["changed"]["pixels"] == 18
    assert res.document["polygons"]["count"] == 2


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
                        options=ChangeConfig(min_confidence=P, mmu_ha=mmu, block_size=int(rng.integers(16, 30))))

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
    g = res.document["guards"]
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
    assert len(gdf) == kept == res.document["polygons"]["count"] and gdf["pixels"].sum() == ((exp > 0) & (exp < UNCERTAIN)).sum()


def test_bad_inputs_fail_clearly_and_never_clobber_results(tmp_path):
    before = np.ones((20, 20), np.uint8)
    after = before.copy()
    after[:5, :5] = 0
    b, a = write_pair(tmp_path, before, after)
    out = tmp_path / "out"
    detect_change(b, a, str(out), options=ChangeConfig(min_confidence=0, mmu_ha=0))
    stamp = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(OutputError, match="overwrite"):
        detect_change(b, a, str(out), options=ChangeConfig(min_confidence=0, mmu_ha=0))
    bad = write_map(tmp_path / "bad_classes.tif", np.full((20, 20), 7, np.uint8))
    with pytest.raises(InputError, match=r"bad_classes\.tif: value 7 is not a class id"):
        detect_change(b, bad, str(out), options=ChangeConfig(min_confidence=0, mmu_ha=0), overwrite=True)
    with pytest.raises(InputError, match="--min-confidence 0"):
        detect_change(b, a, str(out), options=ChangeConfig(min_confidence=50), overwrite=True)
    other = tmp_path / "other_classes.tif"
    write_map(other, after)
    with rasterio.open(other, "r+") as ds:
        ds.update_tags(class_names="bare,trees,lake,town", class_ids="0,1,2,3")
    with pytest.raises(InputError, match="same class scheme"):
        detect_change(b, str(other), str(out), options=ChangeConfig(min_confidence=0, mmu_ha=0), overwrite=True)
    with pytest.raises(InputError, match="no such file"):
        detect_change(b, str(tmp_path / "nope.tif"), str(out), options=ChangeConfig(min_confidence=0, mmu_ha=0), overwrite=True)
    many = ",".join(f"c{i}" for i in range(16))
    for path in (b, a):
        with rasterio.open(path, "r+") as ds:
            ds.update_tags(class_names=many, class_ids=",".join(map(str, range(16))))
    with pytest.raises(InputError, match=r"before_classes\.tif: 16 classes .* 2\.\.15 classes"):
        detect_change(b, a, str(out), options=ChangeConfig(min_confidence=0, mmu_ha=0), overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == stamp  # no staging left, results untouched


def test_pixels_masked_for_quality_are_never_change_and_are_reported_apart_from_other_nodata(tmp_path):
    """Each date's `*_quality.tif` (as `segment` writes it: 0 clear, flag codes, 255 outside) tells the masked
    pixels from other nodata; the report counts them per date and in either, within nodata."""
    from geoseg.change.detect import detect_change
    from geoseg.io.quality import CODES
    from tests.helpers import PX_HA, blobs, read_band, write_map

    before, after = blobs(0), (blobs(0) + 1) % 4  # every valid pixel changes
    qb, qa = np.zeros(before.shape, np.uint8), np.zeros(after.shape, np.uint8)
    qb[5:15, 5:20] = CODES["cloud"]
    qa[10:30, 15:25] = CODES["cloud_shadow"]
    before[qb != 0], after[qa != 0] = 255, 255
    after[40:, :] = 255  # outside the after scene: nodata, not quality
    qa[40:, :] = 255
    b = write_map(tmp_path / "before_classes.tif", before)
    a = write_map(tmp_path / "after_classes.tif", after)
    write_map(tmp_path / "before_quality.tif", qb, tags=False)
    write_map(tmp_path / "after_quality.tif", qa, tags=False)
    res = detect_change(b, a, str(tmp_path / "out"), options=ChangeConfig(min_confidence=0))
    q, nd = res.report.document["quality_excluded"], res.report.document["nodata_excluded"]
    want_b, want_a = qb != 0, (qa != 0) & (qa != 255)
    assert q["before"]["pixels"] == want_b.sum() and q["after"]["pixels"] == want_a.sum()
    assert q["either"]["pixels"] == (want_b | want_a).sum()
    assert q["either"]["area_ha"] == pytest.approx((want_b | want_a).sum() * PX_HA)
    assert res.report.quality_excluded.pixels == (want_b | want_a).sum()
    assert nd["either"]["pixels"] == ((before == 255) | (after == 255)).sum() > q["either"]["pixels"]
    change = read_band(tmp_path / "out" / "change.tif")
    assert (change[want_b | want_a] == 255).all()  # never change
    assert (change[(before != 255) & (after != 255)] != 0).all()
    assert q["layers"] == {"before": str(tmp_path / "before_quality.tif"), "after": str(tmp_path / "after_quality.tif")}

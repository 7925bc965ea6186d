"""Aligning the dates of a change (geoseg.change.align): other grids, other CRSs, area warnings.

Oracles: a before map on a grid shifted by whole pixels in another CRS reads back exactly on the
after grid; a map warped to EPSG:4326 changes only at class edges, and its area equals pyproj's
geodesic polygon area; the Web Mercator warning is logged for EPSG:3857 only.
"""

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from scipy import ndimage

from geoseg.change.detect import detect_change
from geoseg.change.transitions import UNCERTAIN
from geoseg.config import ChangeConfig
from tests.helpers import CHANGE_CRS, CHANGE_ORIGIN, PX_HA, expected_codes, read_band, write_map, write_pair


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
    res = detect_change(b, a, str(tmp_path / "o"), options=ChangeConfig(min_confidence=0, mmu_ha=0, block_size=16))
    aligned = np.full((40, 50), 255, np.uint8)
    aligned[2:40, 3:48] = truth[2:40, 3:48]
    np.testing.assert_array_equal(read_band(tmp_path / "o" / "change.tif"), expected_codes(aligned, after))
    # the confidence is aligned the same way (nearest): the guard removes exactly the changes below 60 there
    detect_change(b, a, str(tmp_path / "c"), options=ChangeConfig(min_confidence=60, mmu_ha=0, block_size=16))
    exp = expected_codes(aligned, after)
    exp[(exp > 0) & (exp < UNCERTAIN) & (conf_truth < 60)] = UNCERTAIN
    np.testing.assert_array_equal(read_band(tmp_path / "c" / "change.tif"), exp)
    outside = 40 * 50 - 38 * 45
    assert res.document["nodata_excluded"]["before"]["pixels"] == outside
    assert res.document["valid"]["pixels"] == 38 * 45
    assert res.document["grid"]["crs"] == CHANGE_CRS and res.document["grid"]["width"] == 50


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
    res = detect_change(b, a, str(tmp_path / "o"), options=ChangeConfig(min_confidence=0, mmu_ha=0))
    codes = read_band(tmp_path / "o" / "change.tif")
    changed = (codes > 0) & (codes < UNCERTAIN)
    near_edge = (np.arange(60) % 15 <= 1) | (np.arange(60) % 15 >= 14)  # within 1 px of a class edge
    assert res.document["valid"]["pixels"] == 3600
    assert not changed[~near_edge[:, None] & ~near_edge[None, :]].any()
    assert changed.sum() < 0.02 * 3600

    # the geographic grid: its valid area is the ellipsoidal area of its cells
    res = detect_change(b, a, str(tmp_path / "g"), options=ChangeConfig(min_confidence=0, mmu_ha=0, grid="before"))
    assert res.document["grid"]["crs"] == "EPSG:4326"
    lon0, lat0 = dst_tr.c, dst_tr.f
    lon1, lat1 = lon0 + w * dst_tr.a, lat0 + h * dst_tr.e
    full, _ = Geod(ellps="WGS84").polygon_area_perimeter([lon0, lon1, lon1, lon0], [lat0, lat0, lat1, lat1])
    assert res.document["grid_total"]["area_ha"] == pytest.approx(abs(full) / 1e4, rel=1e-6)
    assert res.document["valid"]["area_ha"] == pytest.approx(3600 * PX_HA, rel=0.01)


def test_a_web_mercator_grid_warns_that_its_areas_are_not_ground_areas(tmp_path, caplog):
    before = np.ones((20, 20), np.uint8)
    b, a = write_pair(tmp_path, before, before, crs="EPSG:3857", transform=from_origin(-8.3e6, -9.5e5, 30, 30))
    with caplog.at_level("WARNING", logger="geoseg.change.align"):
        detect_change(b, a, str(tmp_path / "o"), options=ChangeConfig(min_confidence=0, mmu_ha=0))
    assert "Mercator projection (EPSG:3857)" in caplog.text
    caplog.clear()
    b, a = write_pair(tmp_path, before, before)
    with caplog.at_level("WARNING", logger="geoseg.change.align"):
        detect_change(b, a, str(tmp_path / "u"), options=ChangeConfig(min_confidence=0, mmu_ha=0))  # UTM (transverse Mercator): fine
    assert "Mercator" not in caplog.text


def test_the_source_a_date_reports_has_no_query_string_or_user_info(tmp_path):
    """A class map whose `source` tag (from an older geoseg, or another tool) is a presigned URL: the change
    outputs name its source by scheme, host and path only; a map with no tag is named by its own path."""
    from geoseg.change.align import class_map_date
    from tests.helpers import CLASS_NAMES, write_raster

    tags = {"class_names": ",".join(CLASS_NAMES), "source": "https://u:pw@h.example/x.tif?X-Amz-Signature=abc"}
    tagged = write_raster(tmp_path / "a_classes.tif", np.zeros((8, 8), np.uint8), nodata=255, tags=tags)
    assert class_map_date("before", tagged).source == "https://h.example/x.tif"
    untagged = write_raster(tmp_path / "b.tif", np.zeros((8, 8), np.uint8), nodata=255)
    assert class_map_date("after", untagged).source == str(untagged)


def test_check_overlap_names_the_date_that_does_not_overlap_the_after_date(tmp_path):
    from geoseg.change.align import check_overlap
    from geoseg.errors import InputError

    grid = np.zeros((16, 16))
    before = write_map(tmp_path / "b.tif", grid)
    after = write_map(tmp_path / "a.tif", grid, transform=from_origin(CHANGE_ORIGIN[0] + 240, CHANGE_ORIGIN[1], 30, 30))
    far = write_map(tmp_path / "c.tif", grid, transform=from_origin(CHANGE_ORIGIN[0] + 960, CHANGE_ORIGIN[1], 30, 30))
    check_overlap({"before": before, "after": after})  # half of each: fine
    with pytest.raises(InputError, match=r"confirm .*c\.tif \(EPSG:32718\) does not overlap after .*a\.tif"):
        check_overlap({"before": before, "after": after, "confirm": far})

"""The whole-array polygonizer (geoseg.vector.reference), the reference the block-wise one is measured against.

Oracles: ``scipy.ndimage.label`` region counts, pixel counts times the pixel area, a rasterization
of the polygons back onto the grid, pyproj geodesic areas of each geographic cell, and the US
survey foot's length in metres.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.transform import from_origin
from scipy import ndimage

from geoseg.vector.reference import area_m2, class_names_from_raster, polygons_from_array
from tests.helpers import CLASS_NAMES, UTM12_30M, blobs, write_classes


def test_one_valid_polygon_per_region_with_its_area():
    classes = blobs(11, (30, 34))
    classes[5:9, 20:30] = 255
    gdf = polygons_from_array(classes, UTM12_30M, CRS.from_epsg(32612), CLASS_NAMES)
    assert list(gdf.columns) == ["class_id", "class_name", "area_m2", "geometry"]
    regions = sum(ndimage.label(classes == c)[1] for c in range(4))
    assert len(gdf) == regions and gdf.geometry.is_valid.all()
    assert (gdf.class_name == np.asarray(CLASS_NAMES)[gdf.class_id]).all()
    # each polygon's area is its pixels' area, and the polygons burn back into the class map
    burned = rasterize(zip(gdf.geometry, range(1, len(gdf) + 1)), out_shape=classes.shape, transform=UTM12_30M,
                       dtype="int32")
    np.testing.assert_allclose(gdf.area_m2, np.bincount(burned.ravel(), minlength=len(gdf) + 1)[1:] * 900.0)
    np.testing.assert_array_equal(np.where(burned > 0, gdf.class_id.to_numpy()[burned - 1], 255), classes)


def test_geographic_areas_are_ellipsoidal_cell_areas():
    """On EPSG:4326 the area of each polygon is the sum of the geodesic areas of its cells."""
    from pyproj import Geod

    tr = from_origin(-74.6, -8.3, 0.0003, 0.0003)
    classes = np.zeros((12, 10), np.uint8)
    classes[2:7, 3:8] = 1  # 25 cells
    gdf = polygons_from_array(classes, tr, CRS.from_epsg(4326), CLASS_NAMES).sort_values("class_id")
    geod = Geod(ellps="WGS84")

    def cell(row):
        lat0 = -8.3 - row * 0.0003
        area, _ = geod.polygon_area_perimeter([-74.6, -74.5997, -74.5997, -74.6], [lat0, lat0, lat0 - 0.0003, lat0 - 0.0003])
        return abs(area)  # every cell of a row has the same area

    rows = np.arange(12)
    forest = sum(cell(r) * 5 for r in range(2, 7))
    total = sum(cell(r) * 10 for r in rows)
    assert gdf.area_m2.tolist() == pytest.approx([total - forest, forest], rel=1e-5)


def test_areas_in_a_crs_measured_in_us_survey_feet_are_square_metres():
    classes = np.zeros((4, 4), np.uint8)
    gdf = polygons_from_array(classes, from_origin(2000000, 700000, 10, 10), CRS.from_epsg(2264), CLASS_NAMES)
    assert gdf.area_m2.tolist() == pytest.approx([16 * 100 * 0.3048006096**2], rel=1e-9)
    assert area_m2(gdf.geometry.iloc[:0]).shape == (0,)


def test_unnamed_classes_and_an_all_nodata_map():
    classes = np.array([[0, 5], [5, 255]], np.uint8)
    gdf = polygons_from_array(classes, UTM12_30M, CRS.from_epsg(32612), ["a", "b"])
    # the two 5s touch only at a corner: two regions (4-connectivity)
    assert sorted(zip(gdf.class_id, gdf.class_name)) == [(0, "a"), (5, "unknown"), (5, "unknown")]
    empty = polygons_from_array(np.full((3, 3), 255, np.uint8), UTM12_30M, CRS.from_epsg(32612), ["a"])
    assert len(empty) == 0 and list(empty.columns) == ["class_id", "class_name", "area_m2", "geometry"]


def test_class_names_come_from_the_maps_tag(tmp_path):
    with rasterio.open(write_classes(tmp_path, np.zeros((2, 2), np.uint8))) as src:
        assert class_names_from_raster(src) == CLASS_NAMES
    with rasterio.open(write_classes(tmp_path, np.zeros((2, 2), np.uint8), tags={})) as src:
        assert class_names_from_raster(src) == []


@pytest.mark.parametrize("spec, expected", [
    ("0,2", {0: "other", 2: "water"}),
    ("forest,urban", {1: "forest", 3: "urban"}),
    ("3-5", {3: "urban", 4: "unknown", 5: "unknown"}),
    ("7=wetland, 1", {7: "wetland", 1: "forest"}),
])
def test_parse_classes_reads_ids_ranges_names_and_named_ids(spec, expected):
    from geoseg.vector.reference import parse_classes

    assert parse_classes(spec, CLASS_NAMES) == expected


@pytest.mark.parametrize("spec", ["snow", "5-2", "255", "1,,2", "x=7"])
def test_parse_classes_refuses_what_is_no_class(spec):
    from geoseg.errors import ConfigError
    from geoseg.vector.reference import parse_classes

    with pytest.raises(ConfigError, match="--classes"):
        parse_classes(spec, CLASS_NAMES)


def test_class_scheme_checks_every_block_of_the_map(tmp_path):
    from geoseg.errors import InputError
    from geoseg.vector.reference import class_scheme

    arr = np.zeros((40, 20), np.uint8)
    arr[39, 19] = 9  # in the last block only
    path = write_classes(tmp_path, arr)
    with rasterio.open(path) as src:
        with pytest.raises(InputError, match="values 9 are not class ids"):
            class_scheme(str(path), src, None, 8)
        assert class_scheme(str(path), src, "0,9=reeds", 8) == ["other", *["unknown"] * 8, "reeds"]
    untagged = write_classes(tmp_path, arr, tags=None)
    with rasterio.open(untagged) as src:
        assert class_scheme(str(untagged), src, None, 8) is None  # another tool's map: taken as it is

"""GeoGrid against rasterio's own window maths and pyproj's geodesic areas (independent oracles)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform

from geoseg.errors import InputError
from geoseg.grid import GeoGrid, cell_area_m2
from geoseg.tiling import PixelBox

UTM = CRS.from_epsg(32612)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 500), st.integers(1, 500), st.data())
def test_window_transform_and_bounds_match_rasterio(w, h, data):
    t = from_origin(500000, 4200000, 30, 30) * Affine.rotation(data.draw(st.sampled_from([0, 0, 7])))
    grid = GeoGrid(w, h, t, UTM)
    c0, r0 = data.draw(st.integers(0, w - 1)), data.draw(st.integers(0, h - 1))
    box = PixelBox(c0, r0, data.draw(st.integers(1, w - c0)), data.draw(st.integers(1, h - r0)))
    assert grid.window_transform(box).almost_equals(window_transform(box.to_window(), t))
    if t.b == 0:
        np.testing.assert_allclose(grid.bounds(box), window_bounds(box.to_window(), t))
    assert grid.box == PixelBox(0, 0, w, h) and grid.shape == (h, w)


def test_from_dataset_profile_round_trip(tmp_path):
    grid = GeoGrid(7, 5, from_origin(10, 20, 0.5, 0.5), UTM)
    path = tmp_path / "g.tif"
    with rasterio.open(path, "w", driver="GTiff", count=1, dtype="uint8", **grid.to_profile()) as dst:
        dst.write(np.zeros((1, 5, 7), np.uint8))
    with rasterio.open(path) as src:
        back = GeoGrid.from_dataset(src)
    assert back.almost_equals(grid) and back.to_dict() == grid.to_dict()
    assert not back.almost_equals(GeoGrid(7, 5, from_origin(10, 20, 0.5, 0.5), CRS.from_epsg(4326)))
    assert not back.almost_equals(GeoGrid(7, 6, from_origin(10, 20, 0.5, 0.5), UTM))


@pytest.mark.parametrize("lat", [0.5, 45.0, 70.0, 84.0])
def test_geographic_cell_areas_match_pyproj_geodesic_areas(lat):
    """Each row of a 0.01° grid at high latitude: exact ellipsoidal cell area vs pyproj's geodesic polygon area."""
    d = 0.01
    grid = GeoGrid(3, 4, Affine(d, 0, 20.0, 0, -d, lat), CRS.from_epsg(4326))
    got = grid.row_area_m2(PixelBox(0, 0, 3, 4))
    geod = Geod(ellps="WGS84")
    for r, area in enumerate(got):
        top, bot = lat - r * d, lat - (r + 1) * d
        want, _ = geod.polygon_area_perimeter([20, 20 + d, 20 + d, 20], [bot, bot, top, top])
        assert area == pytest.approx(abs(want), rel=1e-6)
    assert np.all(np.diff(got) > 0)  # rows go south: cells grow towards the equator


def test_projected_cell_area_uses_the_crs_unit():
    feet = cell_area_m2(CRS.from_epsg(2264), Affine(10, 0, 0, 0, -10, 0), np.arange(2))
    np.testing.assert_allclose(feet, (10 * 0.3048006096012192) ** 2)
    with pytest.raises(InputError, match="no CRS"):
        cell_area_m2(None, Affine.identity(), np.arange(1))


def test_pixel_size_in_metres_on_projected_and_geographic_grids():
    from pyproj import Geod

    utm = GeoGrid(10, 10, Affine(28.5, 0, 500000, 0, -28.5, 4000000), CRS.from_epsg(32617))
    assert utm.pixel_size_m() == pytest.approx(28.5)
    geo = GeoGrid(4, 4, Affine(0.0002, 0, 10.0, 0, -0.0001, 60.0002), CRS.from_epsg(4326))
    # oracle: the geodesic area of the middle row's pixel (row 2: 60.0000..59.9999 N)
    lons, lats = [10.0, 10.0002, 10.0002, 10.0], [60.0, 60.0, 59.9999, 59.9999]
    area = abs(Geod(ellps="WGS84").polygon_area_perimeter(lons, lats)[0])
    assert geo.pixel_size_m() == pytest.approx(np.sqrt(area), rel=1e-3)


@pytest.mark.parametrize("dx, dy, expected", [(0, 0, True), (290, 0, True), (300, 0, False), (0, -300, False),
                                              (-299, 299, True), (10_000, 0, False)])
def test_overlaps_is_a_shared_area_of_the_footprints(dx, dy, expected):
    a = GeoGrid(10, 10, from_origin(500000, 4200000, 30, 30), UTM)  # 300 m square
    b = GeoGrid(10, 10, from_origin(500000 + dx, 4200000 + dy, 30, 30), UTM)
    assert a.overlaps(b) is expected and b.overlaps(a) is expected


def test_overlaps_compares_grids_in_different_crs_on_the_ground():
    from pyproj import Transformer

    utm = GeoGrid(100, 100, from_origin(500000, 4200000, 30, 30), UTM)
    lon, lat = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True).transform(501500, 4198500)  # its centre
    inside = GeoGrid(10, 10, from_origin(lon - 0.001, lat + 0.001, 0.0002, 0.0002), CRS.from_epsg(4326))
    away = GeoGrid(10, 10, from_origin(lon + 1, lat + 0.001, 0.0002, 0.0002), CRS.from_epsg(4326))
    assert utm.overlaps(inside) and inside.overlaps(utm)
    assert not utm.overlaps(away) and not away.overlaps(utm)
    assert utm.overlaps(GeoGrid(1, 1, Affine.identity(), None))  # no CRS: cannot tell, so not refused

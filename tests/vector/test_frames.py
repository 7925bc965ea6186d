"""Regions to attributed GeoDataFrames (geoseg.vector.frames): coordinates on the grid, areas and perimeters.

Oracles: the affine transform applied by hand, planar areas of a projected grid, and pyproj's geodesic
area and perimeter for a geographic one.
"""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from pyproj import Geod
from rasterio.crs import CRS
from shapely.geometry import box

from geoseg.grid import GeoGrid
from geoseg.vector.frames import COLUMNS, RegionContext, region_frame


def _frame(grid: GeoGrid):
    ctx = RegionContext("src.tif", grid, ("other", "forest") + ("unknown",) * 254, "m@1", "2020-01-02")
    geoms = np.array([box(2, 1, 5, 3), box(0, 0, 1, 1)], dtype=object)  # pixel space
    return region_frame(ctx, np.array([9, 4]), np.array([1, 0], np.uint8), geoms, np.array([150.0, 0.0]),
                        np.array([2.0, 0.0]))


def test_projected_regions_are_placed_on_the_grid_and_measured():
    grid = GeoGrid(10, 10, Affine(30, 0, 500000, 0, -30, 4200000), CRS.from_epsg(32612))
    gdf = _frame(grid)
    assert list(gdf.columns[:-1]) == list(COLUMNS) and list(gdf.polygon_id) == [4, 9]  # sorted by id
    forest = gdf.iloc[1]
    assert forest.class_name == "forest" and forest.mean_confidence == 75.0 and np.isnan(gdf.iloc[0].mean_confidence)
    assert forest.geometry.bounds == (500000 + 60, 4200000 - 90, 500000 + 150, 4200000 - 30)
    assert forest.area_m2 == 6 * 900 and forest.area_ha == pytest.approx(0.54) and forest.perimeter_m == 300
    assert (forest.source, forest.model, forest.acquired) == ("src.tif", "m@1", "2020-01-02")
    assert gdf.crs == grid.crs


def test_geographic_regions_have_geodesic_areas_and_perimeters():
    d = 0.001
    grid = GeoGrid(10, 10, Affine(d, 0, 10.0, 0, -d, 60.0), CRS.from_epsg(4326))
    forest = _frame(grid).iloc[1]
    lons, lats = zip(*forest.geometry.exterior.coords)
    area, perim = Geod(ellps="WGS84").polygon_area_perimeter(lons, lats)
    assert forest.area_m2 == pytest.approx(abs(area), rel=1e-3)  # equal-area projection vs geodesic
    assert forest.perimeter_m == pytest.approx(perim, rel=1e-9)

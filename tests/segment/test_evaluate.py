"""Evaluation against reference labels (geoseg.segment.evaluate): labels on another grid are aligned first.

Oracle: a two-class map and labels at 3x the resolution sharing one edge: counted by hand.
"""

import numpy as np
import pytest

from geoseg.segment.evaluate import compare_rasters


def test_compare_rasters_aligns_labels_on_another_grid(make_raster, tmp_path):
    from affine import Affine

    pred = np.zeros((40, 40), np.uint8)
    pred[:, 20:] = 1
    pred_path = make_raster(pred, transform=Affine(30, 0, 0, 0, -30, 1200), nodata=255, name="p.tif")
    # labels on a 10 m grid, shifted by half a pred pixel... same edges at x=600 m
    lab = np.zeros((120, 120), np.uint8)
    lab[:, 60:] = 1
    lab[:30, :] = 255
    lab_path = make_raster(lab, transform=Affine(10, 0, 0, 0, -10, 1200), nodata=255, name="l.tif")
    cm = compare_rasters(pred_path, lab_path, 2)
    assert cm.tolist() == [[600, 0], [0, 600]]


def test_check_labels_refuses_labels_that_cannot_be_scored_before_any_segmentation(make_raster, tmp_path):
    import geopandas as gpd
    from affine import Affine
    from shapely.geometry import box

    from geoseg.errors import InputError
    from geoseg.segment.evaluate import check_labels

    image = make_raster(np.zeros((3, 32, 32), np.uint16), transform=Affine(30, 0, 500000, 0, -30, 4200000))
    near = make_raster(np.ones((8, 8), np.uint8), transform=Affine(30, 0, 500900, 0, -30, 4199100))
    far = make_raster(np.ones((8, 8), np.uint8), transform=Affine(30, 0, 510000, 0, -30, 4200000))
    check_labels(str(image), str(near))
    with pytest.raises(InputError, match="do not overlap the image"):
        check_labels(str(image), str(far))
    text = tmp_path / "labels.csv"
    text.write_text("x,y,class\n1,2,3\n")
    with pytest.raises(InputError, match="not a raster or vector file"):
        check_labels(str(image), str(text))
    vec = tmp_path / "l.gpkg"
    gpd.GeoDataFrame({"class": [1]}, geometry=[box(500100, 4199100, 500200, 4199200)], crs="EPSG:32612").to_file(vec)
    check_labels(str(image), str(vec))
    gpd.GeoDataFrame({"class": [1]}, geometry=[box(600100, 4199100, 600200, 4199200)], crs="EPSG:32612").to_file(vec)
    with pytest.raises(InputError, match=r"labelled features \(1\) do not overlap"):
        check_labels(str(image), str(vec))

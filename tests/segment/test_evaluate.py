"""Evaluation against reference labels (geoseg.segment.evaluate): labels on another grid are aligned first.

Oracle: a two-class map and labels at 3x the resolution sharing one edge: counted by hand.
"""

import numpy as np

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

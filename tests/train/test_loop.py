"""Training (geoseg.train.loop) on real (bundled) crops: the card, loss going down, held-out blocks, labels.

Oracles: the loss before and after optimisation steps, hand-placed label polygons and validation
blocks, a map from the trained baseline compared with the reference labels.
"""

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from shapely.geometry import box

from geoseg.errors import TrainingError
from geoseg.io.labels import rasterize_labels, remap_labels
from geoseg.train.data import load_scene
from geoseg.train.run import train
from tests.helpers import CLASSES, ZION_IMAGE, ZION_LABELS, assert_card_scores_recomputed, train_config


def test_training_writes_a_complete_card(tmp_path):
    """The card's held-out metrics are recomputed here: the saved model run over the validation block of the
    scene and scored against the reference labels with a numpy confusion matrix."""
    path = train(train_config(tmp_path))
    card = json.loads((path / "model.json").read_text())
    assert [h["step"] for h in card["training"]["history"]] == [15, 30]
    assert card["metrics"]["validation_blocks"]["zion_north_landsat8_2015_crop"] == [410, 0, 102, 512]
    assert_card_scores_recomputed(path)
    assert card["training"]["config"]["seed"] == 0 and card["bands"] == ["green", "red", "nir"]
    assert (path / "weights.safetensors").exists()


def test_missing_training_image_fails_before_any_work(tmp_path):
    cfg = train_config(tmp_path, scenes=[{"image": str(tmp_path / "nope.tif"), "labels": str(ZION_LABELS)}])
    with pytest.raises(TrainingError, match=r"scenes\[0\].image: .*nope.tif does not exist"):
        train(cfg)


def test_loss_decreases_on_a_fixed_batch(tmp_path):
    """Direct check: 30 optimisation steps on one real chip batch cut the loss."""
    import torch

    from geoseg.model.checkpoint import ModelCard, build_network
    from geoseg.train.data import sample_chips

    cfg = train_config(tmp_path)
    scene = load_scene(cfg.scenes[0], cfg)
    scene.centres = {k: np.argwhere(np.where(scene.train_mask, scene.labels, 255) == k) for k in range(4)}
    x, y = sample_chips([scene], 8, 64, np.random.default_rng(0), np.ones(4))
    torch.manual_seed(0)
    net = build_network(ModelCard(bands=cfg.bands, classes=CLASSES, arch_kwargs=cfg.arch_kwargs)).train()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=255)
    losses = []
    for _ in range(30):
        loss = loss_fn(net(torch.from_numpy(x)), torch.from_numpy(y).long())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def test_validation_block_is_held_out_of_training(tmp_path):
    cfg = train_config(tmp_path, validation={"block": [100, 50, 200, 150], "gap": 8})
    s = load_scene(cfg.scenes[0], cfg)
    rows, cols = s.val_box
    assert (rows.start, rows.stop, cols.start, cols.stop) == (50, 200, 100, 300)
    assert not s.train_mask[42:208, 92:308].any() and s.train_mask[:40].all()


def test_polygon_labels_rasterize_onto_the_right_pixels(tmp_path):
    with rasterio.open(ZION_IMAGE) as src:
        t, crs, shape = src.transform, src.crs, src.shape
    # a 10 x 20 pixel rectangle of class 2 at rows 30..39, cols 40..59, written in EPSG:4326
    x0, y0 = t * (40, 30)
    x1, y1 = t * (60, 40)
    gdf = gpd.GeoDataFrame({"lc": [2]}, geometry=[box(x0, y1, x1, y0)], crs=crs).to_crs(4326)
    gdf.to_file(tmp_path / "labels.gpkg", driver="GPKG")
    lab = rasterize_labels(str(tmp_path / "labels.gpkg"), "lc", crs, t, shape)
    inside = lab == 2
    # reprojection bends the edges by well under a pixel: the core is exact, the edges within one pixel
    assert inside[31:39, 41:59].all() and inside.sum() == pytest.approx(200, abs=40)
    assert (lab[~inside] == 255).all()
    with pytest.raises(TrainingError, match="no attribute 'class'"):
        rasterize_labels(str(tmp_path / "labels.gpkg"), "class", crs, t, shape)


def test_unknown_source_class_in_a_class_map_is_a_clear_error():
    labels = np.array([[1, 5], [7, 255]], np.uint8)
    with pytest.raises(TrainingError, match=r"label values \[7\] are not in class_map"):
        remap_labels(labels, {1: 0, 5: 1}, 4, "labels.tif")
    np.testing.assert_array_equal(remap_labels(labels, {1: 0, 5: 1, 7: 255}, 4, "x"), [[0, 1], [255, 255]])
    with pytest.raises(TrainingError, match="not model classes"):
        remap_labels(labels, None, 4, "labels.tif")


def test_spectral_index_baseline_runs_through_the_same_pipeline(tmp_path):
    from geoseg.config import SegmentConfig
    from geoseg.segment.pipeline import segment

    path = train(train_config(tmp_path, arch="spectral_index", encoder="none", arch_kwargs={}))
    card = json.loads((path / "model.json").read_text())
    assert set(card["training"]["thresholds"]) >= {"t_water", "t_forest", "t_urban", "t_bright"}
    segment(SegmentConfig(inputs=[str(ZION_IMAGE)], output=str(tmp_path / "o"), model=str(path), tile_size=256,
                          runtime={"local": True}, outputs={"polygons": False}), progress=False)
    with rasterio.open(tmp_path / "o" / f"{ZION_IMAGE.stem}_classes.tif") as cls, rasterio.open(ZION_LABELS) as lab:
        k, ref = cls.read(1), lab.read(1)
    assert (k == ref)[ref != 255].mean() > 0.5  # a sensible classical map, not noise

"""Leave-one-scene-out validation (geoseg.train.loso) on the two bundled scenes (NC and a Zion crop).

Oracles: the fold configs a recording ``fit`` receives (a held-out place is never trained on);
the fixed rule's score on each held-out scene recomputed here with numpy (percentiles, indexes,
the rule written out, a confusion matrix) on the whole array, independent of tiling and COGs.
"""

import json

import numpy as np
import pytest
import rasterio

from geoseg.errors import TrainingError
from geoseg.train.loso import format_table, leave_one_scene_out, places
from geoseg.train.run import fit_model
from tests.helpers import NC_IMAGE, NC_LABELS, ZION_IMAGE, ZION_LABELS, train_config


def two_places(tmp_path, **kw):
    return train_config(tmp_path, scenes=[{"image": str(NC_IMAGE), "labels": str(NC_LABELS)},
                                          {"image": str(ZION_IMAGE), "labels": str(ZION_LABELS)}],
                        steps=6, eval_every=3, **kw)


def fixed_rule_miou(image, labels) -> float:
    """The fixed rule on 2–98 % percentile-scaled green/red/nir of the whole scene, scored with numpy."""
    with rasterio.open(image) as src:
        names = list(src.descriptions)
        bands = src.read([names.index(b) + 1 for b in ("green", "red", "nir")]).astype(np.float64)
        valid = src.read_masks(1) > 0
    with rasterio.open(labels) as lab:
        ref = lab.read(1)
    scaled = []
    for b in bands:
        lo, hi = np.percentile(b[valid], [2, 98])
        scaled.append(np.clip((b - lo) / (hi - lo), 0, 1))
    g, r, n = scaled
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi, ndwi = (n - r) / (n + r), (g - n) / (g + n)
    ndvi, ndwi = np.nan_to_num(ndvi), np.nan_to_num(ndwi)
    pred = np.where(ndwi >= 0.98, 2, np.where(ndvi >= 0.06, 1,
                    np.where((ndvi < -0.16) & ((g + r + n) / 3 >= 0.16), 3, 0)))
    keep = valid & (ref < 4)
    cm = np.zeros((4, 4), np.int64)
    np.add.at(cm, (ref[keep].astype(int), pred[keep]), 1)
    tp, union = np.diag(cm), cm.sum(0) + cm.sum(1) - np.diag(cm)
    return float(np.mean(tp[union > 0] / union[union > 0]))


def test_places_group_scenes_and_need_two(tmp_path):
    cfg = two_places(tmp_path)
    assert list(places(cfg)) == [NC_IMAGE.stem, ZION_IMAGE.stem]
    same = cfg.model_copy(update={"scenes": [s.model_copy(update={"group": "here"}) for s in cfg.scenes]})
    with pytest.raises(TrainingError, match="at least two places.*group"):
        places(same)
    odd = two_places(tmp_path, leave_one_scene_out={"places": ["atlantis"]})
    with pytest.raises(TrainingError, match=r"leave_one_scene_out.places: \['atlantis'\] are not places"):
        leave_one_scene_out(odd, fit_model)


def test_only_the_places_asked_for_are_held_out(tmp_path):
    seen = []

    def recording_fit(fold):
        seen.append([s.image for s in fold.scenes])
        return fit_model(fold)

    cfg = two_places(tmp_path, leave_one_scene_out={"steps": 2, "tile_size": 128, "places": [ZION_IMAGE.stem]})
    block = leave_one_scene_out(cfg, recording_fit, workdir=tmp_path)
    assert list(block["places"]) == [ZION_IMAGE.stem] and seen == [[str(NC_IMAGE)]] * 3


def test_each_place_is_scored_by_models_that_never_saw_it(tmp_path):
    seen = []

    def recording_fit(fold):
        card, state = fit_model(fold)
        seen.append((fold.arch, [s.image for s in fold.scenes], fold.steps))
        # networks are applied at the pixel size they were trained for; the per-pixel rules at any
        assert card.gsd_m == (None if fold.arch.startswith("spectral") else pytest.approx(30.0 if "zion" in
                              fold.scenes[0].image else 28.5))
        return card, state

    cfg = two_places(tmp_path, leave_one_scene_out={"steps": 4, "tile_size": 128})
    block = leave_one_scene_out(cfg, recording_fit, workdir=tmp_path)
    assert [(a, imgs) for a, imgs, _ in seen] == [
        ("unet", [str(ZION_IMAGE)]), ("spectral_index", [str(ZION_IMAGE)]), ("spectral_rule", [str(ZION_IMAGE)]),
        ("unet", [str(NC_IMAGE)]), ("spectral_index", [str(NC_IMAGE)]), ("spectral_rule", [str(NC_IMAGE)]),
    ]
    assert {steps for _, _, steps in seen} == {4}
    assert not list(tmp_path.glob("geoseg-loso-*")), "fold checkpoints and runs are removed"
    for place, image, labels in ((NC_IMAGE.stem, NC_IMAGE, NC_LABELS), (ZION_IMAGE.stem, ZION_IMAGE, ZION_LABELS)):
        entry = block["places"][place]
        assert entry["scenes"] == [str(image)]
        assert entry["fixed_rule"]["miou"] == pytest.approx(fixed_rule_miou(image, labels), abs=0.005)
        with rasterio.open(labels) as lab:
            ref = lab.read(1)
        assert entry["model"]["pixels"] == int((ref < 4).sum())  # every labelled pixel of the place, once
        for m in ("model", "fitted_baseline", "fixed_rule"):
            assert 0 <= entry[m]["miou"] <= 1
    means = block["mean_miou"]
    assert means["fixed_rule"] == pytest.approx(np.mean([block["places"][p]["fixed_rule"]["miou"] for p in block["places"]]),
                                                abs=1e-4)
    table = format_table(block)
    assert table.count("\n") == 2 + 2 * 3 and "fitted baseline" in table and "IoU water" in table


def test_train_with_leave_one_scene_out_writes_the_scores_to_the_card(tmp_path):
    from click.testing import CliRunner

    from geoseg.cli import main

    cfg = two_places(tmp_path)
    cfg_path = tmp_path / "train.yaml"
    import yaml

    cfg_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    out = tmp_path / "model"
    done = CliRunner().invoke(main, ["train", "--config", str(cfg_path), "-o", str(out), "--leave-one-scene-out",
                                     "--loso-steps", "3"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert "leave-one-scene-out" in done.output and "| fixed rule |" in done.output
    card = json.loads((out / "model.json").read_text())
    block = card["metrics"]["leave_one_scene_out"]
    assert block["steps"] == 3 and set(block["places"]) == {NC_IMAGE.stem, ZION_IMAGE.stem}
    assert card["gsd_m"] == pytest.approx(np.median([28.5, 30.0]))

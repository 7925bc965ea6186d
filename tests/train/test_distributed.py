"""Training on Ray Train (geoseg.train.distributed): two DDP workers on the session's Ray; the checkpoint they
report is read back by the driver and loads into the architecture of its card."""

import json

import pytest

from geoseg.model.checkpoint import load_checkpoint
from geoseg.train.distributed import train_on_ray
from geoseg.train.run import train
from tests.helpers import assert_card_scores_recomputed, train_config


@pytest.mark.slow
def test_training_runs_on_ray_train_with_two_workers(ray_cluster, tmp_path):
    path = train(train_config(tmp_path, steps=10, eval_every=5, threads=1, trainer={"ray": True, "num_workers": 2}))
    card = json.loads((path / "model.json").read_text())
    assert card["training"]["workers"] == 2
    load_checkpoint(path).network()  # the reported checkpoint loads
    assert_card_scores_recomputed(path)  # and its held-out scores are those of the weights saved


@pytest.mark.slow
def test_train_on_ray_returns_the_best_state_of_rank_0(ray_cluster, tmp_path):
    card, state = train_on_ray(train_config(tmp_path, steps=4, eval_every=2, threads=1,
                                            trainer={"ray": True, "num_workers": 1}))
    assert card.training["best_step"] in (2, 4)
    best = next(h for h in card.training["history"] if h["step"] == card.training["best_step"])
    assert card.metrics["pooled"]["miou"] == pytest.approx(best["val_miou"], abs=1e-4)  # the card reports the best step
    assert state and all(not k.startswith("module.") for k in state)  # DDP's wrapper prefix is not saved

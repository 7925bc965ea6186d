"""The predictor (geoseg.model.predict): any input size in, the same size out.

Oracle: the shapes and value ranges of a freshly initialised small U-Net's outputs.
"""

import numpy as np

from geoseg.model.checkpoint import build_network, save_checkpoint
from geoseg.model.predict import Predictor
from tests.helpers import small_card


def test_predictor_pads_odd_sizes_and_crops_back(tmp_path):
    card = small_card()
    ckpt = save_checkpoint(tmp_path / "ck", card, build_network(card).state_dict())
    classes, conf = Predictor.from_checkpoint(ckpt, "cpu").classify(np.zeros((1, 3, 45, 71), np.float32))
    assert classes.shape == conf.shape == (1, 45, 71)
    assert conf.max() <= 100 and classes.max() < 4

"""The predictor (geoseg.model.predict): any input size in, the same size out.

Oracles: the shapes and value ranges of a freshly initialised small U-Net's outputs; for sizes that are
not multiples of 32, the network run on a numpy reflect- (or edge-) padded copy of the input whose
bottom-right padding is cropped off by hand.
"""

import numpy as np
import pytest
import torch

from geoseg.model.checkpoint import build_network, save_checkpoint
from geoseg.model.predict import Predictor
from tests.helpers import small_card


@pytest.fixture(scope="module")
def small_predictor(tmp_path_factory):
    torch.manual_seed(0)
    card = small_card()
    ckpt = save_checkpoint(tmp_path_factory.mktemp("ck") / "ck", card, build_network(card).state_dict())
    return Predictor.from_checkpoint(ckpt, "cpu")


def test_predictor_pads_odd_sizes_and_crops_back(small_predictor):
    classes, conf = small_predictor.classify(np.zeros((1, 3, 45, 71), np.float32))
    assert classes.shape == conf.shape == (1, 45, 71)
    assert conf.max() <= 100 and classes.max() < 4


@pytest.mark.parametrize("h,w,mode", [(45, 71, "reflect"), (33, 40, "reflect"), (70, 64, "reflect"),
                                      (5, 70, "edge")])
def test_padding_is_added_and_cropped_at_the_bottom_right(small_predictor, h, w, mode):
    """The probabilities of an odd-sized input are those of the padded input's top-left h x w pixels
    (reflect padding; edge padding when a side is shorter than its padding)."""
    x = np.random.default_rng(h * w).normal(size=(2, 3, h, w)).astype(np.float32)
    ph, pw = (-h) % 32, (-w) % 32
    padded = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode=mode)
    assert padded.shape[2] % 32 == 0 and padded.shape[3] % 32 == 0
    want = small_predictor.probabilities(padded)[:, :, :h, :w]
    got = small_predictor.probabilities(x)
    assert got.shape == (2, 4, h, w)
    np.testing.assert_allclose(got, want, atol=1e-5)
    classes, conf = small_predictor.classify(x)
    np.testing.assert_array_equal(classes, got.argmax(1))  # the same probabilities, reduced on the device
    np.testing.assert_array_equal(conf, np.round(got.max(1) * 100))

"""Spectral-index input channels (geoseg.model.features).

Oracles: NDVI and NDWI computed with numpy from the clipped bands; a network that records what
it is fed; a card with ``index_channels`` that builds, saves and loads like any other.
"""

import numpy as np
import pytest
import torch
from torch import nn

from geoseg.errors import ModelError
from geoseg.model.checkpoint import build_network
from geoseg.model.features import WithIndexChannels, index_band_pairs
from tests.helpers import small_card


class Recorder(nn.Module):
    def forward(self, x):
        self.seen = x.clone()
        return x[:, :1]


def test_indexes_are_appended_after_the_bands_from_clipped_values():
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.3, 1.3, (2, 4, 5, 7)).astype(np.float32)  # blue, green, red, nir
    bands = ["blue", "green", "red", "nir"]
    pairs = index_band_pairs(bands, ["ndvi", "ndwi"])
    assert pairs == [(3, 2), (1, 3)]
    rec = Recorder()
    WithIndexChannels(rec, pairs)(torch.from_numpy(x))
    seen = rec.seen.numpy()
    assert seen.shape == (2, 6, 5, 7)
    np.testing.assert_array_equal(seen[:, :4], x)  # the bands themselves are untouched
    c = np.clip(x, 0, 1).astype(np.float64)
    ndvi = (c[:, 3] - c[:, 2]) / (c[:, 3] + c[:, 2] + 1e-3)
    ndwi = (c[:, 1] - c[:, 3]) / (c[:, 1] + c[:, 3] + 1e-3)
    np.testing.assert_allclose(seen[:, 4], ndvi, atol=1e-5)
    np.testing.assert_allclose(seen[:, 5], ndwi, atol=1e-5)
    assert np.abs(seen[:, 4:]).max() <= 1.0


def test_unknown_index_or_missing_band_is_a_model_error():
    with pytest.raises(ModelError, match="unknown index 'evi'"):
        index_band_pairs(["red", "nir"], ["evi"])
    with pytest.raises(ModelError, match="ndwi needs bands 'green' and 'nir'"):
        index_band_pairs(["red", "nir"], ["ndwi"])


def test_a_card_with_index_channels_builds_a_network_with_the_extra_inputs():
    net = build_network(small_card(index_channels=["ndvi", "ndwi"]))
    assert isinstance(net, WithIndexChannels)
    first = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    assert first.in_channels == 5  # green, red, nir + ndvi, ndwi
    with torch.inference_mode():
        out = net.eval()(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 4, 64, 64)
    plain = build_network(small_card())
    assert not isinstance(plain, WithIndexChannels)

"""Spectral-index input channels computed inside the network (declared in the card's ``index_channels``).

A model whose card lists ``index_channels: [ndvi, ndwi]`` sees its normalised bands followed by
those indexes, computed in ``forward`` from the same per-scene percentile-scaled bands
(clipped to 0–1 first, so the ratios are bounded): the inference path, tiling and the ONNX
export are unchanged, and the indexes cannot drift from the bands they come from.
Arrays are ``(batch, channels, rows, cols)``.
"""

from __future__ import annotations

import torch
from torch import nn

from geoseg.errors import ModelError

INDEXES = {"ndvi": ("nir", "red"), "ndwi": ("green", "nir")}
"""Normalised-difference index -> (a, b) bands of ``(a - b) / (a + b)``."""


def index_band_pairs(bands: list[str], indexes: list[str]) -> list[tuple[int, int]]:
    """Positions of each index's two bands in ``bands``; a clear error when one is missing."""
    pairs = []
    for name in indexes:
        if name not in INDEXES:
            raise ModelError(f"index_channels: unknown index {name!r}; choose from {sorted(INDEXES)}")
        a, b = INDEXES[name]
        if a not in bands or b not in bands:
            raise ModelError(f"index_channels: {name} needs bands {a!r} and {b!r}; the card has bands {bands}")
        pairs.append((bands.index(a), bands.index(b)))
    return pairs


class WithIndexChannels(nn.Module):
    """``net`` fed with ``x`` and the normalised-difference indexes of its band ``pairs`` (values -1..1)."""

    def __init__(self, net: nn.Module, pairs: list[tuple[int, int]]):
        super().__init__()
        self.net = net
        self.pairs = pairs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.clamp(0.0, 1.0)
        extra = [(c[:, a] - c[:, b]) / (c[:, a] + c[:, b] + 1e-3) for a, b in self.pairs]
        return self.net(torch.cat([x, torch.stack(extra, 1)], 1))

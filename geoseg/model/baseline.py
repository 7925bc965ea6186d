"""The classical baseline: spectral-index thresholds (NDVI, NDWI, brightness), fitted on training pixels.

It is a real model type (``arch: spectral_index``): a tiny torch module whose thresholds are
buffers in ``weights.safetensors``, so it runs through exactly the same pipeline, tiling
and evaluation as the U-Net, and every evaluation can show what the network adds.

Indexes are computed on the per-scene normalised bands (shifted by +1 to stay positive),
so the thresholds transfer across sensors and radiometries like the network's inputs do.
Rule, in order: water if NDWI > t_water; forest if NDVI > t_forest; urban if NDVI < t_urban
and brightness < t_bright; else other.

The *fixed* rule (``arch: spectral_rule``, :class:`SpectralRuleNet`) is the three-line rule a user
writes without any training: per-scene 2–98 % percentile-scaled green, red, nir clipped to 0–1
(brightness = their mean): water if NDWI >= 0.98; else forest if NDVI >= 0.06; else urban if
NDVI < -0.16 and brightness >= 0.16; else other. It is the bar that issue #11 sets for new places.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from geoseg.errors import ModelError

THRESHOLDS = ("t_water", "t_forest", "t_urban", "t_bright")
REQUIRED_BANDS = ("green", "red", "nir")
REQUIRED_CLASSES = ("other", "forest", "water", "urban")


class SpectralIndexNet(nn.Module):
    """``(batch, 3, rows, cols)`` normalised green/red/nir -> class scores for other/forest/water/urban."""

    def __init__(self, band_order: list[str], class_names: list[str]):
        super().__init__()
        _check_scheme(band_order, class_names, "spectral_index")
        self.idx = [band_order.index(b) for b in REQUIRED_BANDS]
        self.cls = [class_names.index(c) for c in REQUIRED_CLASSES]
        for name in THRESHOLDS:
            self.register_buffer(name, torch.tensor(0.0))

    def indexes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g, r, n = (x[:, i] + 1.0 for i in self.idx)
        ndvi = (n - r) / (n + r + 1e-6)
        ndwi = (g - n) / (g + n + 1e-6)
        return ndvi, ndwi, (g + r + n) / 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        th = {k: getattr(self, k) for k in THRESHOLDS}
        masks = rule(*self.indexes(x.float()), th)
        out = torch.zeros(x.shape[0], 4, *x.shape[2:], device=x.device)
        for k, m in zip(self.cls, masks):
            out[:, k] = m.float() * 8.0  # confident one-hot scores
        return out


FIXED_RULE = {"water_ndwi_min": 0.98, "forest_ndvi_min": 0.06, "urban_ndvi_max": -0.16, "urban_bright_min": 0.16}
"""Thresholds of the fixed rule (inclusive minimums, exclusive maximum), on 0–1 percentile-scaled bands."""


def _check_scheme(band_order: list[str], class_names: list[str], arch: str) -> None:
    missing = [b for b in REQUIRED_BANDS if b not in band_order]
    if missing or sorted(class_names) != sorted(REQUIRED_CLASSES):
        raise ModelError(
            f"{arch} needs bands {list(REQUIRED_BANDS)} and classes {list(REQUIRED_CLASSES)}; "
            f"the card has bands {band_order} and classes {class_names}"
        )


class SpectralRuleNet(nn.Module):
    """The fixed rule: ``(batch, bands, rows, cols)`` normalised bands -> one-hot class scores.

    Its thresholds (:data:`FIXED_RULE`) are buffers, so the checkpoint records them, but nothing is fitted.
    """

    def __init__(self, band_order: list[str], class_names: list[str]):
        super().__init__()
        _check_scheme(band_order, class_names, "spectral_rule")
        self.idx = [band_order.index(b) for b in REQUIRED_BANDS]
        self.cls = [class_names.index(c) for c in REQUIRED_CLASSES]
        for name, value in FIXED_RULE.items():
            self.register_buffer(name, torch.tensor(value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, r, n = (x[:, i].float().clamp(0.0, 1.0) for i in self.idx)
        ndvi = (n - r) / (n + r + 1e-6)
        ndwi = (g - n) / (g + n + 1e-6)
        bright = (g + r + n) / 3
        th = {k: getattr(self, k) for k in FIXED_RULE}
        water = ndwi >= th["water_ndwi_min"]
        forest = ~water & (ndvi >= th["forest_ndvi_min"])
        urban = ~water & ~forest & (ndvi < th["urban_ndvi_max"]) & (bright >= th["urban_bright_min"])
        other = ~(water | forest | urban)
        out = torch.zeros(x.shape[0], 4, *x.shape[2:], device=x.device)
        for k, m in zip(self.cls, (other, forest, water, urban)):
            out[:, k] = m.float() * 8.0
        return out


def rule(ndvi, ndwi, bright, th: dict):
    """Masks ``(other, forest, water, urban)``; works on numpy arrays and torch tensors alike."""
    water = ndwi > th["t_water"]
    forest = ~water & (ndvi > th["t_forest"])
    urban = ~water & ~forest & (ndvi < th["t_urban"]) & (bright < th["t_bright"])
    return ~(water | forest | urban), forest, water, urban


def fit_thresholds(net: SpectralIndexNet, images: list[np.ndarray], labels: list[np.ndarray],
                   n_classes: int, samples: int = 200_000, rounds: int = 3, seed: int = 0) -> dict[str, float]:
    """Coordinate-descent search of the four thresholds maximising mIoU on labelled training pixels.

    ``images``: normalised ``(bands, rows, cols)``; ``labels``: ``(rows, cols)``, 255 = ignore.
    """
    from geoseg.model.metrics import confusion_matrix, scores

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for img, lab in zip(images, labels):
        valid = np.flatnonzero(lab.ravel() != 255)
        pick = rng.choice(valid, size=min(len(valid), samples // len(images)), replace=False)
        xs.append(img.reshape(img.shape[0], -1)[:, pick])
        ys.append(lab.ravel()[pick])
    x = torch.from_numpy(np.concatenate(xs, axis=1)[None, :, None, :].astype(np.float32))
    y = np.concatenate(ys)
    ndvi, ndwi, bright = (t.numpy().ravel() for t in net.indexes(x))
    grids = {
        "t_water": np.quantile(ndwi, np.linspace(0.5, 0.999, 40)),
        "t_forest": np.quantile(ndvi, np.linspace(0.05, 0.95, 40)),
        "t_urban": np.quantile(ndvi, np.linspace(0.02, 0.9, 40)),
        "t_bright": np.quantile(bright, np.linspace(0.05, 1.0, 40)),
    }
    best = {k: float(np.median(v)) for k, v in grids.items()}

    def miou(th: dict[str, float]) -> float:
        pred = np.zeros(y.shape, np.uint8)
        for k, m in zip(net.cls, rule(ndvi, ndwi, bright, th)):
            pred[m] = k
        return scores(confusion_matrix(y, pred, n_classes), ["c"] * n_classes)["miou"] or 0.0

    score = miou(best)
    for _ in range(rounds):
        for name, grid in grids.items():
            for v in grid:
                trial = {**best, name: float(v)}
                s = miou(trial)
                if s > score:
                    score, best = s, trial
    for k, v in best.items():  # leave the best thresholds in the module
        getattr(net, k).fill_(v)
    return {**best, "train_miou": round(score, 4)}

"""The spectral-index baseline (geoseg.model.baseline): its rule, its network and its threshold fit.

Oracles: NDVI, NDWI and brightness computed by hand (numpy, on the bands shifted by +1 as the
module documents) for synthetic pixels; the rule's precedence written out as a truth table
(water, then forest, then urban, else other); labelled pixels that one set of thresholds
separates exactly; the thresholds recorded in the bundled baseline's card.
"""

import json

import numpy as np
import pytest
import torch

from geoseg.errors import ModelError
from geoseg.model.baseline import SpectralIndexNet, fit_thresholds, rule
from geoseg.model.checkpoint import build_network, load_checkpoint
from tests.helpers import CLASS_NAMES, CLASSES, SPECTRAL_MODEL, UNET_MODEL, small_card

TH = {"t_water": 0.05, "t_forest": 0.15, "t_urban": 0.02, "t_bright": 1.5}

# normalised (green, red, nir) of four kinds of pixel, and what they are under TH
PIXELS = {
    "water": (0.30, 0.20, 0.05),   # NDWI (1.30 - 1.05) / 2.35 = 0.106 > 0.05
    "forest": (0.10, 0.05, 0.80),  # NDVI (1.80 - 1.05) / 2.85 = 0.263 > 0.15
    "urban": (0.20, 0.25, 0.22),   # NDVI -0.012 < 0.02, brightness 1.223 < 1.5
    "other": (0.70, 0.75, 0.72),   # NDVI -0.009 < 0.02 but brightness 1.723: bare and bright
}


def by_hand(g, r, n):
    """NDVI, NDWI and brightness of normalised bands, shifted by +1 (the module's documented definition)."""
    g, r, n = (np.asarray(v, np.float64) + 1.0 for v in (g, r, n))
    return (n - r) / (n + r), (g - n) / (g + n), (g + r + n) / 3


def truth_table(ndvi, ndwi, bright, th) -> np.ndarray:
    """Class names by the documented rule, in order: water, forest, urban, else other."""
    return np.where(ndwi > th["t_water"], "water",
                    np.where(ndvi > th["t_forest"], "forest",
                             np.where((ndvi < th["t_urban"]) & (bright < th["t_bright"]), "urban", "other")))


def classify(net: SpectralIndexNet, bands: dict[str, np.ndarray], band_order, class_names) -> np.ndarray:
    """Class names of pixels given per band (1-D arrays), through the network's forward pass."""
    x = torch.from_numpy(np.stack([bands[b] for b in band_order]).astype(np.float32)[None, :, None, :])
    with torch.inference_mode():
        scores = net(x)[0, :, 0, :].numpy()
    return np.asarray(class_names)[scores.argmax(axis=0)]


def test_rule_truth_table_and_precedence():
    """Water wins over forest; urban needs both a low NDVI and a dark pixel; exact thresholds are not
    crossed (strict comparisons); numpy arrays and torch tensors give the same masks."""
    ndvi = np.array([0.5, 0.5, 0.0, 0.0, 0.0, 0.1, 0.15, 0.0])
    ndwi = np.array([0.2, 0.0, 0.0, 0.0, 0.05, 0.0, 0.0, 0.0])
    bright = np.array([1.0, 1.0, 1.0, 1.6, 1.0, 1.0, 1.0, 1.5])
    expected = ["water", "forest", "urban", "other", "urban", "other", "other", "other"]
    for arrays in ((ndvi, ndwi, bright), tuple(torch.from_numpy(a) for a in (ndvi, ndwi, bright))):
        masks = np.stack([np.asarray(m) for m in rule(*arrays, TH)])  # (other, forest, water, urban)
        assert (masks.sum(axis=0) == 1).all(), "exactly one class per pixel"
        assert np.array(["other", "forest", "water", "urban"])[masks.argmax(axis=0)].tolist() == expected
    assert truth_table(ndvi, ndwi, bright, TH).tolist() == expected  # the written-out rule gives the same


@pytest.mark.parametrize("band_order, class_names", [
    (["green", "red", "nir"], CLASS_NAMES),
    (["nir", "blue", "green", "red"], ["water", "urban", "other", "forest"]),  # other orders, an extra band
])
def test_network_classifies_pixels_by_their_indexes(band_order, class_names):
    net = SpectralIndexNet(band_order, class_names)
    net.load_state_dict({k: torch.tensor(v) for k, v in TH.items()})
    rng = np.random.default_rng(0)
    names = list(PIXELS)
    g, r, n = (np.array([PIXELS[k][i] for k in names]) for i in range(3))
    bands = {"green": g, "red": r, "nir": n, "blue": rng.random(len(names))}
    assert classify(net, bands, band_order, class_names).tolist() == names
    assert truth_table(*by_hand(g, r, n), TH).tolist() == names  # the hand computation says the same


def test_cards_without_its_bands_or_classes_are_model_errors():
    with pytest.raises(ModelError, match="spectral_index needs bands"):
        build_network(small_card(arch="spectral_index", bands=["green", "red", "swir1"]))
    renamed = [{**c, "name": "built"} if c["name"] == "urban" else c for c in CLASSES]
    with pytest.raises(ModelError, match="classes"):
        build_network(small_card(arch="spectral_index", classes=renamed))
    assert isinstance(build_network(small_card(arch="spectral_index", arch_kwargs={})), SpectralIndexNet)


def test_fit_finds_thresholds_that_separate_separable_pixels():
    """100 identical pixels of each kind, plus ignored (255) pixels that look like water but are not
    labelled: the fit reaches mIoU 1 and leaves its thresholds in the network."""
    names = list(PIXELS)
    values = np.repeat(np.array([PIXELS[k] for k in names]), 100, axis=0)          # (400, 3)
    labels = np.repeat([CLASS_NAMES.index(k) for k in names], 100)
    values = np.concatenate([values, np.tile(PIXELS["water"], (50, 1))])
    labels = np.concatenate([labels, np.full(50, 255)])
    order = np.random.default_rng(1).permutation(len(labels))
    image = values[order].T.reshape(3, 18, 25)
    lab = labels[order].reshape(18, 25).astype(np.uint8)
    net = SpectralIndexNet(["green", "red", "nir"], CLASS_NAMES)
    fitted = fit_thresholds(net, [image], [lab], 4)
    assert fitted["train_miou"] == 1.0
    th = {k: fitted[k] for k in TH}
    bands = dict(zip(["green", "red", "nir"], image.reshape(3, -1)))
    got = classify(net, bands, ["green", "red", "nir"], CLASS_NAMES)
    keep = lab.ravel() != 255
    assert (got[keep] == np.asarray(CLASS_NAMES)[lab.ravel()[keep]]).all()
    # and the returned thresholds are the ones the network applies
    assert (truth_table(*by_hand(*image.reshape(3, -1)), th) == got).all()


def test_the_bundled_baseline_applies_the_thresholds_of_its_card():
    ckpt = load_checkpoint(SPECTRAL_MODEL)
    th = ckpt.card.training["thresholds"]
    net = ckpt.network()
    rng = np.random.default_rng(2)
    g, r, n = rng.uniform(-0.3, 1.3, (3, 20000))
    ndvi, ndwi, bright = by_hand(g, r, n)
    expected = truth_table(ndvi, ndwi, bright, th)
    got = classify(net, {"green": g, "red": r, "nir": n}, ckpt.card.bands, ckpt.card.class_names)
    # float32 in the network: leave out pixels within rounding of a threshold
    near = np.zeros(g.shape, bool)
    for v, k in ((ndwi, "t_water"), (ndvi, "t_forest"), (ndvi, "t_urban"), (bright, "t_bright")):
        near |= np.abs(v - th[k]) < 1e-5
    assert near.mean() < 0.01 and len(set(expected)) == 4
    assert (got[~near] == expected[~near]).all()


def test_bundled_baseline_and_default_model_cards_report_the_same_blocks():
    base = json.loads((SPECTRAL_MODEL / "model.json").read_text())
    unet = json.loads((UNET_MODEL / "model.json").read_text())
    assert base["metrics"]["validation_blocks"] == unet["metrics"]["validation_blocks"]


def fixed_rule_by_hand(g: float, r: float, n: float) -> str:
    """Issue #11's fixed rule, written out for one pixel of 0–1 percentile-scaled bands."""
    g, r, n = (min(max(v, 0.0), 1.0) for v in (g, r, n))
    ndvi = (n - r) / (n + r) if n + r else 0.0
    ndwi = (g - n) / (g + n) if g + n else 0.0
    if ndwi >= 0.98:
        return "water"
    if ndvi >= 0.06:
        return "forest"
    if ndvi < -0.16 and (g + r + n) / 3 >= 0.16:
        return "urban"
    return "other"


@pytest.mark.parametrize("band_order, class_names", [
    (["green", "red", "nir"], CLASS_NAMES),
    (["nir", "blue", "green", "red"], ["water", "urban", "other", "forest"]),
])
def test_fixed_rule_network_matches_the_rule_written_out(band_order, class_names):
    """SpectralRuleNet against a per-pixel oracle on random pixels, values out of 0–1 and pixels on
    each side of every threshold; nothing to fit, and the card builds it (``arch: spectral_rule``)."""
    from geoseg.model.baseline import SpectralRuleNet

    rng = np.random.default_rng(3)
    g, r, n = rng.uniform(-0.2, 1.2, (3, 4000))
    near = {  # just either side of each threshold (exact ratios are float-rounding dependent)
        "water": [(0.5, 0.3, 0.5 * 0.02 / 1.98 * 0.98), (0.5, 0.3, 0.5 * 0.02 / 1.98 * 1.05)],
        "forest": [(0.3, 0.4, 0.4 * 1.06 / 0.94 * 1.01), (0.3, 0.4, 0.4 * 1.06 / 0.94 * 0.99)],
        "urban": [(0.4, 0.4, 0.4 * 0.84 / 1.16 * 0.99), (0.06, 0.2, 0.2 * 0.84 / 1.16 * 0.99)],
    }
    extra = np.array([p for pair in near.values() for p in pair]).T
    g, r, n = (np.concatenate([a, e]) for a, e in zip((g, r, n), extra))
    expected = [fixed_rule_by_hand(*p) for p in zip(g, r, n)]
    assert {"water", "forest", "urban", "other"} <= set(expected[:-6])  # the random pixels reach every class
    assert expected[-6:] == ["water", "urban", "forest", "other", "urban", "other"]
    net = SpectralRuleNet(band_order, class_names)
    bands = {"green": g, "red": r, "nir": n, "blue": rng.random(len(g))}
    got = classify(net, bands, band_order, class_names)
    assert (got == np.array(expected)).mean() >= 0.999  # float32 vs float64 at the exact boundaries only
    assert got[-6:].tolist() == expected[-6:]
    built = build_network(small_card(arch="spectral_rule", encoder="none", arch_kwargs={}))
    assert isinstance(built, SpectralRuleNet) and not list(built.parameters())


def test_fixed_rule_needs_its_bands_and_classes():
    from geoseg.model.baseline import SpectralRuleNet

    with pytest.raises(ModelError, match="spectral_rule needs bands"):
        SpectralRuleNet(["red", "nir"], CLASS_NAMES)

"""The spectral-index baseline (geoseg.model.baseline): its rule, its network and its threshold fit.

Oracles: NDVI, NDWI and brightness computed by hand (numpy) on synthetic pixels, the rule's
precedence written out as a truth table, and labelled pixels that one threshold set separates
exactly.
"""

import json

from tests.helpers import SPECTRAL_MODEL, UNET_MODEL


def test_bundled_baseline_and_default_model_cards_report_the_same_blocks():
    base = json.loads((SPECTRAL_MODEL / "model.json").read_text())
    unet = json.loads((UNET_MODEL / "model.json").read_text())
    assert base["metrics"]["validation_blocks"] == unet["metrics"]["validation_blocks"]

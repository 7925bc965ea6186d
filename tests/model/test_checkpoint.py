"""Checkpoints (geoseg.model.checkpoint): the bundled model, the safetensors format, round trips, bad cards.

Oracles: the network's own outputs before saving, the safetensors header layout, and the
documented errors for broken checkpoints.
"""

import json

import numpy as np
import pytest
import torch

from geoseg.errors import ModelError
from geoseg.model.checkpoint import (
    CARD_NAME,
    WEIGHTS_NAME,
    build_network,
    checkpoint_payload,
    load_checkpoint,
    network_from_payload,
    save_checkpoint,
)
from geoseg.model.predict import Predictor
from tests.helpers import CLASSES, small_card


def test_bundled_default_model_is_real_small_and_documented(default_checkpoint):
    card = default_checkpoint.card
    assert card.bands == ["green", "red", "nir"]
    assert card.class_names == ["other", "forest", "water", "urban"]
    assert (default_checkpoint.path / WEIGHTS_NAME).stat().st_size < 30e6
    # trained here and measured on held-out blocks: metrics and provenance are in the card (the score itself is
    # measured, not read from the card, by tests/cli/test_evaluate.py)
    assert set(card.metrics["pooled"]) >= {"miou", "overall_accuracy", "per_class", "confusion_matrix"}
    assert set(card.metrics["pooled"]["per_class"]) == set(card.class_names)
    assert card.training["scenes"] and card.training["config"]["seed"] is not None
    raw = json.loads((default_checkpoint.path / CARD_NAME).read_text())
    for key in ("arch", "encoder", "bands", "classes", "normalization", "tile_size", "halo", "training", "metrics", "arch_kwargs"):
        assert key in raw


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    card = small_card()
    net = build_network(card).eval()
    ckpt = save_checkpoint(tmp_path / "ck", card, net.state_dict())
    x = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
    with torch.inference_mode():
        expected = torch.softmax(net(torch.from_numpy(x)), 1).numpy()
    got = Predictor.from_checkpoint(ckpt, "cpu").probabilities(x)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    card2, net2 = network_from_payload(checkpoint_payload(ckpt).card_json, checkpoint_payload(ckpt).weights)
    assert card2 == ckpt.card
    with torch.inference_mode():
        np.testing.assert_allclose(torch.softmax(net2(torch.from_numpy(x)), 1).numpy(), expected, atol=1e-5)


def test_weights_are_safetensors_not_pickles(default_checkpoint):
    head = (default_checkpoint.path / WEIGHTS_NAME).read_bytes()[:8]
    header_len = int.from_bytes(head, "little")
    assert 0 < header_len < 10_000_000  # safetensors: 8-byte header length, then JSON
    assert (default_checkpoint.path / WEIGHTS_NAME).read_bytes()[8:9] == b"{"


@pytest.mark.parametrize("arch", ["unet", "DeepLabV3Plus", "fpn"])
def test_architectures_selectable_by_name(arch):
    card = small_card(arch=arch, arch_kwargs={})
    net = build_network(card).eval()
    with torch.inference_mode():
        assert net(torch.zeros(1, 3, 64, 64)).shape == (1, 4, 64, 64)


def test_bad_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="not a directory"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "ck").mkdir()
    with pytest.raises(ModelError, match="model.json is missing"):
        load_checkpoint(tmp_path / "ck")
    card = small_card()
    save_checkpoint(tmp_path / "ck", card, build_network(card).state_dict())
    bad = json.loads((tmp_path / "ck" / CARD_NAME).read_text())
    bad["arch"] = "segformer9000"
    (tmp_path / "ck" / CARD_NAME).write_text(json.dumps(bad))
    with pytest.raises(ModelError, match="unknown arch"):
        load_checkpoint(tmp_path / "ck")
    bad["arch"] = "unet"
    bad["arch_kwargs"] = {"encoder_depth": 4, "decoder_channels": [64, 32, 16, 8]}
    (tmp_path / "ck" / CARD_NAME).write_text(json.dumps(bad))
    with pytest.raises(ModelError, match="weights do not match"):
        load_checkpoint(tmp_path / "ck").network()


def test_class_ids_must_be_dense():
    with pytest.raises(ValueError, match="class ids"):
        small_card(classes=[CLASSES[0], CLASSES[2]])


def test_safetensors_header_is_read_like_safetensors_reads_it(default_checkpoint):
    from safetensors import safe_open

    from geoseg.model.checkpoint import read_safetensors_header

    path = default_checkpoint.path / WEIGHTS_NAME
    with safe_open(str(path), framework="pt") as f:
        expected = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (not a dict)
    assert read_safetensors_header(path) == expected


def test_expected_shapes_are_those_of_the_network_built_on_cpu():
    from geoseg.model.checkpoint import expected_shapes

    card = small_card()
    assert expected_shapes(card) == {k: tuple(v.shape) for k, v in build_network(card).state_dict().items()}


@pytest.mark.parametrize("damage, message", [
    (lambda b: b"\x80\x04\x95\x12\x34\x56\x78\x9a" + b[8:], "not a safetensors file"),  # a pickle's first bytes
    (lambda b: b[:8] + b"[" + b[9:], "not a safetensors file"),  # a header that is not a JSON object
    (lambda b: b[:9] + b"\xff" + b[10:], "corrupted safetensors header"),
    (lambda b: b[: len(b) - 1], "truncated"),
    (lambda b: b + b"\x00", "corrupted"),
    (lambda b: b[:5], "not a safetensors file"),
])
def test_broken_weights_files_are_refused_when_loaded(tmp_path, damage, message):
    card = small_card()
    save_checkpoint(tmp_path / "ck", card, build_network(card).state_dict())
    weights = tmp_path / "ck" / WEIGHTS_NAME
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(ModelError, match=message) as info:
        load_checkpoint(tmp_path / "ck")
    assert str(weights) in str(info.value)


def test_weights_of_another_architecture_are_refused_when_loaded(tmp_path):
    card = small_card()
    save_checkpoint(tmp_path / "ck", card, build_network(card).state_dict())
    other = small_card(classes=CLASSES[:3])
    (tmp_path / "ck" / CARD_NAME).write_text(other.model_dump_json())
    with pytest.raises(ModelError, match=r"3 classes.*segmentation_head.0.weight: weights \[4, 8, 3, 3\], card needs "
                                         r"\[3, 8, 3, 3\]"):
        load_checkpoint(tmp_path / "ck")
    four_bands = small_card(bands=["green", "red", "nir", "swir1"])  # one more input channel
    (tmp_path / "ck" / CARD_NAME).write_text(four_bands.model_dump_json())
    with pytest.raises(ModelError, match="encoder.conv1.weight: weights \\[64, 3, 7, 7\\], card needs \\[64, 4, 7, 7\\]"):
        load_checkpoint(tmp_path / "ck")
    with_index = small_card(index_channels=["ndvi"])  # the network is wrapped: other tensor names
    (tmp_path / "ck" / CARD_NAME).write_text(with_index.model_dump_json())
    with pytest.raises(ModelError, match="missing net.decoder.*unexpected decoder"):
        load_checkpoint(tmp_path / "ck")


def test_a_card_seen_once_validates_weights_without_importing_torch(tmp_path):
    # the driver validates weights against the card's tensor shapes; once cached, a fresh process does so
    # without torch (start-up), and still refuses weights of another network
    import subprocess
    import sys

    card = small_card()
    save_checkpoint(tmp_path / "ck", card, build_network(card).state_dict())
    other = small_card(arch_kwargs={"encoder_depth": 3, "decoder_channels": [16, 8, 4]})
    save_checkpoint(tmp_path / "other", other, build_network(other).state_dict())
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / CARD_NAME).write_text((tmp_path / "ck" / CARD_NAME).read_text())
    (tmp_path / "bad" / WEIGHTS_NAME).write_bytes((tmp_path / "other" / WEIGHTS_NAME).read_bytes())
    code = (
        "import sys\n"
        "from geoseg.errors import ModelError\n"
        "from geoseg.model.checkpoint import load_checkpoint\n"
        f"load_checkpoint({str(tmp_path / 'ck')!r})\n"
        "try:\n"
        f"    load_checkpoint({str(tmp_path / 'bad')!r})\n"
        "    print('accepted')\n"
        "except ModelError as exc:\n"
        "    print('refused', 'decoder' in str(exc))\n"
        "print('torch' in sys.modules)\n"
    )
    env = {**__import__("os").environ, "GEOSEG_CACHE_DIR": str(tmp_path / "cache")}
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert first.stdout.split() == ["refused", "True", "True"]  # cold cache: shapes built with torch
    assert len(list((tmp_path / "cache" / "shapes").glob("*.json"))) == 1  # one card, one entry
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert again.stdout.split() == ["refused", "True", "False"]  # warm: the same answers, torch never imported

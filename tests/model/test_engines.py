"""Inference engines (geoseg.model.engines): ONNX Runtime against PyTorch fp32, the export cache, the choice.

Oracles: the PyTorch module's own logits and classes on the same arrays (a real scene and odd sizes);
the cache files on disk; agreement figures written into the cache by hand to drive the fallback.
"""

import json

import numpy as np
import pytest
import torch

from geoseg.errors import ConfigError
from geoseg.model import engines
from geoseg.model.checkpoint import build_network, checkpoint_payload, save_checkpoint
from geoseg.model.engines import MIN_AGREEMENT, OrtEngine, check_batch, export_onnx, prepare_payload
from geoseg.model.predict import Predictor
from tests.helpers import ZION_IMAGE, normalized_scene, small_card


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOSEG_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


@pytest.fixture(scope="module")
def small_payload(tmp_path_factory):
    torch.manual_seed(0)
    card = small_card()
    ckpt = save_checkpoint(tmp_path_factory.mktemp("ck") / "ck", card, build_network(card).state_dict())
    return checkpoint_payload(ckpt)


def test_onnx_runtime_logits_equal_pytorch_at_any_batch_and_size(small_payload, cache):
    from geoseg.model.checkpoint import network_from_payload

    export = export_onnx(small_payload)
    assert export.usable and export.agreement >= MIN_AGREEMENT
    _, net = network_from_payload(small_payload.card_json, small_payload.weights)
    ort = OrtEngine(export.onnx, threads=1)
    for shape in [(1, 3, 64, 64), (3, 3, 96, 160), (2, 3, 32, 256)]:
        x = np.random.default_rng(sum(shape)).random(shape, dtype=np.float32)
        with torch.inference_mode():
            want = net(torch.from_numpy(x)).numpy()
        got = ort.logits(x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_large_batches_are_run_in_calls_of_bounded_pixels_with_the_same_logits(small_payload, cache, monkeypatch):
    # oracle: one session call per image; the split must not change a logit, nor the batch order
    export = export_onnx(small_payload)
    ort = OrtEngine(export.onnx, threads=1)
    x = np.random.default_rng(3).random((5, 3, 64, 96), dtype=np.float32)
    want = np.concatenate([ort.session.run(None, {"x": x[i : i + 1]})[0] for i in range(len(x))])
    calls = []
    run = ort.session.run
    monkeypatch.setattr(ort, "session", type("S", (), {"run": lambda self, o, feed: calls.append(len(feed["x"])) or run(o, feed)})())
    monkeypatch.setattr(engines, "ORT_CALL_PIXELS", 2 * 64 * 96)
    np.testing.assert_allclose(ort.logits(x), want, atol=1e-5, rtol=1e-5)
    assert calls == [2, 2, 1]
    calls.clear()
    monkeypatch.setattr(engines, "ORT_CALL_PIXELS", 10)  # smaller than one image: one image per call
    assert ort.logits(x).shape == want.shape and calls == [1] * 5


def test_the_bundled_model_on_onnx_runtime_maps_a_real_scene_like_pytorch(default_checkpoint, cache):
    """Classes on >= 99.5 % of pixels (in practice all) and confidence within 1 percentage point."""
    x, valid = normalized_scene(ZION_IMAGE, default_checkpoint.card)
    x = x[None, :, :256, :320]
    torch_pred = Predictor.from_checkpoint(default_checkpoint, "cpu")
    payload = prepare_payload(checkpoint_payload(default_checkpoint), "auto", "cpu")
    ort_pred = Predictor.from_payload(payload, "cpu", threads=1)
    assert (torch_pred.engine, ort_pred.engine) == ("torch", "onnxruntime") and ort_pred.net is None
    (ca, fa), (cb, fb) = torch_pred.classify(x), ort_pred.classify(x)
    assert (ca == cb).mean() >= MIN_AGREEMENT
    assert np.abs(fa.astype(int) - fb.astype(int)).max() <= 1
    np.testing.assert_allclose(ort_pred.probabilities(x).sum(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("h,w,rows,cols", [(45, 71, (9, 10, "reflect"), (12, 13, "reflect")),
                                           (5, 70, (29, 30, "edge"), (13, 13, "reflect"))])
def test_onnx_runtime_pads_odd_sizes_like_the_pytorch_path(small_payload, cache, h, w, rows, cols):
    """Both engines see the input centred in a halo to sides of >= 64 px, multiples of 32 (by hand here)."""
    x = np.random.default_rng(h * w).normal(size=(2, 3, h, w)).astype(np.float32)
    ort = Predictor.from_payload(prepare_payload(small_payload, "onnxruntime", "cpu"), "cpu", threads=1)
    padded = np.pad(x, ((0, 0), (0, 0), rows[:2], (0, 0)), mode=rows[2])
    padded = np.pad(padded, ((0, 0), (0, 0), (0, 0), cols[:2]), mode=cols[2])
    assert padded.shape[2:] == (64, 96)
    np.testing.assert_allclose(ort.probabilities(x),
                               ort.probabilities(padded)[:, :, rows[0]:rows[0] + h, cols[0]:cols[0] + w], atol=1e-6)
    torch_pred = Predictor.from_payload(prepare_payload(small_payload, "torch", "cpu"), "cpu", threads=1)
    np.testing.assert_allclose(ort.probabilities(x), torch_pred.probabilities(x), atol=1e-4)
    classes, conf = ort.classify(x)
    probs = ort.probabilities(x)
    np.testing.assert_array_equal(classes, probs.argmax(1))
    assert np.abs(conf.astype(int) - np.round(probs.max(1) * 100)).max() <= 1


def test_exports_are_cached_by_card_and_weights(small_payload, cache, monkeypatch):
    first = export_onnx(small_payload)
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".onnx")

    def no_export(_):
        raise AssertionError("exported again")

    monkeypatch.setattr(engines, "_export_and_compare", no_export)
    again = export_onnx(small_payload)
    assert again.onnx == first.onnx and again.agreement == first.agreement
    other = type(small_payload)(small_payload.card_json.replace('"name":"t"', '"name":"t2"', 1), small_payload.weights)
    with pytest.raises(AssertionError, match="exported again"):  # another card is another key
        export_onnx(other)


def test_auto_falls_back_to_pytorch_when_the_export_disagrees_and_onnxruntime_refuses(small_payload, cache, caplog):
    export_onnx(small_payload)
    meta = next(cache.glob("*.json"))
    meta.write_text(json.dumps({"agreement": 0.9, "seconds": 1.0}))
    assert prepare_payload(small_payload, "auto", "cpu").onnx is None
    assert "agrees with PyTorch on 90.00%" in caplog.text
    with pytest.raises(ConfigError, match=r"engine: the ONNX export agrees with PyTorch on 90\.00%.*--engine torch"):
        prepare_payload(small_payload, "onnxruntime", "cpu")


def test_engine_choices_per_device(small_payload, cache):
    assert prepare_payload(small_payload, "torch", "cpu").engine == "torch"
    assert prepare_payload(small_payload, "auto", "cpu").engine == "onnxruntime"
    assert prepare_payload(small_payload, "auto", "cuda").engine == "torch"
    with pytest.raises(ConfigError, match="CPU only"):
        prepare_payload(small_payload, "onnxruntime", "cuda")
    with pytest.raises(ConfigError, match="engine: 'tensorrt' is not one of"):
        prepare_payload(small_payload, "tensorrt", "cpu")


def test_check_batch_is_deterministic_and_in_range():
    a, b = check_batch(3), check_batch(3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 3, 128, 128) and a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    assert a.std() > 0.1  # structure, not a constant

"""GPU-only checks (skipped without CUDA): AMP inference agrees with fp32 on CPU."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_amp_on_cuda_matches_fp32_on_cpu(default_checkpoint, predictor):
    from geoseg.model.predict import Predictor
    from tests.helpers import ZION_IMAGE, normalized_scene

    gpu = Predictor.from_checkpoint(default_checkpoint, "cuda")
    x, _ = normalized_scene(ZION_IMAGE, default_checkpoint.card)
    a, ca = predictor.classify(x[None])
    b, cb = gpu.classify(x[None])
    assert (a == b).mean() >= 0.995
    assert np.abs(ca.astype(int) - cb.astype(int)).max() <= 2

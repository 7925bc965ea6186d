"""GPU-only checks (skipped without CUDA): AMP inference agrees with fp32 on CPU."""

import numpy as np
import pytest
import rasterio

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_amp_on_cuda_matches_fp32_on_cpu(default_checkpoint, predictor):
    from geoseg.model.normalization import apply, scene_stats
    from geoseg.model.predict import Predictor
    from geoseg.io.raster import RasterInfo, read_window, resolve_bands
    from tests.conftest import ZION_IMAGE

    gpu = Predictor.from_checkpoint(default_checkpoint, "cuda")
    card = default_checkpoint.card
    with rasterio.open(ZION_IMAGE) as src:
        info = RasterInfo.from_dataset(str(ZION_IMAGE), src)
        idx = resolve_bands(info, card.bands)
        x = apply(read_window(src, idx, info.box)[0], scene_stats(src, idx, card.normalization), card.normalization)
    a, ca = predictor.classify(x[None])
    b, cb = gpu.classify(x[None])
    assert (a == b).mean() >= 0.995
    assert np.abs(ca.astype(int) - cb.astype(int)).max() <= 2

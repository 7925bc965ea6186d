"""The predictor (geoseg.model.predict): any input size in, the same size out.

Oracles: the shapes and value ranges of a freshly initialised small U-Net's outputs; for sizes that are
not multiples of 32, the network run on a numpy reflect- (or edge-) padded copy of the input whose
bottom-right padding is cropped off by hand.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geoseg.model.checkpoint import build_network, save_checkpoint
from geoseg.model.predict import Predictor, pad_for_model
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


def _centred_halo(x: np.ndarray, side: int, axis: int) -> tuple[np.ndarray, int]:
    """The oracle: pad ``axis`` to ``side`` px, half before (rounded down), reflecting when >= 8 px, else edge."""
    n = x.shape[axis]
    before = (side - n) // 2
    widths = [(0, 0)] * 4
    widths[axis] = (before, side - n - before)
    return np.pad(x, widths, mode="reflect" if n >= 8 else "edge"), before


@pytest.mark.parametrize("h,w,sides", [(45, 71, (64, 96)), (33, 40, (64, 64)), (70, 64, (96, 64)), (5, 70, (64, 96)),
                                       (1, 200, (64, 224)), (128, 3, (128, 64))])
def test_thin_and_odd_inputs_are_centred_in_a_halo_that_is_cropped_again(small_predictor, h, w, sides):
    """The probabilities of an input whose side is not a multiple of 32 or under 64 px are those of the
    centre of the input padded to such sides (reflection; edge repetition for sides under 8 px)."""
    x = np.random.default_rng(h * w).normal(size=(2, 3, h, w)).astype(np.float32)
    padded, top = _centred_halo(x, sides[0], 2)
    padded, left = _centred_halo(padded, sides[1], 3)
    assert pad_for_model(x)[1] == (top, left)
    np.testing.assert_array_equal(pad_for_model(x)[0], padded)
    want = small_predictor.probabilities(padded)[:, :, top:top + h, left:left + w]
    got = small_predictor.probabilities(x)
    assert got.shape == (2, 4, h, w)
    np.testing.assert_allclose(got, want, atol=1e-5)
    classes, conf = small_predictor.classify(x)
    np.testing.assert_array_equal(classes, got.argmax(1))  # the same probabilities, reduced on the device
    np.testing.assert_array_equal(conf, np.round(got.max(1) * 100))


@given(h=st.integers(1, 140), w=st.integers(1, 140))
@settings(max_examples=60, deadline=None)
def test_the_model_halo_gives_sides_the_encoder_takes_and_keeps_every_pixel(h, w):
    x = np.arange(h * w, dtype=np.float32).reshape(1, 1, h, w)
    padded, (top, left) = pad_for_model(x)
    H, W = padded.shape[2:]
    assert H % 32 == W % 32 == 0 and min(H, W) >= 64 and H - h < 64 and W - w < 64
    assert abs((H - h - top) - top) <= 1 and abs((W - w - left) - left) <= 1  # centred
    np.testing.assert_array_equal(padded[:, :, top:top + h, left:left + w], x)
    if h >= 64 and w >= 64 and h % 32 == w % 32 == 0:
        assert padded.shape == x.shape


def test_devices_resolve_and_predictors_load_from_a_checkpoint_or_a_payload(tmp_path):
    from geoseg.errors import ConfigError
    from geoseg.model.checkpoint import checkpoint_payload
    from geoseg.model.predict import resolve_device

    gpu = torch.cuda.is_available()
    assert resolve_device("auto") == ("cuda" if gpu else "cpu") and resolve_device("cpu") == "cpu"
    if not gpu:
        with pytest.raises(ConfigError, match="no CUDA GPU is visible"):
            resolve_device("cuda")
    card = small_card()
    ckpt = save_checkpoint(tmp_path / "ck", card, build_network(card).state_dict())
    x = np.random.default_rng(0).normal(size=(1, 3, 64, 64)).astype(np.float32)
    default = Predictor.from_checkpoint(ckpt)
    assert default.device == resolve_device("auto")
    a, b = Predictor.from_checkpoint(ckpt, "cpu"), Predictor.from_payload(checkpoint_payload(ckpt), device="cpu")
    assert a.device == b.device == "cpu" and b.card == card
    np.testing.assert_array_equal(a.probabilities(x), b.probabilities(x))


def test_tile_processor_masks_nodata_and_the_aoi_and_counts_each_core(make_raster, small_predictor):
    """Oracle: the predictor run by hand on each tile's read window, cut to its core, with nodata and pixels
    outside a pixel-aligned AOI (the left 50 columns) set to 255; counts and 900 m² areas from that map."""
    from shapely.geometry import box

    from geoseg.grid import GeoGrid
    from geoseg.model.normalization import Normalization, apply, scene_stats
    from geoseg.model.predict import SceneJob, TileProcessor
    from geoseg.tiling import TileGrid

    rng = np.random.default_rng(0)
    arrays = []
    for k in range(2):
        arr = rng.integers(1, 4000, size=(3, 100, 120)).astype(np.uint16)
        arr[:, 70:, :] = 0  # nodata rows
        arr[1, 10, 20 + k] = 0  # one band only
        arrays.append(arr)
    paths = [make_raster(a, nodata=0) for a in arrays]
    import rasterio

    with rasterio.open(paths[0]) as src:
        grid = GeoGrid.from_dataset(src)
        stats = scene_stats(src, [1, 2, 3], Normalization())
    aoi = box(500000, 4200000 - 100 * 30, 500000 + 50 * 30, 4200000)
    tiles = list(TileGrid(120, 100, 64, 8))
    proc = TileProcessor(small_predictor, batch_size=3)
    jobs = [SceneJob(str(p), [1, 2, 3], stats, grid, aoi) for p in paths]
    first = proc.process(jobs[0], tiles)
    proc.process(jobs[1], tiles[:2])  # another raster in between: the processor reopens, then comes back
    again = proc.process(jobs[0], tiles)
    for results in (first, again):
        for t, r in zip(tiles, results):
            assert r.tile == t
            read = arrays[0][:, t.read.row : t.read.row_stop, t.read.col : t.read.col_stop]
            valid = (read != 0).all(axis=0)
            valid[:, max(0, 50 - t.read.col) :] = False
            rs, cs = t.core_in_read()
            if not valid[rs, cs].any():
                assert r.skipped and r.classes is None and not r.counts.any()
                continue
            classes, conf = small_predictor.classify(apply(read, stats, Normalization())[None])
            want = np.where(valid, classes[0], 255)[rs, cs]
            np.testing.assert_array_equal(r.classes, want)
            np.testing.assert_array_equal(r.confidence, np.where(valid, conf[0], 255)[rs, cs])
            counts = np.bincount(want[want != 255], minlength=4)
            np.testing.assert_array_equal(r.counts, counts)
            np.testing.assert_allclose(r.area_m2, counts * 900.0)
    assert sum(r.skipped for r in first) > 0 and sum(not r.skipped for r in first) > 0


@pytest.mark.parametrize("zoom", [1 / 3, 2.0])
def test_zoom_resamples_the_batch_for_the_model_and_the_probabilities_back(small_predictor, zoom):
    """Oracle: torch's interpolate by hand (antialiased when shrinking), the network, bilinear back, argmax."""
    from torch.nn.functional import interpolate

    x = np.random.default_rng(7).uniform(0, 1, (2, 3, 90, 120)).astype(np.float32)
    classes, conf = small_predictor.classify(x, zoom)
    assert classes.shape == conf.shape == (2, 90, 120)
    small = interpolate(torch.from_numpy(x), size=(round(90 * zoom), round(120 * zoom)), mode="bilinear",
                        antialias=zoom < 1, align_corners=False)
    probs = torch.from_numpy(small_predictor.probabilities(small.numpy()))
    want_conf, want = interpolate(probs, size=(90, 120), mode="bilinear", align_corners=False).max(dim=1)
    np.testing.assert_array_equal(classes, want.numpy())
    np.testing.assert_array_equal(conf, (want_conf * 100).round().to(torch.uint8).numpy())
    assert not np.array_equal(classes, small_predictor.classify(x)[0])  # it is not the native prediction

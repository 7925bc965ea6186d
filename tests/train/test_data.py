"""Training chips (geoseg.train.data): padding of small scenes, pixel size, augmentation and scene draws.

Oracles: shapes and values written out by hand (reflection padding, nodata labels); the
augmentation's documented ranges; nearest-neighbour resampling that keeps image and labels aligned
(a chip whose labels are a function of its pixels stays so after any pixel-size change).
"""

import numpy as np
import pytest

from geoseg.config import AugmentConfig
from geoseg.train.data import Scene, augment, class_draws, pad_to, sample_chips


def test_a_scene_smaller_than_a_chip_is_padded_with_nodata_labels():
    image = np.arange(2 * 5 * 4, dtype=np.float32).reshape(2, 5, 4)
    labels = np.ones((5, 4), np.uint8)
    mask = np.ones((5, 4), bool)
    img, lab, m = pad_to(image, labels, mask, 6)
    assert img.shape == (2, 6, 6) and lab.shape == m.shape == (6, 6)
    np.testing.assert_array_equal(img[:, :5, :4], image)
    np.testing.assert_array_equal(img[:, 5, :4], image[:, 3])  # reflection about the last row
    assert (lab[5:] == 255).all() and (lab[:, 4:] == 255).all() and not m[5:].any() and (lab[:5, :4] == 1).all()
    assert pad_to(image, labels, mask, 4)[0] is image  # big enough: untouched
    wide, _, _ = pad_to(image, labels, mask, 9)  # more padding than the scene has rows: the edge repeats
    np.testing.assert_array_equal(wide[:, 8, :4], image[:, 4])


def test_augmentation_stays_in_its_documented_ranges():
    rng = np.random.default_rng(1)
    img = np.full((3, 16, 16), 0.5, np.float32)
    lab = np.zeros((16, 16), np.uint8)
    aug = AugmentConfig(gain=0.2, offset=0.05, gamma=0.3, haze=1.0)
    outs = np.array([augment(img, lab, rng, aug)[0][:, 0, 0] for _ in range(300)])
    # gamma in 0.7..1.3 -> 0.5**g in 0.406..0.616; haze blends towards 0.6..1.0 by 0..40 %; gain/offset
    lo, hi = 0.406 * 0.8 - 0.05, (0.616 * 0.6 + 0.4) * 1.2 + 0.05
    assert lo <= outs.min() and outs.max() <= hi
    assert outs.std() > 0.03  # it does vary
    plain = AugmentConfig(gain=0, offset=0)
    out, _ = augment(img, lab, rng, plain)
    np.testing.assert_array_equal(np.sort(out.ravel()), np.sort(img.ravel()))  # flips/rotations only


def test_pixel_size_changes_keep_image_and_labels_aligned():
    """Labels are the parity of a pixel's value: after any resampling each chip pixel's label still says it."""
    rng = np.random.default_rng(2)
    values = rng.integers(0, 50, (60, 60))
    image = np.stack([values, values, values]).astype(np.float32) / 50
    labels = (values % 2).astype(np.uint8)
    scene = Scene("s", image, labels, np.ones((60, 60), bool), (slice(0, 1), slice(0, 1)), None, 30.0)
    scene.centres = {k: np.argwhere(labels == k) for k in (0, 1)}
    aug = AugmentConfig(gain=0, offset=0, scale=(0.5, 2.0))
    x, y = sample_chips([scene], 20, 24, rng, np.ones(2), aug)
    assert x.shape == (20, 3, 24, 24) and y.shape == (20, 24, 24)
    np.testing.assert_array_equal(np.rint(x[:, 0] * 50).astype(int) % 2, y)


def test_scenes_are_drawn_by_the_square_root_of_their_area():
    def scene(n):
        s = Scene(str(n), np.zeros((1, n, n), np.float32), np.zeros((n, n), np.uint8), np.ones((n, n), bool),
                  (slice(0, 1), slice(0, 1)), None, 30.0)
        s.image[:] = n  # the chip's value says which scene it came from
        s.centres = {0: np.argwhere(s.labels == 0)}
        return s

    rng = np.random.default_rng(0)
    x, _ = sample_chips([scene(16), scene(64)], 600, 8, rng, np.ones(1), AugmentConfig(gain=0, offset=0))
    share_big = float((x[:, 0, 0, 0] == 64).mean())
    assert share_big == pytest.approx(64 / (16 + 64), abs=0.06)  # sqrt of 64² vs 16² pixels: 4:1


def test_class_draws_follow_the_share_to_the_power_of_class_balance():
    freq = np.array([900.0, 100.0, 0.0, 0.0])
    np.testing.assert_allclose(class_draws(freq, 1.0), [0.9, 0.1, 0, 0])
    np.testing.assert_allclose(class_draws(freq, 0.0), [0.5, 0.5, 0, 0])  # every present class equally
    np.testing.assert_allclose(class_draws(freq, 0.5), np.array([3.0, 1.0, 0, 0]) / 4)  # sqrt(0.9):sqrt(0.1)


def test_balanced_draws_pick_a_rare_class_as_often_as_a_common_one():
    labels = np.zeros((64, 64), np.uint8)
    labels[:4, :4] = 1  # 16 of 4096 pixels
    scene = Scene("s", labels[None].astype(np.float32), labels, np.ones((64, 64), bool),
                  (slice(0, 1), slice(0, 1)), None, 30.0)
    scene.centres = {k: np.argwhere(labels == k) for k in (0, 1)}
    freq = np.array([float((labels == k).sum()) for k in (0, 1)])
    rng = np.random.default_rng(3)
    _, y = sample_chips([scene], 400, 2, rng, class_draws(freq, 0.0), AugmentConfig(gain=0, offset=0))
    # a chip (at least 8 input px, resampled to 2) is centred on a pixel of the drawn class: about half hold the rare one
    assert float((y == 1).any(axis=(1, 2)).mean()) == pytest.approx(0.5, abs=0.08)


def test_a_scene_shrunk_to_coarser_pixels_averages_the_image_and_keeps_labels_and_block_aligned():
    from geoseg.tiling import PixelBox
    from geoseg.train.data import resample_scene

    # a ramp across the columns (each pixel holds its centre's column coordinate): a symmetric filter gives
    # the ramp at the new pixel centres, away from the edges; labels of 3 x 3 blocks stay the blocks' labels
    values = np.arange(4 * 5).reshape(4, 5)
    image = np.broadcast_to(np.arange(15, dtype=np.float32) + 0.5, (2, 12, 15)).copy()
    labels = np.kron((values % 3).astype(np.uint8), np.ones((3, 3), np.uint8))
    mask = np.ones((12, 15), bool)
    mask[:, :3] = False
    img, lab, m, (rs, cs) = resample_scene(image, labels, mask, PixelBox(6, 3, 6, 6), 1 / 3)
    assert img.shape == (2, 4, 5) and lab.shape == m.shape == (4, 5)
    np.testing.assert_allclose(img[:, :, 1:4], np.broadcast_to((np.arange(1, 4) + 0.5) * 3, (2, 4, 3)), atol=1e-4)
    np.testing.assert_array_equal(lab, values % 3)
    assert not m[:, 0].any() and m[:, 1:].all()
    assert (rs.start, rs.stop, cs.start, cs.stop) == (1, 3, 2, 4)  # rows 3..9, cols 6..12 -> 1..3, 2..4


def test_resample_scenes_trains_at_the_coarsest_pixel_size_and_says_so_in_the_card(tmp_path):
    """The Zion crop (30 m) beside a copy of it at 15 m: with resample_scenes the copy is shrunk to 30 m (same
    pixels as the original, up to the filter) and the card says 30 m; without, chips keep 15 m and the card the median."""
    import rasterio

    from geoseg.train.data import prepare_data
    from tests.helpers import ZION_IMAGE, ZION_LABELS, train_config

    fine = tmp_path / "zion_15m.tif"
    with rasterio.open(ZION_IMAGE) as src:
        prof = {**src.profile, "width": src.width * 2, "height": src.height * 2,
                "transform": src.transform * rasterio.Affine.scale(0.5)}
        data = src.read().repeat(2, axis=1).repeat(2, axis=2)
        with rasterio.open(fine, "w", **prof) as dst:
            dst.write(data)
            dst.descriptions = src.descriptions
        h, w = src.height, src.width
    scenes = [{"image": str(ZION_IMAGE), "labels": str(ZION_LABELS)}, {"image": str(fine), "labels": str(ZION_LABELS)}]
    cfg = train_config(tmp_path, scenes=scenes, resample_scenes=True)
    loaded, _, _, card = prepare_data(cfg)
    assert [s.labels.shape for s in loaded] == [(h, w), (h, w)] and [s.gsd_m for s in loaded] == [30.0, 30.0]
    assert card.gsd_m == pytest.approx(30.0)
    # 2 x 2 copies shrunk back: the original, up to the antialiasing filter's blur (2 px wide here)
    blur = float(np.abs(loaded[1].image - loaded[0].image).mean())
    shifted = float(np.abs(np.roll(loaded[0].image, 1, axis=2) - loaded[0].image).mean())  # one pixel off
    assert blur < shifted / 2
    np.testing.assert_array_equal(loaded[1].labels, loaded[0].labels)
    plain, _, _, card = prepare_data(train_config(tmp_path, scenes=scenes))
    assert plain[1].labels.shape == (2 * h, 2 * w) and card.gsd_m == pytest.approx(22.5)
    # two dates of the 15 m place count once: the median over places (30, 15), not over scenes (30, 15, 15)
    dated = [scenes[0], *({**scenes[1], "group": "fine_place"} for _ in range(2))]
    _, _, _, card = prepare_data(train_config(tmp_path, scenes=dated))
    assert card.gsd_m == pytest.approx(22.5)


def test_place_median_gsd_counts_each_place_once():
    from geoseg.train.data import place_median_gsd

    # NC 28.5 m, Zion 30 m, three Sentinel-2 dates of Slovenia at 10 m: 28.5 (the scenes' median would be 10)
    assert place_median_gsd(["nc", "zion", "si", "si", "si"], [28.5, 30.0, 10.0, 10.0, 10.0]) == 28.5
    assert place_median_gsd(["zion", "si", "si", "si"], [30.0, 10.0, 10.0, 10.0]) == 20.0
    assert place_median_gsd(["a", "a"], [10.0, 20.0]) == 15.0


def test_shrinking_a_scene_is_antialiased_as_segment_shrinks_its_tiles():
    """A 1-px checkerboard shrunk 3x: an antialiased filter averages it to about 0.5; plain bilinear sampling
    would land on pixel centres and keep 0s and 1s."""
    from geoseg.tiling import PixelBox
    from geoseg.train.data import resample_scene

    board = (np.indices((33, 33)).sum(axis=0) % 2).astype(np.float32)[None]
    lab = np.zeros((33, 33), np.uint8)
    img, _, _, _ = resample_scene(board, lab, np.ones((33, 33), bool), PixelBox(0, 0, 9, 9), 1 / 3)
    assert img.shape == (1, 11, 11)
    np.testing.assert_allclose(img[0, 1:-1, 1:-1], 0.5, atol=0.1)


def test_prepare_data_draws_classes_by_class_balance_and_trains_at_a_configured_gsd(tmp_path):
    from geoseg.errors import ConfigError
    from geoseg.train.data import prepare_data
    from tests.helpers import train_config

    _, _, balanced, card = prepare_data(train_config(tmp_path, class_balance=0.0))
    present = balanced > 0
    np.testing.assert_allclose(balanced[present], 1 / present.sum())  # every present class equally
    _, _, sqrt, _ = prepare_data(train_config(tmp_path))
    assert not np.allclose(sqrt[present], balanced[present])
    assert card.gsd_m == pytest.approx(30.0)  # the Zion crop's own
    scenes, _, _, card = prepare_data(train_config(tmp_path, gsd_m=60.0, resample_scenes=True))
    assert card.gsd_m == pytest.approx(60.0) and scenes[0].gsd_m == 60.0 and scenes[0].labels.shape == (256, 256)
    with pytest.raises((ValueError, ConfigError), match="resample_scenes"):
        train_config(tmp_path, gsd_m=60.0)

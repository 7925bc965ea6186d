"""Training chips (geoseg.train.data): padding of small scenes, pixel size, augmentation and scene draws.

Oracles: shapes and values written out by hand (reflection padding, nodata labels); the
augmentation's documented ranges; nearest-neighbour resampling that keeps image and labels aligned
(a chip whose labels are a function of its pixels stays so after any pixel-size change).
"""

import numpy as np
import pytest

from geoseg.config import AugmentConfig
from geoseg.train.data import Scene, augment, pad_to, sample_chips


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

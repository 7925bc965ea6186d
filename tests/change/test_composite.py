"""One map per period from many acquisitions (:mod:`geoseg.change.composite`, ``geoseg composite``)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from geoseg.change.composite import composite_block
from tests.helpers import blobs, write_map


def oracle(classes: np.ndarray, conf: np.ndarray | None, n: int, min_looks: int):
    """The composite pixel by pixel, in plain Python: the module's rule as its docstring states it."""
    _, rows, cols = classes.shape
    out = np.full((3, rows, cols), 255, np.uint8)
    for r in range(rows):
        for c in range(cols):
            looks = [(int(k), int(conf[i, r, c]) if conf is not None and conf[i, r, c] <= 100 else 0)
                     for i, k in enumerate(classes[:, r, c]) if k < n]
            out[2, r, c] = len(looks)
            if len(looks) < min_looks or not looks:
                continue
            count = Counter(k for k, _ in looks)
            score = {k: (count[k], sum(v for kk, v in looks if kk == k), -k) for k in count}
            best = max(score, key=lambda k: score[k])
            out[0, r, c], out[1, r, c] = best, round(100 * count[best] / len(looks))
    return out


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 6), st.integers(1, 5), st.integers(1, 5)),
              elements=st.sampled_from([0, 1, 2, 3, 255])),
       st.integers(0, 101), st.booleans(), st.integers(1, 3))
def test_the_composite_is_the_most_frequent_clear_class_ties_by_confidence(classes, seed, with_conf, min_looks):
    conf = np.random.default_rng(seed).choice([0, 40, 40, 90, 100, 255], classes.shape).astype(np.uint8) \
        if with_conf else None
    got = np.stack(composite_block(classes, conf, 4, min_looks))
    np.testing.assert_array_equal(got, oracle(classes, conf, 4, min_looks))


def test_ids_outside_the_scheme_are_not_looks():
    classes = np.array([[[7]], [[2]], [[255]]], np.uint8)
    cls, share, looks = composite_block(classes, None, 4)
    assert (cls[0, 0], share[0, 0], looks[0, 0]) == (2, 100, 1)


COLORS = {0: (227, 217, 166, 255), 1: (27, 120, 55, 255), 2: (33, 102, 172, 255), 3: (214, 48, 29, 255)}


def cloudy_looks(tmp_path, n=4, shape=(48, 53)):
    """A true map and ``n`` acquisitions of it, each with its own cloud (255) and 5 % misclassified pixels."""
    truth = blobs(0, shape)
    rng = np.random.default_rng(1)
    paths, stack = [], []
    for i in range(n):
        look = truth.copy()
        noise = rng.random(shape) < 0.05
        look[noise] = (look[noise] + 1) % 4
        r0, c0 = rng.integers(0, shape[0] - 20), rng.integers(0, shape[1] - 20)
        look[r0:r0 + 20, c0:c0 + 20] = 255  # a cloud, masked
        paths.append(write_map(tmp_path / f"d{i}_classes.tif", look))
        with rasterio.open(paths[-1], "r+") as dst:
            dst.write_colormap(1, COLORS)
        write_map(tmp_path / f"d{i}_confidence.tif", np.where(look == 255, 255, 80 + i), tags=False)
        stack.append(look)
    return truth, np.stack(stack), paths

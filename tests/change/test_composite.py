"""One map per period from many acquisitions (:mod:`geoseg.change.composite`, ``geoseg composite``)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from geoseg.change.composite import composite_block, composite_files
from geoseg.cli import main
from geoseg.errors import ExitCode
from tests.helpers import PX_HA, blobs, read_band, write_map


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


def test_geoseg_composite_writes_the_period_map_share_and_looks(tmp_path):
    truth, stack, paths = cloudy_looks(tmp_path)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["composite", *paths, "--output", str(out), "--name", "2024", "--min-looks", "2",
                                  "--block-size", "16"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == sorted(composite_files("2024").values())
    conf = np.stack([read_band(tmp_path / f"d{i}_confidence.tif") for i in range(len(paths))])
    want = oracle(stack, conf, 4, 2)
    got = [read_band(out / f"2024_{k}.tif") for k in ("classes", "share", "looks")]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)  # block-wise (16 px) equals the whole-array rule
    clear = want[2] >= 2
    assert (got[0][clear] == truth[clear]).mean() > 0.97  # the clouds and the noise are voted away
    assert (got[0][~clear] == 255).all() and clear.mean() > 0.8
    doc = json.loads((out / "2024_composite.json").read_text())
    assert doc["pixels_by_looks"] == np.bincount(want[2].ravel(), minlength=5).tolist()
    assert doc["pixels_below_min_looks"] == int(((want[2] > 0) & (want[2] < 2)).sum())
    for c in doc["classes"]:
        assert c["area_ha"] == pytest.approx((want[0] == c["class_id"]).sum() * PX_HA)
    with rasterio.open(out / "2024_classes.tif") as src:
        assert {k: src.colormap(1)[k] for k in COLORS} == COLORS  # the inputs' colour table
        assert src.tags()["class_names"] == "other,forest,water,urban" and src.nodata == 255
    assert "class_names" not in (out / "2024_looks.qml").read_text() and "looks" in (out / "2024_looks.qml").read_text()


def test_composite_refuses_what_it_cannot_combine_and_leaves_the_output(tmp_path):
    _, _, paths = cloudy_looks(tmp_path, n=2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "2024_classes.tif").write_bytes(b"an earlier result")
    other = write_map(tmp_path / "x_classes.tif", blobs(3))
    with rasterio.open(other, "r+") as dst:
        dst.update_tags(class_names="a,b,c,d", class_ids="0,1,2,3")
    cases = [
        (["--min-looks", "3"], "--min-looks 3: must be 1..2"),
        ([paths[0]], "given more than once"),
        ([other], "x_classes.tif: classes a, b, c, d differ from other, forest, water, urban"),
        ([], "outputs already exist (2024_classes.tif); pass --overwrite"),
    ]
    for extra, want in cases:
        flags = [e for e in extra if e.startswith("--") or e.isdigit()]
        more = [e for e in extra if e not in flags]
        r = CliRunner().invoke(main, ["composite", *paths, *more, "--output", str(out), "--name", "2024", *flags])
        assert r.exit_code == ExitCode.BAD_INPUT, (extra, r.output)
        assert want in r.output, (want, r.output)
        assert sorted(p.name for p in out.iterdir()) == ["2024_classes.tif"]
        assert (out / "2024_classes.tif").read_bytes() == b"an earlier result"

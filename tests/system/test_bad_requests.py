"""Meaningless requests and broken models get a clear answer (#13, items 4 and 5): the real ``geoseg`` CLI.

One test per case. Each checks the exit code (:data:`geoseg.errors.ExitCode.BAD_INPUT`), that the message names
the file or flag at fault and what to change, and that the output location holds exactly what it held before.
Broken models are refused in the driver, before any tile is planned or any actor started; requests that cannot
mean anything (dates or labels that do not overlap, labels that are no raster or vector file, a raster whose values
are not classes) are refused before any model or window work.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from rasterio.transform import from_origin
from rasterio.windows import Window

from geoseg.cli import main
from geoseg.errors import ExitCode
from tests.helpers import (
    CHANGE_ORIGIN,
    CLASS_NAMES,
    NC_IMAGE,
    crop_raster,
    prior_output,
    small_card,
    snapshot,
    write_map,
    write_raster,
)


def geoseg(*args: str) -> tuple[int, str]:
    """``geoseg -q ARGS``: exit code and everything printed (stdout and stderr); a traceback fails the test."""
    r = CliRunner().invoke(main, ["-q", *args])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.output


def scene(tmp_path: Path, name: str = "scene.tif", col: int = 0) -> Path:
    """A real 64 x 64 crop of the NC Landsat scene (bands named, blue ... swir2) starting at column ``col``."""
    return crop_raster(NC_IMAGE, tmp_path / name, Window(col, 0, 64, 64))


def model_dir(tmp_path: Path, card=None, weights_card=None) -> Path:
    """A checkpoint of :func:`tests.helpers.small_card` (or ``card``), with the weights of ``weights_card``."""
    from geoseg.model.checkpoint import CARD_NAME, build_network, save_checkpoint

    card = card or small_card()
    path = tmp_path / "model"
    save_checkpoint(path, weights_card or card, build_network(weights_card or card).state_dict())
    (path / CARD_NAME).write_text(card.model_dump_json())
    return path


def segment_with(tmp_path: Path, model: Path) -> tuple[int, str, Path, dict]:
    out, before = prior_output(tmp_path)
    code, text = geoseg("segment", str(scene(tmp_path)), "--output", str(out), "--model", str(model), "--local")
    return code, text, out, before


def assert_refused(code: int, text: str, *words: str) -> None:
    assert code == ExitCode.BAD_INPUT, text
    assert "Traceback" not in text
    for w in words:
        assert w in text, f"{w!r} not in {text!r}"


# --------------------------------------------------------------------------- 5. models checked in the driver


def test_segment_refuses_weights_with_a_corrupted_header(tmp_path):
    model = model_dir(tmp_path)
    weights = model / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[9:40] = b"garbage that is not JSON at all"  # after the opening brace
    weights.write_bytes(bytes(data))
    code, text, out, before = segment_with(tmp_path, model)
    assert_refused(code, text, str(weights), "corrupted safetensors header", "copy the weights file again")
    assert snapshot(out) == before


def test_segment_refuses_a_pickle_named_weights_safetensors(tmp_path):
    import torch

    from geoseg.model.checkpoint import build_network

    model = model_dir(tmp_path)
    torch.save(build_network(small_card()).state_dict(), model / "weights.safetensors")
    code, text, out, before = segment_with(tmp_path, model)
    assert_refused(code, text, str(model / "weights.safetensors"), "not a safetensors file", "not torch.save/pickle")
    assert snapshot(out) == before


def test_segment_refuses_truncated_weights(tmp_path):
    model = model_dir(tmp_path)
    weights = model / "weights.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    code, text, out, before = segment_with(tmp_path, model)
    assert_refused(code, text, str(weights), f"{len(data) // 2} bytes", f"describes {len(data)}", "truncated")
    assert snapshot(out) == before


def test_segment_refuses_a_card_with_fewer_classes_than_the_weights(tmp_path):
    from tests.helpers import CLASSES

    five = small_card(classes=[*CLASSES, {"id": 4, "name": "snow", "color": "#ffffff"}])
    model = model_dir(tmp_path, card=small_card(), weights_card=five)
    code, text, out, before = segment_with(tmp_path, model)
    assert_refused(code, text, str(model / "weights.safetensors"), str(model / "model.json"), "4 classes",
                   "segmentation_head", "weights [5", "card needs [4")
    assert snapshot(out) == before


def test_segment_refuses_a_card_whose_bands_differ_from_the_weights_input_channels(tmp_path):
    four_bands = small_card(bands=["green", "red", "nir", "swir1"])
    model = model_dir(tmp_path, card=four_bands, weights_card=small_card())
    code, text, out, before = segment_with(tmp_path, model)
    assert_refused(code, text, str(model / "weights.safetensors"), "4 band(s)", "encoder.conv1.weight",
                   "weights [64, 3", "card needs [64, 4")
    assert snapshot(out) == before


def test_info_refuses_a_corrupt_model_instead_of_describing_it(tmp_path):
    model = model_dir(tmp_path)
    weights = model / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    code, text = geoseg("info", str(model))
    assert_refused(code, text, str(weights), "truncated")
    assert "classes:" not in text and "model t@" not in text
    code, text = geoseg("info", str(model_dir(tmp_path / "good")))  # the same model, whole, is described
    assert code == 0 and "classes: 0=other" in text


# --------------------------------------------------------------------------- 4. meaningless requests


def test_change_refuses_class_maps_that_do_not_overlap(tmp_path):
    before = write_map(tmp_path / "before_classes.tif", np.zeros((16, 16)))
    far = from_origin(CHANGE_ORIGIN[0] + 30 * 100, CHANGE_ORIGIN[1], 30, 30)  # 100 pixels east: no common pixel
    after = write_map(tmp_path / "after_classes.tif", np.ones((16, 16)), transform=far)
    out, snap = prior_output(tmp_path)
    code, text = geoseg("change", before, after, "--output", str(out), "--min-confidence", "0")
    assert_refused(code, text, before, after, "does not overlap", "give two dates of the same area")
    assert snapshot(out) == snap


def test_change_refuses_scenes_that_do_not_overlap_before_any_model_work(tmp_path):
    a, b = scene(tmp_path, "west.tif", 0), scene(tmp_path, "east.tif", 64)  # side by side: they share an edge only
    broken = tmp_path / "broken-model"
    broken.mkdir()  # no card, no weights: loading it would fail with another message
    out, snap = prior_output(tmp_path)
    code, text = geoseg("change", str(a), str(b), "--output", str(out), "--model", str(broken), "--local")
    assert_refused(code, text, str(a), str(b), "does not overlap")
    assert "model.json" not in text  # the request was refused before the model was looked at
    assert snapshot(out) == snap


def test_evaluate_refuses_label_raster_that_does_not_overlap_the_image(tmp_path):
    image = scene(tmp_path)
    labels = write_raster(tmp_path / "labels.tif", np.ones((16, 16), np.uint8), crs="EPSG:32618",
                          transform=from_origin(*CHANGE_ORIGIN, 30, 30))
    out, snap = prior_output(tmp_path)
    code, text = geoseg("evaluate", str(image), str(labels), "--output", str(out), "--local")
    assert_refused(code, text, str(labels), str(image), "do not overlap", "labels of this image's area")
    assert snapshot(out) == snap  # no class map, no metrics


def test_evaluate_refuses_labelled_features_that_do_not_overlap_the_image(tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    image = scene(tmp_path)
    labels = tmp_path / "labels.gpkg"
    gpd.GeoDataFrame({"class": [1]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:4326").to_file(labels)  # off Africa
    out, snap = prior_output(tmp_path)
    code, text = geoseg("evaluate", str(image), str(labels), "--output", str(out), "--local")
    assert_refused(code, text, str(labels), "labelled features (1) do not overlap", str(image))
    assert snapshot(out) == snap


def test_evaluate_refuses_labels_that_are_a_text_file_before_segmenting(tmp_path):
    image = scene(tmp_path)
    labels = tmp_path / "labels.txt"
    labels.write_text("forest 1\nwater 2\n")
    out, snap = prior_output(tmp_path)
    code, text = geoseg("evaluate", str(image), str(labels), "--output", str(out), "--local")
    assert_refused(code, text, str(labels), "not a raster or vector file", "GeoTIFF", ".gpkg")
    assert snapshot(out) == snap
    assert not list(tmp_path.rglob("*_classes.tif"))


def confidence_cog(tmp_path: Path) -> Path:
    """A raster like segment's ``*_confidence.tif``: uint8 percent 33..100, tagged with the class scheme."""
    values = np.random.default_rng(3).integers(33, 101, (32, 32)).astype(np.uint8)
    return write_raster(tmp_path / "scene_confidence.tif", values, nodata=255, descriptions=["confidence"],
                        tags={"class_names": ",".join(CLASS_NAMES), "units": "percent (max softmax probability)"})


def test_vectorize_refuses_a_raster_whose_values_are_not_class_ids(tmp_path):
    out = tmp_path / "out" / "polygons.gpkg"
    out.parent.mkdir()
    code, text = geoseg("vectorize", str(confidence_cog(tmp_path)), "--output", str(out))
    assert_refused(code, text, "scene_confidence.tif", "values 33..100", "0..3: other, forest, water, urban",
                   "confidence raster", "--classes 33-100")
    assert snapshot(out.parent) == {}


@pytest.mark.parametrize("spec", ["33-100", "0-254"])
def test_vectorize_classes_says_which_values_are_classes(tmp_path, spec):
    import geopandas as gpd

    src = confidence_cog(tmp_path)
    out = tmp_path / "polygons.gpkg"
    code, text = geoseg("vectorize", str(src), "--output", str(out), "--classes", spec)
    assert code == 0, text
    gdf = gpd.read_file(out, layer="landcover")
    import rasterio

    with rasterio.open(src) as ds:
        present = set(np.unique(ds.read(1)).tolist())
    assert set(gdf.class_id) == present  # one class per value found
    assert set(gdf.class_name) == {"unknown"}  # ids past the map's scheme have no name


def test_vectorize_classes_names_and_ids_name_the_polygons(tmp_path):
    import geopandas as gpd

    arr = np.zeros((16, 16), np.uint8)
    arr[:, 8:] = 1
    arr[4:8, 2:6] = 7
    src = write_map(tmp_path / "m_classes.tif", arr)
    out = tmp_path / "polygons.gpkg"
    code, text = geoseg("vectorize", src, "--output", str(out))
    assert_refused(code, text, "values 7", "--classes")
    code, text = geoseg("vectorize", src, "--output", str(out), "--classes", "other,forest,7=wetland")
    assert code == 0, text
    gdf = gpd.read_file(out, layer="landcover")
    assert sorted(zip(gdf.class_id, gdf.class_name)) == [(0, "other"), (1, "forest"), (7, "wetland")]


def test_vectorize_refuses_values_outside_the_given_classes(tmp_path):
    arr = np.arange(4, dtype=np.uint8).repeat(4)[None].repeat(16, 0)  # classes 0..3 in columns
    src = write_map(tmp_path / "m_classes.tif", arr)
    out = tmp_path / "polygons.gpkg"
    code, text = geoseg("vectorize", src, "--output", str(out), "--classes", "0,forest")
    assert_refused(code, text, "values 2, 3", "not among --classes '0,forest'", "add them to --classes")
    assert not out.exists()
    code, text = geoseg("vectorize", src, "--output", str(out), "--classes", "0,bogus")
    assert_refused(code, text, "--classes '0,bogus'", "'bogus'", "other, forest, water, urban")


def test_a_whole_model_still_segments(tmp_path):
    """The checks refuse only what is broken: the same small model, whole, segments a scene."""
    code, text, out, _ = segment_with(tmp_path, model_dir(tmp_path))
    assert code == 0, text
    assert json.loads((out / "manifest.json").read_text())["model"]["id"].startswith("t@")
    shutil.rmtree(out)

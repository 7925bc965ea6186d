"""geoseg.config.train: held-out blocks (oracle: pixel arithmetic), places, augmentation ranges."""

import pytest
from pydantic import ValidationError

from geoseg.config.train import AugmentConfig, TrainSceneConfig, ValidationConfig
from geoseg.errors import TrainingError
from geoseg.tiling import PixelBox


@pytest.mark.parametrize(("side", "box"), [
    ("left", PixelBox(0, 0, 20, 50)), ("right", PixelBox(80, 0, 20, 50)),
    ("top", PixelBox(0, 0, 100, 10)), ("bottom", PixelBox(0, 40, 100, 10)),
])
def test_a_side_holds_out_that_fraction_of_the_scene(side, box):
    assert ValidationConfig(side=side, fraction=0.2).box(100, 50) == box


def test_an_explicit_block_wins_and_must_lie_inside_the_scene():
    assert ValidationConfig(block=(5, 6, 7, 8)).box(100, 50) == PixelBox(5, 6, 7, 8)
    with pytest.raises(TrainingError, match=r"validation.block \[95, 0, 10, 10\] is not inside the 100x50 scene"):
        ValidationConfig(block=(95, 0, 10, 10)).box(100, 50)


def test_a_scene_place_is_its_group_else_the_image_stem():
    assert TrainSceneConfig(image="s3://b/nc/landsat7_2000.tif", labels="l.tif").place == "landsat7_2000"
    assert TrainSceneConfig(image="a.tif", labels="l.tif", group="slovenia").place == "slovenia"


def test_the_pixel_size_augmentation_range_is_ordered_and_bounded():
    assert AugmentConfig(scale=(0.5, 2.0)).scale == (0.5, 2.0)
    for bad in ((2.0, 1.0), (0.1, 1.0), (1.0, 5.0)):
        with pytest.raises(ValidationError, match="augment.scale"):
            AugmentConfig(scale=bad)

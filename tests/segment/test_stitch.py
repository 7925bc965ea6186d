"""Stitching (geoseg.segment.stitch): tiled prediction equals one pass over the whole scene; tile results
arriving in any order give the same rasters and class areas.

Oracles: a single forward pass of the model over the whole scene; hand-made tile results whose
stitched map and counts are known.
"""

import numpy as np
import pytest
import rasterio

from geoseg.config import SegmentConfig
from geoseg.segment.pipeline import segment
from tests.helpers import NC_IMAGE, ZION_IMAGE, crop_raster, normalized_scene


def _single_pass(path, predictor, checkpoint):
    x, valid = normalized_scene(path, checkpoint.card)
    classes, _ = predictor.classify(x[None])
    return np.where(valid, classes[0], 255)


@pytest.fixture(scope="module")
def nc_crop(tmp_path_factory):
    """The NC scene cropped to 480 x 416 px (multiples of 32), so the single pass needs no padding."""
    from rasterio.windows import Window

    return crop_raster(NC_IMAGE, tmp_path_factory.mktemp("crop") / "nc_crop.tif", Window(0, 0, 480, 416))


@pytest.mark.parametrize("scene", ["nc", "zion"], ids=["nc_landsat7_uint8", "zion_landsat8_uint16"])
@pytest.mark.parametrize("tile_size,halo", [(128, 32), (256, 48)])
def test_tiled_prediction_matches_single_pass(tmp_path, predictor, default_checkpoint, nc_crop, scene, tile_size, halo):
    """Acceptance: >= 99.5 % of valid pixels agree with one forward pass over the whole scene.

    Scenes are multiples of 32 px so that the single pass needs no padding (padding the
    reference would change its own edge predictions; tiles never pad).
    """
    image = nc_crop if scene == "nc" else ZION_IMAGE
    reference = _single_pass(image, predictor, default_checkpoint)
    cfg = SegmentConfig(inputs=[str(image)], output=str(tmp_path / "out"), tile_size=tile_size, halo=halo,
                        runtime={"local": True}, outputs={"polygons": False, "confidence": False}, device="cpu")
    segment(cfg, progress=False)
    with rasterio.open(tmp_path / "out" / f"{image.stem}_classes.tif") as src:
        tiled = src.read(1)
    valid = reference != 255
    agreement = (tiled[valid] == reference[valid]).mean()
    assert (tiled == 255).sum() == (~valid).sum()
    assert agreement >= 0.995, f"tiled/single-pass agreement {agreement:.4f} at tile {tile_size}, halo {halo}"

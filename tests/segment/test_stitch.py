"""Stitching: tile cores land exactly where they belong, whatever the tile size; tiled equals single pass."""

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st

from geoseg.config import SegmentConfig
from geoseg.io.publish import StitchedRaster
from geoseg.segment.pipeline import segment
from tests.helpers import NC_IMAGE, ZION_IMAGE, crop_raster, normalized_scene


def coord_code(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """A value that encodes the pixel position (never 255)."""
    return ((rows * 7 + cols * 13) % 251).astype(np.uint8)


@settings(max_examples=25, deadline=None)
@given(st.integers(40, 300), st.integers(40, 300), st.sampled_from([32, 64, 128]), st.integers(0, 15))
def test_stitched_raster_is_invariant_to_tile_size(tmp_path_factory, width, height, tile_size, halo):
    from affine import Affine

    from geoseg.tiling import TileGrid

    tmp = tmp_path_factory.mktemp("stitch")
    sink = StitchedRaster(tmp / "x.tif", width, height, "EPSG:32612", Affine(30, 0, 0, 0, -30, 0), 255)
    for t in TileGrid(width, height, tile_size, halo):
        # what a worker would send back: the core cut out of a prediction over the read window
        rr, cc = np.mgrid[t.read.row : t.read.row_stop, t.read.col : t.read.col_stop]
        pred = coord_code(rr, cc)
        sink.write(t.core, pred[t.core_in_read()])
    sink.to_cog(tmp / "x.cog.tif")
    with rasterio.open(tmp / "x.cog.tif") as src:
        got = src.read(1)
    rr, cc = np.mgrid[0:height, 0:width]
    np.testing.assert_array_equal(got, coord_code(rr, cc))


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

"""Stitching: tile cores land exactly where they belong, whatever the tile size; tiled equals single pass."""

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st

from geoseg.config import SegmentConfig
from geoseg.io.publish import StitchedRaster
from geoseg.segment.pipeline import segment
from tests.conftest import NC_IMAGE, ZION_IMAGE


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
    from geoseg.model.normalization import apply, scene_stats
    from geoseg.io.raster import RasterInfo, read_window, resolve_bands

    with rasterio.open(path) as src:
        info = RasterInfo.from_dataset(str(path), src)
        idx = resolve_bands(info, checkpoint.card.bands)
        stats = scene_stats(src, idx, checkpoint.card.normalization)
        data, valid = read_window(src, idx, info.box)
    classes, _ = predictor.classify(apply(data, stats, checkpoint.card.normalization)[None])
    return np.where(valid, classes[0], 255)


@pytest.fixture(scope="module")
def nc_crop(tmp_path_factory):
    """The NC scene cropped to 480 x 416 px (multiples of 32), so the single pass needs no padding."""
    from rasterio.windows import Window

    path = tmp_path_factory.mktemp("crop") / "nc_crop.tif"
    with rasterio.open(NC_IMAGE) as src:
        win = Window(0, 0, 480, 416)
        profile = {**src.profile, "width": 480, "height": 416, "transform": src.window_transform(win)}
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(src.read(window=win))
            dst.descriptions = src.descriptions
    return path


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

"""Raster access (geoseg.io.raster): band resolution, nodata masks, pixel areas, GDAL paths, open errors.

Oracles: the NC scene's band descriptions, hand-placed nodata pixels, and pixel areas from the
projection's units and from pyproj's geodesic polygon areas.
"""

import numpy as np
import pytest
import rasterio
from affine import Affine

from geoseg.errors import BandError, InputError
from geoseg.grid import cell_area_m2
from geoseg.io.raster import (
    RasterInfo,
    gdal_path,
    open_raster,
    read_masked,
    read_window,
    resolve_bands,
)
from geoseg.tiling import PixelBox
from tests.helpers import NC_IMAGE


def _info(path):
    with rasterio.open(path) as src:
        return RasterInfo.from_dataset(str(path), src)


def test_bands_resolve_by_name_case_insensitively_and_by_index():
    info = _info(NC_IMAGE)
    assert resolve_bands(info, ["green", "RED", "nir"]) == [2, 3, 4]
    assert resolve_bands(info, [4, "3", "green"]) == [4, 3, 2]


def test_missing_band_error_lists_the_bands_the_file_has():
    info = _info(NC_IMAGE)
    with pytest.raises(BandError) as exc:
        resolve_bands(info, ["green", "red", "swir2"])
    msg = str(exc.value)
    assert "swir2" in msg and "1:blue" in msg and "5:swir1" in msg and str(NC_IMAGE) in msg
    with pytest.raises(BandError, match="index 9 is out of range"):
        resolve_bands(info, [9])


def test_a_band_asked_for_twice_is_a_band_error_naming_the_flag_and_the_band():
    """--bands nir,nir,nir would feed the model one band three times: rejected, by name, by index or mixed."""
    info = _info(NC_IMAGE)
    for wanted in (["nir", "nir", "nir"], ["green", "4", "NIR"], [2, 2, 4]):
        with pytest.raises(BandError) as exc:
            resolve_bands(info, wanted)
        msg = str(exc.value)
        assert msg.startswith("--bands ") and "more than once" in msg and "pass each band once" in msg
        assert ("4:nir" in msg) if wanted[0] != 2 else ("2:green" in msg)
        assert "1:blue" in msg  # what the file has
    with pytest.raises(BandError, match=r"^bands \(training config\) nir,nir: band 4:nir is given more than once.*"
                                        r"in model order; "):
        resolve_bands(info, ["nir", "nir"], option="bands (training config)")


def test_unnamed_bands_get_positional_names(make_raster):
    path = make_raster(np.zeros((3, 10, 10), np.uint8))
    assert _info(path).band_names == ("band1", "band2", "band3")


@pytest.mark.parametrize("dtype,nodata", [("uint8", 0), ("uint16", 65535), ("int16", -9999), ("float32", -1.0)])
def test_window_reads_flag_nodata_in_any_band(make_raster, dtype, nodata):
    rng = np.random.default_rng(0)
    arr = (rng.integers(1, 200, size=(3, 40, 50))).astype(dtype)
    arr[1, 5, 7] = nodata  # one band only
    arr[:, 30:, 40:] = nodata
    path = make_raster(arr, nodata=nodata)
    with rasterio.open(path) as src:
        data, valid = read_window(src, [1, 2, 3], PixelBox(0, 0, 50, 40))
    assert data.shape == (3, 40, 50) and data.dtype == np.dtype(dtype)
    assert not valid[5, 7] and not valid[30:, 40:].any()
    assert valid.sum() == 40 * 50 - 1 - 10 * 10


@pytest.mark.parametrize("nodata", [None, -1.0])
def test_float_nan_and_inf_are_invalid_in_any_band_whatever_the_nodata(make_raster, nodata):
    arr = np.ones((3, 8, 8), np.float32)
    arr[0, 2, 3] = np.nan
    arr[2, 5, 1] = np.nan
    arr[1, 6, 6] = np.inf
    arr[1, 0, 7] = nodata if nodata is not None else 1.0
    path = make_raster(arr, nodata=nodata)
    with rasterio.open(path) as src:
        _, valid = read_window(src, [1, 2, 3], PixelBox(0, 0, 8, 8))
        masked = read_masked(src, [1, 2, 3])
    bad = {(2, 3), (5, 1), (6, 6)} | ({(0, 7)} if nodata is not None else set())
    assert {tuple(p) for p in np.argwhere(~valid)} == bad
    assert np.ma.getmaskarray(masked).sum() == len(bad)  # per band: only the band that holds the value


def test_pixel_area_projected_and_geographic():
    from rasterio.crs import CRS

    a = cell_area_m2(CRS.from_epsg(32612), Affine(30, 0, 0, 0, -30, 0), np.arange(3))
    assert np.allclose(a, 900.0)
    # US survey feet: 1 ft^2 = 0.09290341 m^2
    ft = cell_area_m2(CRS.from_epsg(2264), Affine(10, 0, 0, 0, -10, 0), np.arange(1))
    assert ft[0] == pytest.approx(100 * 0.3048006096**2, rel=1e-6)
    # 0.001 deg cells: near the equator ~111.2 m x 110.6 m; at 60 deg N about half as wide
    eq = cell_area_m2(CRS.from_epsg(4326), Affine(0.001, 0, 0, 0, -0.001, 0.0005), np.arange(1))[0]
    n60 = cell_area_m2(CRS.from_epsg(4326), Affine(0.001, 0, 0, 0, -0.001, 60.0005), np.arange(1))[0]
    assert eq == pytest.approx(111195 * 111195 / 1e6, rel=0.01)
    assert n60 / eq == pytest.approx(0.5, rel=0.02)  # ~cos(60 deg), a little more on the ellipsoid
    # exact against pyproj's geodesic area of the same cells
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    for lat in (-8.3, 45.0, 71.2):
        t = Affine(0.01, 0, -74.6, 0, -0.01, lat)
        got = cell_area_m2(CRS.from_epsg(4326), t, np.array([0]))[0]
        ref, _ = geod.polygon_area_perimeter([-74.6, -74.59, -74.59, -74.6], [lat, lat, lat - 0.01, lat - 0.01])
        assert got == pytest.approx(abs(ref), rel=1e-5)


def test_s3_urls_are_read_through_vsis3():
    assert gdal_path("s3://bucket/a/b.tif") == "/vsis3/bucket/a/b.tif"
    assert gdal_path("/data/x.tif") == "/data/x.tif"


def test_unreadable_input_is_an_input_error(tmp_path):
    bad = tmp_path / "notaraster.tif"
    bad.write_text("hello")
    with pytest.raises(InputError, match="cannot open as a raster"):
        open_raster(bad)


def _missing_source_vrt(tmp_path):
    """A VRT over a crop of the NC scene whose source file was deleted afterwards: (vrt, source)."""
    from rasterio.shutil import copy as rio_copy
    from rasterio.windows import Window

    from tests.helpers import crop_raster

    source = crop_raster(NC_IMAGE, tmp_path / "gone.tif", Window(0, 0, 64, 64))
    vrt = tmp_path / "v.vrt"
    rio_copy(source, vrt, driver="VRT")
    source.unlink()
    return vrt, source


def test_gdal_cause_is_the_innermost_message_of_the_chain():
    from rasterio.errors import RasterioIOError

    from geoseg.io.raster import gdal_cause

    root = OSError("f.tif: TIFFFillTile: got 0 bytes, expected 512")
    middle = OSError("TIFFReadEncodedTile() failed.")
    middle.__cause__ = root
    top = RasterioIOError("Read failed. See previous exception for details.")
    top.__cause__ = middle
    assert gdal_cause(top) == "f.tif: TIFFFillTile: got 0 bytes, expected 512"
    assert gdal_cause(RasterioIOError("plain")) == "plain"


def test_probe_pixels_names_the_missing_source_of_a_vrt(tmp_path):
    from geoseg.io.raster import probe_pixels

    vrt, source = _missing_source_vrt(tmp_path)
    with rasterio.open(vrt) as src, pytest.raises(InputError) as err:
        probe_pixels(src, [1, 2])
    assert str(vrt) in str(err.value) and str(source) in str(err.value) and "do not exist" in str(err.value)


def test_probe_pixels_passes_a_readable_raster(make_raster):
    from geoseg.io.raster import probe_pixels

    path = make_raster(np.ones((2, 70, 90), np.uint8))
    with rasterio.open(path) as src:
        probe_pixels(src, [1, 2])  # no error


def test_a_failed_window_read_names_the_file_the_window_and_gdals_cause(tmp_path):
    from rasterio.errors import RasterioIOError

    vrt, source = _missing_source_vrt(tmp_path)
    with rasterio.open(vrt) as src, pytest.raises(RasterioIOError) as err:
        read_window(src, [1], PixelBox(8, 4, 16, 16))
    msg = str(err.value)
    assert str(vrt) in msg and "rows 4-19, cols 8-23" in msg and "No such file" in msg
    assert "see previous exception" not in msg.lower()

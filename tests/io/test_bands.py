"""Band aliases (geoseg.io.bands): Sentinel-2, Landsat Collection 2 (TM/ETM+ vs OLI numbering), STAC names.

Oracles: the products' band tables written out here per case; the same pixels segmented once with
explicit ``--bands`` indexes and once by alias give byte-identical class maps.
"""

import logging

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from geoseg.cli import main
from geoseg.errors import BandError
from geoseg.io.bands import band_lookup, sensor_from_tags
from geoseg.io.raster import RasterInfo, resolve_bands
from tests.helpers import ZION_IMAGE, write_raster

WANT = ["blue", "green", "red", "nir", "swir1"]


@pytest.mark.parametrize("names, tags, expected, scheme", [
    (["B02", "B03", "B04", "B08", "B11"], {}, [1, 2, 3, 4, 5], "Sentinel-2"),
    (["B2", "B3", "B4", "B8", "B11"], {}, [1, 2, 3, 4, 5], "Sentinel-2"),
    (["B8A", "B04", "B03", "B02", "B11"], {}, [4, 3, 2, 1, 5], "Sentinel-2"),  # B8A stands in for B08
    (["SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B7"], {}, [1, 2, 3, 4, 5], "Landsat TM/ETM+ (Collection 2)"),
    (["SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7"], {}, [2, 3, 4, 5, 6], "Landsat OLI (Collection 2)"),
    (["SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6"], {"SPACECRAFT_ID": "LANDSAT_8"}, [1, 2, 3, 4, 5],
     "Landsat OLI (Collection 2)"),
    (["SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5"], {"SPACECRAFT_ID": "LANDSAT_5"}, [1, 2, 3, 4, 5],
     "Landsat TM/ETM+ (Collection 2)"),
    (["blue", "green", "red", "nir08", "swir16"], {}, [1, 2, 3, 4, 5], "STAC common"),
])
def test_aliases_follow_each_products_band_table(names, tags, expected, scheme):
    mapping = band_lookup(names, tags)
    assert [mapping.lookup[b] for b in WANT] == expected
    assert mapping.scheme == scheme and scheme in mapping.describe()


def test_descriptions_win_over_aliases_and_plain_names_need_no_table():
    mapping = band_lookup(["blue", "green", "red", "nir", "B08"])
    assert mapping.lookup["nir"] == 4 and mapping.scheme is None and mapping.describe() == "the file's band descriptions"


def test_sensor_from_metadata():
    assert sensor_from_tags({"SPACECRAFT_ID": "LANDSAT_9"}) == "oli"
    assert sensor_from_tags({"SENSOR_ID": "ETM"}) == "tm"
    assert sensor_from_tags({"platform": "sentinel-2b"}) == "msi"
    assert sensor_from_tags({"SPACECRAFT_ID": "LANDSAT_7"}) == "tm"
    assert sensor_from_tags({"OTHER": "x"}) is None


def test_ambiguous_landsat_numbering_and_unknown_layouts_are_clear_errors(tmp_path):
    path = write_raster(tmp_path / "l.tif", np.ones((4, 8, 8), np.uint16),
                        descriptions=["SR_B2", "SR_B3", "SR_B4", "SR_B5"])
    with rasterio.open(path) as src:
        info = RasterInfo.from_dataset(str(path), src)
    with pytest.raises(BandError, match=r"no band named 'green'; the file has bands 1:SR_B2, 2:SR_B3.*TM/ETM\+ and OLI"):
        resolve_bands(info, ["green", "red", "nir"])
    tagged = write_raster(tmp_path / "t.tif", np.ones((4, 8, 8), np.uint16),
                          descriptions=["SR_B2", "SR_B3", "SR_B4", "SR_B5"], tags={"SPACECRAFT_ID": "LANDSAT_8"})
    with rasterio.open(tagged) as src:
        assert resolve_bands(RasterInfo.from_dataset(str(tagged), src), ["green", "red", "nir"]) == [2, 3, 4]
    odd = write_raster(tmp_path / "o.tif", np.ones((2, 8, 8), np.uint16), descriptions=["VV", "VH"])
    with rasterio.open(odd) as src, pytest.raises(BandError, match="1:VV, 2:VH") as err:
        resolve_bands(RasterInfo.from_dataset(str(odd), src), ["green"])
    assert "TM/ETM" not in str(err.value)


def test_a_sentinel2_file_segments_without_bands_like_explicit_indexes(tmp_path, caplog):
    with rasterio.open(ZION_IMAGE) as src:  # blue, green, red, nir
        data = src.read(window=((0, 160), (0, 160)))
        crs, transform = src.crs.to_string(), src.window_transform(((0, 160), (0, 160)))
    s2 = write_raster(tmp_path / "s2.tif", data[[3, 2, 1, 0]], crs=crs, transform=transform,
                      descriptions=["B08", "B04", "B03", "B02"], tags={"SPACECRAFT_NAME": "Sentinel-2A"})
    maps = []
    for name, extra in (("alias", []), ("explicit", ["--bands", "3,2,1"])):
        with caplog.at_level(logging.INFO, logger="geoseg.io.raster"):
            done = CliRunner().invoke(main, ["-q", "segment", str(s2), "-o", str(tmp_path / name), "--local",
                                             *extra], catch_exceptions=False)
        assert done.exit_code == 0, done.output
        with rasterio.open(tmp_path / name / "s2_classes.tif") as out:
            maps.append(out.read(1))
    assert "bands read by Sentinel-2 band names (B08->nir, B04->red, B03->green, B02->blue)" in caplog.text
    np.testing.assert_array_equal(maps[0], maps[1])
    assert len(np.unique(maps[0])) > 1

"""Quality decoders: bit patterns and class values written out from the product specifications."""

from __future__ import annotations

import numpy as np
import pytest

from geoseg.config import QualityConfig, SegmentConfig
from geoseg.errors import ConfigError
from geoseg.io.quality import (
    CODES,
    FLAGS,
    decode,
    decode_bits,
    detect_format,
    find_quality_band,
    flag_codes,
    quality_categories,
)

ALL = list(FLAGS)

# Landsat C2 QA_PIXEL values (USGS Landsat 8-9 Collection 2 Level-2 product guide):
# bits 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud shadow, 5 snow, 6 clear, 7 water, 8-15 confidences
QA_CLEAR_LAND = 0b0101_0101_0100_0000  # 21824: bit 6 clear, low cloud/shadow/snow/cirrus confidence
QA_WATER = 0b0101_0101_1100_0000  # 21952: bits 6 clear and 7 water: no flag bit, so clear
QA_FILL = 0b0000_0000_0000_0001  # 1: bit 0 fill
QA_DILATED = 0b0101_0101_0000_0010  # bit 1 dilated cloud
QA_CIRRUS = 0b1101_0101_0000_0100  # bit 2 cirrus, high cirrus confidence (bits 14-15)
QA_CLOUD = 0b0101_0111_0000_1010  # bits 1 dilated cloud and 3 cloud, high cloud confidence (bits 8-9)
QA_SHADOW = 0b0101_0111_0001_0000  # bit 4 cloud shadow
QA_SNOW = 0b0111_0101_0010_0000  # bit 5 snow, high snow confidence (bits 12-13)


def test_landsat_qa_pixel_bits_map_to_flags():
    v = np.array([QA_CLEAR_LAND, QA_WATER, QA_FILL, QA_DILATED, QA_CIRRUS, QA_CLOUD, QA_SHADOW, QA_SNOW], np.uint16)
    codes, clear = decode("landsat_qa_pixel", v, ALL)
    names = ["clear" if c == 0 else FLAGS[c - 1] for c in codes]
    assert names == ["clear", "clear", "fill", "dilated_cloud", "cirrus", "cloud", "cloud_shadow", "snow"]
    assert clear.tolist() == [True, True, False, False, False, False, False, False]


def test_landsat_qa_radsat_saturation_dropped_pixels_and_terrain_occlusion():
    """USGS Landsat C2 QA_RADSAT: bits 0-6 and 8 saturation of bands 1-7 and 9, bit 7 unused, 9 dropped pixel,
    11 terrain occlusion."""
    v = np.array([0, 1 << 0, 1 << 3, 1 << 6, 1 << 7, 1 << 8, 1 << 9, 1 << 11, (1 << 2) | (1 << 9), 1 << 10], np.uint16)
    codes, clear = decode("landsat_qa_radsat", v, ALL)
    names = ["clear" if c == 0 else FLAGS[c - 1] for c in codes]
    assert names == ["clear", "saturated", "saturated", "saturated", "clear", "saturated", "fill", "fill", "fill", "clear"]
    assert clear.tolist() == [n == "clear" for n in names]
    assert detect_format("QA_RADSAT") == "landsat_qa_radsat"
    assert detect_format(None, "LC08_L2SP_042034_20200101_20200113_02_T1_QA_RADSAT.TIF") == "landsat_qa_radsat"


def test_landsat_bits_set_together_are_all_kept_and_the_code_follows_the_priority():
    bits = decode_bits("landsat_qa_pixel", np.array([0b11_1110], np.uint16))  # every flag bit but fill
    set_flags = {f for f in FLAGS if bits[0] & (1 << (CODES[f] - 1))}
    assert set_flags == {"dilated_cloud", "cirrus", "cloud", "cloud_shadow", "snow"}
    assert flag_codes(bits, ALL)[0][0] == CODES["cloud"]
    # snow not masked: the pixel is still masked (cloud), and its code is a masked flag's
    codes, clear = flag_codes(bits, [f for f in ALL if f != "snow"])
    assert codes[0] == CODES["cloud"] and not clear[0]


def test_unmasked_flags_are_reported_but_leave_the_pixel_clear():
    v = np.array([QA_SNOW, QA_CLOUD], np.uint16)
    codes, clear = decode("landsat_qa_pixel", v, ["cloud", "dilated_cloud"])
    assert codes.tolist() == [CODES["snow"], CODES["cloud"]]
    assert clear.tolist() == [True, False]


def test_sentinel2_scl_classes():
    scl = np.arange(13, dtype=np.uint8)  # 0..11 defined; 12 is not an SCL class
    codes, clear = decode("s2_scl", scl, ALL)
    expect = ["fill", "saturated", "clear", "cloud_shadow", "clear", "clear", "clear", "clear", "cloud", "cloud",
              "cirrus", "snow", "fill"]
    assert ["clear" if c == 0 else FLAGS[c - 1] for c in codes] == expect
    assert clear.tolist() == [e == "clear" for e in expect]


def test_fmask_values():
    fm = np.array([0, 1, 2, 3, 4, 255, 7], np.uint8)
    codes, clear = decode("fmask", fm, ALL)
    assert ["clear" if c == 0 else FLAGS[c - 1] for c in codes] == ["clear", "clear", "cloud_shadow", "snow", "cloud",
                                                                    "fill", "fill"]
    assert clear.tolist() == [True, True, False, False, False, False, False]


def test_binary_mask_and_nodata_of_the_quality_raster():
    v = np.array([[0, 1], [0, 1]], np.uint8)
    invalid = np.array([[False, False], [True, True]])
    codes, clear = decode("binary", v, ALL, invalid)
    assert codes.tolist() == [[0, CODES["flagged"]], [CODES["fill"], CODES["fill"]]]
    assert clear.tolist() == [[True, False], [False, False]]
    codes, _ = decode("binary", np.array([0.0, np.nan, 1.0], np.float32), ALL)
    assert codes.tolist() == [0, CODES["fill"], CODES["flagged"]]


def test_codes_are_the_shared_vocabulary():
    assert CODES == {"fill": 1, "cloud": 2, "cloud_shadow": 3, "cirrus": 4, "snow": 5, "saturated": 6,
                     "dilated_cloud": 7, "flagged": 8}
    cats = quality_categories([5, 1, 0, 0, 0, 0, 0, 0, 0])
    assert [c.name for c in cats][:3] == ["clear", "fill", "cloud"] and cats[0].count == 5


@pytest.mark.parametrize("desc,name,fmt", [
    ("QA_PIXEL", None, "landsat_qa_pixel"), ("qa_pixel", None, "landsat_qa_pixel"), ("SCL", None, "s2_scl"),
    ("Fmask", None, "fmask"), ("band1", "LC09_L2SP_044034_20220101_20220102_02_T1_QA_PIXEL.TIF", "landsat_qa_pixel"),
    (None, "T33TWM_20230601_SCL_20m.tif", "s2_scl"), ("nir", "scene.tif", None), ("SCALE", None, None),
])
def test_format_detection(desc, name, fmt):
    assert detect_format(desc, name) == fmt


def test_find_quality_band():
    assert find_quality_band(["blue", "green", "red", "nir", "QA_PIXEL"]) == (5, "landsat_qa_pixel")
    assert find_quality_band(["blue", "green"]) is None


def test_errors_name_the_key_and_the_choices():
    with pytest.raises(ConfigError, match="quality.format 'sen2cor'.*landsat_qa_pixel"):
        decode_bits("sen2cor", np.zeros(1))
    with pytest.raises(ConfigError, match="quality.masked_flags.*haze"):
        flag_codes(np.zeros(1, np.uint8), ["haze"])


def test_config_defaults_mask_every_flag_snow_included():
    q = QualityConfig()
    assert q.band == "auto" and q.mask is None and q.format == "auto"
    assert set(q.masked_flags) == set(FLAGS) and "snow" in q.masked_flags
    with pytest.raises(ValueError):
        SegmentConfig(quality={"format": "sen2cor"})
    with pytest.raises(ValueError):
        SegmentConfig(quality={"masked_flags": ["haze"]})

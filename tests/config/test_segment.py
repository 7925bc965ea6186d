"""geoseg.config.segment: the segment keys' own checks (tile sides, quality flags, sinks written masked)."""

import pytest

from geoseg.config import load_yaml
from geoseg.config.segment import QUALITY_FLAGS, QualityConfig, SegmentConfig
from geoseg.errors import ConfigError


def test_tile_size_must_be_a_multiple_of_32_and_the_error_suggests_one():
    with pytest.raises(ConfigError, match=r"--tile-size 100: must be a multiple of 32 .* e\.g\. 96"):
        load_yaml(None, SegmentConfig, {"tile_size": 100}, flags={"tile_size": "--tile-size"})
    assert SegmentConfig(tile_size=96).tile_size == 96


def test_every_quality_flag_is_masked_by_default_and_unknown_flags_are_refused():
    assert QualityConfig().masked_flags == list(QUALITY_FLAGS) and "snow" in QUALITY_FLAGS
    with pytest.raises(ConfigError, match="quality.masked_flags.0"):
        load_yaml(None, SegmentConfig, {"quality.masked_flags": ["clouds"]})


def test_a_sink_password_never_reaches_a_dump():
    cfg = SegmentConfig(sink="postgresql://me:s3cret@db:5432/gis")
    assert cfg.sink == "postgresql://me:s3cret@db:5432/gis"
    assert cfg.model_dump(mode="json")["sink"] == "postgresql://me:***@db:5432/gis"

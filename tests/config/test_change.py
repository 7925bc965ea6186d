"""geoseg.config.change: periods as YAML writes them, unique regions, keys set per region, guards' needs."""

import pytest

from geoseg.config import load_yaml
from geoseg.config.change import MonitorConfig
from geoseg.errors import ConfigError


def _monitor(tmp_path, text):
    p = tmp_path / "m.yaml"
    p.write_text("output_root: out\nregions:\n  - {name: a, imagery: 'x_{period}.tif'}\n" + text)
    return load_yaml(p, MonitorConfig)


def test_yaml_years_and_dates_are_the_periods_they_spell(tmp_path):
    cfg = _monitor(tmp_path, "periods: [1985, 2020-07, 2021-07-14]\n")
    assert cfg.periods == ["1985", "2020-07", "2021-07-14"]
    with pytest.raises(ConfigError, match="periods.0"):
        _monitor(tmp_path, "periods: ['85']\n")


def test_region_names_are_unique(tmp_path):
    with pytest.raises(ConfigError, match=r"region names must be unique: \['a'\]"):
        _monitor(tmp_path, "  - {name: a, imagery: 'y_{period}.tif'}\n")


def test_per_region_keys_are_refused_in_the_segment_section(tmp_path):
    with pytest.raises(ConfigError, match="set per region or at the top level"):
        _monitor(tmp_path, "segment: {aoi: a.geojson}\n")


def test_the_confidence_guard_needs_the_confidence_rasters(tmp_path):
    with pytest.raises(ConfigError, match="guards.min_confidence needs the confidence rasters"):
        _monitor(tmp_path, "segment: {outputs: {confidence: false}}\n")
    assert _monitor(tmp_path, "segment: {outputs: {confidence: false}}\nguards: {min_confidence: 0}\n").guards.min_confidence == 0

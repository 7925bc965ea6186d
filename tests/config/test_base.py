"""geoseg.config.base: YAML loading, unknown keys named, flag overrides, bad values.

Oracles: the shipped configs and small YAML files with known mistakes.
"""

import pytest

from geoseg.config import SegmentConfig, load_yaml
from geoseg.errors import ConfigError
from tests.helpers import REPO


def test_shipped_configs_validate():
    cfg = load_yaml(REPO / "configs" / "default.yaml", SegmentConfig)
    assert cfg.inputs == ["data/sample/nc_raleigh_landsat7_2000.tif"] and cfg.runtime.threads_per_worker == 1
    from geoseg.config import TrainConfig

    default, baseline = (load_yaml(REPO / "configs" / n, TrainConfig) for n in ("train_default.yaml", "train_baseline.yaml"))
    # the bundled models are trained on the three labelled places, the baseline on exactly the U-Net's scenes
    assert {s.place for s in default.scenes} == {"nc_raleigh", "zion_north", "slovenia"}
    assert baseline.scenes == default.scenes and default.leave_one_scene_out.enabled


def test_unknown_key_is_an_error_naming_it(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("inputs: [a.tif]\ntile_sise: 256\nruntime:\n  num_wrkers: 2\n")
    with pytest.raises(ConfigError) as exc:
        load_yaml(p, SegmentConfig)
    msg = str(exc.value)
    assert "tile_sise: unknown key" in msg and "runtime.num_wrkers: unknown key" in msg and str(p) in msg


def test_flags_override_yaml_and_none_flags_do_not(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("tile_size: 256\nhalo: 16\n")
    cfg = load_yaml(p, SegmentConfig, {"tile_size": 384, "halo": None, "runtime.num_workers": 3})
    assert (cfg.tile_size, cfg.halo, cfg.runtime.num_workers) == (384, 16, 3)


@pytest.mark.parametrize("text,needle", [("tile_size: 200\n", "multiple of 32"), ("device: tpu\n", "device"),
                                          ("batch_size: 0\n", "batch_size"), ("- a\n- b\n", "mapping")])
def test_bad_values_are_errors(tmp_path, text, needle):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load_yaml(p, SegmentConfig)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_yaml(tmp_path / "nope.yaml", SegmentConfig)


def test_a_bad_value_given_by_a_flag_is_named_by_the_flag_and_one_from_the_yaml_by_its_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("halo: -1\nbatch_size: 2\n")
    flags = {"tile_size": "--tile-size", "halo": "--halo", "runtime.num_workers": "--workers"}
    with pytest.raises(ConfigError) as exc:
        load_yaml(p, SegmentConfig, {"tile_size": 100, "halo": None, "runtime.num_workers": 0}, flags=flags)
    lines = str(exc.value).splitlines()
    assert "  --tile-size 100: must be a multiple of 32 (the encoder downsamples 32x), e.g. 96" in lines
    assert any(ln.startswith("  --workers 0: ") for ln in lines)
    assert any(ln.startswith("  halo: ") for ln in lines)  # from the file, not the unused --halo flag
    assert "tile_size:" not in str(exc.value) and "runtime.num_workers" not in str(exc.value)

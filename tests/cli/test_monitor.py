"""`geoseg monitor` on the command line: config errors exit 2 naming the key; a region that fails exits 4
naming it while the others finish (oracle: the history store's state)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from geoseg.cli import main
from geoseg.errors import ExitCode


def test_bad_config_names_the_key_and_exits_2(tmp_path):
    cfg = tmp_path / "m.yaml"
    cfg.write_text(f"output_root: {tmp_path / 'root'}\nregions: [{{name: a, imagery: 'x_{{period}}.tif'}}]\n"
                   "guards: {min_confidence: 150}\n")
    r = CliRunner().invoke(main, ["monitor", "--config", str(cfg), "--local"])
    assert r.exit_code == ExitCode.BAD_INPUT and "guards.min_confidence" in r.output


def test_a_failed_region_exits_4_and_names_it(tmp_path):
    cfg = tmp_path / "m.yaml"
    cfg.write_text(f"output_root: {tmp_path / 'root'}\nperiods: ['2000', '2005']\n"
                   f"regions: [{{name: nowhere, imagery: '{tmp_path}/missing_{{period}}.tif'}}]\n")
    r = CliRunner().invoke(main, ["monitor", "--config", str(cfg), "--local"])
    assert r.exit_code == ExitCode.REGIONS_FAILED and "nowhere" in r.output
    state = tmp_path / "root" / "history" / "state.json"
    assert not state.exists() or "nowhere" not in json.loads(state.read_text()).get("regions", {})

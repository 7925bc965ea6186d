"""Errors (geoseg.errors): one root, the documented exit codes, and how the CLI reports them.

Oracles: the exit codes the README documents (2 bad input, config, model or output; 3 tiles
failed; 4 monitored regions failed) and real failures through the CLI: a model directory that
does not exist, a scene with a corrupt block.
"""

import inspect

from click.testing import CliRunner

import geoseg.errors as errors
from geoseg.cli import main
from tests.helpers import NC_IMAGE, corrupt_block

DOCUMENTED_EXIT_CODES = {
    "GeosegError": 2, "ConfigError": 2, "InputError": 2, "BandError": 2, "AOIError": 2, "ModelError": 2,
    "OutputError": 2, "SinkError": 2, "TrainingError": 2, "TileError": 3, "MonitorError": 4,
}


def test_every_error_is_a_geoseg_error_with_its_documented_exit_code():
    classes = {name: cls for name, cls in inspect.getmembers(errors, inspect.isclass)
               if issubclass(cls, Exception) and cls.__module__ == errors.__name__}
    assert set(classes) == set(DOCUMENTED_EXIT_CODES), "a new error needs a documented exit code"
    for name, cls in classes.items():
        assert issubclass(cls, errors.GeosegError), name
        assert cls.exit_code == DOCUMENTED_EXIT_CODES[name], name
    # a missing band or an AOI that misses the raster are input errors: callers catch them as such
    assert issubclass(errors.BandError, errors.InputError) and issubclass(errors.AOIError, errors.InputError)


def test_the_cli_prints_one_error_line_and_exits_with_the_errors_code(tmp_path):
    r = CliRunner().invoke(main, ["segment", str(NC_IMAGE), "--model", str(tmp_path / "no-model"),
                                  "--output", str(tmp_path / "o"), "--local"])
    assert r.exit_code == errors.ModelError.exit_code == 2
    assert "error:" in r.output and "no-model" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o").exists()


def test_tiles_that_fail_after_their_retries_exit_3_and_publish_nothing(tmp_path):
    bad = tmp_path / "corrupt.tif"
    corrupt_block(NC_IMAGE, bad, block=(2, 3))  # every tile that reads rows 128-191, cols 192-255 fails
    out = tmp_path / "o"
    r = CliRunner().invoke(main, ["-q", "segment", str(bad), "--output", str(out), "--local", "--tile-size", "256"])
    assert r.exit_code == errors.TileError.exit_code == 3, r.output
    assert "failed after" in r.output and "Traceback" not in r.output
    assert (out / "manifest.failed.json").exists() and not (out / "corrupt_classes.tif").exists()


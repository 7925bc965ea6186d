"""The bad inputs geoseg already answered well (#13), kept as tests: missing and garbage files, no CRS, wrong bands,
AOIs, config errors, models that are not there, read-only and full disks.

Each case: ``geoseg segment`` on a real 128 x 128 crop of the NC scene with one thing wrong. It must exit 2, the
message must name the file, flag or key at fault and say what to change, and the output folder (which already
holds a file of the user's) must be byte-identical afterwards.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from geoseg.errors import ExitCode
from tests.helpers import prior_output, snapshot, write_raster
from tests.system.test_bad_inputs import scene, segment

NAMES = ["blue", "green", "red", "nir", "swir1", "swir2"]


def far_aoi(t: Path) -> str:
    ring = [[10, 10], [10.1, 10], [10.1, 10.1], [10, 10]]
    t.joinpath("far.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
    return str(t / "far.geojson")


def text_file(t: Path, name: str, text: str) -> str:
    t.joinpath(name).write_text(text)
    return str(t / name)


def no_crs(t: Path) -> str:
    return str(write_raster(t / "nocrs.tif", np.full((6, 64, 64), 100, np.uint16), crs=None, descriptions=NAMES))


def empty_model(t: Path) -> str:
    t.joinpath("model").mkdir()
    return str(t / "model")


Args = Callable[[Path, str], list[str]]
"""Given the test's folder and the scene's path: the ``geoseg segment`` arguments of the case."""

CASES: dict[str, tuple[Args, list[str]]] = {
    "missing input": (lambda t, s: [str(t / "nope.tif")], ["nope.tif: no such file"]),
    "garbage input": (lambda t, s: [text_file(t, "junk.tif", "not a tiff " * 20)],
                      ["junk.tif: cannot open as a raster", "not recognized as being in a supported file format",
                       "check the path"]),
    "no CRS": (lambda t, s: [no_crs(t)], ["nocrs.tif: has no CRS", "assign one"]),
    "unknown band name": (lambda t, s: [s, "--bands", "green,red,nirr"],
                          ["scene.tif: no band named 'nirr'", "1:blue, 2:green", "--bands"]),
    "band index out of range": (lambda t, s: [s, "--bands", "2,3,9"],
                                ["scene.tif: band index 9 is out of range", "1:blue, 2:green"]),
    "no input": (lambda t, s: [], ["no input rasters: pass INPUT paths or set `inputs`"]),
    "pattern matching nothing": (lambda t, s: [str(t / "*.jp2")], ["/*.jp2' matches no file"]),
    "AOI outside the scene": (lambda t, s: [s, "--aoi", far_aoi(t)],
                              ["far.geojson does not overlap", "scene.tif", "check the AOI and its CRS"]),
    "AOI not a vector file": (lambda t, s: [s, "--aoi", text_file(t, "aoi.geojson", "{not json")],
                              ["AOI", "aoi.geojson: cannot read", "give a GeoJSON or GeoPackage of polygons"]),
    "AOI missing": (lambda t, s: [s, "--aoi", str(t / "none.gpkg")], ["AOI", "none.gpkg: cannot read"]),
    "config key misspelt": (lambda t, s: [s, "--config", text_file(t, "c.yaml", "tile_sise: 256\n")],
                            ["c.yaml: invalid", "tile_sise: unknown key (check the spelling"]),
    "config value of the wrong type": (lambda t, s: [s, "--config", text_file(t, "c.yaml", "batch_size: many\n")],
                                       ["c.yaml: invalid", "batch_size: Input should be a valid integer"]),
    "config not YAML": (lambda t, s: [s, "--config", text_file(t, "c.yaml", "a: [1, 2\n")],
                        ["c.yaml: not valid YAML; fix the syntax", "line 1"]),
    "config missing": (lambda t, s: [s, "--config", str(t / "none.yaml")],
                       ["none.yaml: no such file; check the --config path"]),
    "model folder missing": (lambda t, s: [s, "--model", str(t / "nomodel")],
                             ["model", "nomodel: not a directory", "model.json and weights.safetensors"]),
    "model folder without a card": (lambda t, s: [s, "--model", empty_model(t)],
                                    ["model.json is missing", "weights.safetensors"]),
    "batch size 0": (lambda t, s: [s, "--batch-size", "0"], ["--batch-size 0: Input should be greater than or equal to 1"]),
    "negative halo": (lambda t, s: [s, "--halo", "-1"], ["--halo -1: Input should be greater than or equal to 0"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_input_exits_2_naming_what_to_change_and_leaves_the_output_as_it_was(tmp_path, case):
    args, want = CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    out, before = prior_output(tmp_path)
    code, output = segment(*args(work, str(scene(work))), "--output", str(out))
    assert code == ExitCode.BAD_INPUT, output
    assert output.startswith("error: "), output
    for text in want:
        assert text in output, (text, output)
    assert "Traceback" not in output
    assert snapshot(out) == before


@pytest.fixture
def mount(tmp_path):
    """Mount a tmpfs with the given options (root only; skipped where mounting is not allowed)."""
    mounted = []

    def do(options: str) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True)
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
        mounted.append(point)
        return point

    yield do
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_a_read_only_output_location_exits_2_naming_it(tmp_path, mount):
    ro = mount("ro,size=1m")
    code, output = segment(str(scene(tmp_path)), "--output", str(ro / "out"))
    assert code == ExitCode.BAD_INPUT, output
    assert f"{ro / 'out'}: cannot create the output directory" in output and "Read-only file system" in output
    assert "choose a writable --output" in output
    assert list(ro.iterdir()) == []


def test_a_disk_that_fills_up_during_the_run_exits_2_and_leaves_only_what_was_there(tmp_path, mount):
    """Only the journal of the finished tiles is added (what a rerun, with space, resumes from)."""
    small = mount("size=96k")
    out = small / "out"
    out.mkdir()
    (out / "notes.txt").write_text("kept\n")
    before = snapshot(out)
    code, output = segment(str(scene(tmp_path)), "--output", str(out))
    assert code == ExitCode.BAD_INPUT, output
    assert "No space left on device" in output and str(out) in output
    assert "Traceback" not in output and "choose another --output" in output
    assert {k: v for k, v in snapshot(out).items() if not k.startswith(".geoseg-journal")} == before


def test_the_catalogue_lists_every_case():
    """docs/bad-inputs.md names every test of tests/system/test_bad_*.py, and holds at least 50 numbered cases."""
    import ast
    import re

    from tests.helpers import REPO

    doc = (REPO / "docs" / "bad-inputs.md").read_text()
    tests = [node.name for f in sorted((REPO / "tests" / "system").glob("test_bad_*.py"))
             for node in ast.parse(f.read_text()).body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]
    assert len(tests) > 20
    missing = [t for t in tests if f"`{t}" not in doc and t != "test_the_catalogue_lists_every_case"]
    assert not missing, f"not in docs/bad-inputs.md: {missing}"
    numbers = [int(m) for m in re.findall(r"^\| (\d+) \|", doc, flags=re.M)]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 50
    for case in CASES:
        assert f"[{case}]" in doc


def test_a_full_disk_under_composite_and_change_exits_2_naming_the_output(tmp_path, mount):
    """The same translation of a full disk serves every command that publishes (io.publish.output_write_error)."""
    from click.testing import CliRunner

    from geoseg.cli import main
    from tests.change.test_composite import cloudy_looks

    _, _, paths = cloudy_looks(tmp_path, n=2, shape=(400, 400))
    small = mount("size=64k")
    for args in (["composite", *paths], ["change", paths[0], paths[1], "--min-confidence", "0"]):
        out = small / args[0]
        r = CliRunner().invoke(main, ["-q", *args, "--output", str(out)])
        assert r.exit_code == ExitCode.BAD_INPUT, (args[0], r.output)
        assert f"{out}: cannot write the outputs" in r.output and "No space left on device" in r.output
        assert "choose another --output" in r.output and "Traceback" not in r.output
        assert not out.exists()  # the folder it made is gone again

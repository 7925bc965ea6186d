"""Bad data and impossible requests get a clear answer (#13): the real ``geoseg`` CLI on tiny rasters.

One test per case. Each checks the exit code (:class:`geoseg.errors.ExitCode`), that the message names the file
or flag at fault, GDAL's or the cluster's cause and what to change, and that the output location holds exactly
what it held before.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from rasterio.shutil import copy as rio_copy
from rasterio.windows import Window

from geoseg.cli import main
from geoseg.errors import ExitCode
from tests.helpers import NC_IMAGE, REPO, crop_raster, prior_output, snapshot


def segment(*args: str, local: bool = True) -> tuple[int, str]:
    """``geoseg segment ARGS [--local]``: exit code and everything printed (stdout and stderr)."""
    r = CliRunner().invoke(main, ["-q", "segment", *args, *(["--local"] if local else [])])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.output


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_a_truncated_cog_exits_2_naming_the_file_and_gdals_cause(tmp_path):
    """A COG cut to half its size (an interrupted download): GDAL's short-read error, not "no valid pixels"."""
    crop = crop_raster(NC_IMAGE, tmp_path / "crop.tif", Window(0, 0, 256, 256))
    cog = tmp_path / "scene.tif"
    rio_copy(crop, cog, driver="COG", BLOCKSIZE=128)
    data = cog.read_bytes()
    cog.write_bytes(data[: len(data) // 2])
    out, before = prior_output(tmp_path)
    code, output = segment(str(cog), "--output", str(out))
    msg = one_line(output)
    assert code == ExitCode.BAD_INPUT == 2, output
    assert str(cog) in msg and "no valid pixels" not in msg
    assert "TIFF" in msg and ("Read error" in msg or "bytes" in msg)  # GDAL's own words for the short file
    assert "fetch or write it again" in msg and "Traceback" not in output
    assert snapshot(out) == before


def test_a_vrt_whose_source_file_is_missing_exits_2_naming_the_missing_source(tmp_path):
    """A VRT over a GeoTIFF that has since been deleted: the VRT and the missing source's path are named."""
    source = crop_raster(NC_IMAGE, tmp_path / "source.tif", Window(0, 0, 128, 128))
    vrt = tmp_path / "scene.vrt"
    rio_copy(source, vrt, driver="VRT")
    source.unlink()
    out, before = prior_output(tmp_path)
    code, output = segment(str(vrt), "--output", str(out))
    msg = one_line(output)
    assert code == ExitCode.BAD_INPUT == 2, output
    assert str(vrt) in msg and str(source) in msg and "do not exist" in msg
    assert "no valid pixels" not in msg and "restore them or fix the paths in the VRT" in msg
    assert snapshot(out) == before


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_device_cuda_on_a_ray_cluster_without_gpus_exits_2_at_once_naming_gpus(tmp_path):
    """``--device cuda --workers 1`` on a local Ray (no GPU, no autoscaler): exit 2 within 30 s, not after 600 s."""
    scene = crop_raster(NC_IMAGE, tmp_path / "scene.tif", Window(0, 0, 128, 128))
    config = tmp_path / "ray.yaml"
    config.write_text("runtime:\n  local: false\n")
    out, before = prior_output(tmp_path)
    t0 = time.monotonic()
    code, output = segment(str(scene), "--output", str(out), "--config", str(config), "--device", "cuda",
                           "--workers", "1", local=False)
    took = time.monotonic() - t0
    msg = one_line(output)
    assert code == ExitCode.BAD_INPUT == 2, output
    assert took < 30, f"took {took:.0f} s"
    assert "0 GPUs" in msg and "no autoscaler" in msg
    assert "--device cpu" in msg and "--device auto" in msg and "add GPU nodes" in msg
    assert snapshot(out) == before


def _segment_on_own_ray(tmp_path: Path, home: Path) -> subprocess.CompletedProcess:
    scene = crop_raster(NC_IMAGE, tmp_path / "scene.tif", Window(0, 0, 64, 64))
    config = tmp_path / "ray.yaml"
    config.write_text("runtime:\n  local: false\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE" and not k.startswith("RAY_")}
    env.update(HOME=str(home), PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-c", "from geoseg.cli import main; main()", "-v", "segment", str(scene),
           "--output", str(tmp_path / "out"), "--config", str(config), "--overwrite", "--workers", "1"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("token", [False, True], ids=["no-token-yet", "token-exists"])
def test_a_run_on_a_ray_the_job_starts_itself_prints_no_token_authentication_warning(tmp_path, token):
    """``geoseg -v segment`` without ``--local`` and without RAY_AUTH_MODE: Ray says nothing about tokens,
    whether it generates the token (first run on a machine) or finds one in ~/.ray."""
    home = tmp_path / "home"
    home.mkdir()
    if token:  # a token from an earlier run: Ray would announce that it enabled token authentication
        first = _segment_on_own_ray(tmp_path, home)
        assert first.returncode == 0, first.stderr[-3000:]
        assert (home / ".ray" / "auth_token").exists()
        shutil.rmtree(tmp_path / "out")
    done = _segment_on_own_ray(tmp_path, home)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "on Ray" in done.stdout + done.stderr  # it did run on a Ray cluster, not in-process
    printed = (done.stdout + done.stderr).lower()
    assert "token authentication" not in printed and "auth_token" not in printed and "ray_auth_mode" not in printed


def test_vectorize_onto_an_existing_output_names_the_flag_not_a_python_argument(tmp_path):
    """``geoseg vectorize`` onto a file that exists: --overwrite is named, no Python argument (``overwrite``)."""
    scene = crop_raster(NC_IMAGE, tmp_path / "scene.tif", Window(0, 0, 64, 64))
    code, output = segment(str(scene), "--output", str(tmp_path / "seg"))
    assert code == ExitCode.OK, output
    out, _ = prior_output(tmp_path)
    target = out / "polygons.gpkg"
    target.write_bytes(b"not yet a geopackage")
    before = snapshot(out)
    r = CliRunner().invoke(main, ["-q", "vectorize", str(tmp_path / "seg" / "scene_classes.tif"), "-o", str(target)])
    msg = one_line(r.output)
    assert r.exit_code == ExitCode.BAD_INPUT == 2, r.output
    assert str(target) in msg and "--overwrite" in msg
    assert "argument" not in msg and "Python" not in msg and "=True" not in msg
    assert snapshot(out) == before

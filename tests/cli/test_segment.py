"""`geoseg segment` (and `python jobs/segment.py`): the real CLI, with YAML, on real scenes with the bundled model.

Oracles: the input's valid mask and grid, the same run without Ray, clear messages and exit codes
for bad options, and a resumed run after SIGTERM.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from geoseg.cli import main
from tests.helpers import NC_IMAGE, REPO, ZION_IMAGE


@pytest.mark.slow
def test_segment_cli_with_yaml_on_ray(ray_cluster, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"inputs: [{NC_IMAGE}, {ZION_IMAGE}]\n"
        "tile_size: 256\nhalo: 32\n"
        "runtime:\n  num_workers: 2\n  tiles_per_task: 2\n"
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["-q", "segment", "--config", str(cfg), "--output", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "tiles processed" in result.output and "forest" in result.output and str(out.resolve()) in result.output
    m = json.loads((out / "manifest.json").read_text())
    assert m["runtime"] == "Ray, 2 CPU actor(s), onnxruntime" and m["status"] == "success"
    # NC 443 x 489 px: 2 x 3 tiles of 256 px, Zion 512 px: 3 x 3
    assert m["tiles"]["processed"] == 6 + 9 and m["tiles"]["failed"] == 0
    for img in (NC_IMAGE, ZION_IMAGE):
        with rasterio.open(out / f"{img.stem}_classes.tif") as cls, rasterio.open(img) as src:
            assert cls.shape == src.shape
            k = cls.read(1)
            assert set(np.unique(k)) <= {0, 1, 2, 3, 255}
            bands = src.read([src.descriptions.index(b) + 1 for b in ("green", "red", "nir")], masked=True)
            valid = ~np.ma.getmaskarray(bands).any(axis=0)
            np.testing.assert_array_equal(k != 255, valid)
    # The same run without Ray gives the same class maps (the Ray adapter changes nothing).
    result = CliRunner().invoke(main, ["-q", "segment", "--config", str(cfg), "--output", str(tmp_path / "local"), "--local"])
    assert result.exit_code == 0, result.output
    for img in (NC_IMAGE, ZION_IMAGE):
        with rasterio.open(out / f"{img.stem}_classes.tif") as a, rasterio.open(tmp_path / "local" / f"{img.stem}_classes.tif") as b:
            np.testing.assert_array_equal(a.read(1), b.read(1))


def test_a_small_job_without_a_cluster_runs_in_process_on_onnx_runtime_and_says_so(tmp_path):
    """No Ray is started for a job below runtime.local_max_mpx: the summary and the manifest say where it ran,
    and the class map equals the one from PyTorch (--engine torch) on >= 99.5 % of pixels."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    runs = {}
    for engine in ("auto", "torch"):
        out = tmp_path / engine
        proc = subprocess.run([sys.executable, "-m", "geoseg.cli", "segment", str(NC_IMAGE), "--output", str(out),
                               "--engine", engine], capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[engine] = (proc.stdout, json.loads((out / "manifest.json").read_text()))
        with rasterio.open(out / f"{NC_IMAGE.stem}_classes.tif") as c:
            runs[engine] += (c.read(1),)
    stdout, manifest, ort_map = runs["auto"]
    assert "on in-process (cpu, onnxruntime); 0.22 Mpx <= runtime.local_max_mpx 64: no Ray started" in stdout
    assert manifest["runtime"].startswith("in-process (cpu, onnxruntime)")
    assert manifest["config"]["engine"] == "auto"
    assert runs["torch"][1]["runtime"].startswith("in-process (cpu, torch)")
    assert (ort_map == runs["torch"][2]).mean() >= 0.995


def test_cli_bad_config_key_exits_nonzero_with_the_key(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("tile_sise: 256\n")
    result = CliRunner().invoke(main, ["segment", str(NC_IMAGE), "--config", str(cfg), "--output", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "tile_sise: unknown key" in result.output
    assert not (tmp_path / "o").exists()


def test_cli_missing_input_exits_nonzero(tmp_path):
    result = CliRunner().invoke(main, ["segment", str(tmp_path / "nope.tif"), "--output", str(tmp_path / "o")])
    assert result.exit_code == 2 and "no such file" in result.output


def test_cli_missing_band_lists_available_bands(tmp_path):
    result = CliRunner().invoke(main, ["segment", str(NC_IMAGE), "--bands", "green,red,swir2", "--output", str(tmp_path / "o"), "--local"])
    assert result.exit_code == 2 and "1:blue" in result.output


def test_help_explains_every_segment_option():
    r = CliRunner().invoke(main, ["segment", "--help"])
    for opt in ("--output", "--config", "--model", "--tile-size", "--halo", "--bands", "--aoi", "--device", "--overwrite"):
        assert opt in r.output


@pytest.mark.slow
def test_ray_job_entrypoint_runs_as_a_script(tmp_path):
    """`python jobs/segment.py ...` (what `ray job submit -- python jobs/segment.py` runs) starts its own Ray."""
    out = tmp_path / "o"
    proc = subprocess.run(
        [sys.executable, str(REPO / "jobs" / "segment.py"), str(NC_IMAGE), "--output", str(out), "--workers", "1", "-q"],
        capture_output=True, text=True, timeout=600, cwd=REPO, env={**__import__("os").environ, "RAY_ADDRESS": ""},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "manifest.json").exists() and (out / f"{NC_IMAGE.stem}_classes.tif").exists()


@pytest.mark.slow
def test_sigterm_saves_the_buffered_tiles_so_the_rerun_resumes(tmp_path):
    """SIGTERM (pod eviction, spot reclaim) exits 143 after journaling the tiles finished so far.

    The signal is sent once the progress bar reports a few finished tiles (no sleep, no race): the
    journal must then hold at least those tiles, in the one chunk the signal flushed."""
    import os
    import re
    import signal

    out = tmp_path / "out"
    cfg = tmp_path / "job.yaml"
    cfg.write_text(  # nothing is journaled before the end unless the signal flushes it
        f"inputs: [{NC_IMAGE}, {ZION_IMAGE}]\noutput: {out}\ntile_size: 96\nhalo: 32\nbatch_size: 1\n"
        "outputs: {polygons: false}\nruntime: {local: true, tiles_per_task: 1, checkpoint_tiles: 100000, "
        "checkpoint_seconds: 100000}\n"
    )
    cmd = [sys.executable, "-m", "geoseg.cli", "segment", "--config", str(cfg)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err, done = b"", 0
    while done < 3:  # tqdm's bar: "segment:   1%|...| 3/398 [...]"
        chunk = os.read(proc.stderr.fileno(), 65536)
        assert chunk, f"the job ended before finishing 3 tiles: {err.decode()[-2000:]}"
        err += chunk
        counts = re.findall(rb"\| *(\d+)/(\d+) \[", err)
        done, total = (int(counts[-1][0]), int(counts[-1][1])) if counts else (0, 0)
    assert done < total
    os.kill(proc.pid, signal.SIGTERM)
    err += proc.communicate(timeout=120)[1]
    assert proc.returncode == 143, err.decode()[-2000:]
    chunks = list(out.glob(".geoseg-journal/*/chunk-*.npz"))
    assert len(chunks) == 1 and not list(out.glob(".geoseg-staging-*"))
    with np.load(chunks[0]) as chunk:
        saved = len(chunk["tile"])
    assert done <= saved < total
    rerun = subprocess.run([*cmd[:3], "-q", *cmd[3:]], capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    m = json.loads((out / "manifest.json").read_text())
    assert m["tiles"]["resumed"] == saved and m["tiles"]["total"] == total


def test_nan_pixels_of_a_float_raster_without_nodata_are_masked_not_the_whole_map(tmp_path):
    """A float scene with no declared nodata: one NaN pixel used to make the scene statistics NaN and the whole
    map class 0. Oracle: the same scene without the NaN pixels, segmented the same way; non-finite pixels (in
    any band the model reads) are nodata and every other pixel is classified as in the clean run."""
    from rasterio.windows import Window

    from tests.helpers import write_raster

    with rasterio.open(NC_IMAGE) as src:
        window = Window(0, 0, 128, 128)
        clean = src.read(window=window).astype(np.float32)
        kw = dict(crs=src.crs, transform=src.window_transform(window), descriptions=list(src.descriptions))
        model_bands = [src.descriptions.index(b) for b in ("green", "red", "nir")]

    def run(arr, name):
        write_raster(tmp_path / f"{name}.tif", arr, **kw)
        r = CliRunner().invoke(main, ["-q", "segment", str(tmp_path / f"{name}.tif"), "--output", str(tmp_path / name),
                                      "--local", "--tile-size", "128", "--halo", "16"])
        assert r.exit_code == 0, r.output
        with rasterio.open(tmp_path / name / f"{name}_classes.tif") as cls:
            return json.loads((tmp_path / name / "stats.json").read_text()), cls.read(1)

    _, want = run(clean, "clean")
    assert len(set(np.unique(want)) - {255}) >= 2 and not (want == 255).any()
    one = clean.copy()
    one[model_bands[1], 10, 10] = np.nan
    _, got = run(one, "one")
    expect = want.copy()
    expect[10, 10] = 255
    np.testing.assert_array_equal(got, expect)
    many = clean.copy()  # 40 scattered non-finite values in the model's bands, and a band it does not read all NaN
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, 128, 40), rng.integers(0, 128, 40)
    many[rng.choice(model_bands, 40), rows, cols] = rng.choice([np.nan, np.inf, -np.inf], 40)
    many[next(i for i in range(many.shape[0]) if i not in model_bands)] = np.nan
    stats, got = run(many, "many")
    bad = ~np.isfinite(many[model_bands]).all(axis=0)
    np.testing.assert_array_equal(got == 255, bad)
    assert (got[~bad] == want[~bad]).mean() > 0.98  # the neighbours of a masked pixel see other context (99.0 %)
    assert stats["inputs"]["many"]["valid_pixels"] == 128 * 128 - bad.sum()

"""Every bad input gets a clear answer, nothing is lost or leaked (#13): the real ``geoseg`` CLI on tiny rasters.

One test per case. Each checks the exit code (:class:`geoseg.errors.ExitCode`), that the message names the
file, flag or key at fault and what to change, and that the output location holds exactly what it held before
(a failed run) or the complete new result (a run that succeeds). The secrets of a presigned input URL (from the
local S3 server) must appear in no output file, no message and no log line.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.windows import Window

from geoseg.cli import main
from geoseg.errors import ExitCode
from geoseg.io import storage
from tests.helpers import NC_IMAGE, crop_raster, prior_output, snapshot, write_raster

KEY_ID = "AKIAGEOSEG13PRESIGN"
"""The access key id the presigned URLs are signed with (not the one the test server's other clients use)."""


def segment(*args: str) -> tuple[int, str]:
    """``geoseg segment ARGS --local``: exit code and everything printed (stdout and stderr)."""
    r = CliRunner().invoke(main, ["-q", "segment", *args, "--local"])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.output


def scene(tmp_path: Path, name: str = "scene.tif") -> Path:
    """A real 128 x 128 crop of the NC Landsat scene (bands named, blue ... swir2)."""
    return crop_raster(NC_IMAGE, tmp_path / name, Window(0, 0, 128, 128))


def strict_json(data: bytes):
    def refuse(token):
        raise AssertionError(f"bare {token} in JSON")

    return json.loads(data, parse_constant=refuse)


def presign(bucket: str, key: str) -> str:
    """A SigV4 presigned GET URL of ``s3://bucket/key`` on the test S3 server, signed with :data:`KEY_ID`."""
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=storage.endpoint_url(), aws_access_key_id=KEY_ID,
                          aws_secret_access_key="presign-secret", region_name="us-east-1",
                          config=Config(signature_version="s3v4"))
    url = client.generate_presigned_url("get_object", Params={"Bucket": storage.split_s3(bucket)[0], "Key": key},
                                        ExpiresIn=3600)
    assert "X-Amz-Signature=" in url and KEY_ID in url
    return url


def secrets_of(url: str) -> list[str]:
    """The parts of a presigned URL that must never be written: the signature, the key id, the query string."""
    from urllib.parse import parse_qs, urlsplit

    q = parse_qs(urlsplit(url).query)
    return [q["X-Amz-Signature"][0], KEY_ID, "X-Amz-", urlsplit(url).query]


def test_a_presigned_input_url_leaves_its_signature_in_no_output_file_message_or_log(s3_bucket, tmp_path, caplog):
    """The scene is read through its presigned https-style URL; the manifest, COG tags, polygons, STAC Items,
    report, stats and every other output name it by scheme, host and path only, and every JSON is strict."""
    storage.upload(scene(tmp_path), storage.join(s3_bucket, "in", "scene.tif"))
    url = presign(s3_bucket, "in/scene.tif")
    clean = url.split("?", 1)[0]
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO):
        code, output = segment(url, "--output", str(out), "--tile-size", "128", "--halo", "16")
    assert code == ExitCode.OK, output
    files = {k: v for k, v in snapshot(out).items() if v is not None}
    assert {"manifest.json", "stats.json", "scene_classes.tif", "scene_polygons.gpkg", "scene_item.json",
            "collection.json", "report.html"} <= set(files)  # the complete result, named by the file's stem
    for name, data in files.items():
        for secret in secrets_of(url):
            assert secret.encode() not in data, f"{name} holds {secret!r}"
        if name.endswith(".json"):
            strict_json(data)
    for secret in secrets_of(url):
        assert secret not in output and secret not in caplog.text
    manifest = strict_json(files["manifest.json"])
    assert manifest["status"] == "success" and manifest["inputs"][0]["path"] == clean
    assert manifest["config"]["inputs"] == [clean]
    with rasterio.open(out / "scene_classes.tif") as cls:
        assert cls.tags()["source"] == clean
    import geopandas as gpd

    assert set(gpd.read_file(out / "scene_polygons.gpkg", layer="landcover")["source"]) == {clean}
    assert strict_json(files["scene_item.json"])["properties"]["geoseg:source"] == clean


def test_a_float_scene_with_nan_nodata_and_inf_pixels_gives_strict_json_in_every_output(tmp_path):
    """manifest.json, stats.json, the STAC Items and Collection parse with a strict JSON parser (no bare NaN or
    Infinity anywhere), for a scene whose declared nodata is NaN and whose pixels hold NaN and ±inf."""
    with rasterio.open(NC_IMAGE) as src:
        w = Window(0, 0, 128, 128)
        arr = src.read(window=w).astype(np.float32)
        kw = dict(crs=src.crs, transform=src.window_transform(w), descriptions=list(src.descriptions))
    arr[:, :8, :] = np.nan
    arr[2, 50, 50], arr[3, 60, 60] = np.inf, -np.inf
    path = write_raster(tmp_path / "f.tif", arr, nodata=float("nan"), **kw)
    out = tmp_path / "out"
    code, output = segment(str(path), "--output", str(out), "--tile-size", "128", "--halo", "16")
    assert code == ExitCode.OK, output
    docs = {n: d for n, d in snapshot(out).items() if n.endswith(".json") and d is not None}
    assert {"manifest.json", "stats.json", "f_item.json", "collection.json"} <= set(docs)
    for name, data in docs.items():
        assert b"NaN" not in data and b"Infinity" not in data, name
        strict_json(data)
    assert strict_json(docs["stats.json"])["inputs"]["f"]["valid_pixels"] == 128 * 120 - 2


def test_a_presigned_url_that_cannot_be_read_is_named_without_its_signature(s3_bucket, tmp_path):
    url = presign(s3_bucket, "in/missing.tif")
    out, before = prior_output(tmp_path)
    code, output = segment(url, "--output", str(out))
    assert code == ExitCode.BAD_INPUT
    assert f"{url.split('?', 1)[0]}: cannot open as a raster" in output and "check the path" in output
    for secret in secrets_of(url):
        assert secret not in output
    assert snapshot(out) == before


def test_a_band_given_twice_is_refused_naming_bands_and_the_band(tmp_path):
    out, before = prior_output(tmp_path)
    code, output = segment(str(scene(tmp_path)), "--bands", "nir,nir,nir", "--output", str(out))
    assert code == ExitCode.BAD_INPUT
    assert "--bands nir,nir,nir: band 4:nir is given more than once" in output and "pass each band once" in output
    assert "1:blue" in output  # the bands the file has
    assert snapshot(out) == before


@pytest.mark.parametrize("kind", ["all NaN, no nodata", "all nodata"])
def test_a_scene_without_a_valid_pixel_is_refused_naming_the_file(tmp_path, kind):
    names = ["blue", "green", "red", "nir"]
    if kind == "all NaN, no nodata":
        path = write_raster(tmp_path / "empty.tif", np.full((4, 64, 64), np.nan, np.float32), descriptions=names)
        what = "every pixel is NaN/±inf or masked (internal mask or alpha band);"
    else:
        path = write_raster(tmp_path / "empty.tif", np.zeros((4, 64, 64), np.uint16), nodata=0, descriptions=names)
        what = "every pixel is the nodata value 0;"
    out, before = prior_output(tmp_path)
    code, output = segment(str(path), "--output", str(out))
    assert code == ExitCode.BAD_INPUT
    assert f"{path}: has no valid pixels: in bands 2:green, 3:red, 4:nir, {what}" in output
    assert "give a scene with data, fix its nodata value" in output and "--bands" in output
    assert snapshot(out) == before


@pytest.mark.parametrize(("flags", "want"), [
    (["--tile-size", "100"], "--tile-size 100: must be a multiple of 32 (the encoder downsamples 32x), "
                             "e.g. 96"),
    (["--workers", "0"], "--workers 0: Input should be greater than or equal to 1"),
    (["--tile-size", "64", "--halo", "32"], "--tile-size 64 must exceed 2 x --halo 32"),
    (["--sink", "mysql://me:pw@db/gis"], "--sink 'mysql://db/gis': not a PostgreSQL URL"),  # no user-info shown
])
def test_a_bad_flag_value_is_named_by_the_flag_not_the_config_key(tmp_path, flags, want):
    out, before = prior_output(tmp_path)
    code, output = segment(str(scene(tmp_path)), *flags, "--output", str(out))
    assert code == ExitCode.BAD_INPUT
    assert want in output
    if flags[0] in ("--tile-size", "--workers") and len(flags) == 2:
        assert output.startswith("error: invalid command-line option(s)\n")
    for key in ("tile_size:", "runtime.num_workers", "error: sink"):
        assert key not in output
    assert snapshot(out) == before


def test_an_existing_output_is_kept_and_the_message_names_the_overwrite_flag(tmp_path):
    """Neither `segment` nor `vectorize` replaces what is there without --overwrite, and no message tells a CLI
    user to `pass overwrite=True`."""
    from tests.helpers import blobs, write_classes

    out, _ = prior_output(tmp_path)
    (out / "manifest.json").write_text("{}\n")
    before = snapshot(out)
    code, output = segment(str(scene(tmp_path)), "--output", str(out))
    assert code == ExitCode.BAD_INPUT
    assert "outputs already exist (manifest.json)" in output and "--overwrite" in output
    assert snapshot(out) == before
    classes = write_classes(tmp_path, blobs(0), name="c_classes.tif")
    gpkg = out / "c.gpkg"
    gpkg.write_bytes(b"an earlier result")
    before = snapshot(out)
    r = CliRunner().invoke(main, ["vectorize", str(classes), "--output", str(gpkg)])
    assert r.exit_code == ExitCode.BAD_INPUT
    assert f"{gpkg}: already exists; add --overwrite to replace it" in r.output
    for text in (output, r.output):
        assert "overwrite=True" not in text
    assert snapshot(out) == before

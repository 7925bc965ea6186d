"""S3 in and out against a real S3-compatible HTTP server on 127.0.0.1 (moto_server): boto3 and GDAL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from geoseg.config import SegmentConfig
from geoseg.errors import InputError, OutputError
from geoseg.io import storage
from geoseg.model.predict import TileResult
from geoseg.segment.journal import TileJournal
from geoseg.segment.pipeline import segment
from geoseg.tiling import TileGrid
from tests.helpers import NC_IMAGE, UNET_MODEL, ZION_IMAGE, scene_inputs


def _keys(bucket: str, prefix: str = "") -> list[str]:
    b, _ = storage.split_s3(bucket)
    pages = storage.s3_client().get_paginator("list_objects_v2").paginate(Bucket=b, Prefix=prefix)
    return sorted(o["Key"] for p in pages for o in p.get("Contents", []))


def test_storage_round_trip_list_glob_and_delete(s3_bucket, tmp_path):
    uri = storage.join(s3_bucket, "a", "x.json")
    storage.write_bytes(uri, b'{"a": 1}')
    assert storage.exists(uri) and storage.read_bytes(uri) == b'{"a": 1}'
    assert not storage.exists(storage.join(s3_bucket, "a", "missing"))
    storage.write_bytes(storage.join(s3_bucket, "a", "y.tif"), b"1")
    storage.write_bytes(storage.join(s3_bucket, "a", "sub", "z.tif"), b"2")
    assert storage.listdir(storage.join(s3_bucket, "a")) == ["x.json", "y.tif"]
    assert storage.glob(f"{s3_bucket}/a/*.tif") == [f"{s3_bucket}/a/y.tif"]
    assert storage.glob(f"{s3_bucket}/a/*/*.tif") == [f"{s3_bucket}/a/sub/z.tif"]
    storage.delete_tree(storage.join(s3_bucket, "a"))
    assert _keys(s3_bucket) == []
    with pytest.raises(InputError, match="cannot read"):
        storage.read_bytes(uri)


def test_large_uploads_go_multipart_and_arrive_whole(s3_bucket, tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "MULTIPART_THRESHOLD", 5 * 1024 * 1024)  # S3's smallest part size
    src = tmp_path / "big.bin"
    data = np.random.default_rng(0).integers(0, 255, 12 * 1024 * 1024, dtype=np.uint8).tobytes()
    src.write_bytes(data)
    uri = storage.upload(src, storage.join(s3_bucket, "big.bin"))
    b, k = storage.split_s3(uri)
    head = storage.s3_client().head_object(Bucket=b, Key=k)
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    assert storage.read_bytes(uri) == data


def test_gdal_reads_windows_through_vsis3_with_the_custom_endpoint(s3_bucket):
    uri = storage.upload(NC_IMAGE, storage.join(s3_bucket, "in", NC_IMAGE.name))
    from geoseg.io.raster import open_raster

    with open_raster(uri) as src, rasterio.open(NC_IMAGE) as local:
        w = rasterio.windows.Window(100, 50, 64, 32)
        np.testing.assert_array_equal(src.read(window=w), local.read(window=w))
    assert os.environ["AWS_S3_ENDPOINT"].startswith("127.0.0.1:")  # mapped from AWS_ENDPOINT_URL


def _upload_inputs(bucket: str) -> None:
    for p in (NC_IMAGE, ZION_IMAGE):
        storage.upload(p, storage.join(bucket, "scenes", p.name))
    for f in UNET_MODEL.iterdir():
        if f.is_file():
            storage.upload(f, storage.join(bucket, "models", "unet", f.name))


@pytest.mark.slow
def test_segment_cli_on_ray_reads_and_writes_s3(s3_bucket, tmp_path):
    """Inputs (an S3 glob), the model and the outputs all on S3; Ray actors read by window through /vsis3/."""
    _upload_inputs(s3_bucket)
    out = f"{s3_bucket}/runs/r1"
    cfg = tmp_path / "s3.yaml"
    cfg.write_text(
        f"inputs: ['{s3_bucket}/scenes/*.tif']\noutput: {out}\nmodel: {s3_bucket}/models/unet\n"
        "tile_size: 256\nhalo: 32\nruntime:\n  local: false\n  num_workers: 2\n  tiles_per_task: 2\n  checkpoint_tiles: 2\n"
    )
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, "-m", "geoseg.cli", "-q", "segment", "--config", str(cfg)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    keys = _keys(s3_bucket, "runs/r1/")
    names = [k.rsplit("/", 1)[-1] for k in keys]
    for stem in (NC_IMAGE.stem, ZION_IMAGE.stem):
        assert {f"{stem}_classes.tif", f"{stem}_confidence.tif", f"{stem}_polygons.gpkg"} <= set(names)
    assert all("/.geoseg-" not in k for k in keys), f"staging or journal left behind: {keys}"
    m = json.loads(storage.read_bytes(f"{out}/manifest.json"))
    assert m["status"] == "success" and m["tiles"]["processed"] == 6 + 9  # NC: 2 x 3 tiles of 256 px, Zion: 3 x 3
    assert m["runtime"].startswith("Ray, 2 CPU actor(s)")  # a small job, but runtime.local: false sends it to Ray
    assert m["model"]["path"] == f"{s3_bucket}/models/unet"  # not the local temporary copy
    # the published class map equals an in-process run on the local files
    local = segment(SegmentConfig(inputs=[str(NC_IMAGE)], output=str(tmp_path / "local"), tile_size=256, halo=32,
                                  outputs={"polygons": False}, runtime={"local": True}), progress=False)
    from geoseg.io.raster import open_raster

    with open_raster(f"{out}/{NC_IMAGE.stem}_classes.tif") as a, \
            rasterio.open(Path(local.output_dir) / f"{NC_IMAGE.stem}_classes.tif") as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))


def _local_cfg(inputs, output, **kw) -> SegmentConfig:
    return SegmentConfig(inputs=[str(p) for p in inputs], output=output, tile_size=256, halo=32,
                         outputs={"polygons": False}, runtime={"local": True}, **kw)


def test_existing_s3_outputs_are_not_clobbered_without_overwrite(s3_bucket):
    out = f"{s3_bucket}/o"
    segment(_local_cfg([NC_IMAGE], out), progress=False)
    before = {k: storage.read_bytes(f"{s3_bucket}/{k}") for k in _keys(s3_bucket)}
    with pytest.raises(OutputError, match="--overwrite"):
        segment(_local_cfg([NC_IMAGE], out), progress=False)
    assert {k: storage.read_bytes(f"{s3_bucket}/{k}") for k in _keys(s3_bucket)} == before


def _fails_after_first(fn):
    """``fn`` (a storage call taking ``(src, dst)``) that works once, then raises a simulated network failure."""
    calls = {"n": 0}

    def flaky(src, dst):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OutputError(f"{dst}: simulated network failure")
        return fn(src, dst)

    return flaky


def test_a_publish_that_fails_midway_leaves_no_partial_result_under_the_final_keys(s3_bucket, monkeypatch):
    out = f"{s3_bucket}/o"
    real_upload = storage.upload
    flaky, sent = _fails_after_first(real_upload), []  # the network drops after one object
    monkeypatch.setattr(storage, "upload", lambda src, dst: sent.append(dst) or flaky(src, dst))
    with pytest.raises(OutputError, match="simulated network failure"):
        segment(_local_cfg([NC_IMAGE], out), progress=False)
    monkeypatch.setattr(storage, "upload", real_upload)
    assert len(sent) == 2 and all(d.startswith(f"{out}/.geoseg-staging-") for d in sent), sent  # a private prefix
    keys = _keys(s3_bucket)
    # nothing under the final keys; the staging prefix was cleaned up; the journal keeps the finished tiles
    assert not [k for k in keys if not k.startswith("o/.geoseg-journal/")], keys
    assert any(k.startswith("o/.geoseg-journal/") for k in keys)
    # the rerun resumes from the S3 journal: no model work, and a complete result
    summary = segment(_local_cfg([NC_IMAGE], out), progress=False)
    assert summary.manifest["tiles"]["resumed"] == 6 and summary.manifest["runtime"].startswith("none")
    assert [k for k in _keys(s3_bucket) if ".geoseg-" in k] == []
    assert storage.exists(f"{out}/{NC_IMAGE.stem}_classes.tif")


def test_journal_round_trip_on_s3(s3_bucket):
    grid = TileGrid(300, 200, 128, 16)
    tiles = list(grid)
    rng = np.random.default_rng(1)
    results = [TileResult(t, rng.integers(0, 4, (t.core.height, t.core.width), dtype=np.uint8),
                          rng.integers(0, 100, (t.core.height, t.core.width), dtype=np.uint8),
                          np.arange(4), np.arange(4) * 2.0) for t in tiles[:-1]]
    results.append(TileResult(tiles[-1], None, None, np.zeros(4, np.int64), np.zeros(4), skipped=True))
    j = TileJournal(f"{s3_bucket}/o", "k1", [grid], every_tiles=2, every_s=1e9)
    for r in results:
        j.record(0, [r])
    j.flush()
    assert len(tiles) == 6 and j.chunks_written == 3  # 2 x 3 tiles, chunks of 2
    back = {r.tile.index: r for _, rs in TileJournal(f"{s3_bucket}/o", "k1", [grid]).restore() for r in rs}
    assert sorted(back) == [t.index for t in tiles]
    for r in results:
        b = back[r.tile.index]
        assert b.tile == r.tile and b.skipped == r.skipped
        if not r.skipped:
            np.testing.assert_array_equal(b.classes, r.classes)
            np.testing.assert_array_equal(b.confidence, r.confidence)
    j.clear()
    assert _keys(s3_bucket) == []


def test_stac_item_collection_on_s3_names_outputs_by_item_id(s3_bucket):
    _upload_inputs(s3_bucket)
    items = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "stac_version": "1.0.0", "id": "nc-2000", "properties": {"datetime": "2000-05-01T00:00:00Z"},
         "geometry": None, "assets": {"thumbnail": {"href": "t.png", "type": "image/png"},
                                      "visual": {"href": f"scenes/{NC_IMAGE.name}",
                                                 "type": "image/tiff; application=geotiff; profile=cloud-optimized"}}},
    ]}
    storage.write_bytes(f"{s3_bucket}/catalog/items.json", json.dumps(items).encode())
    from geoseg.io.inputs import expand_inputs

    with pytest.raises(InputError, match="no asset 'nir'"):
        expand_inputs([f"{s3_bucket}/catalog/items.json"], stac_asset="nir")
    # relative hrefs resolve against the JSON's location
    scenes = expand_inputs([f"{s3_bucket}/catalog/items.json"])
    assert scenes[0].path == f"{s3_bucket}/catalog/scenes/{NC_IMAGE.name}" and scenes[0].stem == "nc-2000"
    items["features"][0]["assets"]["visual"]["href"] = f"{s3_bucket}/scenes/{NC_IMAGE.name}"
    storage.write_bytes(f"{s3_bucket}/catalog/items.json", json.dumps(items).encode())
    s = segment(_local_cfg([f"{s3_bucket}/catalog/items.json"], f"{s3_bucket}/o"), progress=False)
    assert storage.exists(f"{s3_bucket}/o/nc-2000_classes.tif")
    assert s.manifest["inputs"][0]["path"].endswith(NC_IMAGE.name)


def test_aoi_on_s3_restricts_the_tiles(s3_bucket, tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    with rasterio.open(NC_IMAGE) as src:
        b, crs = src.bounds, src.crs
    local = tmp_path / "aoi.geojson"
    gpd.GeoDataFrame(geometry=[box(b.left, b.bottom, (b.left + b.right) / 2, b.top)], crs=crs).to_crs(4326).to_file(local)
    aoi = storage.upload(local, f"{s3_bucket}/aois/left.geojson")
    s = segment(_local_cfg([NC_IMAGE], str(tmp_path / "o"), aoi=aoi), progress=False)
    assert s.manifest["tiles"]["outside_aoi"] > 0
    with rasterio.open(tmp_path / "o" / f"{NC_IMAGE.stem}_classes.tif") as cls:
        k = cls.read(1)
    assert (k[:, k.shape[1] // 2 + 3:] == 255).all() and (k[:, : k.shape[1] // 2 - 3] != 255).any()


def test_listdir_ignores_folder_markers_so_a_console_made_model_prefix_loads(s3_bucket):
    """Consoles create "folder" objects (key ending in "/"): they are not files of the prefix."""
    from geoseg.model.checkpoint import load_checkpoint

    b, _ = storage.split_s3(s3_bucket)
    storage.s3_client().put_object(Bucket=b, Key="models/unet/", Body=b"")
    _upload_inputs(s3_bucket)
    assert "" not in storage.listdir(f"{s3_bucket}/models/unet")
    ckpt = load_checkpoint(f"{s3_bucket}/models/unet")
    assert ckpt.card.name == "landcover-unet-mnv2"


def test_missing_credentials_are_an_input_error_naming_the_uri(s3_bucket, monkeypatch, tmp_path):
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    storage.s3_client.cache_clear()
    uri = f"{s3_bucket}/o/manifest.json"
    with pytest.raises(InputError, match="o/manifest.json: cannot check"):
        storage.exists(uri)
    with pytest.raises(OutputError, match="cannot delete"):
        storage.delete(uri)


def test_an_overwrite_that_fails_while_copying_leaves_no_stale_manifest(s3_bucket, monkeypatch):
    """Replacing a result: once files start changing, the old manifest no longer describes them."""
    out = f"{s3_bucket}/o"
    segment(_local_cfg([NC_IMAGE], out), progress=False)
    assert storage.exists(f"{out}/manifest.json")
    real_copy = storage.copy
    monkeypatch.setattr(storage, "copy", _fails_after_first(real_copy))  # one file replaced, then the drop
    with pytest.raises(OutputError, match="simulated network failure"):
        segment(_local_cfg([NC_IMAGE], out, overwrite=True), progress=False)
    keys = _keys(s3_bucket, "o/")
    assert "o/manifest.json" not in keys, keys
    assert not [k for k in keys if "/.geoseg-staging-" in k], keys
    monkeypatch.setattr(storage, "copy", real_copy)
    s = segment(_local_cfg([NC_IMAGE], out, overwrite=True), progress=False)  # the rerun completes the result
    assert s.manifest["tiles"]["resumed"] == 6 and storage.exists(f"{out}/manifest.json")


@pytest.mark.slow
def test_model_actors_read_s3_through_the_endpoint_the_driver_uses(ray_cluster, s3_bucket, default_checkpoint):
    """Workers of a cluster do not inherit the driver's environment: AWS_ENDPOINT_URL must reach them."""
    from geoseg.config import RuntimeConfig
    from geoseg.model.checkpoint import checkpoint_payload
    from geoseg.model.predict import SceneJob
    from geoseg.runtime.executors import LocalExecutor, RayExecutor, Task

    uri = storage.upload(ZION_IMAGE, storage.join(s3_bucket, "scenes", ZION_IMAGE.name))
    info, idx, stats = scene_inputs(uri, default_checkpoint.card)
    tiles = list(TileGrid(info.grid.width, info.grid.height, 256, 32))[:4]
    job = SceneJob(uri, idx, stats, info.grid)
    tasks = [Task(0, (t,)) for t in tiles]
    payload = checkpoint_payload(default_checkpoint)
    ex = RayExecutor(payload, "cpu", RuntimeConfig(num_workers=1, max_task_retries=0), batch_size=1)
    try:
        got = {o.task.tiles[0].index: o for o in ex.run([job], tasks, retries=0)}
    finally:
        ex.close()
    assert all(o.results is not None for o in got.values()), [o.error for o in got.values()]
    local = {o.task.tiles[0].index: o for o in LocalExecutor(payload, "cpu", 1, 1).run([job], tasks)}
    for k, o in local.items():
        np.testing.assert_array_equal(got[k].results[0].classes, o.results[0].classes)

"""Publication (geoseg.io.publish): stitched rasters and staging directories.

Oracles: a coordinate code written tile core by tile core reads back exactly, whatever the tile
size; staging directories of owners known to be dead (and only those) are removed; the folder's
files after an overwrite whose renames fail half-way (a real folder in the way).
"""

import json

import numpy as np
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st

from geoseg.grid import GeoGrid
from geoseg.io.cog import StitchedRaster


def coord_code(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """A value that encodes the pixel position (never 255)."""
    return ((rows * 7 + cols * 13) % 251).astype(np.uint8)


@settings(max_examples=25, deadline=None)
@given(st.integers(40, 300), st.integers(40, 300), st.sampled_from([32, 64, 128]), st.integers(0, 15))
def test_stitched_raster_is_invariant_to_tile_size(tmp_path_factory, width, height, tile_size, halo):
    from affine import Affine

    from geoseg.tiling import TileGrid

    tmp = tmp_path_factory.mktemp("stitch")
    sink = StitchedRaster(tmp / "x.cog.tif", GeoGrid(width, height, Affine(30, 0, 0, 0, -30, 0), rasterio.crs.CRS.from_epsg(32612)), 255)
    for t in TileGrid(width, height, tile_size, halo):
        # what a worker would send back: the core cut out of a prediction over the read window
        rr, cc = np.mgrid[t.read.row : t.read.row_stop, t.read.col : t.read.col_stop]
        pred = coord_code(rr, cc)
        sink.write(t.core, pred[t.core_in_read()])
    sink.to_cog()
    with rasterio.open(tmp / "x.cog.tif") as src:
        got = src.read(1)
    rr, cc = np.mgrid[0:height, 0:width]
    np.testing.assert_array_equal(got, coord_code(rr, cc))


def test_dead_staging_is_removed_only_when_its_owner_is_provably_gone(tmp_path):
    """Same host and PID namespace and no such process: removed. Another PID namespace (containers
    sharing a host name and a volume) cannot be judged from here: kept."""
    from dataclasses import asdict

    from geoseg.io.lock import LockOwner
    from geoseg.io.publish import OWNER_FILE, STAGING_PREFIX, _remove_dead_staging

    me = asdict(LockOwner.me("staging"))
    dead_pid = 2**22 + 12345  # above pid_max's default: no such process
    cases = {"dead": {**me, "pid": dead_pid}, "alive": me, "other-ns": {**me, "pidns": -1, "pid": dead_pid},
             "other-host": {**me, "host": me["host"] + "-x", "pid": dead_pid}, "junk": {"pid": "x"}}
    for name, owner in cases.items():
        d = tmp_path / f"{STAGING_PREFIX}{name}"
        d.mkdir()
        (d / OWNER_FILE).write_text(json.dumps(owner))
    _remove_dead_staging(tmp_path)
    assert sorted(p.name.removeprefix(STAGING_PREFIX) for p in tmp_path.iterdir()) == [
        "alive", "junk", "other-host", "other-ns"]


def test_a_local_overwrite_that_fails_half_way_leaves_no_stale_manifest(tmp_path):
    """Replacing a local result: once a file has been replaced the old manifest no longer describes the
    folder, so it is gone before the first rename; the renames that failed leave their staged files."""
    import pytest

    from geoseg.errors import OutputError
    from geoseg.io.publish import MANIFEST, Staging

    out = tmp_path / "out"
    out.mkdir()
    for name, text in (("a.tif", "old a"), ("b.tif", "old b"), (MANIFEST, '{"run": "old"}')):
        (out / name).write_text(text)
    names = ["a.tif", "b.tif", MANIFEST]
    with pytest.raises(OutputError, match="already exist"):
        Staging(out, False, names)
    staging = Staging(out, True, names)
    for name in names:
        staging.path(name).write_text(f"new {name}")
    (out / "b.tif").unlink()
    (out / "b.tif").mkdir()  # a folder in the way: the second rename fails (a real OSError, not a mock)
    (out / "b.tif" / "x").write_text("")
    with pytest.raises(OSError):
        staging.publish(names)
    assert (out / "a.tif").read_text() == "new a.tif"  # the first file was replaced ...
    assert not (out / MANIFEST).exists()  # ... so the old manifest must not be left describing it
    assert sorted(p.name for p in staging.dir.iterdir() if not p.name.startswith(".")) == ["b.tif", MANIFEST]
    staging.discard()
    (out / "b.tif" / "x").unlink()
    (out / "b.tif").rmdir()
    retry = Staging(out, True, names)  # the rerun completes the result, manifest last
    for name in names:
        retry.path(name).write_text(f"new {name}")
    retry.publish(names)
    assert {p.name: p.read_text() for p in out.iterdir() if not p.name.startswith(".")} == {
        n: f"new {n}" for n in names}


def test_existing_outputs_are_named_in_the_error_at_most_four(tmp_path):
    import pytest

    from geoseg.errors import OutputError
    from geoseg.io.publish import Staging

    names = [f"{c}.tif" for c in "abcde"]
    for n in names:
        (tmp_path / n).write_text("old")
    with pytest.raises(OutputError) as exc:
        Staging(tmp_path, False, names)
    assert str(exc.value) == (f"{tmp_path}: outputs already exist (a.tif, b.tif, c.tif, d.tif...); pass --overwrite "
                              "(or set `overwrite: true` in the config) to replace them, or choose another --output")
    with pytest.raises(OutputError, match=r"\(b.tif, c.tif, d.tif, e.tif\); pass --overwrite"):
        Staging(tmp_path, False, names[1:])  # four: no ellipsis
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # and no staging folder was made


def test_a_staging_folder_names_its_owner_and_is_discarded_once_or_twice(tmp_path):
    from geoseg.io.lock import LockOwner
    from geoseg.io.publish import OWNER_FILE, STAGING_PREFIX, Staging

    s = Staging(tmp_path / "out", False, ["a.tif"])
    assert s.dir.parent == tmp_path / "out" and s.dir.name == f"{STAGING_PREFIX}{s.id}"
    owner = LockOwner.from_bytes((s.dir / OWNER_FILE).read_bytes())
    assert owner is not None and owner.command == "staging" and not owner.is_dead()
    assert (owner.host, owner.pid) == (LockOwner.me("x").host, LockOwner.me("x").pid)
    s.path("a.tif").write_text("x")
    s.discard()
    s.discard()  # already gone: still fine (a failed run's cleanup may run twice)
    assert list((tmp_path / "out").iterdir()) == []


def test_write_json_converts_numpy_and_paths_and_rejects_the_rest(tmp_path):
    from pathlib import Path

    import pytest

    from geoseg.io.publish import write_json

    data = {"i": np.int64(3), "f": np.float32(0.5), "a": np.arange(3), "p": Path("/x/y"), "n": None}
    path = write_json(tmp_path / "d.json", data)
    text = path.read_text()
    assert text.endswith("}\n") and json.loads(text) == {"i": 3, "f": 0.5, "a": [0, 1, 2], "p": "/x/y", "n": None}
    assert text == json.dumps(json.loads(text), indent=2) + "\n"
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        write_json(tmp_path / "e.json", {"o": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json"]  # the failed write left nothing


def test_write_json_writes_non_finite_numbers_as_null_never_bare_nan(tmp_path):
    """manifest.json, stats.json, metrics.json: strict JSON (``allow_nan=False``), NaN/±inf as null, at any depth
    and in any numeric type (Python float, numpy scalar, numpy array)."""
    from geoseg.io.publish import write_json

    data = {"nan": float("nan"), "inf": np.float32("inf"), "ninf": -np.inf, "ok": np.float64(0.25),
            "nested": [{"miou": np.nan, "n": np.int32(2)}, (1.5, float("-inf"))], "arr": np.array([1.0, np.nan]),
            "flag": np.bool_(True)}
    text = write_json(tmp_path / "m.json", data).read_text()
    for bare in ("NaN", "Infinity"):
        assert bare not in text

    def strict(token):
        raise AssertionError(f"bare {token} in the JSON")

    assert json.loads(text, parse_constant=strict) == {
        "nan": None, "inf": None, "ninf": None, "ok": 0.25, "nested": [{"miou": None, "n": 2}, [1.5, None]],
        "arr": [1.0, None], "flag": True}

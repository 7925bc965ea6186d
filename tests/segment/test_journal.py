"""The tile journal (geoseg.segment.journal): what its key depends on, and damaged chunks on restore.

Oracles: the key of a real plan of the NC scene under edited, copied and smaller AOIs; the tiles
recorded before a crash against the tiles restored after one; every field of the tiles recorded
against those restored, and the chunk count at the documented thresholds.
"""

from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from shapely.geometry import box

from tests.helpers import NC_IMAGE, segment_config


def _plans_and_key(tmp_path, aoi_path, device="auto"):
    from geoseg.io.inputs import expand_inputs
    from geoseg.model.checkpoint import load_checkpoint
    from geoseg.segment.journal import run_key
    from geoseg.segment.plan import Tiling, journal_key, plan_scene

    cfg = segment_config([NC_IMAGE], tmp_path / "o", tile_size=128, halo=16, aoi=str(aoi_path), device=device)
    ckpt = load_checkpoint(None)
    plans = [plan_scene(s, cfg, ckpt, Tiling(128, 16)) for s in expand_inputs(cfg.inputs)]
    return run_key(journal_key(ckpt, plans, Tiling(128, 16), cfg.device))


def test_journal_key_follows_the_aoi_geometry_and_the_device_not_the_aoi_path(tmp_path):
    """An AOI edited in place changes tile masks: its journal must not be replayed. The same AOI
    elsewhere, or a rerun, finds the same journal."""
    with rasterio.open(NC_IMAGE) as src:
        b, crs = src.bounds, src.crs
    a = tmp_path / "aoi.geojson"
    gpd.GeoDataFrame(geometry=[box(b.left, b.bottom, (b.left + b.right) / 2, b.top)], crs=crs).to_crs(4326).to_file(a)
    first = _plans_and_key(tmp_path, a)
    assert _plans_and_key(tmp_path, a) == first  # a rerun of the same job
    copy = tmp_path / "elsewhere" / "aoi.geojson"
    copy.parent.mkdir()
    copy.write_bytes(a.read_bytes())
    assert _plans_and_key(tmp_path, copy) == first
    # a slightly smaller AOI over the same tiles: same tile list, other masks
    gpd.GeoDataFrame(geometry=[box(b.left, b.bottom, (b.left + b.right) / 2 - 40, b.top)],
                     crs=crs).to_crs(4326).to_file(a)
    assert _plans_and_key(tmp_path, a) != first
    assert _plans_and_key(tmp_path, copy, device="cpu") != first


def test_an_unreadable_journal_chunk_is_skipped_and_its_tiles_recomputed(tmp_path, caplog):
    from geoseg.model.predict import TileResult
    from geoseg.segment.journal import TileJournal
    from geoseg.tiling import TileGrid

    grid = TileGrid(300, 200, 128, 16)
    tiles = list(grid)
    j = TileJournal(str(tmp_path), "k", [grid], every_tiles=100, every_s=1e9)
    j.record(0, [TileResult(t, np.zeros((t.core.height, t.core.width), np.uint8), None, np.ones(4, np.int64),
                            np.ones(4)) for t in tiles[:3]])
    j.flush()
    for name in ("chunk-00000000000000000000-deadbeef.npz", "chunk-99999999999999999999-deadbeef.npz"):
        (Path(j.root) / name).write_bytes(b"PK\x03\x04 truncated by a crash")  # before and after the good one
    with caplog.at_level("WARNING", logger="geoseg.segment.journal"):
        back = [r.tile.index for _, rs in j.restore() for r in rs]
    assert back == [t.index for t in tiles[:3]]
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skipped) == 2 and all(m.startswith("journal: skipping unreadable chunk /") for m in skipped)
    assert str(Path(j.root) / "chunk-00000000000000000000-deadbeef.npz") in caplog.text


def _results(tiles, seed=0):
    """Tile results with random cores; every third tile skipped, every other one without confidence, every
    fourth (skipped or not) with quality flag codes and their counts and areas."""
    import dataclasses

    from geoseg.model.predict import TileResult

    rng = np.random.default_rng(seed)
    out = []
    for k, t in enumerate(tiles):
        counts, area = rng.integers(0, 99, 4), rng.random(4) * 1e4
        if k % 3 == 2:
            out.append(TileResult(t, None, None, counts, area, skipped=True))
        else:
            shape = (t.core.height, t.core.width)
            conf = rng.integers(0, 101, shape).astype(np.uint8) if k % 2 == 0 else None
            out.append(TileResult(t, rng.integers(0, 4, shape).astype(np.uint8), conf, counts, area))
        if k % 4 == 0:
            q = rng.integers(0, 9, (t.core.height, t.core.width)).astype(np.uint8)
            out[-1] = dataclasses.replace(out[-1], quality=q, flag_counts=rng.integers(0, 99, 9),
                                          flag_area_m2=rng.random(9) * 1e4)
    return out


def test_journal_round_trip_every_field_of_every_tile_of_every_scene(tmp_path, caplog):
    """What is recorded (two scenes, skipped tiles, tiles with and without confidence) is what is restored."""
    from geoseg.segment.journal import JOURNAL_DIR, TileJournal, run_key
    from geoseg.tiling import TileGrid

    grids = [TileGrid(300, 200, 128, 16), TileGrid(90, 150, 64, 8)]
    key = run_key({"a": 1})
    assert len(key) == 16 and int(key, 16) >= 0 and key != run_key({"a": 2})
    j = TileJournal(str(tmp_path), key, grids, every_tiles=4, every_s=1e9)
    sent = {0: _results(list(grids[0]), 0), 1: _results(list(grids[1]), 1)}
    j.record(0, sent[0][:3])
    assert j.chunks_written == 0  # 3 < 4 tiles buffered
    j.record(1, sent[1][:1])
    assert j.chunks_written == 1  # exactly every_tiles: written
    j.record(1, sent[1][1:])
    j.record(0, sent[0][3:])
    j.flush()
    j.flush()  # nothing buffered: no empty chunk
    chunks = sorted(p.name for p in (tmp_path / JOURNAL_DIR / key).iterdir())
    assert len(chunks) == j.chunks_written == 3 and 0 < j.seconds < 60
    for name in ("notes.npz", "chunk-partial.tmp", ".chunk-1.npz.0a1b2c3d.tmp.npz"):  # not chunks: ignored, silently
        (tmp_path / JOURNAL_DIR / key / name).write_bytes(b"not a chunk")
    back: dict[int, list] = {}
    with caplog.at_level("WARNING", logger="geoseg.segment.journal"):
        for scene, results in TileJournal(str(tmp_path), key, grids).restore():
            back.setdefault(scene, []).extend(results)
    assert not caplog.records
    for scene, results in sent.items():
        assert [r.tile for r in back[scene]] == [r.tile for r in results]
        for got, want in zip(back[scene], results):
            assert got.skipped == want.skipped
            np.testing.assert_array_equal(got.counts, want.counts)
            np.testing.assert_array_equal(got.area_m2, want.area_m2)
            for a, b in ((got.classes, want.classes), (got.confidence, want.confidence), (got.quality, want.quality),
                         (got.flag_counts, want.flag_counts), (got.flag_area_m2, want.flag_area_m2)):
                assert (a is None) == (b is None)
                if b is not None:
                    np.testing.assert_array_equal(a, b)
    other = TileJournal(str(tmp_path), "another-run", grids, every_tiles=1)
    other.record(0, sent[0][:1])
    j.clear()  # another run's journal is still there: the .geoseg-journal folder stays
    assert [p.name for p in (tmp_path / JOURNAL_DIR).iterdir()] == ["another-run"]
    other.clear()
    assert not (tmp_path / JOURNAL_DIR).exists()


def test_a_chunk_is_due_after_every_s_seconds_whatever_the_tile_count(tmp_path):
    from geoseg.segment.journal import TileJournal
    from geoseg.tiling import TileGrid

    grid = TileGrid(300, 200, 128, 16)
    j = TileJournal(str(tmp_path), "k", [grid], every_tiles=1000, every_s=0.0)
    j.record(0, _results(list(grid)[:1]))
    assert j.chunks_written == 1
    j = TileJournal(str(tmp_path / "b"), "k", [grid], every_tiles=1000, every_s=3600.0)
    j.record(0, _results(list(grid)[:2]))
    assert j.chunks_written == 0


def test_a_chunk_of_another_layout_or_with_missing_pixels_is_skipped_not_misread(tmp_path, caplog):
    """A chunk of the earlier per-tile layout (arrays `classes_<i>`, no `format`) and one whose class array is a
    pixel short are skipped with a warning; the good chunk beside them is restored."""
    import io
    import zipfile

    from geoseg.segment.journal import TileJournal
    from geoseg.tiling import TileGrid

    grid = TileGrid(300, 200, 128, 16)
    tiles = list(grid)
    j = TileJournal(str(tmp_path), "k", [grid], every_tiles=100, every_s=1e9)
    j.record(0, _results(tiles[:2], 3))
    j.flush()
    good = next(Path(j.root).iterdir())
    t = tiles[2]
    old = io.BytesIO()
    np.savez_compressed(old, scene=np.array([0], np.int32), tile=np.array([t.index], np.int32),
                        skipped=np.array([False]), counts=np.ones((1, 4), np.int64), area_m2=np.ones((1, 4)),
                        classes_0=np.zeros((t.core.height, t.core.width), np.uint8))
    (Path(j.root) / "chunk-00000000000000000001-0ld0ld00.npz").write_bytes(old.getvalue())
    with np.load(good) as data:
        arrays = {k: data[k] for k in data.files}
    good_classes = arrays["classes"]
    arrays["classes"] = good_classes[:-1]
    short = io.BytesIO()
    np.savez_compressed(short, **arrays)
    (Path(j.root) / "chunk-99999999999999999999-5h0r7000.npz").write_bytes(short.getvalue())
    assert zipfile.is_zipfile(io.BytesIO(short.getvalue()))
    for name, change in (("chunk-99999999999999999998-f0rma700.npz", {"format": np.array(1, np.int32)}),
                         ("chunk-99999999999999999997-f1a95000.npz", {"flag_counts": arrays["flag_counts"][:0]})):
        other = io.BytesIO()
        np.savez_compressed(other, **{**arrays, "classes": good_classes, **change})
        (Path(j.root) / name).write_bytes(other.getvalue())
    with caplog.at_level("WARNING", logger="geoseg.segment.journal"):
        back = [r.tile.index for _, rs in j.restore() for r in rs]
    assert back == [tiles[0].index, tiles[1].index]
    skipped = [r.getMessage() for r in caplog.records if "skipping unreadable chunk" in r.getMessage()]
    assert len(skipped) == 4 and any("KeyError" in m for m in skipped) and any("pixels for tile cores" in m for m in skipped)
    assert any("chunk format 1" in m for m in skipped) and any("flag counts for 0 tiles" in m for m in skipped)

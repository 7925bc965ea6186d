"""The tile journal (geoseg.segment.journal): what its key depends on, and damaged chunks on restore.

Oracles: the key of a real plan of the NC scene under edited, copied and smaller AOIs; the tiles
recorded before a crash against the tiles restored after one.
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
    (Path(j.root) / "chunk-99999999999999999999-deadbeef.npz").write_bytes(b"PK\x03\x04 truncated by a crash")
    with caplog.at_level("WARNING", logger="geoseg.segment.journal"):
        back = [r.tile.index for _, rs in j.restore() for r in rs]
    assert back == [t.index for t in tiles[:3]]
    assert "skipping unreadable chunk" in caplog.text

"""The monitor with several acquisitions per period (issue #16): discovery of the groups, one composite map per
period (geoseg.change.composite), its areas in the history and the sink, change between composites.

Oracles: the per-pixel mode of the segmented acquisitions computed here with numpy (ties by the summed
confidence, then the lower id), pixel counts of that mode, the files present for each period.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from geoseg.change.history import HistoryStore
from geoseg.change.monitor import discover, run_monitor
from geoseg.config import MonitorConfig, load_yaml
from geoseg.errors import InputError
from tests.change.test_monitor import region, write_config
from tests.helpers import PUCALLPA, crop_raster, read_band, write_map, write_stac_items

WINDOW = Window(120, 70, 96, 96)
CLOUD = (slice(20, 60), slice(10, 50))


def _cloudy(src, dst) -> None:
    """A crop of ``src`` with a QA_PIXEL band flagging a cloud (bit 3) over :data:`CLOUD`."""
    with rasterio.open(src) as s:
        data = s.read(window=WINDOW)
        prof = {**s.profile, "count": data.shape[0] + 1, "width": WINDOW.width, "height": WINDOW.height,
                "transform": s.window_transform(WINDOW), "nodata": None}
        desc = s.descriptions
    qa = np.zeros(data.shape[1:], np.uint8)
    qa[CLOUD] = 1 << 3
    with rasterio.open(dst, "w", **prof) as d:
        d.write(np.concatenate([data, qa[None]]))
        d.descriptions = (*desc, "QA_PIXEL")


@pytest.fixture
def scenes(tmp_path):
    """img_1985_a (one image), img_2000_a/_b/_c: 2000, 2020 content, and 2000 with a cloud in its quality band."""
    d = tmp_path / "imagery"
    d.mkdir()
    for year, name in (("1985", "img_1985_a"), ("2000", "img_2000_a"), ("2020", "img_2000_b")):
        crop_raster(PUCALLPA / f"landsat_{year}.tif", d / f"{name}.tif", WINDOW, blockxsize=32, blockysize=32)
    _cloudy(PUCALLPA / "landsat_2000.tif", d / "img_2000_c.tif")
    return d


def mode(looks: np.ndarray, conf: np.ndarray, n: int = 4, min_looks: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(classes, share)``: per pixel the most frequent class of the clear looks (ties: higher confidence sum,
    then the lower id), 255 under ``min_looks``; share = percent of the clear looks."""
    clear = looks < n
    counts = np.stack([(looks == k).sum(0) for k in range(n)])
    sums = np.stack([np.where((looks == k) & (conf <= 100), conf.astype(int), 0).sum(0) for k in range(n)])
    best = np.argmax(counts * 10_000 + sums, axis=0)
    nlooks = clear.sum(0)
    keep = nlooks >= min_looks
    top = np.take_along_axis(counts, best[None], 0)[0]
    share = np.where(keep, np.floor(100 * top / np.maximum(nlooks, 1) + 0.5), 255)
    return np.where(keep, best, 255).astype(np.uint8), share.astype(np.uint8)


def acquisitions(root, period="2000"):
    acq = root / "regions/city/periods" / period / "acquisitions"
    looks = np.stack([read_band(acq / f"img_{period}_{k}_classes.tif") for k in "abc"])
    conf = np.stack([read_band(acq / f"img_{period}_{k}_confidence.tif") for k in "abc"])
    return looks, conf


def test_a_period_of_three_acquisitions_is_their_composite(tmp_path, scenes):
    root = tmp_path / "root"
    cfg = load_yaml(write_config(tmp_path, root, region("city", f"{scenes}/img_{{period}}_*.tif")), MonitorConfig)
    (res,) = run_monitor(cfg)
    assert res.error is None and res.segmented == ["1985", "2000"] and [c["after"] for c in res.changes] == ["2000"]
    store = HistoryStore(str(root))
    entry = store.region_state("city")["periods"]["2000"]
    assert entry["image"] == [f"{scenes}/img_2000_{k}.tif" for k in "abc"]
    assert entry["classes"] == "regions/city/periods/2000/2000_classes.tif" and entry["min_looks"] == 1

    looks, conf = acquisitions(root)
    assert (looks[2][CLOUD] == 255).all() and (looks[0][CLOUD] < 4).all()  # the quality band masked the cloud
    want, share = mode(looks, conf)
    period = root / "regions/city/periods/2000"
    got = read_band(period / "2000_classes.tif")
    np.testing.assert_array_equal(got, want)
    assert (got != looks[1]).any() and (got[CLOUD] != looks[0][CLOUD]).any()  # neither look alone is the map
    np.testing.assert_array_equal(read_band(period / "2000_confidence.tif"), share)  # the share is the confidence

    # the history's areas are the composite's
    areas = store.table("class_areas.csv")
    rows = areas[areas["period"] == "2000"].sort_values("class_id")
    assert rows["pixels"].tolist() == np.bincount(want[want < 4], minlength=4).tolist()
    doc = json.loads((period / "2000_composite.json").read_text())
    assert rows["area_ha"].tolist() == [c["area_ha"] for c in doc["classes"]]
    assert rows["valid_area_ha"].iloc[0] == pytest.approx(sum(c["area_ha"] for c in doc["classes"]), abs=1e-4)

    # the change compares the composite with the single image of 1985, with the share as confidence
    rep = json.loads((root / "regions/city/changes/1985_to_2000/transitions.json").read_text())
    assert rep["dates"]["after"]["classes"].endswith("periods/2000/2000_classes.tif")
    assert rep["dates"]["after"]["confidence"].endswith("periods/2000/2000_confidence.tif")
    assert rep["dates"]["before"]["classes"].endswith("periods/1985/img_1985_a_classes.tif")

    # the STAC Item of the period holds the composite and the change to it
    item = json.loads((root / "history/stac/city/2000.json").read_text())
    assert item["assets"]["classes"]["href"] == "../../../regions/city/periods/2000/2000_classes.tif"
    assert item["assets"]["confidence"]["href"].endswith("2000/2000_confidence.tif")
    assert "polygons" not in item["assets"] and not (period / "2000_polygons.gpkg").exists()  # outputs.polygons: false
    assert any(k.startswith("change_") for k in item["assets"])

    # a one-image period is stored as before: its own segment outputs, its stats.json areas
    one = store.region_state("city")["periods"]["1985"]
    assert one["image"] == f"{scenes}/img_1985_a.tif" and "composite" not in one
    assert one["classes"] == "regions/city/periods/1985/img_1985_a_classes.tif"
    assert not (root / "regions/city/periods/1985/acquisitions").exists()
    (stats,) = json.loads((root / "regions/city/periods/1985/stats.json").read_text())["inputs"].values()
    old = areas[areas["period"] == "1985"].sort_values("class_id")
    assert old["pixels"].tolist() == [r["pixels"] for r in stats["classes"]]
    assert old["area_ha"].tolist() == [r["area_ha"] for r in stats["classes"]]


def test_min_looks_makes_pixels_with_fewer_clear_looks_nodata(tmp_path, scenes):
    root = tmp_path / "root"
    path = write_config(tmp_path, root, region("city", f"{scenes}/img_{{period}}_*.tif", "    periods: ['2000']\n"))
    with open(path, "a") as f:
        f.write("min_looks: 3\n")
    cfg = load_yaml(path, MonitorConfig)
    assert cfg.min_looks == 3
    (res,) = run_monitor(cfg)
    assert res.error is None and res.segmented == ["2000"]
    looks, conf = acquisitions(root)
    want, share = mode(looks, conf, min_looks=3)
    got = read_band(root / "regions/city/periods/2000/2000_classes.tif")
    np.testing.assert_array_equal(got, want)
    assert (got[CLOUD] == 255).all() and (got < 4).sum() > 0
    areas = HistoryStore(str(root)).table("class_areas.csv")
    assert areas.sort_values("class_id")["pixels"].tolist() == np.bincount(want[want < 4], minlength=4).tolist()


def test_discovery_groups_the_images_of_a_period(tmp_path):
    d = tmp_path / "scenes"
    d.mkdir()
    for name in ("l_2020_a.tif", "l_2020_b.tif", "l_2021_a.tif", "l_x_a.tif", "other_2021.tif", "l_01.tif", "l_14.tif"):
        (d / name).write_bytes(b"")
    assert discover(f"{d}/l_{{period}}_*.tif") == {"2020": [f"{d}/l_2020_a.tif", f"{d}/l_2020_b.tif"],
                                                   "2021": f"{d}/l_2021_a.tif"}
    assert discover(f"{d}/l_{{period}}_*.tif", ["2021", "2020"])["2020"] == [f"{d}/l_2020_a.tif", f"{d}/l_2020_b.tif"]
    with pytest.raises(InputError, match="no image for period 2019"):
        discover(f"{d}/l_{{period}}_*.tif", ["2019"])
    assert discover(f"{d}/") == {"2020": [f"{d}/l_2020_a.tif", f"{d}/l_2020_b.tif"],
                                 "2021": sorted([f"{d}/l_2021_a.tif", f"{d}/other_2021.tif"])}
    write_stac_items(tmp_path / "items.json",
                     [(f"s-{d}", f"2020-07-{d}T15:00:00Z", f"scenes/l_{d}.tif") for d in ("01", "14")])
    by_month = discover(str(tmp_path / "items.json"), stac_period="month")
    assert list(by_month) == ["2020-07"] and [p.rsplit("/", 1)[1] for p in by_month["2020-07"]] == ["l_01.tif", "l_14.tif"]
    assert list(discover(str(tmp_path / "items.json"))) == ["2020-07-01", "2020-07-14"]


def test_the_sink_loads_a_composite_period_s_areas(tmp_path):
    from geoseg.change.composite import composite
    from geoseg.change.sink import _load_period

    rng = np.random.default_rng(3)
    looks = rng.integers(0, 4, (3, 20, 24)).astype(np.uint8)
    looks[1, :8] = 255
    maps = [write_map(tmp_path / f"l{i}_classes.tif", m) for i, m in enumerate(looks)]
    store = HistoryStore(str(tmp_path / "root"))
    composite(maps, store.period_dir("r", "2000"), name="2000")

    class Load:
        def __init__(self):
            self.inserted: list = []

        def delete(self, table, **key):
            pass

        def insert(self, table, rows, **key):
            self.inserted.append((table, rows, key))

        def copy_polygons(self, *a, **k):
            self.inserted.append(("landcover_polygons", a, k))

    load = Load()
    entry = {"classes": "regions/r/periods/2000/2000_classes.tif",
             "composite": "regions/r/periods/2000/2000_composite.json"}
    _load_period(load, store, "r", "2000", entry)
    ((table, rows, key),) = load.inserted
    want, _ = mode(looks, np.full(looks.shape, 255, np.uint8))
    assert table == "class_areas" and key == {"input": "2000", "region": "r", "period": "2000"}
    assert [r["pixels"] for r in rows] == np.bincount(want.ravel(), minlength=4).tolist()
    assert abs(sum(r["percent"] for r in rows) - 100) < 1e-3

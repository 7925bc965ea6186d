"""The scheduled monitoring job (geoseg.change.monitor, geoseg.change.history): backfill, idempotent reruns,
appends, failing regions, S3 root, discovery.

Oracles: byte-for-byte snapshots of the history store between runs, the per-period change reports,
the images present for each period.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from rasterio.windows import Window

from geoseg.change.history import HistoryStore
from geoseg.change.monitor import discover, run_monitor
from geoseg.config import MonitorConfig, load_yaml
from geoseg.errors import ConfigError, InputError
from tests.helpers import PUCALLPA, REPO, SPECTRAL_MODEL, crop_raster, write_stac_items


@pytest.fixture
def imagery(tmp_path):
    """96 x 96 px crops (city and farmland) of three Pucallpa years, as img_<year>.tif."""
    d = tmp_path / "imagery"
    d.mkdir()

    def crop(year: str) -> None:
        crop_raster(PUCALLPA / f"landsat_{year}.tif", d / f"img_{year}.tif", Window(120, 70, 96, 96),
                    blockxsize=32, blockysize=32)

    for y in ("1985", "2000"):
        crop(y)
    return d, crop


def write_config(tmp_path, root, regions: str, guards: str = "") -> str:
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(
        f"output_root: {root}\n"
        f"regions:\n{regions}"
        f"guards:\n  min_confidence: 50\n  mmu_ha: 2.0\n{guards}"
        f"segment:\n  model: {SPECTRAL_MODEL}\n  outputs:\n    polygons: false\n  runtime:\n    local: true\n"
    )
    return str(cfg)


def region(name: str, imagery: str, extra: str = "") -> str:
    return f"  - name: {name}\n    imagery: {imagery}\n{extra}"


def snapshot(root) -> dict:
    return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_backfill_then_rerun_is_a_noop_then_a_new_period_appends(tmp_path, imagery, monkeypatch):
    import geoseg.segment.pipeline

    d, crop = imagery
    root = tmp_path / "root"
    cfg = load_yaml(write_config(tmp_path, root, region("city", f"{d}/img_{{period}}.tif")), MonitorConfig)
    (res,) = run_monitor(cfg)
    assert res.error is None and res.segmented == ["1985", "2000"] and [c["after"] for c in res.changes] == ["2000"]
    store = HistoryStore(str(root))
    areas = store.table("class_areas.csv")
    assert sorted(set(areas["period"])) == ["1985", "2000"] and len(areas) == 2 * 4
    summary = store.table("change_summary.csv")
    assert summary[["region", "period_before", "period"]].values.tolist() == [["city", "1985", "2000"]]
    report = json.loads((root / "regions/city/changes/1985_to_2000/transitions.json").read_text())
    assert summary["deforestation_ha"][0] == report["change_types"]["deforestation"]["area_ha"]
    polys = store.change_polygons()
    assert len(polys) == report["polygons"]["count"] > 0 and polys.crs.to_epsg() == 4326
    assert set(polys["period"]) == {"2000"} and (polys["area_ha"] >= 2.0 - 1e-9).all()
    trans = store.table("transitions.csv")
    assert trans["pixels"].sum() == report["valid"]["pixels"]

    # the same period again: no model work, not a byte (or mtime) changed under the root
    before = snapshot(root)
    calls = []
    monkeypatch.setattr(geoseg.segment.pipeline, "segment", lambda *a, **k: calls.append(a) or pytest.fail("segment called"))
    (res,) = run_monitor(cfg)
    assert res.error is None and not res.segmented and not res.changes and calls == []
    assert snapshot(root) == before
    monkeypatch.undo()

    # a new period: only it is segmented and compared with the last stored one
    crop("2020")
    seen = []
    real = geoseg.segment.pipeline.segment
    monkeypatch.setattr(geoseg.segment.pipeline, "segment", lambda c, **k: seen.append(c.inputs) or real(c, **k))
    (res,) = run_monitor(cfg)
    assert seen == [[f"{d}/img_2020.tif"]] and [(c["before"], c["after"]) for c in res.changes] == [("2000", "2020")]
    summary = store.table("change_summary.csv")
    assert summary["period"].tolist() == ["2000", "2020"]
    assert store.table("class_areas.csv")["period"].value_counts().to_dict() == {"1985": 4, "2000": 4, "2020": 4}
    assert set(store.change_polygons()["period"]) == {"2000", "2020"}
    # rows of the earlier period are unchanged
    now = snapshot(root)
    for key in ("regions/city/changes/1985_to_2000/transitions.json", "history/change_polygons/city/2000.parquet"):
        assert now[key] == before[key]  # appending wrote only the new comparison's polygons
    import geopandas as gpd

    dataset = gpd.read_parquet(root / "history" / "change_polygons")  # the files read as one GeoParquet dataset
    assert len(dataset) == len(store.change_polygons()) and dataset.crs.to_epsg() == 4326


def test_a_region_with_a_missing_image_fails_alone(tmp_path, imagery):
    d, _ = imagery
    root = tmp_path / "root"
    regions = (region("good", f"{d}/img_{{period}}.tif")
               + region("broken", f"{d}/img_{{period}}.tif", "    periods: ['1985', '1990', '2000']\n")
               + region("also-good", f"{d}/img_{{period}}.tif", "    periods: ['1985', '2000']\n"))
    proc = subprocess.run([sys.executable, str(REPO / "jobs" / "monitor.py"), "--config",
                           write_config(tmp_path, root, regions), "-q"], capture_output=True, text=True, timeout=600, check=False)
    code, out, err = proc.returncode, proc.stdout, proc.stderr
    assert code == 4, err
    assert "1 of 3 region(s) failed: broken" in err
    assert "region broken: FAILED: no image for period 1990" in out and "img_1990.tif does not exist" in out
    state = HistoryStore(str(root)).state()["regions"]
    assert set(state) == {"good", "also-good"}
    for name in ("good", "also-good"):
        assert sorted(state[name]["periods"]) == ["1985", "2000"] and list(state[name]["changes"]) == ["2000"]


@pytest.mark.parametrize("setting, confirm", [("true", ["2010"]), ("2", ["2010", "2020"])])
def test_persistence_waits_for_the_confirming_periods(tmp_path, imagery, setting, confirm):
    """`persistence: true` is one later period, `persistence: 2` two: the newest periods wait for later runs."""
    d, crop = imagery
    crop("2010")
    crop("2020")
    root = tmp_path / "root"
    cfg = load_yaml(write_config(tmp_path, root, region("city", f"{d}/img_{{period}}.tif"),
                                 f"  persistence: {setting}\n"), MonitorConfig)
    (res,) = run_monitor(cfg)
    done = [("1985", "2000", ",".join(confirm))] + ([("2000", "2010", "2020")] if len(confirm) == 1 else [])
    assert [(c["before"], c["after"], c["confirm_period"]) for c in res.changes] == done
    assert res.pending == ["2020"] if len(confirm) == 1 else ["2010", "2020"]
    rep = json.loads((root / "regions/city/changes/1985_to_2000/transitions.json").read_text())
    roles = ["confirm", "confirm_2"][:len(confirm)]
    assert rep["guards"]["persistence"]["applied"] and rep["guards"]["persistence"]["confirm_dates"] == roles
    for role, period in zip(roles, confirm):
        assert rep["dates"][role]["classes"].endswith(f"img_{period}_classes.tif")
    assert HistoryStore(str(root)).table("change_summary.csv")["confirm_period"].tolist() == [c for _, _, c in done]
    before = snapshot(root)
    (res,) = run_monitor(cfg)  # still waiting: nothing written
    assert not res.changes and not res.segmented and snapshot(root) == before


def test_resume_after_a_crash_mid_run_duplicates_nothing(tmp_path, imagery, monkeypatch):
    """A run killed after a history file was rewritten but before state.json was: the rerun redoes that step and
    every history file holds each (region, period) once."""
    import geoseg.segment.pipeline

    d, _ = imagery
    root = tmp_path / "root"
    cfg = load_yaml(write_config(tmp_path, root, region("city", f"{d}/img_{{period}}.tif")), MonitorConfig)
    real_commit = HistoryStore._commit

    def crash_on(kind, period):
        def commit(self, region, k, p, entry):
            if (k, p) == (kind, period):
                raise OSError("killed")
            real_commit(self, region, k, p, entry)
        return commit

    store = HistoryStore(str(root))
    monkeypatch.setattr(HistoryStore, "_commit", crash_on("periods", "2000"))  # class areas of 2000 already written
    (res,) = run_monitor(cfg)
    assert "killed" in res.error and len(store.table("class_areas.csv")) == 8
    monkeypatch.setattr(HistoryStore, "_commit", crash_on("changes", "2000"))  # polygons, tables already written
    (res,) = run_monitor(cfg)
    assert "killed" in res.error and res.segmented == ["2000"] and len(store.table("change_summary.csv")) == 1
    monkeypatch.setattr(HistoryStore, "_commit", real_commit)
    monkeypatch.setattr(geoseg.segment.pipeline, "segment", lambda *a, **k: pytest.fail("segment called"))
    (res,) = run_monitor(cfg)
    assert res.error is None and not res.segmented and [c["after"] for c in res.changes] == ["2000"]
    areas = store.table("class_areas.csv")
    assert len(areas) == 8 and not areas.duplicated(["region", "period", "class_id"]).any()
    assert len(store.table("transitions.csv")) == 4 * 5 and len(store.table("change_summary.csv")) == 1
    polys = store.change_polygons()
    assert len(polys) == res.changes[0]["polygons"] > 0 and not polys.duplicated(["period", "polygon_id"]).any()


def test_monitor_on_an_s3_output_root(s3_bucket, tmp_path, imagery):
    """History store and per-period outputs under s3://; the rerun is a no-op there too."""
    from geoseg.io import storage

    d, _ = imagery
    root = f"{s3_bucket}/monitor"
    cfg = load_yaml(write_config(tmp_path, root, region("city", f"{d}/img_{{period}}.tif")), MonitorConfig)
    (res,) = run_monitor(cfg)
    assert res.error is None and [c["after"] for c in res.changes] == ["2000"]
    store = HistoryStore(root)
    assert len(store.change_polygons()) == res.changes[0]["polygons"]
    names = storage.listdir(f"{root}/history")
    assert {"state.json", "class_areas.csv", "change_summary.csv", "transitions.csv"} <= set(names)
    assert "change.tif" in storage.listdir(f"{root}/regions/city/changes/1985_to_2000")
    assert storage.listdir(f"{root}/history/change_polygons/city") == ["2000.parquet"]
    state = storage.read_bytes(f"{root}/history/state.json")
    (res,) = run_monitor(cfg)
    assert not res.segmented and not res.changes and storage.read_bytes(f"{root}/history/state.json") == state


def test_discovery_pattern_prefix_and_stac(tmp_path, imagery):
    d, _ = imagery
    assert discover(f"{d}/img_{{period}}.tif") == {"1985": f"{d}/img_1985.tif", "2000": f"{d}/img_2000.tif"}
    assert list(discover(f"{d}/img_{{period}}.tif", ["2000"])) == ["2000"]
    assert discover(f"{d}/") == {"1985": f"{d}/img_1985.tif", "2000": f"{d}/img_2000.tif"}
    write_stac_items(tmp_path / "items.json",
                     [(f"scene-{y}", f"{y}-07-01T15:00:00Z", f"imagery/img_{y}.tif") for y in ("1985", "2000")])
    found = discover(str(tmp_path / "items.json"), stac_period="year")
    assert list(found) == ["1985", "2000"] and found["2000"].endswith("imagery/img_2000.tif")
    assert list(discover(str(tmp_path / "items.json"))) == ["1985-07-01", "2000-07-01"]
    with pytest.raises(InputError, match=r"no image for period\(s\) \['1990'\]"):
        discover(str(tmp_path / "items.json"), ["1990"], stac_period="year")
    with pytest.raises(InputError, match="no image found"):
        discover(f"{d}/nothing_{{period}}.tif")
    with pytest.raises(ConfigError, match=r"\{period\}"):
        discover(f"{d}/img_1985.tif")
    # a file that matches the pattern but whose {period} is not a date would sort after every year: skipped
    (d / "img_2000_old.tif").write_bytes((d / "img_2000.tif").read_bytes())
    assert list(discover(f"{d}/img_{{period}}.tif")) == ["1985", "2000"]


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("output_root: x\nregions:\n  - name: a\n    imagery: a_{period}.tif\n    aoy: x.geojson\n")
    with pytest.raises(ConfigError, match="regions.0.aoy: unknown key"):
        load_yaml(bad, MonitorConfig)
    bad.write_text("output_root: x\nregions:\n  - {name: a, imagery: x}\n  - {name: a, imagery: y}\n")
    with pytest.raises(ConfigError, match="region names must be unique"):
        load_yaml(bad, MonitorConfig)
    bad.write_text("output_root: x\nregions: [{name: a, imagery: x}]\nsegment: {inputs: [a.tif]}\n")
    with pytest.raises(ConfigError, match="set per region"):
        load_yaml(bad, MonitorConfig)
    bad.write_text("output_root: x\nregions: [{name: a, imagery: x}]\nsegment: {outputs: {confidence: false}}\n")
    with pytest.raises(ConfigError, match="min_confidence needs the confidence rasters"):
        load_yaml(bad, MonitorConfig)
    bad.write_text("output_root: x\nregions: [{name: a, imagery: x, periods: [2020, v2]}]\n")
    with pytest.raises(ConfigError, match=r"regions\.0\.periods\.1: String should match pattern"):
        load_yaml(bad, MonitorConfig)
    bad.write_text("output_root: x\nperiods: [1985, 2000-07-14]\nregions: [{name: a, imagery: x}]\n"
                   "guards: {persistence: true}\n")
    cfg = load_yaml(bad, MonitorConfig)  # unquoted YAML years and dates are the periods they spell
    assert cfg.periods == ["1985", "2000-07-14"] and cfg.guards.persistence == 1
    load_yaml(REPO / "configs" / "monitor_pucallpa.yaml", MonitorConfig)  # the shipped config is valid


def test_job_script_exits_2_on_a_bad_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("output_root: x\nregions: []\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(REPO / "jobs" / "monitor.py"), "--config", str(bad)],
                          capture_output=True, text=True, timeout=120, cwd=REPO, env=env, check=False)
    assert proc.returncode == 2 and "regions" in proc.stderr

"""Results into PostGIS (geoseg.io.sink, geoseg.change.sink) against a real PostgreSQL + PostGIS server.

The server is ``$GEOSEG_TEST_PG_DSN`` (``.ci/run``) or one the ``pg_url`` fixture starts; every test loads
into a fresh schema. Oracles: the files the same run published (GeoPackage polygons read by GDAL,
``stats.csv``, ``transitions.csv``/``transitions.json``, ``manifest.json``), the monitor's history store,
the server's own view (row counts, unique keys, ``EXPLAIN``), and shapely on the published polygons
for what a bounding box selects.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import shapely
from click.testing import CliRunner

from geoseg.change.history import HistoryStore
from geoseg.change.sink import load_region
from geoseg.cli import main
from geoseg.errors import SinkError
from geoseg.io.sink.postgis import RunInfo, Sink
from geoseg.io.sink.schema import MIGRATIONS, Migration, migrate
from geoseg.vector.polygons import vectorize_to_file
from tests.helpers import NC_IMAGE, NC_LABELS, PUCALLPA, REPO, SPECTRAL_MODEL, blobs, crop_raster, write_pair

STEM = NC_IMAGE.stem
POLYGON_COLUMNS = "polygon_id, class_id, class_name, area_m2, mean_confidence, ST_AsBinary(geom), ST_SRID(geom)"


def segment(out: Path | str, sink: str, *extra: str):
    """``geoseg segment`` of the NC sample with the spectral-index model (fast), loading into ``sink``."""
    return CliRunner().invoke(main, ["segment", str(NC_IMAGE), "--output", str(out), "--model", str(SPECTRAL_MODEL),
                                     "--local", "--sink", sink, *extra])


def published_polygons(out: Path):
    import geopandas as gpd

    return gpd.read_file(out / f"{STEM}_polygons.gpkg", layer="landcover").sort_values("polygon_id", ignore_index=True)


def loaded_polygons(pg, table: str = "landcover_polygons", where: str = "true") -> list[tuple]:
    return pg.rows(f"SELECT {POLYGON_COLUMNS} FROM {{s}}.{table} WHERE {where} ORDER BY polygon_id")


def run_ids(pg) -> list[str]:
    return [str(r[0]) for r in pg.rows("SELECT run_id FROM {s}.runs ORDER BY loaded_at")]


def test_segment_loads_the_polygons_and_class_areas_it_publishes(pg, tmp_path):
    out = tmp_path / "out"
    r = segment(out, pg.url)
    assert r.exit_code == 0, r.output
    gdf = published_polygons(out)
    rows = loaded_polygons(pg)
    assert len(rows) == len(gdf) > 1000
    assert [x[0] for x in rows] == gdf.polygon_id.tolist() and [x[1] for x in rows] == gdf.class_id.tolist()
    assert [x[2] for x in rows] == gdf.class_name.tolist() and [x[3] for x in rows] == gdf.area_m2.tolist()
    assert np.allclose([np.nan if x[4] is None else x[4] for x in rows], gdf.mean_confidence, equal_nan=True)
    assert {x[6] for x in rows} == {32119}  # the input's CRS (NAD83 / North Carolina), not reprojected
    geoms = shapely.from_wkb([x[5] for x in rows])
    assert set(shapely.get_type_id(geoms)) == {6}
    assert all(g.equals_exact(shapely.MultiPolygon([f]) if f.geom_type == "Polygon" else f, 0)
               for g, f in zip(geoms, gdf.geometry))
    with open(out / "stats.csv") as f:
        stats = [(row["input"], int(row["class_id"]), row["class_name"], int(row["pixels"]), float(row["area_ha"]))
                 for row in csv.DictReader(f)]
    assert pg.rows("SELECT input, class_id, class_name, pixels, area_ha FROM {s}.class_areas ORDER BY class_id") == stats
    manifest = json.loads((out / "manifest.json").read_text())
    (run_id,) = run_ids(pg)
    assert manifest["sink"] == {"url": pg.url, "schema": pg.schema, "run_id": run_id}
    assert pg.rows("SELECT command, output, model FROM {s}.runs") == [("segment", str(out.resolve()),
                                                                       manifest["model"]["id"])]
    assert pg.value("SELECT count(DISTINCT run_id) FROM {s}.landcover_polygons") == 1
    assert f"{len(gdf)} landcover_polygons" in r.output and pg.schema in r.output


def test_a_rerun_replaces_the_rows_of_its_output_and_never_duplicates_them(pg, tmp_path):
    out = tmp_path / "out"
    assert segment(out, pg.url).exit_code == 0
    first = run_ids(pg)
    n = pg.value("SELECT count(*) FROM {s}.landcover_polygons")
    r = segment(out, pg.url)  # outputs exist, no --overwrite: refused before anything is loaded
    assert r.exit_code == 2 and "overwrite" in r.output
    assert run_ids(pg) == first and pg.value("SELECT count(*) FROM {s}.landcover_polygons") == n
    r = segment(out, pg.url, "--overwrite")
    assert r.exit_code == 0, r.output
    (second,) = run_ids(pg)
    assert [second] != first and json.loads((out / "manifest.json").read_text())["sink"]["run_id"] == second
    assert pg.rows("SELECT count(*), count(DISTINCT polygon_id), count(DISTINCT run_id) FROM {s}.landcover_polygons") \
        == [(n, n, 1)]
    assert pg.value("SELECT count(*) FROM {s}.class_areas") == 4
    other = tmp_path / "elsewhere"  # another output is another result: kept side by side
    assert segment(other, pg.url).exit_code == 0
    assert pg.value("SELECT count(*) FROM {s}.landcover_polygons") == 2 * n and len(run_ids(pg)) == 2


def test_a_load_that_fails_half_way_leaves_the_previous_rows_and_files(pg, tmp_path):
    out = tmp_path / "out"
    assert segment(out, pg.url).exit_code == 0
    before = pg.rows("SELECT fid, run_id, polygon_id FROM {s}.landcover_polygons ORDER BY fid")
    runs = pg.rows("SELECT * FROM {s}.runs")
    manifest = (out / "manifest.json").read_bytes()
    # the server fails the COPY at its 5001st row, like a full disk would
    pg.rows("CREATE SEQUENCE {s}.seen")
    pg.rows("CREATE FUNCTION {s}.fail_midway() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF nextval('{s}.seen') > 5000 THEN RAISE EXCEPTION 'no space left (test)'; END IF; RETURN NEW; END $$")
    pg.rows("CREATE TRIGGER fail_midway BEFORE INSERT ON {s}.landcover_polygons FOR EACH ROW "
            "EXECUTE FUNCTION {s}.fail_midway()")
    r = segment(out, pg.url, "--overwrite")
    assert r.exit_code == 2, r.output
    assert "nothing was loaded" in r.output and "no space left (test)" in r.output and pg.url in r.output
    assert pg.value("SELECT last_value FROM {s}.seen") == 5001  # it did fail in the middle of the polygons
    assert pg.rows("SELECT fid, run_id, polygon_id FROM {s}.landcover_polygons ORDER BY fid") == before
    assert pg.rows("SELECT * FROM {s}.runs") == runs
    assert (out / "manifest.json").read_bytes() == manifest  # nothing was published either
    assert not list(out.glob(".geoseg-staging-*"))


def test_a_connection_lost_in_the_middle_of_a_load_loads_nothing(pg, tmp_path):
    polygons = tmp_path / "labels.gpkg"
    n = vectorize_to_file(NC_LABELS, polygons)
    sink = Sink(pg.url)
    sink.prepare()
    with sink.load(RunInfo("segment", "/data/out")) as load:
        load.replace_output()
        load.copy_polygons("landcover_polygons", polygons, input="labels")
    assert load.report is not None and load.report.rows == {"landcover_polygons": n}
    before = pg.rows("SELECT fid, run_id FROM {s}.landcover_polygons ORDER BY fid")
    with pytest.raises(SinkError, match="nothing was loaded") as e:
        with sink.load(RunInfo("segment", "/data/out")) as load:
            load.replace_output()  # the earlier rows are deleted, the new ones copied: all uncommitted
            load.copy_polygons("landcover_polygons", polygons, input="labels")
            pg.rows("SELECT pg_terminate_backend(%s)", load.conn.info.backend_pid)
            load.insert("class_areas", [{"class_id": 0, "class_name": "other", "pixels": 1, "area_ha": 0.1,
                                         "percent": 100.0}], input="labels")
    assert pg.url in str(e.value)
    assert pg.rows("SELECT fid, run_id FROM {s}.landcover_polygons ORDER BY fid") == before


def test_a_bounding_box_query_uses_the_gist_index_and_selects_what_shapely_does(pg, tmp_path):
    out = tmp_path / "out"
    assert segment(out, pg.url).exit_code == 0
    gdf = published_polygons(out)
    x0, y0, x1, y1 = gdf.total_bounds
    box = (x0 + 0.4 * (x1 - x0), y0 + 0.4 * (y1 - y0), x0 + 0.5 * (x1 - x0), y0 + 0.5 * (y1 - y0))
    query = "SELECT polygon_id FROM {s}.landcover_polygons WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, 32119)"
    for analyzed in (False, True):  # right after the load, and once autovacuum (here: ANALYZE) has statistics
        if analyzed:
            pg.rows("ANALYZE {s}.landcover_polygons")
        (plan,) = pg.rows("EXPLAIN (FORMAT JSON) " + query, *box)[0]
        assert "landcover_polygons_geom_idx" in json.dumps(plan), plan
    got = sorted(r[0] for r in pg.rows(query, *box))
    hit = shapely.intersects(shapely.envelope(gdf.geometry.values), shapely.box(*box))
    assert got == sorted(gdf.polygon_id[hit]) and 0 < len(got) < len(gdf) / 4


@pytest.mark.skipif(not shutil.which("ogrinfo"), reason="GDAL's ogrinfo is not installed (apt-get install gdal-bin)")
def test_a_gis_client_opens_the_polygon_table_as_a_layer_in_its_crs(pg, tmp_path):
    """GDAL's PostgreSQL driver (QGIS reads PostGIS through the same catalogue) sees a MultiPolygon layer in EPSG:32119."""
    from psycopg.conninfo import conninfo_to_dict

    out = tmp_path / "out"
    assert segment(out, pg.url).exit_code == 0
    conn = " ".join(f"{k}={v}" for k, v in conninfo_to_dict(pg.base_url).items())
    info = subprocess.run(["ogrinfo", "-ro", "-so", f"PG:{conn} schemas={pg.schema}", "landcover_polygons"],
                          capture_output=True, text=True, check=True, timeout=60).stdout
    assert "Geometry: Multi Polygon" in info and f"Feature Count: {len(published_polygons(out))}" in info
    assert 'ID["EPSG",32119]' in info and "FID Column = fid" in info


def test_change_loads_its_polygons_transitions_and_statistics(pg, tmp_path):
    import geopandas as gpd

    b, a = write_pair(tmp_path, blobs(1, (120, 130)), blobs(2, (120, 130)))
    out = tmp_path / "change"
    args = ["change", b, a, "--output", str(out), "--mmu-ha", "0", "--min-confidence", "0", "--sink", pg.url]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    report = json.loads((out / "transitions.json").read_text())
    gdf = gpd.read_file(out / "change_polygons.gpkg", layer="change").sort_values("polygon_id", ignore_index=True)
    rows = pg.rows("SELECT polygon_id, from_class, to_class, change_type, area_ha, ST_SRID(geom) FROM "
                   "{s}.change_polygons ORDER BY polygon_id")
    assert len(rows) == len(gdf) == report["polygons"]["count"] > 50
    assert rows == [(*t, 32718) for t in gdf[["polygon_id", "from_class", "to_class", "change_type", "area_ha"]]
                    .itertuples(index=False, name=None)]
    with open(out / "transitions.csv") as f:
        table = [(t["from_class"], t["to_class"], int(t["pixels"]), float(t["area_ha"])) for t in csv.DictReader(f)]
    assert sorted(pg.rows("SELECT from_class, to_class, pixels, area_ha FROM {s}.transitions")) == sorted(table)
    ((changed, valid, polygons, types),) = pg.rows("SELECT changed_ha, valid_ha, polygons, change_types FROM {s}.change_stats")
    assert (changed, valid, polygons) == (report["changed"]["area_ha"], report["valid"]["area_ha"], len(gdf))
    assert types == {k: v["area_ha"] for k, v in report["change_types"].items()}
    assert CliRunner().invoke(main, [*args, "--overwrite"]).exit_code == 0  # rerun: replaced, not added
    assert pg.rows("SELECT count(*), count(DISTINCT run_id) FROM {s}.change_polygons") == [(len(gdf), 1)]
    assert pg.rows("SELECT count(*) FROM {s}.change_stats") == [(1,)]


# --------------------------------------------------------------------------- the monitor


@pytest.fixture
def monitor_config(tmp_path):
    """A monitor of two regions over two Pucallpa periods (96 px crops); returns ``(config path, root)`` per call."""
    from rasterio.windows import Window

    d = tmp_path / "imagery"
    d.mkdir()
    for year in ("1985", "2000"):
        crop_raster(PUCALLPA / f"landsat_{year}.tif", d / f"img_{year}.tif", Window(120, 70, 96, 96),
                    blockxsize=32, blockysize=32)

    def make(name: str, sink: str, root: Path | str | None = None) -> tuple[str, Path | str]:
        root = root or tmp_path / name
        cfg = tmp_path / f"{name}.yaml"
        regions = "".join(f"  - name: {r}\n    imagery: {d}/img_{{period}}.tif\n" for r in ("city", "farms"))
        cfg.write_text(f"output_root: {root}\nsink: '{sink}'\nregions:\n{regions}"
                       "guards:\n  min_confidence: 0\n  mmu_ha: 0.5\n"
                       f"segment:\n  model: {SPECTRAL_MODEL}\n  outputs:\n    polygons: true\n  runtime:\n    local: true\n")
        return str(cfg), root

    return make


def history_counts(pg) -> dict[str, tuple]:
    """Rows per table, and rows per distinct (region, period[, key]): equal when nothing is duplicated."""
    return {
        "items": pg.rows("SELECT count(*), count(DISTINCT (region, kind, period)) FROM {s}.monitor_items")[0],
        "areas": pg.rows("SELECT count(*), count(DISTINCT (region, period, class_id)) FROM {s}.class_areas")[0],
        "landcover": pg.rows("SELECT count(*), count(DISTINCT (region, period, polygon_id)) FROM {s}.landcover_polygons")[0],
        "changes": pg.rows("SELECT count(*), count(DISTINCT (region, period, polygon_id)) FROM {s}.change_polygons")[0],
        "stats": pg.rows("SELECT count(*), count(DISTINCT (region, period)) FROM {s}.change_stats")[0],
    }


@pytest.mark.slow
def test_two_monitor_runs_at_once_load_each_region_and_period_once(pg, monitor_config):
    configs = {name: monitor_config(name, pg.url) for name in ("a", "b")}  # same regions, two history stores
    procs = [subprocess.Popen([sys.executable, str(REPO / "jobs" / "monitor.py"), "--config", c, "-q"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c, _ in configs.values()]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    counts = history_counts(pg)
    assert counts["items"] == (6, 6) and counts["areas"] == (16, 16) and counts["stats"] == (2, 2)
    assert counts["landcover"][0] == counts["landcover"][1] > 0 and counts["changes"][0] == counts["changes"][1] > 0
    # what the sink holds of a region is one store's history, whole: the state of the run that loaded it last
    last = {}
    for region in ("city", "farms"):
        loaded = dict(pg.rows("SELECT kind || ' ' || period, processed FROM {s}.monitor_items WHERE region = %s", region))
        stamps = {name: {f"{k} {p}": e["processed"] for k in ("period", "change")
                         for p, e in HistoryStore(str(root)).region_state(region)[f"{k}s"].items()}
                  for name, (_, root) in configs.items()}
        (last[region],) = [name for name, st in stamps.items() if st == loaded]
    # rerunning the run that loaded a region loads nothing for it and rewrites nothing
    name = last["city"]
    fids = pg.rows("SELECT fid FROM {s}.change_polygons WHERE region = 'city' ORDER BY fid")
    r = CliRunner().invoke(main, ["monitor", "--config", configs[name][0]])
    assert r.exit_code == 0, r.output
    assert "loaded into the sink" not in r.output.split("region farms")[0]
    assert pg.rows("SELECT fid FROM {s}.change_polygons WHERE region = 'city' ORDER BY fid") == fids
    assert history_counts(pg) == counts  # and whatever it replaced of the other region, it replaced


def test_two_loads_of_one_region_at_once_load_it_once(pg, monitor_config):
    from geoseg.change.monitor import run_monitor
    from geoseg.config import MonitorConfig, load_yaml

    cfg_path, root = monitor_config("a", pg.url)
    cfg = load_yaml(cfg_path, MonitorConfig).model_copy(update={"sink": None})  # the history, without the sink
    assert all(r.error is None for r in run_monitor(cfg))
    sink = Sink(pg.url)
    sink.prepare()
    store = HistoryStore(str(root))
    start = threading.Barrier(2)
    results: list = [None, None]

    def load(i: int) -> None:
        start.wait()
        results[i] = load_region(sink, store, "city", RunInfo("monitor", str(root)))

    threads = [threading.Thread(target=load, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    want = ["period 1985", "period 2000", "change 1985 -> 2000"]
    assert sorted(results, key=len) == [[], want]  # one loaded it all, the other waited and found it loaded
    assert history_counts(pg)["items"] == (3, 3)


def test_a_monitor_load_that_fails_is_caught_up_by_the_next_run_without_model_work(pg, monitor_config, monkeypatch):
    import geoseg.segment.pipeline
    from geoseg.change.monitor import run_monitor
    from geoseg.config import MonitorConfig, load_yaml

    cfg_path, root = monitor_config("a", pg.url)
    cfg = load_yaml(cfg_path, MonitorConfig)
    Sink(pg.url).prepare()
    pg.rows("CREATE FUNCTION {s}.refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.region = 'farms' THEN RAISE EXCEPTION 'farms refused (test)'; END IF; RETURN NEW; END $$")
    pg.rows("CREATE TRIGGER refuse BEFORE INSERT ON {s}.change_polygons FOR EACH ROW EXECUTE FUNCTION {s}.refuse()")
    city, farms = run_monitor(cfg)
    assert city.error is None and city.loaded == ["period 1985", "period 2000", "change 1985 -> 2000"]
    assert "farms refused (test)" in farms.error and "next run" in farms.error and not farms.loaded
    assert pg.rows("SELECT DISTINCT region FROM {s}.monitor_items") == [("city",)]  # farms: nothing, not half
    assert pg.value("SELECT count(*) FROM {s}.class_areas WHERE region = 'farms'") == 0
    pg.rows("DROP TRIGGER refuse ON {s}.change_polygons")
    monkeypatch.setattr(geoseg.segment.pipeline, "segment", lambda *a, **k: pytest.fail("segment called"))
    city, farms = run_monitor(cfg)
    assert city.loaded == [] and farms.error is None and len(farms.loaded) == 3
    counts = history_counts(pg)
    assert counts["items"] == (6, 6) and counts["areas"] == (16, 16)


def test_results_on_s3_load_like_local_ones(pg, s3_bucket, monitor_config):
    from geoseg.change.monitor import run_monitor
    from geoseg.config import MonitorConfig, load_yaml
    from geoseg.io import storage

    out = f"{s3_bucket}/segment/"
    r = segment(out, pg.url)
    assert r.exit_code == 0, r.output
    assert pg.rows("SELECT command, output FROM {s}.runs") == [("segment", out.rstrip("/"))]
    published = storage.local_copy(f"{out}{STEM}_polygons.gpkg", suffix=".gpkg")
    import geopandas as gpd

    assert pg.value("SELECT count(*) FROM {s}.landcover_polygons") == len(gpd.read_file(published)) > 1000
    cfg_path, _ = monitor_config("s3", pg.url, f"{s3_bucket}/monitor")  # the history (and its GeoPackages) on S3
    results = run_monitor(load_yaml(cfg_path, MonitorConfig))
    assert [r.error for r in results] == [None, None] and all(len(r.loaded) == 3 for r in results)
    counts = history_counts(pg)
    assert counts["items"] == (6, 6) and counts["landcover"][0] > 0 and counts["changes"][0] > 0


# --------------------------------------------------------------------------- passwords, schema, privileges


def test_the_password_comes_from_libpq_and_is_never_written(pg, tmp_path, monkeypatch, caplog):
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(pg.base_url)
    pg.rows("CREATE EXTENSION IF NOT EXISTS postgis")  # an administrator did; this user may not
    role = f"pw_{pg.schema}"
    pg.rows(f"CREATE ROLE {role} LOGIN PASSWORD 'Sup3r-s3cret' IN ROLE password_users")
    pg.rows(f"GRANT CREATE ON DATABASE {params['dbname']} TO {role}")
    pg.rows(f"CREATE SCHEMA {{s}} AUTHORIZATION {role}")
    url = f"postgresql://{role}@{params['host']}:{params['port']}/{params['dbname']}?schema={pg.schema}"
    for var in ("PGPASSWORD", "PGPASSFILE", "PGSERVICEFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    with pytest.raises(SinkError, match="cannot connect"):  # no password anywhere: refused (the server checks it)
        Sink(url).prepare()
    monkeypatch.setenv("PGPASSWORD", "wrong")
    with pytest.raises(SinkError, match="password authentication failed"):
        Sink(url).prepare()
    monkeypatch.setenv("PGPASSWORD", "Sup3r-s3cret")
    assert Sink(url).prepare() == len(MIGRATIONS)
    monkeypatch.delenv("PGPASSWORD")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"{params['host']}:{params['port']}:*:{role}:Sup3r-s3cret\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    assert Sink(url).prepare() == len(MIGRATIONS)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    services = tmp_path / "pg_service.conf"
    services.write_text(f"[maps]\nhost={params['host']}\nport={params['port']}\ndbname={params['dbname']}\n"
                        f"user={role}\npassword=Sup3r-s3cret\n")
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    assert Sink(f"postgresql:///?service=maps&schema={pg.schema}").prepare() == len(MIGRATIONS)

    # a password written into the URL works, and ends up nowhere geoseg writes
    secret_url = url.replace(f"{role}@", f"{role}:Sup3r-s3cret@")
    out = tmp_path / "out"
    caplog.set_level("DEBUG")
    r = CliRunner().invoke(main, ["-v", "segment", str(NC_IMAGE), "--output", str(out), "--model", str(SPECTRAL_MODEL),
                                  "--local", "--sink", secret_url])
    assert r.exit_code == 0, r.output
    assert "Sup3r-s3cret" not in r.output + caplog.text and f"{role}:***@" in r.output
    assert "the URL carries a password" in caplog.text
    for f in out.iterdir():
        assert b"Sup3r-s3cret" not in f.read_bytes(), f
    assert json.loads((out / "manifest.json").read_text())["config"]["sink"] == secret_url.replace("Sup3r-s3cret", "***")
    assert "Sup3r-s3cret" not in json.dumps(pg.rows("SELECT config FROM {s}.runs"))
    bad = CliRunner().invoke(main, ["segment", str(NC_IMAGE), "--output", str(tmp_path / "o2"), "--local", "--sink",
                                    secret_url.replace(params["port"], "1")])
    assert bad.exit_code == 2 and "cannot connect" in bad.output and "Sup3r-s3cret" not in bad.output + caplog.text
    assert not (tmp_path / "o2").exists()  # refused before any work


def test_the_schema_is_created_once_versioned_and_migrated(pg):
    import psycopg

    sinks = [Sink(pg.url) for _ in range(3)]
    errors: list[BaseException] = []

    def prepare(s: Sink) -> None:
        try:
            s.prepare()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=prepare, args=(s,)) for s in sinks]  # first use by three runs at once
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and [s.version for s in sinks] == [len(MIGRATIONS)] * 3
    assert pg.rows("SELECT version FROM {s}.schema_version") == [(m.version,) for m in MIGRATIONS]
    tables = {r[0] for r in pg.rows("SELECT tablename FROM pg_tables WHERE schemaname = %s", pg.schema)}
    assert tables == {"schema_version", "runs", "landcover_polygons", "class_areas", "change_polygons", "transitions",
                      "change_stats", "monitor_items"}
    later = (*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "a note per run", "ALTER TABLE {s}.runs ADD COLUMN note text"))
    with psycopg.connect(pg.base_url, autocommit=True) as conn:
        assert migrate(conn, pg.schema, "test", later) == len(later)
        assert migrate(conn, pg.schema, "test", later) == len(later)  # applied once
    assert pg.value("SELECT count(*) FROM {s}.schema_version") == len(later)
    assert pg.value("SELECT count(*) FROM information_schema.columns WHERE table_schema = %s AND column_name = 'note'",
                    pg.schema) == 1
    with pytest.raises(SinkError, match="newer geoseg"):  # this geoseg does not write an unknown layout
        Sink(pg.url).prepare()


def test_a_database_without_postgis_and_a_user_who_may_not_add_it_gets_told_what_to_ask_for(pg):
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(pg.base_url)
    db, role = f"np_{pg.schema}", f"u_{pg.schema}"
    pg.rows(f"CREATE DATABASE {db}")
    pg.rows(f"CREATE ROLE {role} LOGIN")
    try:
        with pytest.raises(SinkError, match="CREATE EXTENSION postgis") as e:
            Sink(f"postgresql://{role}@{params['host']}:{params['port']}/{db}").prepare()
        assert db in str(e.value)
    finally:
        pg.rows(f"DROP DATABASE {db}")
        pg.rows(f"DROP ROLE {role}")


def test_a_monitor_period_of_several_acquisitions_loads_its_composites_areas(pg, tmp_path):
    """Period 2000 has three images (``img_{period}_*.tif``): the sink's class areas of that period are the
    pixel counts of the composite class map the history holds (counted here with numpy), 1985's those of its
    one image's map; both periods' land-cover polygons are loaded, the composite's being its map's regions."""
    import rasterio
    from rasterio.windows import Window

    d = tmp_path / "imagery"
    d.mkdir()
    for name, year, col in (("1985_a", "1985", 120), ("2000_a", "2000", 120), ("2000_b", "1985", 120),
                            ("2000_c", "2000", 120)):
        crop_raster(PUCALLPA / f"landsat_{year}.tif", d / f"img_{name}.tif", Window(col, 70, 96, 96),
                    blockxsize=32, blockysize=32)
    root = tmp_path / "root"
    cfg = tmp_path / "m.yaml"
    cfg.write_text(f"output_root: {root}\nsink: '{pg.url}'\nregions:\n  - name: city\n    imagery: {d}/img_{{period}}_*.tif\n"
                   "guards:\n  min_confidence: 0\n  mmu_ha: 0.5\n"
                   f"segment:\n  model: {SPECTRAL_MODEL}\n  outputs:\n    polygons: true\n  runtime:\n    local: true\n")
    r = CliRunner().invoke(main, ["monitor", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    store = HistoryStore(str(root))
    for period in ("1985", "2000"):
        classes = next(Path(store.period_dir("city", period)).glob("*_classes.tif"))
        with rasterio.open(classes) as s:
            counts = np.bincount(s.read(1).ravel(), minlength=256)
        rows = pg.rows("SELECT class_id, pixels FROM {s}.class_areas WHERE region = 'city' AND period = %s "
                       "ORDER BY class_id", period)
        assert rows and all(counts[cid] == n for cid, n in rows), (period, rows)
        assert sum(n for _, n in rows) == counts[:255].sum()
    assert classes.name == "2000_classes.tif" and (classes.parent / "2000_composite.json").is_file()
    polygons = dict(pg.rows("SELECT period, count(*) FROM {s}.landcover_polygons GROUP BY period"))
    assert polygons.get("1985", 0) > 0 and polygons.get("2000", 0) > 0
    # the composite's polygons cover exactly its mapped pixels, class by class (pixel area 30 m x 30 m)
    area = dict(pg.rows("SELECT class_id, sum(ST_Area(geom)) FROM {s}.landcover_polygons WHERE period = '2000' "
                        "GROUP BY class_id"))
    with rasterio.open(classes) as s:
        px = abs(s.transform.a * s.transform.e)
    assert {int(k): round(v / px) for k, v in area.items()} == {k: int(counts[k]) for k in range(255) if counts[k]}
    item = json.loads((root / "history/stac/city/2000.json").read_text())  # and the period's STAC Item lists them
    assert item["assets"]["polygons"]["href"] == "../../../regions/city/periods/2000/2000_polygons.gpkg"

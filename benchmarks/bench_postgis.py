"""Benchmark: loading polygons into PostGIS (geoseg.io.sink): polygons per second, end to end.

Polygon files like the ones ``geoseg segment`` writes (the vectorizer's GeoPackage) are loaded the
way a run loads them: ``Sink.load`` (one transaction) + ``Load.copy_polygons`` (GeoPackage ->
Arrow batches -> EWKB -> binary ``COPY`` into ``landcover_polygons`` with its GiST and run-id
indexes) + ``ANALYZE`` + commit. Sources:

* ``zion-kxk``: the bundled NLCD-derived Zion labels (512 x 512 px) repeated k x k in a VRT
  with a 1-px nodata gap (real land-cover shapes; ~4,660 polygons per copy);
* ``blocks-N``: an N x N map of random 3 x 3-px class blocks (many small polygons).

Per source, three loads: into an empty table (``first``), the same output again (``rerun``: the
earlier rows are deleted in the same transaction), and another output next to it (``beside``:
the indexes already hold the first load). Also ``client``: reading the file and encoding the
COPY rows with no database, the client's ceiling; and ``server``: the server alone loading the
same rows (``COPY ... FROM`` a file it reads itself, dumped from the table), the server's ceiling. The server is ``--dsn`` or a throwaway one
started with ``tests/pgserver.py`` (durable: ``fsync`` on, like a real database).

    python benchmarks/bench_postgis.py --zion 4 8 --blocks 600 --out benchmarks/results_postgis.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ZION_LABELS = REPO / "data" / "sample" / "zion_north_labels_4class_crop.tif"


def zion_mosaic(k: int, workdir: Path) -> Path:
    from benchmarks.bench_vectorize import build_gapped_mosaic

    return build_gapped_mosaic(ZION_LABELS, k, workdir / f"zion_{k}x{k}.vrt")


def random_blocks(n: int, workdir: Path) -> Path:
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    a = np.random.default_rng(0).integers(0, 4, (n, n)).astype("uint8").repeat(3, 0).repeat(3, 1)
    path = workdir / f"blocks_{n}.tif"
    with rasterio.open(path, "w", driver="GTiff", width=a.shape[1], height=a.shape[0], count=1, dtype="uint8",
                       crs="EPSG:32612", transform=from_origin(500000, 4000000, 30, 30), nodata=255, tiled=True) as d:
        d.write(a, 1)
        d.update_tags(class_names="other,forest,water,urban", acquired="2020-07-14")
    return path


def client_only(gpkg: Path) -> float:
    """Seconds to read ``gpkg`` and encode every COPY row as a load does (same column types), without a database."""
    from geoseg.io.sink.copy import (
        DATE,
        FLOAT8,
        INT2,
        INT8,
        TEXT,
        encode_column,
        encode_geometry,
        polygon_batches,
        rows,
    )

    types = {"polygon_id": INT8, "class_id": INT2, "acquired": DATE, "class_name": TEXT, "source": TEXT, "model": TEXT}
    t0 = time.perf_counter()
    with polygon_batches(gpkg, "landcover") as (geometry, srid, reader):
        for batch in reader:
            fields = [encode_column(batch.column(c), types.get(c, FLOAT8), c) for c in batch.schema.names if c != geometry]
            rows(b"\x00\x0b", [*fields, encode_geometry(batch.column(geometry), srid)])
    return time.perf_counter() - t0


def load(sink, gpkg: Path, output: str) -> tuple[float, float, int]:
    """``(load seconds, copy seconds, rows)`` of one run's load of ``gpkg`` into ``output``."""
    from geoseg.io.sink.postgis import RunInfo

    t0 = time.perf_counter()
    with sink.load(RunInfo("segment", output)) as ld:
        ld.replace_output()
        t1 = time.perf_counter()
        n = ld.copy_polygons("landcover_polygons", gpkg, "landcover", input=gpkg.stem)
        copy_s = time.perf_counter() - t1
    return time.perf_counter() - t0, copy_s, n


def server_only(url: str, schema: str, output: str) -> float | None:
    """Seconds the server takes to COPY the rows of ``output``'s run from a file it reads itself (in its data
    directory; rolled back); None where that is not allowed. Only run on the throwaway server."""
    import psycopg

    cols = ("run_id, region, period, input, polygon_id, class_id, class_name, area_m2, area_ha, perimeter_m, "
            "mean_confidence, source, model, acquired, geom")
    table = f'"{schema}".landcover_polygons'
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            path = conn.execute("SHOW data_directory").fetchone()[0] + "/bench.copy"
            run = conn.execute(f'SELECT run_id FROM "{schema}".runs WHERE output = %s', (output,)).fetchone()[0]
            conn.execute(f"COPY (SELECT {cols} FROM {table} WHERE run_id = '{run}') TO '{path}' (FORMAT BINARY)")
            with conn.transaction(force_rollback=True):
                t0 = time.perf_counter()
                conn.execute(f"COPY {table} ({cols}) FROM '{path}' (FORMAT BINARY)")
                seconds = time.perf_counter() - t0
            return seconds
    except psycopg.Error as exc:
        print(f"server-only COPY skipped: {exc}", file=sys.stderr)
        return None


def bench(url: str, sources: list[tuple[str, Path]], workdir: Path, own_server: bool) -> list[dict]:
    from geoseg.io.sink.postgis import Sink
    from geoseg.vector.polygons import vectorize_to_file

    rows = []
    for name, raster in sources:
        gpkg = workdir / f"{name}.gpkg"
        n = vectorize_to_file(raster, gpkg, overwrite=True)
        sink = Sink(f"{url}{'&' if '?' in url else '?'}schema=bench_{name.replace('-', '_')}")
        sink.prepare()
        row = {"source": name, "polygons": n, "gpkg_mb": round(gpkg.stat().st_size / 2**20, 1)}
        c = client_only(gpkg)
        row["client"] = {"seconds": round(c, 2), "polygons_per_s": round(n / c)}
        for case, output in (("first", "/bench/a"), ("rerun", "/bench/a"), ("beside", "/bench/b")):
            total, copy_s, loaded = load(sink, gpkg, output)
            assert loaded == n
            row[case] = {"seconds": round(total, 2), "copy_seconds": round(copy_s, 2), "polygons_per_s": round(n / total)}
        srv = server_only(url, sink.target.schema, "/bench/b") if own_server else None
        if srv:
            row["server"] = {"seconds": round(srv, 2), "polygons_per_s": round(n / srv)}
        rows.append(row)
        print(_fmt(row), flush=True)
    return rows


def _fmt(r: dict) -> str:
    cases = "  ".join(f"{k} {r[k]['polygons_per_s']:>7,}/s ({r[k]['seconds']:.2f} s)"
                      for k in ("client", "server", "first", "rerun", "beside") if k in r)
    return f"{r['source']:<12} {r['polygons']:>8,} polygons {r['gpkg_mb']:>6} MB  {cases}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", help="PostgreSQL + PostGIS URL (default: start a throwaway durable server)")
    ap.add_argument("--zion", type=int, nargs="*", default=[4, 8], help="k of the k x k Zion mosaics")
    ap.add_argument("--blocks", type=int, nargs="*", default=[600], help="N of the N x N random-block maps")
    ap.add_argument("--out", help="write the results here (JSON)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from tests import pgserver

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="geoseg-bench-pg-") as tmp:
        workdir = Path(tmp)
        server = None
        url = args.dsn
        if not url:
            reason = pgserver.unavailable()
            if reason:
                print(f"no server: {reason}", file=sys.stderr)
                return 1
            server = tempfile.mkdtemp(prefix="geoseg-bench-pgdata-")
            url = pgserver.start(server, durable=True)
        try:
            sources = [(f"zion-{k}x{k}", zion_mosaic(k, workdir)) for k in args.zion]
            sources += [(f"blocks-{n}", random_blocks(n, workdir)) for n in args.blocks]
            rows = bench(url, sources, workdir, own_server=server is not None)
        finally:
            if server:
                pgserver.stop(server)
    result = {"benchmark": "bench_postgis", "server": "throwaway, durable (fsync on)" if not args.dsn else "--dsn",
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "node": platform.node(),
                          "load_average_1_5_15min": {"start": [round(x, 2) for x in load_before],
                                                     "end": [round(x, 2) for x in os.getloadavg()]}},
              "results": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

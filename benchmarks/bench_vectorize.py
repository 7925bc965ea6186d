"""Benchmark: block-wise vectorization (geoseg.polygons) vs whole-array ``rasterio.features.shapes``.

Builds VRT mosaics that repeat a real class map k x k (the class map ``geoseg segment``
writes for the bundled Zion Landsat crop, or the bundled NLCD-derived labels, or any
class map given with --source), and runs every case in its own subprocess:

* ``whole-array``: read the whole map, ``geoseg.vectorize.polygons_from_array``
  (``shapes`` on the whole array, shapely geometries, areas): the existing path;
* ``blockwise``: ``geoseg.polygons.vectorize_blocks`` (batches consumed, nothing written);
* ``blockwise→gpkg``: ``vectorize_to_file`` streaming into a GeoPackage (with the
  confidence map when the source has one);
* with --extras, at the first size only: blockwise with an MMU and with simplification.

Reported per case: wall seconds, Mpx/s, polygons, polygons/s and peak RSS (the child's
``ru_maxrss``; a case whose RSS passes --mem-limit-gib is killed and reported as such).

    python benchmarks/bench_vectorize.py --sizes 8 32 --source segment --extras
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
NLCD = SAMPLE / "zion_north_labels_4class_crop.tif"
SCENE = SAMPLE / "zion_north_landsat8_2015_crop.tif"


def segment_source(workdir: Path) -> tuple[Path, Path | None]:
    """Class and confidence COGs of the bundled Zion crop, predicted by ``geoseg segment --local``."""
    out = workdir / "segment"
    cmd = [sys.executable, "-m", "geoseg.cli", "segment", str(SCENE), "--output", str(out), "--local"]
    subprocess.run(cmd, check=True, cwd=REPO, capture_output=True, text=True, timeout=600)
    classes = next(out.glob("*_classes.tif"))
    conf = next(out.glob("*_confidence.tif"), None)
    return classes, conf


def run_case(spec: dict) -> dict:
    """Child side: run one case, return its timing, polygon count and peak RSS."""
    import rasterio

    t0 = time.perf_counter()
    if spec["method"] == "whole-array":
        from geoseg.vectorize import class_names_from_raster, polygons_from_array

        with rasterio.open(spec["vrt"]) as src:
            classes = src.read(1)
            gdf = polygons_from_array(classes, src.transform, src.crs, class_names_from_raster(src))
        n = len(gdf)
    elif spec["method"] == "blockwise→gpkg":
        from geoseg.polygons import vectorize_to_file

        n = vectorize_to_file(spec["vrt"], spec["out"], block_size=spec["block_size"], confidence=spec.get("conf_vrt"),
                              overwrite=True)
    else:
        from geoseg.polygons import vectorize_blocks

        n = 0
        for batch in vectorize_blocks(spec["vrt"], block_size=spec["block_size"], mmu_m2=spec.get("mmu_m2", 0.0),
                                      simplify_m=spec.get("simplify_m", 0.0)):
            n += len(batch)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "polygons": n, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def spawn(spec: dict, mem_limit: int, timeout: float) -> dict:
    """Parent side: run one case in a fresh interpreter, killing it past ``mem_limit`` bytes of RSS."""
    proc = psutil.Popen([sys.executable, __file__, "--child", json.dumps(spec)], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True, cwd=REPO)
    t0, peak, killed = time.perf_counter(), 0, None
    while proc.poll() is None:
        try:
            peak = max(peak, proc.memory_info().rss)
        except psutil.Error:
            pass
        if peak > mem_limit:
            proc.kill()
            killed = f"killed: RSS > {mem_limit / 2**30:.0f} GiB"
        elif time.perf_counter() - t0 > timeout:
            proc.kill()
            killed = f"killed: > {timeout:.0f} s"
        time.sleep(0.1)
    out, err = proc.communicate()
    if killed:
        return {"error": killed, "peak_rss": peak}
    if proc.returncode != 0:
        return {"error": (err.strip().splitlines() or ["failed"])[-1][:120], "peak_rss": peak}
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[8], help="mosaic factors k (map is k*512 px square)")
    ap.add_argument("--source", default="segment", help="'segment' (predict the Zion crop), 'nlcd', or a class map")
    ap.add_argument("--block-size", type=int, default=1024)
    ap.add_argument("--methods", nargs="+", default=["whole-array", "blockwise", "blockwise→gpkg"])
    ap.add_argument("--extras", action="store_true", help="also MMU (0.5 ha) and simplification (30 m), first size only")
    ap.add_argument("--mem-limit-gib", type=float, default=16.0)
    ap.add_argument("--timeout", type=float, default=1800.0, help="per case, seconds")
    ap.add_argument("--out", type=Path, help="also write the results as JSON")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(run_case(json.loads(args.child))))
        return 0

    sys.path.insert(0, str(REPO))
    from benchmarks.bench_segment import build_mosaic

    work = Path(tempfile.mkdtemp(prefix="bench-vectorize-"))
    conf = None
    if args.source == "segment":
        try:
            source, conf = segment_source(work)
        except Exception as exc:  # no model / too slow: fall back to the bundled real labels
            print(f"geoseg segment failed ({exc}); using {NLCD.name}", file=sys.stderr)
            source = NLCD
    else:
        source = NLCD if args.source == "nlcd" else Path(args.source)
    import rasterio

    with rasterio.open(source) as src:
        side = src.width
    rows = []
    for i, k in enumerate(args.sizes):
        vrt = build_mosaic(source, k, work / f"classes_{k}.vrt")
        conf_vrt = build_mosaic(conf, k, work / f"conf_{k}.vrt") if conf else None
        cases = [dict(method=m) for m in args.methods]
        if args.extras and i == 0:
            cases += [dict(method="blockwise", mmu_m2=5000.0, label="blockwise mmu 0.5 ha"),
                      dict(method="blockwise", simplify_m=30.0, label="blockwise simplify 30 m")]
        for case in cases:
            spec = dict(case, vrt=str(vrt), block_size=args.block_size, out=str(work / f"out_{k}.gpkg"),
                        conf_vrt=str(conf_vrt) if conf_vrt else None)
            res = spawn(spec, int(args.mem_limit_gib * 2**30), args.timeout)
            mpx = (side * k) ** 2 / 1e6
            row = dict(size=f"{side * k}²", mpx=mpx, method=case.get("label", case["method"]), **res)
            rows.append(row)
            print(_fmt(row), file=sys.stderr, flush=True)
    _table(rows)
    if args.out:
        args.out.write_text(json.dumps({"source": str(source), "block_size": args.block_size, "rows": rows}, indent=2))
    return 0


def _fmt(r: dict) -> str:
    if "error" in r:
        return f"| {r['size']} | {r['method']} | – | – | – | – | {r['peak_rss'] / 2**20:,.0f}+ | {r['error']} |"
    return (f"| {r['size']} | {r['method']} | {r['wall_s']:.1f} | {r['mpx'] / r['wall_s']:.2f} | {r['polygons']:,} | "
            f"{r['polygons'] / r['wall_s']:,.0f} | {r['peak_rss'] / 2**20:,.0f} | |")


def _table(rows: list[dict]) -> None:
    print("| size | method | wall s | Mpx/s | polygons | polygons/s | peak RSS MiB | note |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(_fmt(r))
    by = {(r["size"], r["method"]): r for r in rows if "error" not in r}
    for size in dict.fromkeys(r["size"] for r in rows):
        w, b = by.get((size, "whole-array")), by.get((size, "blockwise"))
        if w and b:
            print(f"\n{size}: blockwise / whole-array: speed x{w['wall_s'] / b['wall_s']:.2f}, "
                  f"peak RSS x{b['peak_rss'] / w['peak_rss']:.2f}")


if __name__ == "__main__":
    sys.exit(main())

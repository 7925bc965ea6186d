"""Benchmark: block-wise vectorization (geoseg.vector.polygons) vs whole-array ``rasterio.features.shapes``.

Builds VRT mosaics that repeat a real class map k x k (the class map ``geoseg segment``
writes for the bundled Zion Landsat crop, or the bundled NLCD-derived labels, or any
class map given with --source), and runs every case in its own subprocess:

* ``whole-array``: read the whole map, ``geoseg.vector.reference.polygons_from_array``
  (``shapes`` on the whole array, shapely geometries, areas): the existing path;
* ``blockwise``: ``geoseg.vector.polygons.vectorize_blocks`` (batches consumed, nothing written);
* ``blockwise→gpkg``: ``vectorize_to_file`` streaming into a GeoPackage (with the
  confidence map when the source has one);
* with --extras, at the first size only: blockwise with an MMU and with simplification;
* with --gap, copies are separated by a 1-px nodata line, so no region spans copies (the
  plain mosaic joins the scene's largest region across all copies into one polygon
  that has to be held whole: that, not the scan, sets the plain mosaic's peak RSS).

Reported per case: wall seconds, Mpx/s, polygons, polygons/s and peak RSS (the child's
``ru_maxrss``; a case whose RSS passes --mem-limit-gib is killed and reported as such).
With --workers N, the blockwise cases run their per-block work in N worker processes
(``map_fn``: a bounded-look-ahead ProcessPool map); the peak RSS is then the driver's
plus N times the largest worker's (an upper bound of the total).

    python benchmarks/bench_vectorize.py --sizes 8 32 --source segment --extras
"""

from __future__ import annotations

import argparse
import contextlib
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


def build_gapped_mosaic(scene: Path, k: int, out: Path) -> Path:
    """Like ``build_mosaic`` but with a 1-pixel nodata line between copies, so no region spans copies.

    Shows the memory of the scan itself: with the plain mosaic, the largest region of
    the scene joins up across all k x k copies into one polygon that must be held whole.
    """
    import rasterio

    with rasterio.open(scene) as src:
        w, h, t, crs = src.width, src.height, src.transform, src.crs
    sources = "".join(
        f'<SimpleSource><SourceFilename relativeToVRT="0">{scene.resolve()}</SourceFilename><SourceBand>1</SourceBand>'
        f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
        f'<DstRect xOff="{j * (w + 1)}" yOff="{i * (h + 1)}" xSize="{w}" ySize="{h}"/></SimpleSource>'
        for i in range(k) for j in range(k)
    )
    gt = ", ".join(repr(v) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
    out.write_text(f'<VRTDataset rasterXSize="{k * (w + 1) - 1}" rasterYSize="{k * (h + 1) - 1}"><SRS>{crs.to_wkt()}'
                   f'</SRS><GeoTransform>{gt}</GeoTransform><VRTRasterBand dataType="Byte" band="1">'
                   f"<NoDataValue>255</NoDataValue>{sources}</VRTRasterBand></VRTDataset>")
    return out


def bounded_pool_map(func, items, workers=2, lookahead=4):
    """Ordered, lazy map over a ProcessPool with at most ``lookahead`` blocks in flight."""
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        q = deque()
        for it in items:
            q.append(pool.submit(func, it))
            if len(q) >= lookahead:
                yield q.popleft().result()
        while q:
            yield q.popleft().result()


def run_case(spec: dict) -> dict:
    """Child side: run one case, return its timing, polygon count and peak RSS."""
    import functools

    import rasterio

    from geoseg.vector.polygons import vectorize_blocks, vectorize_to_file
    from geoseg.vector.reference import class_names_from_raster, polygons_from_array

    workers = spec.get("workers", 0)
    map_fn = functools.partial(bounded_pool_map, workers=workers, lookahead=2 * workers) if workers else None
    t0 = time.perf_counter()
    if spec["method"] == "whole-array":
        with rasterio.open(spec["vrt"]) as src:
            classes = src.read(1)
            gdf = polygons_from_array(classes, src.transform, src.crs, class_names_from_raster(src))
        n = len(gdf)
    elif spec["method"] == "blockwise→gpkg":
        n = vectorize_to_file(spec["vrt"], spec["out"], block_size=spec["block_size"], confidence=spec.get("conf_vrt"),
                              overwrite=True, map_fn=map_fn)
    else:
        n = 0
        for batch in vectorize_blocks(spec["vrt"], block_size=spec["block_size"], mmu_m2=spec.get("mmu_m2", 0.0),
                                      simplify_m=spec.get("simplify_m", 0.0), map_fn=map_fn):
            n += len(batch)
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    worker_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 if workers else 0
    return {"wall_s": wall, "polygons": n, "peak_rss": rss + workers * worker_rss, "driver_rss": rss,
            "worker_rss": worker_rss}


def spawn(spec: dict, mem_limit: int, timeout: float) -> dict:
    """Parent side: run one case in a fresh interpreter, killing it past ``mem_limit`` bytes of RSS."""
    proc = psutil.Popen([sys.executable, __file__, "--child", json.dumps(spec)], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True, cwd=REPO)
    t0, peak, killed = time.perf_counter(), 0, None
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, proc.memory_info().rss)
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
    ap.add_argument("--gap", action="store_true", help="1-px nodata line between copies (no region spans copies)")
    ap.add_argument("--workers", type=int, default=0,
                    help="run the blockwise cases' per-block work in N processes (0: sequential)")
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
        except (subprocess.SubprocessError, StopIteration, OSError) as exc:  # fall back to the bundled real labels
            print(f"geoseg segment failed ({exc}); using {NLCD.name}", file=sys.stderr)
            source = NLCD
    else:
        source = NLCD if args.source == "nlcd" else Path(args.source)
    import rasterio

    with rasterio.open(source) as src:
        side = src.width
    rows = []
    for i, k in enumerate(args.sizes):
        if args.gap:
            vrt, conf_vrt = build_gapped_mosaic(source, k, work / f"classes_{k}.vrt"), None
        else:
            vrt = build_mosaic(source, k, work / f"classes_{k}.vrt")
            conf_vrt = build_mosaic(conf, k, work / f"conf_{k}.vrt") if conf else None
        cases = [{"method": m} for m in args.methods]
        if args.workers:
            cases = [dict(c, workers=args.workers, label=f"{c['method']} ×{args.workers} workers")
                     if c["method"] != "whole-array" else c for c in cases]
        if args.extras and i == 0:
            cases += [{"method": "blockwise", "mmu_m2": 5000.0, "label": "blockwise mmu 0.5 ha"},
                      {"method": "blockwise", "simplify_m": 30.0, "label": "blockwise simplify 30 m"}]
            if args.workers:
                cases[-2:] = [dict(c, workers=args.workers, label=f"{c['label']} ×{args.workers} workers")
                              for c in cases[-2:]]
        for case in cases:
            spec = dict(case, vrt=str(vrt), block_size=args.block_size, out=str(work / f"out_{k}.gpkg"),
                        conf_vrt=str(conf_vrt) if conf_vrt else None)
            res = spawn(spec, int(args.mem_limit_gib * 2**30), args.timeout)
            mpx = (side * k + (k - 1 if args.gap else 0)) ** 2 / 1e6
            row = dict(size=f"{side * k}²" + (" (gaps)" if args.gap else ""), mpx=mpx, method=case.get("label", case["method"]), **res)
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

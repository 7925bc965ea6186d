"""Benchmark: `geoseg segment` end to end vs an in-process model loop over the same tiles.

Builds VRT mosaics of a real scene (k x k copies of the bundled Zion crop, or of any
raster given with --scene), runs the real CLI on each (local Ray, default model), and
reports in one run:

* end-to-end Mpx/s (whole command, Ray start included) and tile-stage Mpx/s;
* the same tiles through an in-process model loop (no Ray, no I/O: tiles pre-read and
  normalised in memory, all cores to the engine `segment` uses, ONNX Runtime on CPU; and PyTorch fp32
  channels_last for reference), Mpx/s;
* their ratio, the share of the wall time spent after the last tile (COGs, quicklooks, the polygons
  still to write), and peak RSS summed over every process of the run (driver, raylet, actors).

    python benchmarks/bench_segment.py --sizes 2 4 --out benchmarks/results.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import rasterio

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SCENE = REPO / "data" / "sample" / "zion_north_landsat8_2015_crop.tif"


def build_mosaic(scene: Path, k: int, out: Path, gap: int = 0) -> Path:
    """A VRT that tiles ``scene`` k x k times edge to edge (same pixels, shifted georeferencing); ``gap``: lines
    of nodata between the copies (the scene must have a nodata value), so that no region spans two copies."""
    with rasterio.open(scene) as src:
        w, h, t, crs = src.width, src.height, src.transform, src.crs
        if gap and src.nodata is None:
            raise SystemExit(f"{scene}: --gap needs a scene with a nodata value")
        dtype = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "float32": "Float32"}[src.dtypes[0]]
        bands = []
        for b in range(1, src.count + 1):
            sources = "".join(
                f'<SimpleSource><SourceFilename relativeToVRT="0">{scene.resolve()}</SourceFilename>'
                f"<SourceBand>{b}</SourceBand>"
                f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
                f'<DstRect xOff="{j * (w + gap)}" yOff="{i * (h + gap)}" xSize="{w}" ySize="{h}"/></SimpleSource>'
                for i in range(k) for j in range(k)
            )
            nd = f"<NoDataValue>{src.nodata}</NoDataValue>" if src.nodata is not None else ""
            bands.append(f'<VRTRasterBand dataType="{dtype}" band="{b}"><Description>{src.descriptions[b - 1]}</Description>'
                         f"{nd}{sources}</VRTRasterBand>")
    gt = ", ".join(repr(v) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
    out.write_text(f'<VRTDataset rasterXSize="{(w + gap) * k - gap}" rasterYSize="{(h + gap) * k - gap}"><SRS>{crs.to_wkt()}</SRS>'
                   f"<GeoTransform>{gt}</GeoTransform>{''.join(bands)}</VRTDataset>")
    return out


def run_with_peak_rss(cmd: list[str], env: dict) -> tuple[float, int, subprocess.CompletedProcess]:
    """Run ``cmd``; return wall seconds, peak RSS (bytes) over its whole process tree, result."""
    proc = psutil.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    peak = 0
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            try:
                procs = [proc, *proc.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.1)

    th = threading.Thread(target=sample, daemon=True)
    t0 = time.perf_counter()
    th.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    return wall, peak, subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def model_loop(vrt: Path, tile_size: int, halo: int, batch: int, threads: int, engine: str = "torch") -> dict:
    """The same tiles through the model in this process: reads and normalisation excluded from the timing.
    ``engine``: ``torch`` (fp32, channels_last) or ``auto`` (what `segment` picks: ONNX Runtime on CPU)."""
    from geoseg.io.raster import RasterInfo, read_window, resolve_bands
    from geoseg.model.checkpoint import checkpoint_payload, load_checkpoint
    from geoseg.model.engines import prepare_payload
    from geoseg.model.normalization import apply, scene_stats
    from geoseg.model.predict import Predictor
    from geoseg.tiling import TileGrid

    ck = load_checkpoint(None)
    pr = Predictor.from_payload(prepare_payload(checkpoint_payload(ck), engine, "cpu"), "cpu", threads)
    with rasterio.open(vrt) as src:
        info = RasterInfo.from_dataset(str(vrt), src)
        idx = resolve_bands(info, ck.card.bands)
        stats = scene_stats(src, idx, ck.card.normalization)
        grid = TileGrid(info.grid.width, info.grid.height, tile_size, halo)
        tiles = list(grid)
        # the model sees every tile once; to keep memory small we time batches as they are read
        pr.classify(np.zeros((1, len(idx), tile_size, tile_size), np.float32))  # warm-up
        seconds = 0.0
        for k in range(0, len(tiles), batch):
            arrs = [apply(read_window(src, idx, t.read)[0], stats, ck.card.normalization) for t in tiles[k : k + batch]]
            x = np.stack(arrs)
            t0 = time.perf_counter()
            pr.classify(x)
            seconds += time.perf_counter() - t0
    px = info.grid.width * info.grid.height
    return {"tiles": len(tiles), "seconds": seconds, "mpx_s": px / seconds / 1e6}


def agreement(tile_sizes: list[tuple[int, int]]) -> list[dict]:
    """Tiled vs single-pass class agreement on the bundled scenes (cropped to multiples of 32 px,
    so that the single pass needs no padding)."""
    import tempfile

    from rasterio.windows import Window

    from geoseg.config import SegmentConfig
    from geoseg.io.raster import RasterInfo, read_window, resolve_bands
    from geoseg.model.checkpoint import load_checkpoint
    from geoseg.model.normalization import apply, scene_stats
    from geoseg.model.predict import Predictor
    from geoseg.segment.pipeline import segment

    ck = load_checkpoint(None)
    pr = Predictor.from_checkpoint(ck, "cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("nc_raleigh_landsat7_2000.tif", "zion_north_landsat8_2015_crop.tif"):
            crop = Path(tmp) / name
            with rasterio.open(REPO / "data" / "sample" / name) as src:
                w = Window(0, 0, src.width // 32 * 32, src.height // 32 * 32)
                with rasterio.open(crop, "w", **{**src.profile, "width": w.width, "height": w.height,
                                                  "transform": src.window_transform(w)}) as dst:
                    dst.write(src.read(window=w))
                    dst.descriptions = src.descriptions
            with rasterio.open(crop) as src:
                info = RasterInfo.from_dataset(str(crop), src)
                idx = resolve_bands(info, ck.card.bands)
                data, valid = read_window(src, idx, info.grid.box)
                x = apply(data, scene_stats(src, idx, ck.card.normalization), ck.card.normalization)
            ref = np.where(valid, pr.classify(x[None])[0][0], 255)
            for ts, halo in tile_sizes:
                out = Path(tmp) / f"{crop.stem}_{ts}_{halo}"
                segment(SegmentConfig(inputs=[str(crop)], output=str(out), tile_size=ts, halo=halo, device="cpu",
                                      runtime={"local": True}, outputs={"polygons": False, "confidence": False}),
                        progress=False)
                with rasterio.open(out / f"{crop.stem}_classes.tif") as c:
                    tiled = c.read(1)
                v = ref != 255
                rows.append({"scene": name, "size": f"{info.grid.width}x{info.grid.height}", "tile_size": ts, "halo": halo,
                             "agreement": round(float((tiled[v] == ref[v]).mean()), 5)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scene", type=Path, default=DEFAULT_SCENE)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2, 4], help="mosaic factors k (k x k copies)")
    ap.add_argument("--tile-size", type=int, default=512)
    ap.add_argument("--halo", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--no-polygons", action="store_true", help="skip the polygon output (whole-map vectorization)")
    ap.add_argument("--gap", type=int, default=0, help="nodata lines between the copies (no region spans two copies)")
    ap.add_argument("--ray", action="store_true", help="run on a local Ray (runtime.local: false) at every size")
    ap.add_argument("--vectorize-block", type=int, help="outputs.vectorize_block (block-row height of the polygons)")
    ap.add_argument("--no-agreement", action="store_true", help="skip the tiled-vs-single-pass agreement check")
    ap.add_argument("--work", type=Path, default=Path("/tmp/geoseg-bench"))
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    agree = [] if args.no_agreement else agreement([(128, 32), (256, 32), (256, 48)])
    for a in agree:
        print(json.dumps(a), flush=True)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": ""}
    rows = []
    for k in args.sizes:
        vrt = build_mosaic(args.scene, k, args.work / f"mosaic_{k}x{k}{'_gap' if args.gap else ''}.vrt", args.gap)
        with rasterio.open(vrt) as src:
            px = src.width * src.height
            size = f"{src.width}x{src.height}"
        loop = model_loop(vrt, args.tile_size, args.halo, args.batch_size, threads=os.cpu_count() or 1, engine="auto")
        torch_loop = model_loop(vrt, args.tile_size, args.halo, args.batch_size, threads=os.cpu_count() or 1)
        cmd = [sys.executable, "-m", "geoseg.cli", "-q", "segment", str(vrt), "--output", str(args.work / f"out_{k}"),
               "--overwrite", "--tile-size", str(args.tile_size), "--halo", str(args.halo),
               "--batch-size", str(args.batch_size)]
        outputs = {**({"polygons": False} if args.no_polygons else {}),
                   **({"vectorize_block": args.vectorize_block} if args.vectorize_block else {})}
        if outputs or args.ray:
            cfg = args.work / "bench.yaml"
            cfg.write_text(json.dumps({**({"outputs": outputs} if outputs else {}),
                                       **({"runtime": {"local": False}} if args.ray else {})}))  # YAML reads JSON
            cmd += ["--config", str(cfg)]
        wall, peak, res = run_with_peak_rss(cmd, env)
        if res.returncode != 0:
            sys.exit(f"segment failed:\n{res.stderr[-3000:]}")
        m = json.loads((args.work / f"out_{k}" / "manifest.json").read_text())
        tiles_s = m["timings_s"]["tiles"]
        row = {
            "mosaic": f"{k}x{k}", "pixels": size, "mpx": round(px / 1e6, 2), "tiles": m["tiles"]["processed"],
            "e2e_s": round(wall, 1), "e2e_mpx_s": round(px / wall / 1e6, 3),
            "tile_stage_mpx_s": round(px / tiles_s / 1e6, 3),
            "model_loop_mpx_s": round(loop["mpx_s"], 3), "model_loop_engine": "onnxruntime",
            "torch_loop_mpx_s": round(torch_loop["mpx_s"], 3),
            "ratio_e2e_over_torch_loop": round(px / wall / 1e6 / torch_loop["mpx_s"], 3),
            "ratio_e2e_over_loop": round(px / wall / 1e6 / loop["mpx_s"], 3),
            "ratio_tile_stage_over_loop": round(px / tiles_s / 1e6 / loop["mpx_s"], 3),
            "after_tiles_share": round(m["timings_s"].get("after_tiles", 0.0) / wall, 3),
            "peak_rss_mib": round(peak / 2**20), "timings_s": m["timings_s"], "runtime": m["runtime"],
        }
        rows.append(row)
        print(json.dumps({k2: v for k2, v in row.items() if k2 != "timings_s"}), flush=True)
    result = {"agreement": agree, "polygons": not args.no_polygons, "vectorize_block": args.vectorize_block, "ray": args.ray, "gap": args.gap, "machine": {"cpus": os.cpu_count(), "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
                          "cpu": _cpu_name()}, "tile_size": args.tile_size, "halo": args.halo, "rows": rows}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n| scene | tile size | halo | tiled = single pass |")
    print("|---|---|---|---|")
    for a in agree:
        print(f"| {a['scene']} ({a['size']}) | {a['tile_size']} | {a['halo']} | {a['agreement']:.2%} |")
    print("\n| mosaic | Mpx | e2e Mpx/s | tile stage Mpx/s | model loop Mpx/s | e2e/loop | stage/loop | after last tile "
          "| peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mosaic']} ({r['pixels']}) | {r['mpx']} | {r['e2e_mpx_s']} | {r['tile_stage_mpx_s']} | "
              f"{r['model_loop_mpx_s']} | {r['ratio_e2e_over_loop']} | {r['ratio_tile_stage_over_loop']} | "
              f"{r['after_tiles_share']:.0%} | {r['peak_rss_mib']} |")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()

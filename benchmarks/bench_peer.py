"""Benchmark: `geoseg segment` side by side with the hand-written rasterio + torch loop.

The peer is ``../shared/bench/handwritten_peer.py`` (``--peer``): one process, tiles read
with rasterio, batches through a resnet18 U-Net in PyTorch, the class map written as a tiled
DEFLATE GeoTIFF. The comparison follows its README, in one run on one machine:

* same model and weights: the peer writes its weights (``--save-weights``), wrapped here in
  a geoseg checkpoint (arch ``unet``, encoder ``resnet18``, bands green, red, nir);
* same geometry: the peer's ``--tile 512 --overlap 64`` is geoseg's ``--tile-size 512 --halo 32``;
* same input: k x k mosaics of the Zion scene written as tiled DEFLATE GeoTIFFs
  (k = 1: 1.1 Mpx; k = 4: 4512 x 4000 = 18 Mpx);
* same work: geoseg writes no polygons and no confidence map (the peer writes only the class
  map); whole-process wall time, imports and start-up included; peak RSS of the process tree;
* runs alternate (peer, geoseg, peer, geoseg, ...); the median of ``--repeat`` runs is reported,
  with the ratio peer seconds / geoseg seconds.

    python benchmarks/bench_peer.py --sizes 1 4 --repeat 3 --out benchmarks/results_peer.json
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))  # `python benchmarks/<script>.py` finds `benchmarks`

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import rasterio

from benchmarks.bench_segment import REPO, build_mosaic, run_with_peak_rss

SHARED = REPO.parent / "shared"
ZION = SHARED / "data" / "zion_north" / "landsat8_2015.tif"
PEER = SHARED / "bench" / "handwritten_peer.py"


def write_mosaic(scene: Path, k: int, out: Path) -> Path:
    """``k x k`` copies of ``scene`` as a tiled DEFLATE GeoTIFF (band descriptions kept)."""
    vrt = build_mosaic(scene, k, out.with_suffix(".vrt"))
    with rasterio.open(vrt) as src:
        profile = {**src.profile, "driver": "GTiff", "tiled": True, "blockxsize": 256, "blockysize": 256,
                   "compress": "deflate"}
        with rasterio.open(out, "w", **profile) as dst:
            for _, window in src.block_windows(1):
                dst.write(src.read(window=window), window=window)
            dst.descriptions = src.descriptions
    return out


def peer_checkpoint(work: Path, scene: Path) -> Path:
    """The peer's weights (``--save-weights``) wrapped in a geoseg checkpoint."""
    from safetensors.torch import load_file

    from geoseg.config import ClassInfo
    from geoseg.model.checkpoint import ModelCard, save_checkpoint

    weights, ckpt = work / "peer_weights.safetensors", work / "peer_ckpt"
    if (ckpt / "model.json").exists():  # kept between runs: the same bytes keep the ONNX export cached
        return ckpt
    if not weights.exists():
        run_with_peak_rss([sys.executable, str(PEER), str(scene), str(work / "peer_warmup.tif"), "--save-weights",
                           str(weights)], dict(os.environ))
    card = ModelCard(name="handwritten-peer-resnet18", arch="unet", encoder="resnet18", bands=["green", "red", "nir"],
                     classes=[ClassInfo(id=i, name=n, color=c) for i, (n, c) in
                              enumerate([("other", "#e3d9a6"), ("forest", "#1b7837"), ("water", "#2166ac"),
                                         ("urban", "#d6301d")])],
                     tile_size=512, halo=32)
    return save_checkpoint(ckpt, card, load_file(str(weights))).path


def run_peer(src: Path, out: Path, threads: int) -> dict:
    wall, peak, res = run_with_peak_rss([sys.executable, str(PEER), str(src), str(out), "--tile", "512",
                                         "--overlap", "64", "--batch", "4", "--threads", str(threads)], dict(os.environ))
    if res.returncode != 0:
        sys.exit(f"peer failed:\n{res.stderr[-3000:]}")
    return {"seconds": wall, "peak_rss_mib": peak / 2**20, "model_seconds": json.loads(res.stdout.strip().splitlines()[-1])["model_seconds"]}


def run_geoseg(src: Path, out: Path, ckpt: Path, cfg: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "geoseg.cli", "-q", "segment", str(src), "--output", str(out), "--overwrite",
           "--model", str(ckpt), "--tile-size", "512", "--halo", "32", "--batch-size", "4", "--config", str(cfg), *extra]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": ""}
    wall, peak, res = run_with_peak_rss(cmd, env)
    if res.returncode != 0:
        sys.exit(f"geoseg failed:\n{res.stderr[-3000:]}")
    m = json.loads((out / "manifest.json").read_text())
    return {"seconds": wall, "peak_rss_mib": peak / 2**20, "runtime": m["runtime"], "timings": m["timings_s"]}


def agreement(a: Path, b: Path) -> float:
    with rasterio.open(a) as x, rasterio.open(b) as y:
        p, q = x.read(1), y.read(1)
    return float((p == q).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 4], help="mosaic factors k of the Zion scene")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="the peer's torch threads")
    ap.add_argument("--geoseg-args", default="", help="extra `geoseg segment` flags, e.g. '--engine torch'")
    ap.add_argument("--work", type=Path, default=Path("/tmp/geoseg-bench-peer"))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if not PEER.exists() or not ZION.exists():
        sys.exit(f"needs {PEER} and {ZION}")
    args.work.mkdir(parents=True, exist_ok=True)
    cfg = args.work / "peer_work.yaml"
    cfg.write_text("outputs:\n  polygons: false\n  confidence: false\n")
    ckpt = peer_checkpoint(args.work, ZION)
    # the one-time ONNX export (cached per model, see geoseg.model.engines) is not part of the comparison
    run_geoseg(ZION, args.work / "geoseg_warmup", ckpt, cfg, args.geoseg_args.split())
    rows = []
    for k in args.sizes:
        src = args.work / f"zion_{k}x{k}.tif"
        if not src.exists():
            write_mosaic(ZION, k, src)
        with rasterio.open(src) as s:
            mpx = s.width * s.height / 1e6
        peer, ours = [], []
        for _ in range(args.repeat):
            peer.append(run_peer(src, args.work / f"peer_{k}.tif", args.threads))
            ours.append(run_geoseg(src, args.work / f"geoseg_{k}", ckpt, cfg, args.geoseg_args.split()))
        ps = statistics.median(r["seconds"] for r in peer)
        gs = statistics.median(r["seconds"] for r in ours)
        row = {"mosaic": f"{k}x{k}", "mpx": round(mpx, 2), "peer_s": round(ps, 1), "geoseg_s": round(gs, 1),
               "speedup": round(ps / gs, 2),
               "peer_runs_s": [round(r["seconds"], 1) for r in peer], "geoseg_runs_s": [round(r["seconds"], 1) for r in ours],
               "peer_model_s": statistics.median(r["model_seconds"] for r in peer),
               "peer_peak_rss_mib": round(max(r["peak_rss_mib"] for r in peer)),
               "geoseg_peak_rss_mib": round(max(r["peak_rss_mib"] for r in ours)),
               "geoseg_runtime": ours[-1]["runtime"],
               "geoseg_timings_s": ours[-1]["timings"]}
        print(json.dumps(row), flush=True)
        rows.append(row)
    result = {"machine": f"{os.cpu_count()} CPUs", "peer": str(PEER), "rows": rows, "numpy": np.__version__}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

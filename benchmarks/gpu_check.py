"""GPU check, one script for a lent GPU machine (no Ray there): run with `python benchmarks/gpu_check.py`.

Reports, for the bundled default model:
1. AMP (fp16 autocast) on CUDA vs fp32 on CPU: class agreement of single passes on the sample scenes;
2. the in-process model loop on CUDA (no I/O), Mpx/s, per batch size;
3. `segment` end to end in-process on CUDA (windowed reads, stitching, COGs; no Ray, no polygons)
   on VRT mosaics of the Zion crop, Mpx/s, and tiled-vs-CPU agreement on the smallest mosaic.
Writes everything as JSON to $OUT/gpu_check.json when OUT is set.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench_segment import build_mosaic
from geoseg.config import SegmentConfig
from geoseg.io.raster import RasterInfo, read_window, resolve_bands
from geoseg.model.checkpoint import load_checkpoint
from geoseg.model.normalization import apply, scene_stats
from geoseg.model.predict import Predictor
from geoseg.segment.pipeline import segment

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"


def main() -> None:
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "geoseg-gpu"
    work.mkdir(parents=True, exist_ok=True)
    res: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda}
    print(res, flush=True)
    ck = load_checkpoint(None)
    cpu = Predictor.from_checkpoint(ck, "cpu", threads=os.cpu_count())
    gpu = Predictor.from_checkpoint(ck, "cuda")

    # 1. AMP vs fp32 single pass
    res["amp_vs_fp32"] = {}
    for name in ("zion_north_landsat8_2015_crop.tif", "nc_raleigh_landsat7_2000.tif"):
        with rasterio.open(SAMPLE / name) as src:
            info = RasterInfo.from_dataset(name, src)
            idx = resolve_bands(info, ck.card.bands)
            x = apply(read_window(src, idx, info.grid.box)[0], scene_stats(src, idx, ck.card.normalization), ck.card.normalization)
        a, _ = cpu.classify(x[None])
        b, _ = gpu.classify(x[None])
        res["amp_vs_fp32"][name] = float((a == b).mean())
    print("AMP vs fp32 agreement:", res["amp_vs_fp32"], flush=True)

    # 2. model loop on CUDA
    res["model_loop"] = {}
    for bs in (8, 16, 32):
        x = np.random.default_rng(0).normal(size=(bs, 3, 512, 512)).astype(np.float32)
        gpu.classify(x)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        n = 10
        for _ in range(n):
            gpu.classify(x)
        torch.cuda.synchronize()
        mpx = n * bs * 512 * 512 / (time.perf_counter() - t0) / 1e6
        res["model_loop"][bs] = round(mpx, 1)
        print(f"model loop batch {bs}: {mpx:.1f} Mpx/s (incl. host->device copy and softmax/argmax back)", flush=True)

    # 3. segment end to end, in-process on CUDA
    res["segment"] = []
    for k in (4, 16):
        vrt = build_mosaic(SAMPLE / "zion_north_landsat8_2015_crop.tif", k, work / f"m{k}.vrt")
        with rasterio.open(vrt) as s:
            px = s.width * s.height
        out = work / f"out_gpu_{k}"
        cfg = SegmentConfig(inputs=[str(vrt)], output=str(out), device="cuda", batch_size=16, overwrite=True,
                            runtime={"local": True, "tiles_per_task": 16}, outputs={"polygons": False})
        t0 = time.perf_counter()
        m = segment(cfg, progress=False).manifest
        wall = time.perf_counter() - t0
        row = {"mosaic": f"{k}x{k}", "mpx": round(px / 1e6, 1), "wall_s": round(wall, 2),
               "e2e_mpx_s": round(px / wall / 1e6, 2), "tile_stage_mpx_s": round(px / m["timings_s"]["tiles"] / 1e6, 2),
               "timings_s": m["timings_s"]}
        if k == 4:
            cpu_out = work / "out_cpu_4"
            segment(SegmentConfig(inputs=[str(vrt)], output=str(cpu_out), device="cpu", overwrite=True,
                                  runtime={"local": True, "threads_per_worker": os.cpu_count()},
                                  outputs={"polygons": False, "confidence": False}), progress=False)
            with rasterio.open(out / f"m{k}_classes.tif") as g, rasterio.open(cpu_out / f"m{k}_classes.tif") as c:
                gg, cc = g.read(1), c.read(1)
            v = cc != 255
            row["tiled_gpu_vs_cpu_agreement"] = float((gg[v] == cc[v]).mean())
        res["segment"].append(row)
        print({k2: v for k2, v in row.items() if k2 != "timings_s"}, flush=True)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

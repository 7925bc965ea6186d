"""GPU check, one script for a lent GPU machine (no Ray there): run with `python benchmarks/gpu_check.py`.

Reports, for the bundled default model:
1. AMP (fp16 autocast) on CUDA vs fp32 on CPU: class agreement of single passes on the sample scenes;
2. the in-process model loop on CUDA (no I/O), Mpx/s, per batch size;
3. `segment` end to end in-process on CUDA (windowed reads, stitching, COGs; no Ray, no polygons)
   on VRT mosaics of the Zion crop, Mpx/s, and tiled-vs-CPU agreement on the smallest mosaic;
4. the GPU's busy share (``nvidia-smi`` utilization sampled every 200 ms) during each `segment` run and
   during the model loop, for the bundled model and for a resnet34 U-Net (random weights: speed only).
Writes everything as JSON to $OUT/gpu_check.json when OUT is set. Meant to take under 5 minutes (not yet
timed in this form: no GPU was lent since it gained parts 4 and the resnet34).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
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


class BusySampler:
    """GPU utilization (%) sampled by ``nvidia-smi`` every 200 ms while the ``with`` block runs; ``mean`` is None
    where nvidia-smi is missing."""

    def __init__(self):
        self.samples: list[float] = []
        self._stop = threading.Event()

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                      "-i", "0"], capture_output=True, text=True, timeout=5).stdout
                self.samples.append(float(out.strip().splitlines()[0]))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return
            self._stop.wait(0.2)

    @property
    def mean(self) -> float | None:
        return round(sum(self.samples) / len(self.samples), 1) if self.samples else None


def resnet34_checkpoint(work: Path):
    """A resnet34 U-Net (depth 5, random weights) with the bundled model's bands, classes and normalisation."""
    from geoseg.model.checkpoint import build_network, save_checkpoint

    base = load_checkpoint(None).card
    card = base.model_copy(update={"name": "unet-resnet34-speed", "encoder": "resnet34", "arch_kwargs": {},
                                   "metrics": {}, "training": {}})
    torch.manual_seed(0)
    return save_checkpoint(work / "resnet34", card, build_network(card).state_dict())


def main() -> None:
    if "-h" in sys.argv or "--help" in sys.argv:
        print(__doc__)
        return
    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA GPU visible to torch; run this on a GPU machine (see docs/performance.md#gpu)")
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

    # 2. model loop on CUDA, the bundled model and a resnet34 U-Net
    r34 = resnet34_checkpoint(work)
    models = {"bundled": (None, gpu), "resnet34": (str(r34.path), Predictor.from_checkpoint(r34, "cuda"))}
    res["model_loop"] = {}
    for name, (_, pred) in models.items():
        res["model_loop"][name] = {}
        for bs in (8, 16, 32):
            x = np.random.default_rng(0).normal(size=(bs, 3, 512, 512)).astype(np.float32)
            pred.classify(x)
            torch.cuda.synchronize()
            n = 10
            with BusySampler() as busy:
                t0 = time.perf_counter()
                for _ in range(n):
                    pred.classify(x)
                torch.cuda.synchronize()
                mpx = n * bs * 512 * 512 / (time.perf_counter() - t0) / 1e6
            res["model_loop"][name][bs] = {"mpx_s": round(mpx, 1), "gpu_busy_pct": busy.mean}
            print(f"{name} model loop batch {bs}: {mpx:.1f} Mpx/s, GPU busy {busy.mean} % "
                  "(incl. host->device copy and softmax/argmax back)", flush=True)

    # 3. segment end to end, in-process on CUDA
    res["segment"] = []
    for k, name in ((4, "bundled"), (16, "bundled"), (16, "resnet34")):
        vrt = build_mosaic(SAMPLE / "zion_north_landsat8_2015_crop.tif", k, work / f"m{k}.vrt")
        with rasterio.open(vrt) as s:
            px = s.width * s.height
        out = work / f"out_gpu_{k}_{name}"
        cfg = SegmentConfig(inputs=[str(vrt)], output=str(out), device="cuda", batch_size=16, overwrite=True,
                            model=models[name][0], runtime={"local": True, "tiles_per_task": 16},
                            outputs={"polygons": False})
        with BusySampler() as busy:
            t0 = time.perf_counter()
            m = segment(cfg, progress=False).manifest
            wall = time.perf_counter() - t0
        loop = res["model_loop"][name][16]["mpx_s"]
        row = {"model": name, "mosaic": f"{k}x{k}", "mpx": round(px / 1e6, 1), "wall_s": round(wall, 2),
               "e2e_mpx_s": round(px / wall / 1e6, 2), "tile_stage_mpx_s": round(px / m["timings_s"]["tiles"] / 1e6, 2),
               "e2e_over_model_loop": round(px / wall / 1e6 / loop, 3), "gpu_busy_pct": busy.mean,
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

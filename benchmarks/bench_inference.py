"""Benchmark: the inference paths for one model on CPU, and their agreement with fp32 PyTorch.

For each model (the bundled default, the spectral-index baseline, and with ``--peer`` the
hand-written peer's resnet18 U-Net), on batches of real tiles (the Zion scene, normalised
as the model card says), in one process, alternating paths between repeats:

* ``torch``: eager, NCHW (what a hand-written loop does);
* ``torch_cl``: eager, channels_last (geoseg's PyTorch engine);
* ``onnxruntime``: geoseg's ONNX export run by ONNX Runtime (``geoseg.model.engines``);
* ``openvino``: the same ONNX graph compiled by OpenVINO, fp32 (when installed);
* ``torch_compile``: ``torch.compile`` (with ``--compile``; minutes of compilation);
* ``onnxruntime_int8``: the ONNX graph quantized to int8 by ONNX Runtime (with ``--int8``: static, QDQ,
  per-channel int8 weights, uint8 activations, calibrated on 16 tiles of the NC scene, not the timed Zion ones).

Reports seconds per batch (median), Mpx/s and the share of pixels whose class equals fp32
PyTorch's (``auto`` uses an engine only at >= 99.5 %).

    python benchmarks/bench_inference.py --threads 2 --batch 4 --out benchmarks/results_inference.json
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
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_segment import REPO

ZION = REPO / "data" / "sample" / "zion_north_landsat8_2015_crop.tif"
NC = REPO / "data" / "sample" / "nc_raleigh_landsat7_2000.tif"


def tiles(card, batch: int, side: int, scene: Path = ZION) -> np.ndarray:
    """``batch`` tiles of ``side`` px from ``scene``, normalised for ``card`` (overlapping when needed)."""
    import rasterio

    from geoseg.io.raster import RasterInfo, read_window, resolve_bands
    from geoseg.model.normalization import apply, scene_stats
    from geoseg.tiling import PixelBox

    with rasterio.open(scene) as src:
        info = RasterInfo.from_dataset(str(scene), src)
        idx = resolve_bands(info, card.bands)
        stats = scene_stats(src, idx, card.normalization)
        h, w = info.grid.height, info.grid.width
        out = []
        for k in range(batch):
            r, c = (k * 97) % max(h - side, 1), (k * 151) % max(w - side, 1)
            data, _ = read_window(src, idx, PixelBox(c, r, min(side, w), min(side, h)))
            out.append(apply(data, stats, card.normalization))
    return np.stack(out).astype(np.float32)


def int8_graph(onnx: bytes, card, side: int) -> bytes:
    """``onnx`` quantized statically to int8 by ONNX Runtime, calibrated on 16 NC tiles of ``side`` px."""
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calib = tiles(card, 16, side, NC)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(calib)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {"x": x[None]}

    with tempfile.TemporaryDirectory() as tmp:
        src, pre, out = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        src.write_bytes(onnx)
        quant_pre_process(str(src), str(pre))
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return out.read_bytes()


def paths(payload, threads: int, compile_: bool, int8: bool = False, side: int = 512) -> dict:
    """name -> callable(x) -> logits (numpy), for every path available here."""
    import torch

    from geoseg.model.checkpoint import network_from_payload
    from geoseg.model.engines import OrtEngine, export_onnx

    torch.set_num_threads(threads)
    _, net = network_from_payload(payload.card_json, payload.weights)
    net_cl = network_from_payload(payload.card_json, payload.weights)[1].to(memory_format=torch.channels_last)

    def run(module, cl=False):
        def f(x):
            t = torch.from_numpy(x)
            if cl:
                t = t.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                return module(t).numpy()
        return f

    out = {"torch": run(net), "torch_cl": run(net_cl, cl=True)}
    onnx = export_onnx(payload).onnx
    out["onnxruntime"] = OrtEngine(onnx, threads).logits
    try:
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(core.read_model(onnx, b""), "CPU",
                                      {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"})
        req = compiled.create_infer_request()
        out["openvino"] = lambda x: req.infer({0: x})[0].copy()
    except ImportError:
        pass
    if compile_:
        out["torch_compile"] = run(torch.compile(net_cl), cl=True)
    if int8:
        from geoseg.model.checkpoint import ModelCard

        out["onnxruntime_int8"] = OrtEngine(int8_graph(onnx, ModelCard.model_validate_json(payload.card_json), side),
                                            threads).logits
    return out


def bench_model(name: str, payload, threads: int, batch: int, side: int, repeat: int, compile_: bool,
                int8: bool = False) -> list[dict]:
    from geoseg.model.checkpoint import ModelCard

    card = ModelCard.model_validate_json(payload.card_json)
    x = tiles(card, batch, side)
    fns = paths(payload, threads, compile_, int8, side)
    ref = fns["torch"](x).argmax(1)
    times: dict[str, list[float]] = {k: [] for k in fns}
    classes = {}
    for k, f in fns.items():  # warm-up (and torch.compile's compilation)
        classes[k] = f(x).argmax(1)
    for _ in range(repeat):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f(x)
            times[k].append(time.perf_counter() - t0)
    mpx = x.shape[0] * x.shape[2] * x.shape[3] / 1e6
    base = statistics.median(times["torch"])
    rows = []
    for k in fns:
        s = statistics.median(times[k])
        rows.append({"model": name, "path": k, "batch": list(x.shape), "threads": threads, "seconds": round(s, 3),
                     "mpx_s": round(mpx / s, 3), "speedup_vs_torch": round(base / s, 2),
                     "agreement": round(float((classes[k] == ref).mean()), 5)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--peer", type=Path, help="a checkpoint of the hand-written peer's weights (see bench_peer.py)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    ap.add_argument("--int8", action="store_true", help="also time ONNX Runtime's static int8 quantization")
    ap.add_argument("--models", nargs="+", help="only these models (names as printed)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    from geoseg.model.checkpoint import DEFAULT_MODEL_DIR, checkpoint_payload, load_checkpoint

    models = {"landcover-unet-mnv2": DEFAULT_MODEL_DIR, "landcover-spectral-index": DEFAULT_MODEL_DIR.parent / "landcover-spectral-index"}
    if args.peer:
        models["peer-resnet18"] = args.peer
    rows = []
    for name, path in models.items():
        if args.models and name not in args.models:
            continue
        rows += bench_model(name, checkpoint_payload(load_checkpoint(path)), args.threads, args.batch, args.side,
                            args.repeat, args.compile, args.int8)
    if args.out:
        args.out.write_text(json.dumps({"machine": f"{os.cpu_count()} CPUs", "python": sys.version.split()[0],
                                        "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Inference engines: how a model's forward pass runs on a device.

An engine maps normalised ``(batch, bands, rows, cols)`` float32 arrays whose sides are
multiples of 32 to logits ``(batch, classes, rows, cols)`` float32, axis order kept.

- ``torch``: the PyTorch module, fp32 + channels_last on CPU, fp16 autocast on CUDA.
- ``onnxruntime``: the same network exported once to ONNX and run by ONNX Runtime (CPU).
  Measured on a 2-core AVX2 CPU it is 4-6x faster than PyTorch eager on the U-Nets here
  (``benchmarks/bench_inference.py``), and a worker that runs it never imports torch.

``auto`` picks ``onnxruntime`` on CPU when the export agrees with PyTorch on at least
:data:`MIN_AGREEMENT` of the pixels of a check batch, else ``torch``. Exports are cached
on disk under :func:`cache_dir`, keyed by the card and the weights, with their agreement.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from geoseg.errors import ConfigError
from geoseg.model.checkpoint import ModelPayload, cache_dir, network_from_payload

log = logging.getLogger(__name__)

EngineName = Literal["auto", "torch", "onnxruntime"]
ENGINES: tuple[str, ...] = ("auto", "torch", "onnxruntime")

MIN_AGREEMENT = 0.995
"""Share of pixels whose class must equal fp32 PyTorch's for an export to be used."""

ORT_CALL_PIXELS = 400_000
"""Most pixels (batch x rows x cols) per ONNX Runtime call; larger batches are split (see :meth:`OrtEngine.logits`)."""

EXPORT_VERSION = "1"
"""Bumped when the export changes, so old cache entries are not reused."""


@dataclass(frozen=True)
class Export:
    """One cached ONNX export and how it compared with PyTorch on the check batch."""

    onnx: bytes
    agreement: float
    seconds: float

    @property
    def usable(self) -> bool:
        return self.agreement >= MIN_AGREEMENT


def gpu_present() -> bool:
    """Whether a CUDA GPU may be visible, without importing torch when the answer is plainly no."""
    if not any(Path("/dev").glob("nvidia[0-9]*")) and not os.environ.get("GEOSEG_ASSUME_GPU"):
        return False
    import torch

    return bool(torch.cuda.is_available())


def check_batch(bands: int, seed: int = 0, side: int = 128) -> np.ndarray:
    """A deterministic ``(2, bands, side, side)`` batch in [0, 1] with structure at several scales,
    like normalised imagery (the agreement check's input)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((2, bands, side, side), np.float32)
    for cell in (32, 8, 2):
        coarse = rng.random((2, bands, side // cell, side // cell), dtype=np.float32)
        out += np.kron(coarse, np.ones((cell, cell), np.float32)) / 3
    return np.clip(out + rng.normal(0, 0.02, out.shape).astype(np.float32), 0, 1)


def export_onnx(payload: ModelPayload) -> Export:
    """Export the payload's network to ONNX (dynamic batch and sides) and measure its agreement with
    PyTorch fp32 on :func:`check_batch`; cached on disk (see :func:`cache_dir`)."""
    key = hashlib.sha256(f"{EXPORT_VERSION}\n{payload.card_json}\n".encode() + payload.weights).hexdigest()[:32]
    folder = cache_dir() / "onnx"
    graph, meta = folder / f"{key}.onnx", folder / f"{key}.json"
    if graph.is_file() and meta.is_file():
        info = json.loads(meta.read_text())
        return Export(graph.read_bytes(), info["agreement"], info["seconds"])
    t0 = time.perf_counter()
    onnx, agreement = _export_and_compare(payload)
    done = Export(onnx, agreement, round(time.perf_counter() - t0, 2))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path, data in ((graph, onnx), (meta, json.dumps({"agreement": agreement, "seconds": done.seconds}).encode())):
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
    except OSError as exc:  # a read-only home: the export is still used, just not kept
        log.warning("could not cache the ONNX export in %s (%s); set GEOSEG_CACHE_DIR to a writable folder", folder, exc)
    return done


def _export_and_compare(payload: ModelPayload) -> tuple[bytes, float]:
    import torch

    card, net = network_from_payload(payload.card_json, payload.weights, "cpu")
    x = check_batch(len(card.bands))
    buf = io.BytesIO()
    axes = {0: "batch", 2: "rows", 3: "cols"}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        # the TorchScript exporter writes to a file object too; torch's stubs list only paths
        torch.onnx.export(net, (torch.from_numpy(x),), buf, input_names=["x"],  # type: ignore[arg-type]
                          output_names=["logits"], dynamic_axes={"x": axes, "logits": axes}, opset_version=17,
                          dynamo=False)
        want = net(torch.from_numpy(x)).argmax(1).numpy()
    onnx = buf.getvalue()
    got = OrtEngine(onnx, threads=None).logits(x).argmax(1)
    return onnx, float((got == want).mean())


class OrtEngine:
    """ONNX Runtime on CPU, ``threads`` intra-op threads (``None``: one per CPU of this machine)."""

    name = "onnxruntime"

    def __init__(self, onnx: bytes, threads: int | None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or os.cpu_count() or 1
        opts.inter_op_num_threads = 1
        # idle threads sleep instead of spinning: several actors (or other jobs) share the cores
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(onnx, opts, providers=["CPUExecutionProvider"])

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Logits of a float32 ``(batch, bands, rows, cols)`` array; thread-safe.

        The batch is run in calls of at most :data:`ORT_CALL_PIXELS` pixels (at least one image): ONNX
        Runtime's arena keeps the peak of the largest call, and one 576 px image per call is as fast per
        pixel as four (measured: 0.21 s/Mpx against 0.24, 260 MB against 840 MB)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        step = max(1, ORT_CALL_PIXELS // max(1, x.shape[2] * x.shape[3]))
        if step >= len(x):
            return self.session.run(None, {"x": x})[0]
        return np.concatenate([self.session.run(None, {"x": x[k : k + step]})[0] for k in range(0, len(x), step)])


def prepare_payload(payload: ModelPayload, engine: str, device: str) -> ModelPayload:
    """The payload the workers get for ``engine`` on ``device``: with the ONNX graph when ONNX Runtime
    is requested, or chosen by ``auto`` on CPU and its export agrees with PyTorch."""
    if engine not in ENGINES:
        raise ConfigError(f"--engine: {engine!r} is not one of {', '.join(ENGINES)} (`engine` in a config)")
    if engine == "torch" or device == "cuda":
        if engine == "onnxruntime":
            raise ConfigError("--engine: 'onnxruntime' runs on CPU only; use --engine torch (or auto) with --device cuda "
                              "(`engine`, `device` in a config)")
        return payload.with_onnx(None)
    if engine == "auto" and device == "auto" and gpu_present():
        return payload.with_onnx(None)
    try:
        export = export_onnx(payload)
    except Exception as exc:  # an architecture the exporter cannot trace
        if engine == "onnxruntime":
            raise ConfigError(f"--engine: the model cannot be exported to ONNX ({type(exc).__name__}: {exc}); "
                              "use --engine torch (`engine: torch` in a config)") from exc
        log.warning("ONNX export failed (%s: %s); running the model with PyTorch", type(exc).__name__, exc)
        return payload.with_onnx(None)
    if not export.usable:
        msg = (f"the ONNX export agrees with PyTorch on {export.agreement:.2%} of the check pixels "
               f"(< {MIN_AGREEMENT:.1%})")
        if engine == "onnxruntime":
            raise ConfigError(f"--engine: {msg}; use --engine torch (`engine: torch` in a config)")
        log.warning("%s; running the model with PyTorch", msg)
        return payload.with_onnx(None)
    return payload.with_onnx(export.onnx)

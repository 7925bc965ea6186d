"""The read + predict stages for one batch of tiles: plain Python, no Ray.

:class:`Predictor` runs the network on normalised ``(batch, bands, rows, cols)`` float32
arrays; :class:`TileProcessor` reads tile windows of one raster, normalises them,
predicts, and returns the class and confidence of each tile core (halo discarded).
The Ray actors in :mod:`geoseg.runtime.executors` wrap a ``TileProcessor``; tests use it directly.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from geoseg import CLASS_NODATA
from geoseg.grid import GeoGrid
from geoseg.io.quality import CLEAR, CODES, FLAGS, QUALITY_NODATA, QualityReader, QualitySource
from geoseg.io.raster import aoi_mask, open_raster, read_window
from geoseg.model.checkpoint import Checkpoint, ModelCard, ModelPayload
from geoseg.model.engines import OrtEngine, gpu_present
from geoseg.model.normalization import BandStats, apply
from geoseg.tiling import Tile

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

log = logging.getLogger(__name__)

CONFIDENCE_NODATA = 255
"""Nodata of the confidence raster (valid values are 0..100)."""


MIN_MODEL_SIDE = 64
"""Smallest side (pixels) the network is run on: thinner inputs (a strip, a tiny scene) get a border
halo up to this, so their pixels are not all at the encoder's edge."""

REFLECT_MIN = 8
"""Sides of at least this many pixels are padded by reflection; thinner ones by repeating the edge
(a reflected 1-3 px strip is a stripe pattern the network never saw; measured in docs/bad-inputs.md)."""


def pad_for_model(batch: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """``batch`` ``(batch, bands, rows, cols)`` padded to sides that are multiples of 32 and at least
    :data:`MIN_MODEL_SIDE`, split evenly between both sides (float32, C-contiguous); and the
    ``(top, left)`` offset of the original pixels in it. Unchanged when no padding is needed."""
    _, _, h, w = batch.shape
    x = np.ascontiguousarray(batch, dtype=np.float32)
    out = x
    offsets = []
    for axis, n in ((2, h), (3, w)):
        pad = max(MIN_MODEL_SIDE, -(-n // 32) * 32) - n
        before = pad // 2
        offsets.append(before)
        if pad:
            widths = [(0, 0)] * 4
            widths[axis] = (before, pad - before)
            out = np.pad(out, widths, mode="reflect" if n >= REFLECT_MIN else "edge")
    return np.ascontiguousarray(out), (offsets[0], offsets[1])


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        from geoseg.errors import ConfigError

        raise ConfigError("--device cuda: no CUDA GPU is visible; use --device auto or cpu (`device` in a config)")
    return device


class Predictor:
    """A network on one device, run by an engine (:mod:`geoseg.model.engines`): ONNX Runtime on CPU
    when the payload carries the exported graph, else PyTorch (CPU: fp32 + channels_last; CUDA:
    fp16 autocast).

    ``threads`` caps the engine's intra-op threads on CPU (one per actor beats one process
    with many threads on small machines).
    """

    def __init__(self, card: ModelCard, net, device: str, threads: int | None = None, engine: OrtEngine | None = None):
        self.device = device
        self.card = card
        self._ort = engine
        self.engine = engine.name if engine is not None else "torch"
        self.net = None
        if engine is None:
            import torch

            if threads:
                torch.set_num_threads(threads)
            self.net = net.to(device).eval().to(memory_format=torch.channels_last)
            self._torch = torch

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint, device: str = "auto", threads: int | None = None) -> Predictor:
        dev = resolve_device(device)
        return cls(checkpoint.card, checkpoint.network(dev), dev, threads)

    @classmethod
    def from_payload(cls, payload: ModelPayload, device: str = "auto", threads: int | None = None) -> Predictor:
        """ONNX Runtime when the payload has the graph and the device is (or resolves to) the CPU, else PyTorch."""
        if payload.onnx is not None and (device == "cpu" or (device == "auto" and not gpu_present())):
            card = ModelCard.model_validate_json(payload.card_json)
            return cls(card, None, "cpu", threads, OrtEngine(payload.onnx, threads))
        from geoseg.model.checkpoint import network_from_payload

        dev = resolve_device(device)
        card, net = network_from_payload(payload.card_json, payload.weights, dev)
        return cls(card, net, dev, threads)

    def _ort_logits(self, batch: np.ndarray) -> np.ndarray:
        """ONNX Runtime logits ``(batch, classes, rows, cols)``, padded to multiples of 32 as in :meth:`_probs`."""
        assert self._ort is not None
        _, _, h, w = batch.shape
        x, (top, left) = pad_for_model(batch)
        return self._ort.logits(x)[:, :, top:top + h, left:left + w]

    def _probs(self, batch: np.ndarray):
        """Softmax probabilities as a tensor on the device, ``(batch, classes, rows, cols)``.

        Inputs are padded by :func:`pad_for_model` and the padding is cropped from the output.
        """
        torch = self._torch
        assert self.net is not None
        _, _, h, w = batch.shape
        padded, (top, left) = pad_for_model(batch)
        x = torch.from_numpy(padded)
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.device == "cuda":
                with torch.autocast("cuda", dtype=torch.float16):
                    logits = self.net(x)
            else:
                logits = self.net(x)
            return torch.softmax(logits.float(), dim=1)[:, :, top:top + h, left:left + w]

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Softmax class probabilities, ``(batch, classes, rows, cols)`` float32 on the host."""
        if self._ort is not None:
            logits = self._ort_logits(batch)
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        return self._probs(batch).cpu().numpy()

    def classify(self, batch: np.ndarray, zoom: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Class id (uint8) and confidence (uint8 percent, 0..100) per pixel, ``(batch, rows, cols)``.

        Reduced on the device, so only uint8 maps cross back to the host. ``zoom`` != 1: the batch is
        resampled by that factor for the model (antialiased when shrinking) and the probabilities back.
        """
        if zoom != 1.0:
            return self._classify_zoomed(batch, zoom)
        if self._ort is not None:
            logits = self._ort_logits(batch)
            top = logits.max(axis=1, keepdims=True)
            conf = 1.0 / np.exp(logits - top).sum(axis=1)  # the largest softmax probability
            return logits.argmax(axis=1).astype(np.uint8), np.round(conf * 100).astype(np.uint8)
        with self._torch.inference_mode():
            conf, classes = self._probs(batch).max(dim=1)
            conf = (conf * 100).round_().to(self._torch.uint8)
            return classes.to(self._torch.uint8).cpu().numpy(), conf.cpu().numpy()


    def _classify_zoomed(self, batch: np.ndarray, zoom: float) -> tuple[np.ndarray, np.ndarray]:
        import torch
        from torch.nn.functional import interpolate

        _, _, h, w = batch.shape
        size = (max(1, round(h * zoom)), max(1, round(w * zoom)))
        x = interpolate(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)), size=size, mode="bilinear",
                        antialias=zoom < 1, align_corners=False)
        probs = torch.from_numpy(np.ascontiguousarray(self.probabilities(x.numpy())))
        conf, classes = interpolate(probs, size=(h, w), mode="bilinear", align_corners=False).max(dim=1)
        return classes.to(torch.uint8).numpy(), (conf * 100).round_().to(torch.uint8).numpy()


@dataclass(frozen=True, slots=True)
class TileResult:
    """Prediction for one tile core. Arrays are ``(rows, cols)`` over ``tile.core``.

    ``classes`` holds 255 where the input is nodata, masked by its quality or outside the AOI;
    ``confidence`` likewise. ``counts[k]`` is the number of core pixels of class ``k``; ``area_m2[k]``
    their ground area. ``skipped`` tiles had no valid pixel and carry no class arrays. With a quality
    source, ``quality`` holds the flag codes of the core (:mod:`geoseg.io.quality`; 255 outside the AOI,
    skipped tiles too) and ``flag_counts[k]`` / ``flag_area_m2[k]`` the pixels and area of code ``k``.
    """

    tile: Tile
    classes: np.ndarray | None
    confidence: np.ndarray | None
    counts: np.ndarray
    area_m2: np.ndarray
    skipped: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    quality: np.ndarray | None = None
    flag_counts: np.ndarray | None = None
    flag_area_m2: np.ndarray | None = None


class TileProcessor:
    """Reads, normalises and predicts tiles of one raster at a time (plain Python).

    The raster stays open between calls for the same path, so a worker pays the open
    (and, on S3, the header fetch) once per scene. Datasets are per thread (GDAL handles
    must not be shared), so a GPU actor may run two calls at once: one reading while the
    other computes.
    """

    def __init__(self, predictor: Predictor, batch_size: int = 4):
        import threading

        self.predictor = predictor
        self.batch_size = batch_size
        self._local = threading.local()

    def _open(self, path: str):
        loc = self._local
        if getattr(loc, "path", None) != path:
            if getattr(loc, "src", None) is not None:
                loc.src.close()
            loc.src = open_raster(path)
            loc.path = path
        return loc.src

    def _quality(self, job: SceneJob, src) -> QualityReader:
        """The thread's reader of ``job``'s quality source (kept open between calls for the same scene)."""
        assert job.quality is not None
        loc = self._local
        key = (job.path, job.quality)
        if getattr(loc, "qkey", None) != key:
            if getattr(loc, "qreader", None) is not None:
                loc.qreader.close()
            loc.qreader, loc.qkey = QualityReader(job.quality, job.grid, src), key
        return loc.qreader

    def process(self, job: SceneJob, tiles: list[Tile]) -> list[TileResult]:
        """Predict ``tiles`` of ``job``'s raster and return one result per tile, in order."""
        import time

        src = self._open(job.path)
        ncls = len(self.predictor.card.classes)
        t0 = time.perf_counter()
        reads = []
        flags: list[np.ndarray | None] = []
        for tile in tiles:
            data, valid = read_window(src, job.band_indexes, tile.read)
            codes = None
            if job.quality is not None:
                codes, clear = self._quality(job, src).read(tile.read)
                codes[~valid & (codes == CLEAR)] = CODES["fill"]  # nodata in the model bands is fill
                valid &= clear
            if job.aoi is not None:
                inside = aoi_mask(job.aoi, tile.read, job.grid)
                valid &= inside
                if codes is not None:
                    codes[~inside] = QUALITY_NODATA
            reads.append((data, valid))
            flags.append(codes)
        t_read = time.perf_counter() - t0

        results: list[TileResult | None] = [None] * len(tiles)
        todo = []
        for i, (tile, (_, valid)) in enumerate(zip(tiles, reads)):
            if not valid[tile.core_in_read()].any():
                results[i] = _with_quality(TileResult(tile, None, None, np.zeros(ncls, np.int64), np.zeros(ncls),
                                                      skipped=True), flags[i], job)
            else:
                todo.append(i)

        t1 = time.perf_counter()
        # Tiles of one shape go through the network together (edge tiles of small rasters differ).
        by_shape: dict[tuple[int, int], list[int]] = {}
        for i in todo:
            by_shape.setdefault(reads[i][0].shape[1:], []).append(i)
        for idxs in by_shape.values():
            for start in range(0, len(idxs), self.batch_size):
                chunk = idxs[start : start + self.batch_size]
                batch = np.stack([apply(reads[i][0], job.stats, self.predictor.card.normalization) for i in chunk])
                classes, conf = self.predictor.classify(batch, job.zoom)
                for k, i in enumerate(chunk):
                    results[i] = _with_quality(_core_result(tiles[i], classes[k], conf[k], reads[i][1], job, ncls),
                                               flags[i], job)
        t_pred = time.perf_counter() - t1
        per_tile = {"read": t_read / max(len(tiles), 1), "predict": t_pred / max(len(tiles), 1)}
        out = []
        for r in results:
            assert r is not None  # every tile was either skipped or predicted above
            out.append(dataclasses.replace(r, seconds=per_tile))
        return out


def _with_quality(r: TileResult, codes: np.ndarray | None, job: SceneJob) -> TileResult:
    """``r`` with the flag codes of its core and their pixel counts and areas (unchanged without a quality source)."""
    if codes is None:
        return r
    core = codes[r.tile.core_in_read()]
    per_row = np.stack([(core == k).sum(axis=1) for k in range(len(FLAGS) + 1)])  # (codes, rows)
    return dataclasses.replace(r, quality=np.ascontiguousarray(core), flag_counts=per_row.sum(axis=1).astype(np.int64),
                               flag_area_m2=per_row @ job.grid.row_area_m2(r.tile.core))


def _core_result(tile: Tile, classes: np.ndarray, conf: np.ndarray, valid: np.ndarray, job: SceneJob,
                 ncls: int) -> TileResult:
    """Cut the core out of a tile's ``(rows, cols)`` prediction, mask invalid pixels, count class areas."""
    rs, cs = tile.core_in_read()
    ok = valid[rs, cs]
    cl = np.where(ok, classes[rs, cs], CLASS_NODATA).astype(np.uint8)
    cf = np.where(ok, conf[rs, cs], CONFIDENCE_NODATA).astype(np.uint8)
    row_area = job.grid.row_area_m2(tile.core)
    per_row = np.stack([(cl == c).sum(axis=1) for c in range(ncls)])  # (classes, rows)
    return TileResult(tile, cl, cf, per_row.sum(axis=1).astype(np.int64), per_row @ row_area)


@dataclass(frozen=True)
class SceneJob:
    """Everything a worker needs about one input raster to process its tiles (small, picklable)."""

    path: str
    band_indexes: list[int]
    stats: BandStats
    grid: GeoGrid
    aoi: BaseGeometry | None = None  # the AOI in the grid's CRS
    zoom: float = 1.0  # model pixels per input pixel (input pixel size / the card's gsd_m); 1: native
    quality: QualitySource | None = None  # where the clear mask and flag codes come from; None: no quality mask

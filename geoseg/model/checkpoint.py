"""The checkpoint format: a directory with ``model.json`` (the model card) and
``weights.safetensors``. Loading never unpickles code: the card alone (``arch``,
``encoder``, ``arch_kwargs``) rebuilds the network with segmentation-models-pytorch and
the weights are plain tensors.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from geoseg.config import ClassInfo, Normalization
from geoseg.errors import ModelError

log = logging.getLogger(__name__)

CARD_NAME = "model.json"
WEIGHTS_NAME = "weights.safetensors"
DEFAULT_MODEL_DIR = Path(__file__).parent / "weights" / "landcover-unet-mnv2"

ARCHITECTURES = {"unet": "Unet", "deeplabv3plus": "DeepLabV3Plus", "fpn": "FPN", "spectral_index": None,
                 "spectral_rule": None}
"""Architecture names accepted in a card (case-insensitive) -> segmentation-models-pytorch class
(``spectral_index`` and ``spectral_rule`` are the fitted and the fixed classical baselines of
:mod:`geoseg.model.baseline`)."""


class ModelCard(BaseModel):
    """What a checkpoint is, how to feed it, and how well it did (stored as ``model.json``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "unnamed"
    version: str = "0"
    arch: str = "unet"
    encoder: str = "mobilenet_v2"
    arch_kwargs: dict[str, Any] = Field(default_factory=dict)
    bands: list[str] = Field(min_length=1, description="input bands by name, in model order")
    classes: list[ClassInfo] = Field(min_length=2)
    normalization: Normalization = Field(default_factory=Normalization)
    tile_size: int = Field(512, ge=32, description="recommended model input side, pixels; multiple of 32")
    halo: int = Field(32, ge=0, description="recommended overlap discarded per tile side, pixels")
    index_channels: list[str] = Field(default_factory=list,
                                      description="spectral indexes (ndvi, ndwi) appended to the bands inside the network")
    gsd_m: float | None = Field(None, gt=0, description="pixel size the model was trained for, metres (training's `gsd_m`: the median over places (each place's scenes once), or with `resample_scenes` the coarsest scene's)")
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    licence: str | None = None

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v: str) -> str:
        if v.lower() not in ARCHITECTURES:
            raise ValueError(f"unknown arch {v!r}; choose one of {sorted(ARCHITECTURES)}")
        return v.lower()

    @field_validator("classes")
    @classmethod
    def _dense_ids(cls, v: list[ClassInfo]) -> list[ClassInfo]:
        ids = [c.id for c in v]
        if ids != list(range(len(v))):
            raise ValueError(f"class ids must be 0..{len(v) - 1} in order, got {ids}")
        return v

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]


def build_network(card: ModelCard):
    """A freshly initialised torch module for ``card`` (no pretrained weights are fetched)."""
    if card.arch == "spectral_index":
        from geoseg.model.baseline import SpectralIndexNet

        return SpectralIndexNet(card.bands, card.class_names)
    if card.arch == "spectral_rule":
        from geoseg.model.baseline import SpectralRuleNet

        return SpectralRuleNet(card.bands, card.class_names)
    import segmentation_models_pytorch as smp

    from geoseg.model.features import WithIndexChannels, index_band_pairs

    pairs = index_band_pairs(card.bands, card.index_channels)

    kwargs = dict(card.arch_kwargs)
    for key in ("decoder_channels",):
        if key in kwargs and isinstance(kwargs[key], list):
            kwargs[key] = tuple(kwargs[key])
    try:
        net = smp.create_model(
            ARCHITECTURES[card.arch],
            encoder_name=card.encoder,
            encoder_weights=None,
            in_channels=len(card.bands) + len(pairs),
            classes=len(card.classes),
            **kwargs,
        )
        return WithIndexChannels(net, pairs) if pairs else net
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(
            f"cannot build {card.arch}/{card.encoder} with arch_kwargs={card.arch_kwargs}: {exc}"
        ) from exc


class Checkpoint:
    """A loaded checkpoint: its card, directory and weights hash. ``network()`` builds the module."""

    def __init__(self, path: Path, card: ModelCard, weights_sha256: str):
        self.path = path
        self.card = card
        self.weights_sha256 = weights_sha256

    @property
    def model_id(self) -> str:
        return f"{self.card.name}@{self.card.version}:{self.weights_sha256[:12]}"

    def network(self, device: str = "cpu"):
        """The torch module with the checkpoint's weights, in eval mode on ``device``."""
        from safetensors.torch import load_file

        net = build_network(self.card)
        state = load_file(str(self.path / WEIGHTS_NAME), device=device)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelError(
                f"{self.path / WEIGHTS_NAME}: weights do not match the architecture in {CARD_NAME} "
                f"({self.card.arch}/{self.card.encoder}, arch_kwargs={self.card.arch_kwargs}): {exc}"
            ) from exc
        return net.to(device).eval()

    def validate(self) -> None:
        """Check, without loading a tensor, that ``weights.safetensors`` is a whole safetensors file whose tensor
        names and shapes are those of the network the card describes; raises :class:`ModelError` naming the file."""
        weights = self.path / WEIGHTS_NAME
        stored = read_safetensors_header(weights)
        expected = cached_shapes(self.card)
        missing = sorted(set(expected) - set(stored))
        extra = sorted(set(stored) - set(expected))
        wrong = [k for k in expected if k in stored and tuple(stored[k]) != expected[k]]
        if not (missing or extra or wrong):
            return
        what = f"{self.card.arch}/{self.card.encoder}, {len(self.card.bands)} band(s), {len(self.card.classes)} classes"
        details = [f"{k}: weights {list(stored[k])}, card needs {list(expected[k])}" for k in wrong[:3]]
        details += [f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"] if missing else []
        details += [f"unexpected {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}"] if extra else []
        raise ModelError(f"{weights}: weights do not match the network described by {self.path / CARD_NAME} ({what}): "
                         f"{'; '.join(details)}; give the {CARD_NAME} these weights were trained with, or retrain")


SHAPES_VERSION = "1"
"""Bumped when :func:`expected_shapes` changes, so old cache entries are not reused."""

SAFETENSORS_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
                           "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
"""Bytes per element of each safetensors dtype."""


def read_safetensors_header(path: Path) -> dict[str, list[int]]:
    """Tensor name -> shape from the header of a safetensors file, checked against the file's size (a corrupted,
    truncated or non-safetensors file raises :class:`ModelError` naming it); no tensor data is read."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        raw = f.read(n) if 2 <= n <= min(size - 8, 100 << 20) else b""
        if not raw.startswith(b"{"):
            raise ModelError(f"{path}: not a safetensors file ({size} bytes, no valid header); write the weights "
                             "with safetensors (geoseg train does), not torch.save/pickle, or copy the file again")
    try:
        header = json.loads(raw)
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        header.pop("__metadata__", None)
        shapes, end = {}, 0
        for name, t in header.items():
            shape, (start, stop) = [int(d) for d in t["shape"]], t["data_offsets"]
            if stop - start != math.prod(shape) * SAFETENSORS_DTYPE_BYTES[t["dtype"]] or start < 0:
                raise ValueError(f"tensor {name} has {stop - start} bytes for shape {shape} of {t['dtype']}")
            shapes[name], end = shape, max(end, int(stop))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: corrupted safetensors header ({exc}); copy the weights file again") from exc
    if 8 + n + end != size:
        raise ModelError(f"{path}: {size} bytes, but its header describes {8 + n + end}: the file is truncated or "
                         "corrupted; copy the weights file again")
    return shapes


def expected_shapes(card: ModelCard) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in the state dict of the network ``card`` describes (built on the meta
    device: no memory, no initialisation cost)."""
    import torch

    with torch.device("meta"):
        net = build_network(card)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def cache_dir() -> Path:
    """``$GEOSEG_CACHE_DIR``, else ``$XDG_CACHE_HOME/geoseg``, else ``~/.cache/geoseg``."""
    if os.environ.get("GEOSEG_CACHE_DIR"):
        return Path(os.environ["GEOSEG_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "geoseg"


def cached_shapes(card: ModelCard) -> dict[str, tuple[int, ...]]:
    """:func:`expected_shapes`, kept on disk under :func:`cache_dir` (``shapes/``), keyed by the card and the
    versions of torch and segmentation-models-pytorch: a driver that has seen the card once validates weights
    without importing torch (2-3 s and ~400 MB on a small machine)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        versions = [version(p) for p in ("torch", "segmentation-models-pytorch")]
    except PackageNotFoundError:  # not installed the usual way: no key to trust
        return expected_shapes(card)
    key = hashlib.sha256(json.dumps([SHAPES_VERSION, versions, card.model_dump(mode="json")],
                                    sort_keys=True).encode()).hexdigest()[:32]
    path = cache_dir() / "shapes" / f"{key}.json"
    try:
        return {k: tuple(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError, TypeError):
        pass  # not cached yet (or an unreadable entry): build it
    shapes = expected_shapes(card)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({k: list(v) for k, v in shapes.items()}))
        tmp.replace(path)
    except OSError as exc:  # a read-only home: validation still works, it is just not kept
        log.debug("could not cache the tensor shapes in %s: %s", path.parent, exc)
    return shapes


def load_checkpoint(path: str | Path | None = None) -> Checkpoint:
    """Read and validate a checkpoint directory (``None`` = the bundled default model; ``s3://`` prefixes are fetched).

    The card is validated, and so is the weights file against it (:meth:`Checkpoint.validate`)."""
    from geoseg.io import storage

    if path is not None and storage.is_remote(path):
        path = storage.local_tree(path)
    ckpt = Path(path) if path is not None else DEFAULT_MODEL_DIR
    card_path, weights_path = ckpt / CARD_NAME, ckpt / WEIGHTS_NAME
    if not ckpt.is_dir():
        raise ModelError(f"model {ckpt}: not a directory; pass a checkpoint directory holding {CARD_NAME} and {WEIGHTS_NAME}")
    for p in (card_path, weights_path):
        if not p.is_file():
            raise ModelError(f"model {ckpt}: {p.name} is missing; a checkpoint holds {CARD_NAME} and {WEIGHTS_NAME}")
    try:
        card = ModelCard.model_validate_json(card_path.read_text())
    except ValidationError as exc:
        raise ModelError(f"{card_path}: invalid model card:\n{_format_validation(exc)}") from exc
    checkpoint = Checkpoint(ckpt, card, sha256_file(weights_path))
    checkpoint.validate()  # in the driver, before any worker loads it
    return checkpoint


def save_checkpoint(path: str | Path, card: ModelCard, state_dict: dict) -> Checkpoint:
    """Write ``card`` and ``state_dict`` as a checkpoint directory (atomically per file)."""
    from safetensors.torch import save_file

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    tmp_w = out / (WEIGHTS_NAME + ".tmp")
    save_file(tensors, str(tmp_w), metadata={"format": "geoseg", "arch": card.arch, "encoder": card.encoder})
    tmp_w.chmod(0o644)
    tmp_w.replace(out / WEIGHTS_NAME)
    tmp_c = out / (CARD_NAME + ".tmp")
    tmp_c.write_text(json.dumps(card.model_dump(mode="json"), indent=2) + "\n")
    tmp_c.replace(out / CARD_NAME)
    return load_checkpoint(out)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, streamed in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _format_validation(exc: ValidationError) -> str:
    return "\n".join(
        f"  {'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
    )


@dataclass(frozen=True)
class ModelPayload:
    """A model as plain data for workers: card JSON, safetensors bytes and, for ONNX Runtime, the
    exported graph (nothing is unpickled; a worker running ONNX Runtime needs no torch)."""

    card_json: str
    weights: bytes
    onnx: bytes | None = None

    @property
    def engine(self) -> str:
        return "onnxruntime" if self.onnx is not None else "torch"

    def with_onnx(self, onnx: bytes | None) -> ModelPayload:
        return ModelPayload(self.card_json, self.weights, onnx)



def checkpoint_payload(ckpt: Checkpoint) -> ModelPayload:
    """A checkpoint as plain data, to ship to remote workers (no shared filesystem needed)."""
    return ModelPayload(ckpt.card.model_dump_json(), (ckpt.path / WEIGHTS_NAME).read_bytes())


def network_from_payload(card_json: str, weights: bytes, device: str = "cpu"):
    """Rebuild the network of :func:`checkpoint_payload` on ``device`` (eval mode)."""
    from safetensors.torch import load

    card = ModelCard.model_validate_json(card_json)
    net = build_network(card)
    net.load_state_dict(load(weights), strict=True)
    return card, net.to(device).eval()

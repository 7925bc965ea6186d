"""Training data: scenes read and normalised in memory, spatially split, and chips drawn from them.

Chips are sampled from each scene outside a spatially held-out validation block (a
strip at one side of the scene, separated by a gap), normalised with the same
per-scene code as inference (:mod:`geoseg.model.normalization`) and augmented (flips,
90° rotations, brightness/contrast jitter). Arrays are ``(bands, rows, cols)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geoseg import CLASS_NODATA
from geoseg.config import TrainConfig, TrainSceneConfig, ValidationConfig
from geoseg.errors import TrainingError
from geoseg.io.labels import VECTOR_SUFFIXES, rasterize_labels, remap_labels
from geoseg.io.raster import RasterInfo, open_raster, read_window, resolve_bands
from geoseg.model.checkpoint import ModelCard
from geoseg.model.normalization import apply, scene_stats

log = logging.getLogger(__name__)


@dataclass
class Scene:
    """One training scene held in memory: normalised image, labels, train/val split."""

    name: str
    image: np.ndarray  # (bands, rows, cols) float32, normalised
    labels: np.ndarray  # (rows, cols) uint8, 255 = ignore
    train_mask: np.ndarray  # (rows, cols) bool
    val_box: tuple[slice, slice]
    validation: ValidationConfig
    centres: dict[int, np.ndarray] = field(default_factory=dict)  # train pixels per class


def load_scene(spec: TrainSceneConfig, cfg: TrainConfig) -> Scene:
    """Read an image and its labels (aligned to the image grid), normalise, split spatially."""
    from rasterio.warp import Resampling, reproject

    with open_raster(spec.image) as src:
        info = RasterInfo.from_dataset(spec.image, src)
        idx = resolve_bands(info, list(cfg.bands), option="bands (training config)")
        stats = scene_stats(src, idx, cfg.normalization)
        data, valid = read_window(src, idx, info.grid.box)
        image = apply(data, stats, cfg.normalization)
        labels = np.full((src.height, src.width), CLASS_NODATA, np.uint8)
        if spec.labels.lower().endswith(VECTOR_SUFFIXES):
            labels = rasterize_labels(spec.labels, spec.class_field, src.crs, src.transform, labels.shape)
        else:
            with open_raster(spec.labels) as lab:
                reproject(
                    lab.read(1), labels, src_transform=lab.transform, src_crs=lab.crs, dst_transform=src.transform,
                    dst_crs=src.crs, resampling=Resampling.nearest, src_nodata=lab.nodata, dst_nodata=CLASS_NODATA,
                )
    labels = remap_labels(labels, spec.class_map, len(cfg.classes), spec.labels)
    labels[~valid] = CLASS_NODATA
    h, w = labels.shape
    v = spec.validation or cfg.validation
    box = v.box(w, h)
    train_mask = np.ones((h, w), bool)
    train_mask[max(0, box.row - v.gap) : box.row_stop + v.gap, max(0, box.col - v.gap) : box.col_stop + v.gap] = False
    return Scene(Path(spec.image).stem, image, labels, train_mask, box.to_slices(), v)


def sample_chips(scenes: list[Scene], n: int, size: int, rng: np.random.Generator, class_weights: np.ndarray):
    """Draw ``n`` training chips; chip centres are sampled with rarer classes more likely."""
    xs, ys = [], []
    for _ in range(n):
        s = scenes[rng.integers(len(scenes))]
        h, w = s.labels.shape
        # pick a target class by weight, then a centre pixel of that class in the train area
        for _attempt in range(10):
            k = rng.choice(len(class_weights), p=class_weights / class_weights.sum())
            cand = s.centres.get(k)
            if cand is not None and len(cand):
                r, c = cand[rng.integers(len(cand))]
                break
        else:
            r, c = rng.integers(h), rng.integers(w)
        r0 = int(np.clip(r - size // 2, 0, h - size))
        c0 = int(np.clip(c - size // 2, 0, w - size))
        img = s.image[:, r0 : r0 + size, c0 : c0 + size]
        lab = s.labels[r0 : r0 + size, c0 : c0 + size].copy()
        lab[~s.train_mask[r0 : r0 + size, c0 : c0 + size]] = CLASS_NODATA
        img, lab = augment(img, lab, rng)
        xs.append(img)
        ys.append(lab)
    return np.stack(xs), np.stack(ys)


def augment(img: np.ndarray, lab: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random flips, 90° rotations and mild brightness/contrast jitter (normalised units)."""
    k = int(rng.integers(4))
    img, lab = np.rot90(img, k, axes=(1, 2)), np.rot90(lab, k)
    if rng.random() < 0.5:
        img, lab = img[:, :, ::-1], lab[:, ::-1]
    gain = rng.uniform(0.85, 1.15, size=(img.shape[0], 1, 1)).astype(np.float32)
    bias = rng.uniform(-0.08, 0.08, size=(img.shape[0], 1, 1)).astype(np.float32)
    return np.ascontiguousarray(img * gain + bias, dtype=np.float32), np.ascontiguousarray(lab)


def resolve_paths(cfg: TrainConfig) -> TrainConfig:
    """Absolute local paths (workers run elsewhere); a missing file is an error before any work starts."""
    scenes = []
    for i, sc in enumerate(cfg.scenes):
        upd = {}
        for key in ("image", "labels"):
            value = getattr(sc, key)
            if "://" in value or value.startswith("/vsi"):
                continue
            p = Path(value)
            if not p.exists():
                raise TrainingError(f"scenes[{i}].{key}: {value} does not exist; fix the path in the training config")
            upd[key] = str(p.resolve())
        scenes.append(sc.model_copy(update=upd))
    out = cfg.output if "://" in cfg.output else str(Path(cfg.output).resolve())
    return cfg.model_copy(update={"scenes": scenes, "output": out})


def prepare_data(cfg: TrainConfig) -> tuple[list[Scene], np.ndarray, np.ndarray, ModelCard]:
    """Scenes in memory, class loss weights and sampling weights, and the card to fill."""
    ncls = len(cfg.classes)
    names = [c.name for c in cfg.classes]
    scenes = [load_scene(s, cfg) for s in cfg.scenes]
    for s in scenes:
        if min(s.labels.shape) < cfg.chip_size:
            raise TrainingError(f"{s.name}: scene {s.labels.shape} is smaller than chip_size {cfg.chip_size}")
        lab = np.where(s.train_mask, s.labels, CLASS_NODATA)
        s.centres = {k: np.argwhere(lab == k) for k in range(ncls)}
    freq = np.array([sum(len(s.centres[k]) for s in scenes) for k in range(ncls)], float)
    if (freq == 0).any():
        log.warning("classes with no training pixels: %s", [n for n, f in zip(names, freq) if f == 0])
    share = freq / freq.sum()
    loss_w = np.where(freq > 0, 1.0 / np.sqrt(np.maximum(share, 1e-6)), 0.0)
    loss_w = loss_w / loss_w[freq > 0].mean()
    sample_w = np.where(freq > 0, np.sqrt(np.maximum(share, 1e-6)), 0.0)  # flatter than the data
    card = ModelCard(
        name=cfg.name, version=cfg.version, arch=cfg.arch, encoder=cfg.encoder, arch_kwargs=cfg.arch_kwargs,
        bands=list(cfg.bands), classes=cfg.classes, normalization=cfg.normalization,
        tile_size=cfg.tile_size, halo=cfg.halo, licence=cfg.licence,
    )
    return scenes, loss_w, sample_w, card

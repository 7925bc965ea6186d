"""Training data: scenes read and normalised in memory, spatially split, and chips drawn from them.

Chips are sampled from each scene outside a spatially held-out validation block (a
strip at one side of the scene, separated by a gap), normalised with the same
per-scene code as inference (:mod:`geoseg.model.normalization`) and augmented (flips,
90° rotations, per-band gain/offset/gamma, haze and pixel-size changes; ``augment`` in the
config). Scenes smaller than a chip are padded with nodata labels. Arrays are ``(bands, rows, cols)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geoseg import CLASS_NODATA
from geoseg.config import AugmentConfig, TrainConfig, TrainSceneConfig, ValidationConfig
from geoseg.errors import TrainingError
from geoseg.io.labels import VECTOR_SUFFIXES, rasterize_labels, remap_labels
from geoseg.io.raster import RasterInfo, open_raster, read_window, resolve_bands
from geoseg.model.checkpoint import ModelCard
from geoseg.model.normalization import apply, scene_stats
from geoseg.tiling import PixelBox

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
    gsd_m: float  # pixel size, metres (GeoGrid.pixel_size_m)
    centres: dict[int, np.ndarray] = field(default_factory=dict)  # train pixels per class


def scene_gsd(spec: TrainSceneConfig) -> float:
    """Pixel size of a training scene's image, metres (:meth:`GeoGrid.pixel_size_m`)."""
    with open_raster(spec.image) as src:
        return RasterInfo.from_dataset(spec.image, src).grid.pixel_size_m()


def nearest(n_out: int, n_in: int) -> np.ndarray:
    """Input index of each of ``n_out`` output pixels spanning ``n_in`` input pixels (nearest neighbour)."""
    return np.minimum(((np.arange(n_out) + 0.5) * n_in / n_out).astype(int), n_in - 1)


def resample_scene(image: np.ndarray, labels: np.ndarray, train_mask: np.ndarray, box: PixelBox,
                   zoom: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[slice, slice]]:
    """A scene at ``zoom`` model pixels per input pixel, as ``segment`` resamples its tiles: the image
    bilinear (antialiased when shrinking), labels, train mask and held-out block by nearest neighbour."""
    import torch
    from torch.nn.functional import interpolate

    h, w = labels.shape
    size = (max(1, round(h * zoom)), max(1, round(w * zoom)))
    img = interpolate(torch.from_numpy(np.ascontiguousarray(image[None], dtype=np.float32)), size=size,
                      mode="bilinear", antialias=zoom < 1, align_corners=False)[0].numpy()
    rows, cols = nearest(size[0], h), nearest(size[1], w)
    held = np.zeros((h, w), bool)
    held[box.to_slices()] = True
    held = held[rows][:, cols]
    r, c = np.flatnonzero(held.any(axis=1)), np.flatnonzero(held.any(axis=0))
    if not len(r):
        raise TrainingError(f"the held-out block {box} has no pixel left at {zoom:.3f} model pixels per input pixel")
    val = (slice(int(r[0]), int(r[-1]) + 1), slice(int(c[0]), int(c[-1]) + 1))
    return np.ascontiguousarray(img), labels[rows][:, cols], train_mask[rows][:, cols], val


def load_scene(spec: TrainSceneConfig, cfg: TrainConfig, gsd_m: float | None = None) -> Scene:
    """Read an image and its labels (aligned to the image grid), normalise, split spatially; with ``gsd_m``,
    a scene whose pixels differ from it by more than ``RESAMPLE_TOLERANCE`` is resampled to it."""
    from rasterio.warp import Resampling, reproject

    from geoseg.segment.plan import RESAMPLE_TOLERANCE

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
        gsd = info.grid.pixel_size_m()
    labels = remap_labels(labels, spec.class_map, len(cfg.classes), spec.labels)
    labels[~valid] = CLASS_NODATA
    h, w = labels.shape
    v = spec.validation or cfg.validation
    box = v.box(w, h)
    train_mask = np.ones((h, w), bool)
    train_mask[max(0, box.row - v.gap) : box.row_stop + v.gap, max(0, box.col - v.gap) : box.col_stop + v.gap] = False
    val_box = box.to_slices()
    if gsd_m is not None and abs(gsd / gsd_m - 1) > RESAMPLE_TOLERANCE:
        log.info("%s: %.1f m pixels resampled to the model's %.1f m", spec.image, gsd, gsd_m)
        image, labels, train_mask, val_box = resample_scene(image, labels, train_mask, box, gsd / gsd_m)
        gsd = gsd_m
    image, labels, train_mask = pad_to(image, labels, train_mask, cfg.chip_size)
    return Scene(Path(spec.image).stem, image, labels, train_mask, val_box, v, gsd)


def pad_to(image: np.ndarray, labels: np.ndarray, train_mask: np.ndarray, size: int):
    """Pad a scene smaller than ``size`` on the bottom/right: image by reflection, labels with nodata."""
    h, w = labels.shape
    ph, pw = max(0, size - h), max(0, size - w)
    if not ph and not pw:
        return image, labels, train_mask
    image = np.pad(image, ((0, 0), (0, ph), (0, pw)), mode="reflect" if ph < h and pw < w else "edge")
    labels = np.pad(labels, ((0, ph), (0, pw)), constant_values=CLASS_NODATA)
    return image, labels, np.pad(train_mask, ((0, ph), (0, pw)), constant_values=False)


def sample_chips(scenes: list[Scene], n: int, size: int, rng: np.random.Generator, class_weights: np.ndarray,
                 aug: AugmentConfig | None = None):
    """Draw ``n`` training chips; chip centres are sampled with rarer classes more likely."""
    aug = aug or AugmentConfig()
    xs, ys = [], []
    # scenes drawn by the square root of their training pixels: big scenes more often, small ones still seen
    area = np.array([np.sqrt(max(1, int(sc.train_mask.sum()))) for sc in scenes])
    for _ in range(n):
        s = scenes[rng.choice(len(scenes), p=area / area.sum())]
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
        span = min(h, w, max(8, round(size * rng.uniform(*aug.scale))))  # input pixels under the chip
        r0 = int(np.clip(r - span // 2, 0, h - span))
        c0 = int(np.clip(c - span // 2, 0, w - span))
        img = s.image[:, r0 : r0 + span, c0 : c0 + span]
        lab = s.labels[r0 : r0 + span, c0 : c0 + span].copy()
        lab[~s.train_mask[r0 : r0 + span, c0 : c0 + span]] = CLASS_NODATA
        if span != size:  # nearest-neighbour resampling of image and labels alike
            idx = nearest(size, span)
            img, lab = img[:, idx][:, :, idx], lab[idx][:, idx]
        img, lab = augment(img, lab, rng, aug)
        xs.append(img)
        ys.append(lab)
    return np.stack(xs), np.stack(ys)


def augment(img: np.ndarray, lab: np.ndarray, rng: np.random.Generator,
            aug: AugmentConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Random flips, 90° rotations, per-band gamma, gain and offset, and haze (normalised units):
    other sensors, dates and atmospheres than the training scenes'."""
    aug = aug or AugmentConfig()
    k = int(rng.integers(4))
    img, lab = np.rot90(img, k, axes=(1, 2)), np.rot90(lab, k)
    if rng.random() < 0.5:
        img, lab = img[:, :, ::-1], lab[:, ::-1]
    nb = img.shape[0]
    img = img.astype(np.float32)
    if aug.gamma:
        g = rng.uniform(1 - aug.gamma, 1 + aug.gamma, size=(nb, 1, 1)).astype(np.float32)
        img = np.clip(img, 0.0, 1.0) ** g
    if aug.haze and rng.random() < aug.haze:
        a = np.float32(rng.uniform(0.0, 0.4))
        img = img * (1 - a) + a * rng.uniform(0.6, 1.0, size=(nb, 1, 1)).astype(np.float32)
    gain = rng.uniform(1 - aug.gain, 1 + aug.gain, size=(nb, 1, 1)).astype(np.float32)
    bias = rng.uniform(-aug.offset, aug.offset, size=(nb, 1, 1)).astype(np.float32)
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


def place_median_gsd(places: list[str], gsds: list[float]) -> float:
    """The card's ``gsd_m`` for scenes trained at their own pixel sizes (metres): the median over places of
    each place's median, so that the dates of one place count once (three Sentinel-2 dates beside one
    Landsat scene must not make a model "10 m" that enlarges every Landsat input ~3x)."""
    by_place: dict[str, list[float]] = {}
    for place, gsd in zip(places, gsds):
        by_place.setdefault(place, []).append(gsd)
    return float(np.median([np.median(v) for v in by_place.values()]))


def class_draws(freq: np.ndarray, balance: float) -> np.ndarray:
    """Chip-centre class probabilities from training pixels per class: share ** ``balance``, normalised
    (1: as in the labels, 0.5: the square root, 0: every present class equally); absent classes 0."""
    share = freq / max(float(freq.sum()), 1.0)
    w = np.where(freq > 0, np.maximum(share, 1e-6) ** balance, 0.0)
    return w / w.sum()


def prepare_data(cfg: TrainConfig) -> tuple[list[Scene], np.ndarray, np.ndarray, ModelCard]:
    """Scenes in memory, class loss weights and sampling weights, and the card to fill."""
    ncls = len(cfg.classes)
    names = [c.name for c in cfg.classes]
    # resample_scenes: chips at the pixel size the model is trained for, the config's or else the coarsest
    # scene's (by default finer scenes are shrunk to it, as `segment` shrinks finer inputs, and nothing is
    # enlarged; a configured gsd_m finer than a scene enlarges that scene)
    target = (cfg.gsd_m or max(scene_gsd(s) for s in cfg.scenes)) if cfg.resample_scenes else None
    scenes = [load_scene(s, cfg, target) for s in cfg.scenes]
    gsd_m = cfg.gsd_m or target or place_median_gsd([spec.place for spec in cfg.scenes], [s.gsd_m for s in scenes])
    for s in scenes:
        lab = np.where(s.train_mask, s.labels, CLASS_NODATA)
        s.centres = {k: np.argwhere(lab == k) for k in range(ncls)}
    freq = np.array([sum(len(s.centres[k]) for s in scenes) for k in range(ncls)], float)
    if (freq == 0).any():
        log.warning("classes with no training pixels: %s", [n for n, f in zip(names, freq) if f == 0])
    share = freq / freq.sum()
    loss_w = np.where(freq > 0, 1.0 / np.sqrt(np.maximum(share, 1e-6)), 0.0)
    loss_w = loss_w / loss_w[freq > 0].mean()
    sample_w = class_draws(freq, cfg.class_balance)
    card = ModelCard(
        name=cfg.name, version=cfg.version, arch=cfg.arch, encoder=cfg.encoder, arch_kwargs=cfg.arch_kwargs,
        bands=list(cfg.bands), classes=cfg.classes, normalization=cfg.normalization,
        tile_size=cfg.tile_size, halo=cfg.halo, licence=cfg.licence, index_channels=list(cfg.index_channels),
        gsd_m=round(float(gsd_m), 3),
    )
    return scenes, loss_w, sample_w, card

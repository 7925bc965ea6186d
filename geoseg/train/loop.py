"""``geoseg train``: fit a segmentation-models-pytorch network on (image, labels) pairs.

Chips are sampled from each scene outside a spatially held-out validation block (a
strip at one side of the scene, separated by a gap), normalised with the same
per-scene code as inference (:mod:`geoseg.model.normalization`), augmented (flips, 90°
rotations, brightness/contrast jitter), and fitted with class-weighted cross-entropy
that ignores nodata. The best checkpoint by validation mIoU is kept (early stopping).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from geoseg import CLASS_NODATA
from geoseg.config import Strict
from geoseg.errors import TrainingError
from geoseg.model.metrics import confusion_matrix, scores
from geoseg.model.checkpoint import ClassInfo, ModelCard, build_network, save_checkpoint
from geoseg.model.normalization import Normalization, apply, scene_stats
from geoseg.io.raster import RasterInfo, open_raster, read_window, resolve_bands
from geoseg.tiling import PixelBox

log = logging.getLogger(__name__)


class ValidationSpec(Strict):
    """The spatially held-out block: a strip on one ``side`` of the scene, or an explicit ``block``."""

    side: Literal["left", "right", "top", "bottom"] = "right"
    fraction: float = Field(0.2, gt=0, lt=0.9, description="share of the scene held out (with `side`)")
    block: tuple[int, int, int, int] | None = Field(
        None, description="explicit held-out block [col_off, row_off, width, height] in pixels; overrides side"
    )
    gap: int = Field(16, ge=0, description="pixels around the block used for neither training nor validation")

    def box(self, width: int, height: int) -> PixelBox:
        if self.block is not None:
            c, r, w, h = self.block
            if c < 0 or r < 0 or w < 1 or h < 1 or c + w > width or r + h > height:
                raise TrainingError(f"validation.block {list(self.block)} is not inside the {width}x{height} scene")
            return PixelBox(c, r, w, h)
        n_cols, n_rows = int(round(width * self.fraction)), int(round(height * self.fraction))
        return {
            "left": PixelBox(0, 0, n_cols, height),
            "right": PixelBox(width - n_cols, 0, n_cols, height),
            "top": PixelBox(0, 0, width, n_rows),
            "bottom": PixelBox(0, height - n_rows, width, n_rows),
        }[self.side]


VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".fgb", ".shp", ".parquet")


class SceneSpec(Strict):
    image: str
    labels: str = Field(
        description="class raster on any grid (resampled by nearest neighbour to the image grid), or labelled "
        "polygons (GeoPackage/GeoJSON/FlatGeobuf/GeoParquet, any CRS) rasterized onto the image grid"
    )
    class_field: str = Field("class", description="attribute holding the label value, for polygon labels")
    class_map: dict[int, int] | None = Field(None, description="source label value -> model class id")
    validation: ValidationSpec | None = Field(None, description="this scene's held-out block (default: the top-level one)")


class TrainerSpec(Strict):
    """Where the loop runs."""

    ray: bool = Field(True, description="run on Ray Train (TorchTrainer); false: in this process")
    num_workers: int = Field(1, ge=1, description="Ray Train workers (DDP); one per GPU when use_gpu")
    use_gpu: bool | None = Field(None, description="None: when the Ray cluster has GPUs")
    address: str | None = Field(None, description="Ray address; None: RAY_ADDRESS if set, else a local Ray")
    storage_path: str | None = Field(None, description="Ray Train storage (shared or s3:// on multi-node clusters)")


class TrainConfig(Strict):
    name: str = "landcover"
    version: str = "1"
    output: str
    arch: str = "unet"
    encoder: str = "mobilenet_v2"
    arch_kwargs: dict[str, Any] = Field(default_factory=dict)
    bands: list[str]
    classes: list[ClassInfo]
    normalization: Normalization = Field(default_factory=Normalization)
    scenes: list[SceneSpec] = Field(min_length=1)
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    chip_size: int = Field(128, ge=32)
    batch_size: int = Field(16, ge=1)
    steps: int = Field(1500, ge=1)
    eval_every: int = Field(100, ge=1)
    patience: int = Field(5, ge=1, description="evaluations without mIoU gain before stopping")
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    seed: int = 0
    threads: int | None = Field(None, description="torch threads per worker")
    trainer: TrainerSpec = Field(default_factory=TrainerSpec)
    tile_size: int = 512
    halo: int = 32
    licence: str | None = None


@dataclass
class Scene:
    """One training scene held in memory: normalised image, labels, train/val split."""

    name: str
    image: np.ndarray  # (bands, rows, cols) float32, normalised
    labels: np.ndarray  # (rows, cols) uint8, 255 = ignore
    train_mask: np.ndarray  # (rows, cols) bool
    val_box: tuple[slice, slice]
    validation: ValidationSpec
    centres: dict[int, np.ndarray] = field(default_factory=dict)  # train pixels per class


def load_scene(spec: SceneSpec, cfg: TrainConfig) -> Scene:
    """Read an image and its labels (aligned to the image grid), normalise, split spatially."""
    from rasterio.warp import Resampling, reproject

    with open_raster(spec.image) as src:
        info = RasterInfo.from_dataset(spec.image, src)
        idx = resolve_bands(info, list(cfg.bands))
        stats = scene_stats(src, idx, cfg.normalization)
        data, valid = read_window(src, idx, info.box)
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


def rasterize_labels(path: str, field: str, crs, transform, shape: tuple[int, int]) -> np.ndarray:
    """Burn labelled polygons into a ``(rows, cols)`` uint8 raster on the image grid (255 where none).

    A pixel takes the value of the polygon covering its centre (GDAL's rule); where
    polygons overlap, the later feature wins.
    """
    import geopandas as gpd
    from rasterio.features import rasterize

    from geoseg.io.raster import gdal_path

    gdf = gpd.read_parquet(path) if path.lower().endswith(".parquet") else gpd.read_file(gdal_path(path))
    if field not in gdf.columns:
        raise TrainingError(f"{path}: no attribute {field!r}; it has {list(gdf.columns.drop('geometry'))}. "
                            "Set `class_field` for this scene")
    if gdf.crs is None:
        raise TrainingError(f"{path}: labelled polygons have no CRS; save them with one")
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty].to_crs(crs)
    values = gdf[field].to_numpy()
    if not np.issubdtype(values.dtype, np.integer) or values.min(initial=0) < 0 or values.max(initial=0) > 255:
        raise TrainingError(f"{path}: `{field}` must hold integer label values 0..255, got {values.dtype}")
    return rasterize(zip(gdf.geometry, values.astype(int)), out_shape=shape, transform=transform,
                     fill=CLASS_NODATA, dtype="uint8")


def remap_labels(labels: np.ndarray, class_map: dict[int, int] | None, n_classes: int, source: str) -> np.ndarray:
    """Apply a source->model class mapping; values not in the map are an error (255 passes)."""
    present = set(np.unique(labels).tolist()) - {CLASS_NODATA}
    if class_map is None:
        bad = sorted(v for v in present if v >= n_classes)
        if bad:
            raise TrainingError(
                f"{source}: label values {bad} are not model classes 0..{n_classes - 1}; add a class_map for this scene"
            )
        return labels
    unknown = sorted(present - set(class_map))
    if unknown:
        raise TrainingError(
            f"{source}: label values {unknown} are not in class_map {dict(class_map)}; map them to a class id or to 255"
        )
    lut = np.full(256, CLASS_NODATA, np.uint8)
    for k, v in class_map.items():
        if not (0 <= v < n_classes or v == CLASS_NODATA):
            raise TrainingError(f"{source}: class_map sends {k} to {v}, which is not a class id 0..{n_classes - 1} or 255")
        lut[k] = v
    return lut[labels]


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


def evaluate_scenes(net, scenes: list[Scene], n_classes: int, device: str = "cpu") -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Confusion matrices on each scene's held-out block (one forward pass per block)."""
    import torch

    total = np.zeros((n_classes, n_classes), np.int64)
    per_scene = {}
    net.eval()
    with torch.inference_mode():
        for s in scenes:
            rs, cs = s.val_box
            x = s.image[:, rs, cs]
            h, w = x.shape[1:]
            ph, pw = (-h) % 32, (-w) % 32
            t = torch.nn.functional.pad(torch.from_numpy(np.ascontiguousarray(x))[None], (0, pw, 0, ph), mode="reflect")
            pred = net(t.to(device)).argmax(1)[0, :h, :w].cpu().numpy().astype(np.uint8)
            cm = confusion_matrix(s.labels[rs, cs], pred, n_classes)
            per_scene[s.name] = cm
            total += cm
    return total, per_scene


def train(cfg: TrainConfig) -> Path:
    """Train, write the best checkpoint to ``cfg.output`` and return its path.

    With ``trainer.ray`` (the default) the loop runs on Ray Train workers (DDP; CPU or GPU);
    otherwise in this process. Both run :func:`fit`.
    """
    cfg = _resolve_paths(cfg)
    if cfg.arch == "spectral_index":
        card, state = _fit_baseline(cfg)
    elif cfg.trainer.ray:
        from geoseg.runtime.executors import train_on_ray

        card, state = train_on_ray(cfg)
    else:
        card, state = fit(cfg)
    save_checkpoint(cfg.output, card, state)
    log.info("wrote %s (val mIoU %s)", cfg.output, card.metrics["pooled"]["miou"])
    return Path(cfg.output)


def _resolve_paths(cfg: TrainConfig) -> TrainConfig:
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


def fit(cfg: TrainConfig, rank: int = 0, world: int = 1, prepare_model=None, device: str = "cpu"):
    """The training loop; returns ``(card with metrics, best state_dict on CPU)``.

    Distributed (``world > 1``): ``prepare_model`` wraps the network (DDP), each rank draws
    its own chips (seed + rank), and rank 0's early-stopping decision is broadcast so that
    every rank stops at the same step.
    """
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed + rank)
    scenes, loss_w, sample_w, card = prepare_data(cfg)
    ncls = len(cfg.classes)
    net = build_network(card).to(device).to(memory_format=torch.channels_last)
    model = prepare_model(net) if prepare_model else net
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.steps >= 20:  # warm up over 10 % of the steps, then anneal
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    else:  # too few steps for a schedule (smoke runs)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(loss_w, dtype=torch.float32, device=device),
                                        ignore_index=CLASS_NODATA)
    best = (-1.0, None, None, 0)
    history = []
    bad_evals = 0
    t0 = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        model.train()
        x, y = sample_chips(scenes, cfg.batch_size, cfg.chip_size, rng, sample_w)
        xt = torch.from_numpy(x).to(device).contiguous(memory_format=torch.channels_last)
        loss = loss_fn(model(xt), torch.from_numpy(y).long().to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            cm, per_scene = evaluate_scenes(net, scenes, ncls, device)
            miou = scores(cm, card.class_names)["miou"]
            history.append({"step": step, "loss": round(loss.item(), 4), "val_miou": miou})
            if rank == 0:
                log.info("step %d loss %.4f val mIoU %s (%.0fs)", step, loss.item(), miou, time.perf_counter() - t0)
            if miou is not None and miou > best[0]:
                best = (miou, {k: v.detach().to("cpu").clone() for k, v in net.state_dict().items()}, (cm, per_scene), step)
                bad_evals = 0
            else:
                bad_evals += 1
            if _agree_to_stop(bad_evals >= cfg.patience, world, device):
                if rank == 0:
                    log.info("early stop at step %d: no val mIoU gain in %d evaluations", step, cfg.patience)
                break
    if best[1] is None:
        raise TrainingError("no evaluation produced a validation mIoU; check the labels of the validation blocks")
    cm, per_scene = best[2]
    _record_metrics(card, scenes, cm, per_scene)
    card.training = {
        "scenes": [s.model_dump() for s in cfg.scenes],
        "config": cfg.model_dump(mode="json"),
        "best_step": best[3],
        "steps_run": step,
        "workers": world,
        "history": history,
        "seconds": round(time.perf_counter() - t0, 1),
        "loss_class_weights": [round(float(v), 4) for v in loss_w],
        "torch": torch.__version__,
    }
    return card, best[1]


def _agree_to_stop(stop: bool, world: int, device: str) -> bool:
    """Rank 0's early-stopping decision, shared with every rank."""
    if world == 1:
        return stop
    import torch
    import torch.distributed as dist

    flag = torch.tensor([1 if stop else 0], device=device)
    dist.broadcast(flag, src=0)
    return bool(flag.item())


def _record_metrics(card: ModelCard, scenes: list[Scene], cm: np.ndarray, per_scene: dict[str, np.ndarray]) -> None:
    names = card.class_names
    card.metrics = {
        "validation": "spatially held-out block per scene (pixel box [col_off, row_off, width, height]), "
        "one forward pass over the block",
        "validation_blocks": {
            s.name: [s.val_box[1].start, s.val_box[0].start, s.val_box[1].stop - s.val_box[1].start,
                     s.val_box[0].stop - s.val_box[0].start]
            for s in scenes
        },
        "pooled": scores(cm, names),
        "per_scene": {k: scores(v, names) for k, v in per_scene.items()},
    }


def _fit_baseline(cfg: TrainConfig) -> tuple[ModelCard, dict]:
    """Fit the spectral-index thresholds on the training areas and score them on the held-out blocks."""
    from geoseg.model.baseline import fit_thresholds

    t0 = time.perf_counter()
    scenes, _, _, card = prepare_data(cfg)
    net = build_network(card)
    fitted = fit_thresholds(net, [s.image for s in scenes],
                            [np.where(s.train_mask, s.labels, CLASS_NODATA) for s in scenes], len(card.classes),
                            seed=cfg.seed)
    cm, per_scene = evaluate_scenes(net, scenes, len(card.classes))
    _record_metrics(card, scenes, cm, per_scene)
    card.training = {
        "scenes": [s.model_dump() for s in cfg.scenes],
        "config": cfg.model_dump(mode="json"),
        "method": "coordinate-descent search of NDVI/NDWI/brightness thresholds maximising train-area mIoU",
        "thresholds": fitted,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return card, net.state_dict()

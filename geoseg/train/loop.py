"""``geoseg train``: fit a segmentation-models-pytorch network on (image, labels) pairs.

Chips come from :mod:`geoseg.train.data`; the network is fitted with class-weighted
cross-entropy that ignores nodata, and the best checkpoint by validation mIoU on the
held-out blocks is kept (early stopping). On Ray Train: :mod:`geoseg.train.distributed`; :func:`geoseg.train.run.train` picks.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from geoseg import CLASS_NODATA
from geoseg.config import TrainConfig
from geoseg.errors import TrainingError
from geoseg.model.checkpoint import ModelCard, build_network
from geoseg.model.metrics import confusion_matrix, scores
from geoseg.model.predict import pad_for_model
from geoseg.train.data import Scene, prepare_data, sample_chips

log = logging.getLogger(__name__)


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
            padded, (top, left) = pad_for_model(x[None])  # as segment pads it, so the card's scores are its
            pred = net(torch.from_numpy(padded).to(device)).argmax(1)[0, top:top + h, left:left + w]
            pred = pred.cpu().numpy().astype(np.uint8)
            cm = confusion_matrix(s.labels[rs, cs], pred, n_classes)
            per_scene[s.name] = cm
            total += cm
    return total, per_scene


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
    sched: torch.optim.lr_scheduler.LRScheduler
    if cfg.steps >= 20:  # warm up over 10 % of the steps, then anneal
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    else:  # too few steps for a schedule (smoke runs)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(loss_w, dtype=torch.float32, device=device),
                                        ignore_index=CLASS_NODATA)
    # the best evaluation so far: (val mIoU, state_dict on the CPU, (confusion matrix, per scene), step)
    best: tuple[float, dict[str, torch.Tensor] | None, tuple[np.ndarray, dict[str, np.ndarray]] | None, int]
    best = (-1.0, None, None, 0)
    history = []
    bad_evals = 0
    t0 = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        model.train()
        x, y = sample_chips(scenes, cfg.batch_size, cfg.chip_size, rng, sample_w, cfg.augment)
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
    _, best_state, best_eval, best_step = best
    if best_state is None:
        raise TrainingError("no evaluation produced a validation mIoU; check the labels of the validation blocks")
    assert best_eval is not None  # recorded together with best_state
    cm, per_scene = best_eval
    _record_metrics(card, scenes, cm, per_scene)
    card.training = {
        "scenes": [s.model_dump() for s in cfg.scenes],
        "config": cfg.model_dump(mode="json"),
        "best_step": best_step,
        "steps_run": step,
        "workers": world,
        "history": history,
        "seconds": round(time.perf_counter() - t0, 1),
        "loss_class_weights": [round(float(v), 4) for v in loss_w],
        "chip_class_draws": [round(float(v), 4) for v in sample_w],
        "torch": torch.__version__,
    }
    return card, best_state


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


def fit_baseline(cfg: TrainConfig) -> tuple[ModelCard, dict]:
    """Fit the spectral-index thresholds on the training areas (``spectral_index``; the fixed rule,
    ``spectral_rule``, keeps its thresholds) and score them on the held-out blocks."""
    from geoseg.model.baseline import FIXED_RULE, fit_thresholds

    t0 = time.perf_counter()
    scenes, _, _, card = prepare_data(cfg)
    net = build_network(card)
    if cfg.arch == "spectral_rule":
        fitted, method = dict(FIXED_RULE), "fixed thresholds (issue #11's rule), nothing fitted"
    else:
        fitted = fit_thresholds(net, [s.image for s in scenes],
                                [np.where(s.train_mask, s.labels, CLASS_NODATA) for s in scenes], len(card.classes),
                                seed=cfg.seed)
        method = "coordinate-descent search of NDVI/NDWI/brightness thresholds maximising train-area mIoU"
    cm, per_scene = evaluate_scenes(net, scenes, len(card.classes))
    _record_metrics(card, scenes, cm, per_scene)
    card.index_channels = []
    card.gsd_m = None  # a per-pixel rule: applied at every input's own pixel size
    card.training = {
        "scenes": [s.model_dump() for s in cfg.scenes],
        "config": cfg.model_dump(mode="json"),
        "method": method,
        "thresholds": fitted,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return card, net.state_dict()

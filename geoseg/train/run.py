"""``geoseg train``: fit a model where the config says (this process, or Ray Train) and write its checkpoint;
with ``leave_one_scene_out.enabled``, validate the recipe on held-out places first (:mod:`geoseg.train.loso`)."""

from __future__ import annotations

import logging
from pathlib import Path

from geoseg.config import TrainConfig
from geoseg.model.checkpoint import ModelCard, save_checkpoint
from geoseg.train.data import resolve_paths
from geoseg.train.loop import fit, fit_baseline
from geoseg.train.loso import leave_one_scene_out

log = logging.getLogger(__name__)


def fit_model(cfg: TrainConfig) -> tuple[ModelCard, dict]:
    """``(card with metrics, state_dict)`` of ``cfg``'s recipe: the baselines are fitted directly; networks on
    Ray Train workers with ``trainer.ray`` (DDP; CPU or GPU, :mod:`geoseg.train.distributed`), else in this process.
    """
    if cfg.arch in ("spectral_index", "spectral_rule"):
        return fit_baseline(cfg)
    if cfg.trainer.ray:
        from geoseg.train.distributed import train_on_ray

        return train_on_ray(cfg)
    return fit(cfg)


def train(cfg: TrainConfig) -> Path:
    """Train, write the best checkpoint to ``cfg.output`` and return its path.

    With ``leave_one_scene_out.enabled`` one model per held-out place is trained and scored first; the
    scores go into the final card's ``metrics.leave_one_scene_out``.
    """
    cfg = resolve_paths(cfg)
    loso = leave_one_scene_out(cfg, fit_model) if cfg.leave_one_scene_out.enabled else None
    card, state = fit_model(cfg)
    if loso is not None:
        card.metrics["leave_one_scene_out"] = loso
    save_checkpoint(cfg.output, card, state)
    log.info("wrote %s (val mIoU %s)", cfg.output, card.metrics["pooled"]["miou"])
    return Path(cfg.output)

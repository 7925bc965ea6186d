"""``geoseg train``: fit a model where the config says (this process, or Ray Train) and write its checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path

from geoseg.config import TrainConfig
from geoseg.model.checkpoint import save_checkpoint
from geoseg.train.data import resolve_paths
from geoseg.train.loop import fit, fit_baseline

log = logging.getLogger(__name__)


def train(cfg: TrainConfig) -> Path:
    """Train, write the best checkpoint to ``cfg.output`` and return its path.

    With ``trainer.ray`` (the default) the loop runs on Ray Train workers (DDP; CPU or GPU,
    :mod:`geoseg.train.distributed`); otherwise in this process. Both run
    :func:`geoseg.train.loop.fit`; the spectral-index baseline is fitted directly.
    """
    cfg = resolve_paths(cfg)
    if cfg.arch == "spectral_index":
        card, state = fit_baseline(cfg)
    elif cfg.trainer.ray:
        from geoseg.train.distributed import train_on_ray

        card, state = train_on_ray(cfg)
    else:
        card, state = fit(cfg)
    save_checkpoint(cfg.output, card, state)
    log.info("wrote %s (val mIoU %s)", cfg.output, card.metrics["pooled"]["miou"])
    return Path(cfg.output)

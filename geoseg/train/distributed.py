"""Training on Ray Train: :func:`geoseg.train.loop.fit` on ``TorchTrainer`` workers (DDP over gloo/NCCL)."""

from __future__ import annotations

import functools
import os

from geoseg.config import TrainConfig
from geoseg.errors import TrainingError
from geoseg.runtime.cluster import connect, shutdown


def train_on_ray(cfg: TrainConfig):
    """Run :func:`geoseg.train.loop.fit` on Ray Train workers (``TorchTrainer``, DDP over gloo/NCCL).

    Returns ``(card, state_dict)`` of the best step. Rank 0 reports the checkpoint (card +
    safetensors) to Ray Train's storage, from which the driver reads it back, so workers
    need no shared filesystem with the driver on a multi-node cluster when
    ``trainer.storage_path`` is shared storage (e.g. ``s3://``).
    """
    import tempfile

    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from geoseg.model.checkpoint import load_checkpoint

    spec = cfg.trainer
    owns = connect(spec.address)
    try:
        use_gpu = spec.use_gpu if spec.use_gpu is not None else ray.cluster_resources().get("GPU", 0) > 0
        storage = spec.storage_path or tempfile.mkdtemp(prefix="geoseg-train-")
        trainer = TorchTrainer(
            _train_loop,
            train_loop_config={"cfg": cfg.model_dump(mode="json")},
            scaling_config=ScalingConfig(num_workers=spec.num_workers, use_gpu=use_gpu,
                                         resources_per_worker={"CPU": cfg.threads or 1}),
            run_config=RunConfig(name=f"{cfg.name}-{cfg.version}", storage_path=os.path.abspath(storage)
                                 if "://" not in storage else storage),
        )
        result = trainer.fit()
        if result.error:
            raise result.error
        if result.checkpoint is None:  # rank 0 reports one at the end of a successful fit
            raise TrainingError("Ray Train finished without a checkpoint from rank 0")
        with result.checkpoint.as_directory() as d:
            ckpt = load_checkpoint(d)
            from safetensors.torch import load_file

            return ckpt.card, load_file(os.path.join(d, "weights.safetensors"))
    finally:
        if owns:
            shutdown()


def _train_loop(config: dict) -> None:
    """Body of each Ray Train worker."""
    import tempfile

    import ray.train
    import ray.train.torch

    from geoseg.model.checkpoint import save_checkpoint
    from geoseg.train.loop import fit

    cfg = TrainConfig.model_validate(config["cfg"])
    ctx = ray.train.get_context()
    device = ray.train.torch.get_device()
    # smp encoders cut to `encoder_depth` keep their deeper (unused) stages: DDP must allow that
    prepare = functools.partial(ray.train.torch.prepare_model, parallel_strategy_kwargs={"find_unused_parameters": True})
    card, state = fit(cfg, rank=ctx.get_world_rank(), world=ctx.get_world_size(), prepare_model=prepare,
                      device=str(device))
    metrics = {"val_miou": card.metrics["pooled"]["miou"], "best_step": card.training["best_step"]}
    if ctx.get_world_rank() == 0:
        with tempfile.TemporaryDirectory() as d:
            save_checkpoint(d, card, state)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))
    else:
        ray.train.report(metrics)

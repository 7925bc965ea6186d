"""``geoseg train``: fit a land-cover model and write a checkpoint."""

from __future__ import annotations

import click

from geoseg.cli import options


@click.command("train")
@options.config("Training YAML, e.g. configs/train_default.yaml.", required=True)
@click.option("-o", "--output", help="Checkpoint directory to write (overrides `output`).")
@click.option("--steps", type=int, help="Override the number of optimisation steps.")
@click.option("--seed", type=int, help="Override the random seed.")
def command(config_path, output, steps, seed):
    """Train a land-cover model and write a checkpoint (model.json + weights.safetensors)."""
    from geoseg.config import TrainConfig
    from geoseg.model.checkpoint import load_checkpoint
    from geoseg.train.run import train as run_train

    cfg = options.load_config(config_path, TrainConfig, {"output": output, "steps": steps, "seed": seed})
    path = run_train(cfg)
    card = load_checkpoint(path).card
    pooled = card.metrics.get("pooled", {})
    click.echo(f"wrote {path}: validation mIoU {pooled.get('miou')}")
    for name, m in pooled.get("per_class", {}).items():
        click.echo(f"  {name:8s} IoU {m['iou']}")

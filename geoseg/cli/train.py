"""``geoseg train``: fit a land-cover model and write a checkpoint."""

from __future__ import annotations

import click

from geoseg.cli import options


@click.command("train")
@options.config("Training YAML, e.g. configs/train_default.yaml.", required=True)
@click.option("-o", "--output", help="Checkpoint directory to write (overrides `output`).")
@click.option("--steps", type=int, help="Override the number of optimisation steps.")
@click.option("--seed", type=int, help="Override the random seed.")
@click.option("--leave-one-scene-out/--no-leave-one-scene-out", "loso", default=None,
              help="First train one model per held-out place and score it there, beside the fitted baseline and "
                   "the fixed rule (`leave_one_scene_out.enabled`); the scores go into the model card.")
@click.option("--loso-steps", type=int, help="Optimisation steps of each leave-one-scene-out fold (`leave_one_scene_out.steps`).")
def command(config_path, output, steps, seed, loso, loso_steps):
    """Train a land-cover model and write a checkpoint (model.json + weights.safetensors)."""
    from geoseg.config import TrainConfig
    from geoseg.model.checkpoint import load_checkpoint
    from geoseg.train.loso import format_table
    from geoseg.train.run import train as run_train

    cfg = options.load_config(config_path, TrainConfig, {"output": output, "steps": steps, "seed": seed,
                                                         "leave_one_scene_out.enabled": loso,
                                                         "leave_one_scene_out.steps": loso_steps})
    path = run_train(cfg)
    card = load_checkpoint(path).card
    pooled = card.metrics.get("pooled", {})
    click.echo(f"wrote {path}: validation mIoU {pooled.get('miou')} (held-out blocks of the training scenes)")
    for name, m in pooled.get("per_class", {}).items():
        click.echo(f"  {name:8s} IoU {m['iou']}")
    if "leave_one_scene_out" in card.metrics:
        click.echo("leave-one-scene-out (each place scored by a model that never saw it):")
        click.echo(format_table(card.metrics["leave_one_scene_out"]))

"""``geoseg evaluate``: score a model on a labelled raster through the segment pipeline."""

from __future__ import annotations

from pathlib import Path

import click

from geoseg.cli import options


@click.command("evaluate")
@click.argument("image")
@click.argument("labels")
@options.output_dir("Output directory (metrics.json + class map).", required=True)
@options.model
@click.option("--class-map", type=click.Path(dir_okay=False), help="YAML mapping label values to model class ids (255 = ignore).")
@click.option("--class-field", default="class", show_default=True,
              help="Attribute holding the label value, when LABELS are polygons, lines or points (sparse labels).")
@options.config("Segment YAML config for tiling/runtime.")
@options.local
@options.overwrite
@click.pass_context
def command(ctx, image, labels, output, model, class_map, class_field, config_path, local, overwrite):
    """Score a model on IMAGE against LABELS (a class raster on any grid, or labelled polygons/points in a vector
    file: only labelled pixels count) through the segment pipeline.

    Writes OUTPUT/metrics.json with per_class (iou, precision, recall, f1, support), miou,
    overall_accuracy and confusion_matrix (rows: reference, columns: predicted), and prints a table.
    """
    from geoseg.config import SegmentConfig
    from geoseg.segment.evaluate import evaluate as run_evaluate
    from geoseg.segment.evaluate import format_table

    cfg = options.load_config(config_path, SegmentConfig, {"overwrite": overwrite, "runtime.local": local})
    metrics = run_evaluate(image, labels, output, model, class_map, cfg, progress=ctx.obj["progress"],
                           class_field=class_field)
    click.echo(format_table(metrics))
    click.echo(f"wrote {Path(output) / 'metrics.json'}")

"""``geoseg change``: land-cover change between two dates, with guards against false change."""

from __future__ import annotations

from pathlib import Path

import click

from geoseg.cli import options
from geoseg.config import ChangeConfig

GUARDS = ChangeConfig().model_dump()
"""The Python API's defaults, shown and used by the flags."""


@click.command("change")
@click.argument("dates", nargs=-1, metavar="BEFORE AFTER")
@click.option("--before", "before_opt", help="Earlier date (same as the first argument).")
@click.option("--after", "after_opt", help="Later date (same as the second argument).")
@options.output_dir(required=True)
@click.option("--min-confidence", type=float, default=GUARDS["min_confidence"], show_default=True,
              help="Confidence guard: change only where both dates' confidence is at least this (percent; 0: off).")
@options.mmu_ha(GUARDS["mmu_ha"], "Minimum mapping unit: changed patches (4-connected, one from->to pair) smaller "
                "than this (hectares) are uncertain.")
@click.option("--confirm", multiple=True,
              help="Persistence guard: a later date that must still show the after class (repeat for several dates).")
@click.option("--grid", default=GUARDS["grid"], show_default=True, help="Common grid: after, before, or a raster whose grid to use.")
@click.option("--before-confidence", help="Confidence raster of BEFORE (default: its sibling *_confidence.tif).")
@click.option("--after-confidence", help="Confidence raster of AFTER (default: its sibling *_confidence.tif).")
@options.model
@options.native_resolution
@options.config("Segment YAML for dates given as scenes (its `sink` key is used when --sink is not given).")
@options.sink
@options.local
@options.block_size
@click.option("--overwrite", is_flag=True, help="Replace existing outputs in the output directory.")
@click.pass_context
def command(ctx, dates, before_opt, after_opt, output, min_confidence, mmu_ha, confirm, grid, before_confidence,
           after_confidence, model, native_resolution, config_path, sink, local, block_size, overwrite):
    """Land-cover change between BEFORE and AFTER: class maps (geoseg *_classes.tif) or scenes to segment first.

    \b
    Both dates are read on one grid (--grid; nearest), nodata in either is excluded. Writes, in --output:
      change.tif            uint8 COG: 0 no change, 1 + from*n + to per from->to pair, 254 uncertain, 255 nodata
      transitions.csv       from_class, to_class, pixels, area_ha (diagonal: unchanged; to_class uncertain)
      transitions.json      the table, guard removals, nodata per date, named change types, legend
      change_polygons.gpkg  layer `change`: from/to class, change_type, area_ha, mean confidence of both dates
    With --sink, the polygons, transitions and statistics also go to PostGIS (change_polygons, transitions,
    change_stats).
    """
    from geoseg.change.detect import detect_change
    from geoseg.config import SegmentConfig, validate
    from geoseg.errors import ConfigError

    if len(dates) > 2 or (dates and (before_opt or after_opt)):
        raise click.UsageError("give BEFORE AFTER as two arguments, or --before and --after")
    before, after = dates if len(dates) == 2 else (before_opt, after_opt)
    if not before or not after:
        raise click.UsageError("need two dates: geoseg change BEFORE AFTER --output DIR")
    opts = validate({"min_confidence": min_confidence, "mmu_ha": mmu_ha, "grid": grid, "block_size": block_size},
                    ChangeConfig, source="command line", flags=options.FLAGS)
    seg = options.load_config(config_path, SegmentConfig, {"model": model, "native_resolution": native_resolution,
                                                           "runtime.local": local, "sink": sink})
    if seg.inputs or seg.output:
        raise ConfigError(f"config {config_path}: `inputs`/`output` are not used by `change`; remove them")
    result = detect_change(before, after, output, confirm=list(confirm) or None, before_confidence=before_confidence,
                           after_confidence=after_confidence, segment_cfg=seg, overwrite=overwrite,
                           options=opts, progress=ctx.obj["progress"], sink=seg.sink)
    r = result.report
    click.echo(f"geoseg change: valid {r.valid.area_ha:.2f} ha, changed {r.changed.area_ha:.2f} ha, "
               f"uncertain {r.uncertain.area_ha:.2f} ha; nodata excluded: before "
               f"{r.nodata_before.area_ha:.2f} ha, after {r.nodata_after.area_ha:.2f} ha "
               f"(of which masked for quality, either date: {r.quality_excluded.area_ha:.2f} ha)")
    click.echo("  removed by guards: " + ", ".join(f"{k} {a.area_ha:.2f} ha" for k, a in r.removed.items()))
    click.echo("  " + ", ".join(f"{k} {a.area_ha:.2f} ha" for k, a in r.change_types.items()))
    where = result.output_dir if "://" in result.output_dir else Path(result.output_dir).resolve()
    click.echo(f"outputs in {where}: " + ", ".join(Path(f).name for f in result.files))
    if result.sink:
        click.echo(result.sink.describe())

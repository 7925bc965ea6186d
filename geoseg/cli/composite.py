"""``geoseg composite``: one class map per period from the class maps of many acquisitions."""

from __future__ import annotations

import click

from geoseg.cli import options


@click.command("composite")
@click.argument("classmaps", nargs=-1, required=True)
@options.output_dir(required=True)
@click.option("--name", default="composite", show_default=True, help="Stem of the output files (e.g. the period, 2024-Q3).")
@click.option("--min-looks", type=int, default=1, show_default=True,
              help="Clear looks a pixel needs; pixels with fewer are nodata (255) in the classes and share.")
@click.option("--grid", help="Raster whose grid (CRS, transform, size) to write on. Default: the first class map's.")
@options.block_size
@options.overwrite
def command(classmaps, output, name, min_looks, grid, block_size, overwrite):
    """Combine the CLASSMAPS (*_classes.tif) of the acquisitions of one period into one map.

    Per pixel: the class seen most often among the clear looks (masked and nodata pixels are not
    looks; ties go to the higher summed confidence of the sibling *_confidence.tif), its share of
    the clear looks and the number of clear looks. Writes, in --output: <name>_classes.tif,
    <name>_share.tif (percent), <name>_looks.tif (count), styles, and <name>_composite.json.
    """
    from geoseg.change.composite import composite
    from geoseg.io.urls import redact

    res = composite(classmaps, output, name=name, min_looks=min_looks, grid=grid, block_size=block_size,
                    overwrite=bool(overwrite))
    looks = ", ".join(f"{k}: {v}" for k, v in enumerate(res.pixels_by_looks) if v)
    click.echo(f"geoseg composite: {res.inputs} class map(s) -> {redact(res.output)}")
    click.echo("  " + ", ".join(f"{k} {v:.1f} ha" for k, v in res.class_area_ha.items()))
    click.echo(f"  pixels by clear looks ({looks}); {res.below_min_looks} below --min-looks {min_looks} (nodata)")

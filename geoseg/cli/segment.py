"""``geoseg segment``: rasters in, class and confidence COGs, polygons and statistics out."""

from __future__ import annotations

from pathlib import Path

import click

from geoseg.cli import options


@click.command("segment")
@click.argument("inputs", nargs=-1)
@options.output_dir()
@options.config()
@options.model
@click.option("--tile-size", type=int, help="Model input side in pixels, multiple of 32. Default: the model card's.")
@click.option("--halo", type=int, help="Overlap in pixels discarded on each tile side. Default: the model card's.")
@click.option("--bands", help="Comma-separated band names or 1-based indexes, in model order, e.g. green,red,nir.")
@click.option("--aoi", help="GeoJSON/GeoPackage polygon(s), any CRS: only tiles touching it are run; output masked outside.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="auto: GPU actors when the cluster has GPUs.")
@click.option("--engine", type=click.Choice(["auto", "torch", "onnxruntime"]),
              help="Inference engine. auto: ONNX Runtime on CPU (checked against PyTorch), PyTorch on GPU.")
@click.option("--workers", type=int, help="Number of model actors. Default: one per GPU, else one per CPU.")
@click.option("--batch-size", type=int, help="Tiles per forward pass (default 4).")
@options.native_resolution
@click.option("--stats-from", help="Scale inputs by this raster's percentiles (the scene a strip or small crop was cut from), "
              "or by a geoseg manifest.json's. Default: each input's own.")
@click.option("--mask", help="Quality raster (QA_PIXEL, QA_RADSAT, SCL, Fmask or 0/1), any grid: flagged pixels become nodata. "
              "{stem} stands for each input's stem. Default: a QA_PIXEL/SCL/Fmask band of the input, if any.")
@click.option("--mask-format", type=click.Choice(["auto", "landsat_qa_pixel", "landsat_qa_radsat", "s2_scl", "fmask", "binary"]),
              help="How to decode the quality raster. auto: from its band description or file name.")
@options.sink
@options.local
@options.overwrite
@click.pass_context
def command(ctx, inputs, output, config_path, model, tile_size, halo, bands, aoi, device, engine, workers, batch_size,
            native_resolution, stats_from, mask, mask_format, sink, local, overwrite):
    """Segment INPUT rasters (GeoTIFF/COG/VRT, local or s3://) into class and confidence COGs, polygons and stats.

    \b
    Writes, in --output:
      <stem>_classes.tif     uint8 COG, 0..3 = other/forest/water/urban, 255 = nodata
      <stem>_confidence.tif  uint8 COG, max softmax probability in percent, 255 = nodata
      <stem>_polygons.gpkg   polygons with class_id, class_name, area_m2
      <stem>_quality.tif     uint8 COG of quality flags (with a quality band or --mask; docs/quality.md)
      stats.json, stats.csv  area per class (ha, %) and pixel counts
      manifest.json          inputs, model, resolved config, versions, tile counts, timings
    With --sink, the polygons and class areas also go to PostGIS (tables landcover_polygons, class_areas).
    """
    from geoseg.config import SegmentConfig
    from geoseg.io import storage
    from geoseg.io.urls import redact
    from geoseg.segment.pipeline import segment as run_segment

    overrides = {
        "inputs": list(inputs) or None,
        "output": output,
        "model": model,
        "tile_size": tile_size,
        "halo": halo,
        "bands": options.split_list(bands),
        "aoi": aoi,
        "device": device,
        "engine": engine,
        "batch_size": batch_size,
        "native_resolution": native_resolution,
        "stats_from": stats_from,
        "overwrite": overwrite,
        "sink": sink,
        "runtime.num_workers": workers,
        "runtime.local": local,
        "quality.mask": mask,
        "quality.format": mask_format,
    }
    cfg = options.load_config(config_path, SegmentConfig, overrides)
    summary = run_segment(cfg, progress=ctx.obj["progress"])
    t = summary.tiles
    click.echo(f"geoseg segment: {len(summary.inputs)} input(s), {t.processed} tiles processed "
               f"({t.resumed} resumed from an interrupted run), "
               f"{t.skipped} skipped (nodata), {t.outside_aoi} outside AOI, {t.failed} failed")
    click.echo(f"  {summary.pixels / 1e6:.2f} Mpx in {summary.timings['total']:.1f} s on {summary.runtime} "
               f"(tiles stage {summary.timings.get('tiles', 0):.1f} s)")
    for i in summary.inputs:
        parts = ", ".join(f"{r.class_name} {r.area_ha:.1f} ha ({r.percent:.1f}%)" for r in i.classes)
        click.echo(f"  {i.stem}: {parts}")
        q = next(e for e in summary.manifest["inputs"] if e["path"] == redact(i.path)).get("quality")
        if q:
            flagged = ", ".join(f"{k} {v['area_ha']:.1f} ha" for k, v in q["flags"].items() if v["pixels"])
            click.echo(f"    masked {q['masked_area_ha']:.1f} ha ({flagged or 'nothing flagged'})")
    where = summary.output_dir if storage.is_remote(summary.output_dir) else Path(summary.output_dir).resolve()
    click.echo(f"outputs in {where}:")
    for f in summary.files:
        click.echo(f"  {storage.name(f)}")
    if summary.sink:
        click.echo(summary.sink.describe())

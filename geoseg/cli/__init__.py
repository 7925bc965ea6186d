"""The ``geoseg`` command line: ``segment``, ``train``, ``info``.

Logging is configured here only. Errors that geoseg raises on purpose
(:class:`geoseg.errors.GeosegError`) print as one clear message and exit non-zero.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path

import click

from geoseg.errors import GeosegError

log = logging.getLogger("geoseg")


def _setup_logging(verbose: int, quiet: int) -> None:
    level = logging.INFO - 10 * verbose + 10 * quiet
    logging.basicConfig(level=max(logging.DEBUG, level), format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("rasterio", "fiona", "pyogrio", "urllib3", "botocore", "timm"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _handle_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GeosegError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(exc.exit_code)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", count=True, help="More log output (repeat for debug).")
@click.option("-q", "--quiet", count=True, help="Less log output; -q also hides progress bars.")
@click.version_option(package_name="geoseg")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: int) -> None:
    """geoseg: land-cover segmentation (forest, water, urban, other) of large satellite rasters on Ray."""
    _setup_logging(verbose, quiet)
    _exit_cleanly_on_sigterm()
    ctx.obj = {"progress": quiet == 0}


def _exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM (Kubernetes on pod eviction or spot reclaim, ``ray job stop``) into ``SystemExit(143)``.

    The default action kills the process on the spot; raising instead runs the ``finally``
    blocks, so the tile journal saves the tiles it buffered and staging folders are removed.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        log.warning("terminated (signal %d): saving finished tiles and exiting", signum)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


@main.command()
@click.argument("inputs", nargs=-1)
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Output directory (created if missing).")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), help="YAML config (see configs/); flags override it.")
@click.option("-m", "--model", help="Checkpoint directory (model.json + weights.safetensors). Default: the bundled model.")
@click.option("--tile-size", type=int, help="Model input side in pixels, multiple of 32. Default: the model card's.")
@click.option("--halo", type=int, help="Overlap in pixels discarded on each tile side. Default: the model card's.")
@click.option("--bands", help="Comma-separated band names or 1-based indexes, in model order, e.g. green,red,nir.")
@click.option("--aoi", help="GeoJSON/GeoPackage polygon(s), any CRS: only tiles touching it are run; output masked outside.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="auto: GPU actors when the cluster has GPUs.")
@click.option("--workers", type=int, help="Number of model actors. Default: one per GPU, else one per CPU.")
@click.option("--batch-size", type=int, help="Tiles per forward pass (default 4).")
@click.option("--local", is_flag=True, default=None, help="Run in this process without Ray (debugging).")
@click.option("--overwrite", is_flag=True, default=None, help="Replace existing outputs in the output directory.")
@click.pass_context
@_handle_errors
def segment(ctx, inputs, output, config_path, model, tile_size, halo, bands, aoi, device, workers, batch_size, local, overwrite):
    """Segment INPUT rasters (GeoTIFF/COG/VRT, local or s3://) into class and confidence COGs, polygons and stats.

    \b
    Writes, in --output:
      <stem>_classes.tif     uint8 COG, 0..3 = other/forest/water/urban, 255 = nodata
      <stem>_confidence.tif  uint8 COG, max softmax probability in percent, 255 = nodata
      <stem>_polygons.gpkg   polygons with class_id, class_name, area_m2
      stats.json, stats.csv  area per class (ha, %) and pixel counts
      manifest.json          inputs, model, resolved config, versions, tile counts, timings
    """
    from geoseg.io import storage
    from geoseg.config import SegmentConfig, load_yaml
    from geoseg.segment.pipeline import segment as run_segment

    overrides = {
        "inputs": list(inputs) or None,
        "output": output,
        "model": model,
        "tile_size": tile_size,
        "halo": halo,
        "bands": [b.strip() for b in bands.split(",") if b.strip()] if bands else None,
        "aoi": aoi,
        "device": device,
        "batch_size": batch_size,
        "overwrite": overwrite,
        "runtime.num_workers": workers,
        "runtime.local": local,
    }
    cfg = load_yaml(config_path, SegmentConfig, overrides)
    summary = run_segment(cfg, progress=ctx.obj["progress"])
    m = summary.manifest
    t = m["tiles"]
    px = sum(i["width"] * i["height"] for i in m["inputs"])
    secs = m["timings_s"]["total"]
    click.echo(f"geoseg segment: {len(m['inputs'])} input(s), {t['processed']} tiles processed "
               f"({t['resumed']} resumed from an interrupted run), "
               f"{t['skipped']} skipped (nodata), {t['outside_aoi']} outside AOI, {t['failed']} failed")
    click.echo(f"  {px / 1e6:.2f} Mpx in {secs:.1f} s on {m['runtime']} (tiles stage {m['timings_s'].get('tiles', 0):.1f} s)")
    stats = json.loads(storage.read_bytes(storage.join(summary.output_dir, "stats.json")))
    for stem, s in stats["inputs"].items():
        parts = ", ".join(f"{r['class_name']} {r['area_ha']:.1f} ha ({r['percent']:.1f}%)" for r in s["classes"])
        click.echo(f"  {stem}: {parts}")
    where = summary.output_dir if storage.is_remote(summary.output_dir) else Path(summary.output_dir).resolve()
    click.echo(f"outputs in {where}:")
    for f in summary.files:
        click.echo(f"  {storage.name(f)}")


@main.command()
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Training YAML, e.g. configs/train_default.yaml.")
@click.option("-o", "--output", help="Checkpoint directory to write (overrides `output`).")
@click.option("--steps", type=int, help="Override the number of optimisation steps.")
@click.option("--seed", type=int, help="Override the random seed.")
@_handle_errors
def train(config_path, output, steps, seed):
    """Train a land-cover model and write a checkpoint (model.json + weights.safetensors)."""
    from geoseg.config import load_yaml
    from geoseg.train.loop import TrainConfig
    from geoseg.train.loop import train as run_train

    cfg = load_yaml(config_path, TrainConfig, {"output": output, "steps": steps, "seed": seed})
    path = run_train(cfg)
    from geoseg.model.checkpoint import load_checkpoint

    card = load_checkpoint(path).card
    pooled = card.metrics.get("pooled", {})
    click.echo(f"wrote {path}: validation mIoU {pooled.get('miou')}")
    for name, m in pooled.get("per_class", {}).items():
        click.echo(f"  {name:8s} IoU {m['iou']}")


@main.command()
@click.argument("image")
@click.argument("labels")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Output directory (metrics.json + class map).")
@click.option("-m", "--model", help="Checkpoint directory. Default: the bundled model.")
@click.option("--class-map", type=click.Path(dir_okay=False), help="YAML mapping label values to model class ids (255 = ignore).")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), help="Segment YAML config for tiling/runtime.")
@click.option("--local", is_flag=True, default=None, help="Run in this process without Ray.")
@click.option("--overwrite", is_flag=True, default=None, help="Replace existing outputs.")
@click.pass_context
@_handle_errors
def evaluate(ctx, image, labels, output, model, class_map, config_path, local, overwrite):
    """Score a model on IMAGE against LABELS (a class raster on any grid) through the segment pipeline.

    Writes OUTPUT/metrics.json with per_class (iou, precision, recall, f1, support), miou,
    overall_accuracy and confusion_matrix (rows: reference, columns: predicted), and prints a table.
    """
    from geoseg.config import SegmentConfig, load_yaml
    from geoseg.segment.evaluate import evaluate as run_evaluate
    from geoseg.segment.evaluate import format_table

    cfg = load_yaml(config_path, SegmentConfig, {"overwrite": overwrite, "runtime.local": local})
    metrics = run_evaluate(image, labels, output, model, class_map, cfg, progress=ctx.obj["progress"])
    click.echo(format_table(metrics))
    click.echo(f"wrote {Path(output) / 'metrics.json'}")


@main.command()
@click.argument("classmap")
@click.option("-o", "--output", required=True, help="Output file: .gpkg (layer `landcover`), .parquet (GeoParquet) or .fgb.")
@click.option("--mmu-ha", type=float, default=0.0, show_default=True,
              help="Minimum mapping unit in hectares: smaller regions are merged into a neighbouring class first.")
@click.option("--simplify-m", type=float, default=0.0, show_default=True,
              help="Topology-preserving simplification tolerance in metres (shared boundaries stay shared).")
@click.option("--crs", help="Output CRS, e.g. EPSG:4326. Default: the class map's.")
@click.option("--confidence", help="Confidence raster on the same grid (uint8 0-100) for mean_confidence.")
@click.option("--instance", help="Also write a uint32 GeoTIFF of polygon_id per pixel here.")
@click.option("--block-size", type=int, default=1024, show_default=True, help="Window side in pixels; memory grows with width x block size.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@_handle_errors
def vectorize(classmap, output, mmu_ha, simplify_m, crs, confidence, instance, block_size, overwrite):
    """Polygonize a class-map GeoTIFF (geoseg's or another tool's) block by block, in bounded memory.

    One polygon per 4-connected region of one class, identical to whole-raster polygonization
    whatever the block size; attributes polygon_id, class_id, class_name, area_m2, area_ha,
    perimeter_m, mean_confidence, source, model, acquired.
    """
    from geoseg.vector.polygons import vectorize_to_file

    n = vectorize_to_file(classmap, output, crs=crs, overwrite=overwrite, block_size=block_size,
                          mmu_m2=mmu_ha * 1e4, simplify_m=simplify_m, confidence=confidence, instance_path=instance)
    click.echo(f"wrote {n} polygons to {output}")


@main.command()
@click.argument("dates", nargs=-1, metavar="BEFORE AFTER")
@click.option("--before", "before_opt", help="Earlier date (same as the first argument).")
@click.option("--after", "after_opt", help="Later date (same as the second argument).")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Output directory (created if missing).")
@click.option("--min-confidence", type=float, default=50.0, show_default=True,
              help="Confidence guard: change only where both dates' confidence is at least this (percent; 0: off).")
@click.option("--mmu-ha", type=float, default=0.5, show_default=True,
              help="Minimum mapping unit: changed patches (4-connected, one from->to pair) smaller than this are uncertain.")
@click.option("--confirm", multiple=True,
              help="Persistence guard: a later date that must still show the after class (repeat for several dates).")
@click.option("--grid", default="after", show_default=True, help="Common grid: after, before, or a raster whose grid to use.")
@click.option("--before-confidence", help="Confidence raster of BEFORE (default: its sibling *_confidence.tif).")
@click.option("--after-confidence", help="Confidence raster of AFTER (default: its sibling *_confidence.tif).")
@click.option("-m", "--model", help="Checkpoint for dates given as scenes. Default: the bundled model.")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), help="Segment YAML for dates given as scenes.")
@click.option("--local", is_flag=True, default=None, help="Segment scenes in this process without Ray.")
@click.option("--block-size", type=int, default=1024, show_default=True, help="Window side in pixels (memory).")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs in the output directory.")
@click.pass_context
@_handle_errors
def change(ctx, dates, before_opt, after_opt, output, min_confidence, mmu_ha, confirm, grid, before_confidence,
           after_confidence, model, config_path, local, block_size, overwrite):
    """Land-cover change between BEFORE and AFTER: class maps (geoseg *_classes.tif) or scenes to segment first.

    \b
    Both dates are read on one grid (--grid; nearest), nodata in either is excluded. Writes, in --output:
      change.tif            uint8 COG: 0 no change, 1 + from*n + to per from->to pair, 254 uncertain, 255 nodata
      transitions.csv       from_class, to_class, pixels, area_ha (diagonal: unchanged; to_class uncertain)
      transitions.json      the table, guard removals, nodata per date, named change types, legend
      change_polygons.gpkg  layer `change`: from/to class, change_type, area_ha, mean confidence of both dates
    """
    from geoseg.change.detect import ChangeOptions, detect_change
    from geoseg.config import SegmentConfig, load_yaml
    from geoseg.errors import ConfigError

    if len(dates) > 2 or (dates and (before_opt or after_opt)):
        raise click.UsageError("give BEFORE AFTER as two arguments, or --before and --after")
    before, after = dates if len(dates) == 2 else (before_opt, after_opt)
    if not before or not after:
        raise click.UsageError("need two dates: geoseg change BEFORE AFTER --output DIR")
    seg = load_yaml(config_path, SegmentConfig, {"model": model, "runtime.local": local})
    if seg.inputs or seg.output:
        raise ConfigError(f"config {config_path}: `inputs`/`output` are not used by `change`; remove them")
    result = detect_change(before, after, output, confirm=list(confirm) or None, before_confidence=before_confidence,
                           after_confidence=after_confidence, segment_cfg=seg, overwrite=overwrite,
                           options=ChangeOptions(min_confidence, mmu_ha, grid, block_size), progress=ctx.obj["progress"])
    r = result.report
    click.echo(f"geoseg change: valid {r['valid']['area_ha']:.2f} ha, changed {r['changed']['area_ha']:.2f} ha, "
               f"uncertain {r['uncertain']['area_ha']:.2f} ha; nodata excluded: before "
               f"{r['nodata_excluded']['before']['area_ha']:.2f} ha, after {r['nodata_excluded']['after']['area_ha']:.2f} ha")
    g = r["guards"]
    click.echo(f"  removed by guards: confidence {g['confidence']['removed']['area_ha']:.2f} ha, persistence "
               f"{g['persistence']['removed']['area_ha']:.2f} ha, mmu {g['mmu']['removed']['area_ha']:.2f} ha")
    click.echo("  " + ", ".join(f"{k} {v['area_ha']:.2f} ha" for k, v in r["change_types"].items()))
    where = result.output_dir if "://" in result.output_dir else Path(result.output_dir).resolve()
    click.echo(f"outputs in {where}: " + ", ".join(Path(f).name for f in result.files))


@main.command()
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Monitor YAML, e.g. configs/monitor_pucallpa.yaml.")
@click.option("--output-root", help="Override `output_root` (directory or s3:// prefix).")
@click.option("--local", is_flag=True, default=None, help="Segment in this process without Ray.")
@click.pass_context
@_handle_errors
def monitor(ctx, config_path, output_root, local):
    """Scheduled change monitoring: segment each region's new periods, compare, append to the history store.

    Idempotent: periods already in the history are not redone (no model work). Exit codes: 0 every region up
    to date; 2 bad config; 4 one or more regions failed (named; the others finished).
    """
    from geoseg.config import load_yaml
    from geoseg.errors import MonitorError
    from geoseg.change.monitor import MonitorConfig, format_result, run_monitor

    cfg = load_yaml(config_path, MonitorConfig, {"output_root": output_root, "segment.runtime.local": local})
    results = run_monitor(cfg, progress=ctx.obj["progress"])
    for r in results:
        click.echo(format_result(r))
    failed = [r.name for r in results if r.error]
    if failed:
        raise MonitorError(f"{len(failed)} of {len(results)} region(s) failed: {', '.join(failed)} "
                           "(the others finished; see the messages above)")


@main.command()
@click.argument("path", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@_handle_errors
def info(path, as_json):
    """Describe a checkpoint directory or a raster (default: the bundled model)."""
    from geoseg.model.checkpoint import load_checkpoint

    if path is None or Path(path).is_dir():
        ckpt = load_checkpoint(path)
        c = ckpt.card
        doc = {"type": "model", "id": ckpt.model_id, "path": str(ckpt.path), **c.model_dump(mode="json", exclude={"training"}),
               "training_summary": {k: c.training.get(k) for k in ("best_step", "steps_run", "seconds", "scenes")}}
        if as_json:
            click.echo(json.dumps(doc, indent=2))
            return
        click.echo(f"model {ckpt.model_id}\n  {c.arch} / {c.encoder} {c.arch_kwargs}\n  bands: {', '.join(c.bands)}")
        click.echo(f"  classes: {', '.join(f'{k.id}={k.name}' for k in c.classes)}")
        click.echo(f"  tile_size {c.tile_size}, halo {c.halo}, normalization {c.normalization.method} "
                   f"({c.normalization.low}-{c.normalization.high} percentiles)")
        pooled = c.metrics.get("pooled")
        if pooled:
            ious = ", ".join(f"{n} {m['iou']}" for n, m in pooled["per_class"].items())
            click.echo(f"  held-out mIoU {pooled['miou']} ({ious})")
        return
    from geoseg.io.raster import RasterInfo, open_raster

    with open_raster(path) as src:
        ri = RasterInfo.from_dataset(path, src)
        doc = {"type": "raster", "path": path, "width": ri.width, "height": ri.height,
               "crs": ri.crs.to_string() if ri.crs else None, "transform": list(ri.transform)[:6], "dtype": ri.dtype,
               "bands": list(ri.band_names), "nodata": ri.nodata, "block_shapes": [list(b) for b in src.block_shapes[:1]],
               "overviews": src.overviews(1), "tags": src.tags()}
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(f"raster {path}\n  {ri.width} x {ri.height} px, {ri.dtype}, CRS {doc['crs']}, nodata {ri.nodata}")
        click.echo(f"  bands: {', '.join(f'{i + 1}:{n}' for i, n in enumerate(ri.band_names))}")
        click.echo(f"  pixel size: {ri.transform.a} x {abs(ri.transform.e)}; overviews: {doc['overviews']}")


if __name__ == "__main__":
    main()


GLOBAL_FLAGS = {"-v", "-vv", "-q", "-qq", "--verbose", "--quiet"}


def run_job(command: str, argv: list[str]) -> int:
    """Entry point of the Ray job scripts (``jobs/*.py``): ``geoseg COMMAND ARGV``, returning the exit code.

    geoseg's ``-v``/``-q`` may appear anywhere in ``argv``; they are moved before the subcommand.
    """
    flags = [a for a in argv if a in GLOBAL_FLAGS]
    try:
        main([*flags, command, *[a for a in argv if a not in GLOBAL_FLAGS]], standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0

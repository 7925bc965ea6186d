"""``geoseg info``: describe a checkpoint or a raster."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("info")
@click.argument("path", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def command(path, as_json):
    """Describe a checkpoint directory or a raster (default: the bundled model)."""
    from geoseg.io.publish import json_text
    from geoseg.model.checkpoint import load_checkpoint

    if path is None or Path(path).is_dir():
        ckpt = load_checkpoint(path)
        c = ckpt.card
        doc = {"type": "model", "id": ckpt.model_id, "path": str(ckpt.path), **c.model_dump(mode="json", exclude={"training"}),
               "training_summary": {k: c.training.get(k) for k in ("best_step", "steps_run", "seconds", "scenes")}}
        if as_json:
            click.echo(json_text(doc), nl=False)
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
    from geoseg.io.quality import detect_format, find_quality_band
    from geoseg.io.raster import RasterInfo, open_raster
    from geoseg.io.urls import redact

    with open_raster(path) as src:
        ri = RasterInfo.from_dataset(path, src)
        g = ri.grid
        doc = {"type": "raster", "path": redact(path), "width": g.width, "height": g.height,
               "crs": g.crs.to_string() if g.crs else None, "transform": list(g.transform)[:6], "dtype": ri.dtype,
               "bands": list(ri.band_names), "nodata": ri.nodata, "block_shapes": [list(b) for b in src.block_shapes[:1]],
               "overviews": src.overviews(1), "tags": src.tags()}
    found = find_quality_band(ri.band_names)
    by_name = detect_format(None, path) if len(ri.band_names) == 1 else None
    if found is None and by_name is not None:
        found = (1, by_name)  # a quality raster of its own, named so (..._QA_PIXEL.TIF)
    doc["quality"] = {"band": found[0], "format": found[1]} if found else None
    if as_json:
        click.echo(json_text(doc), nl=False)
    else:
        click.echo(f"raster {redact(path)}\n  {g.width} x {g.height} px, {ri.dtype}, CRS {doc['crs']}, nodata {ri.nodata}")
        click.echo(f"  bands: {', '.join(f'{i + 1}:{n}' for i, n in enumerate(ri.band_names))}")
        click.echo(f"  pixel size: {g.transform.a} x {abs(g.transform.e)}; overviews: {doc['overviews']}")
        if found:
            click.echo(f"  quality: band {found[0]}:{ri.band_names[found[0] - 1]} read as {found[1]} (docs/quality.md)")

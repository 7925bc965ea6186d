"""``geoseg vectorize``: polygons of a class map, block by block, in bounded memory."""

from __future__ import annotations

import click

from geoseg.cli import options


@click.command("vectorize")
@click.argument("classmap")
@click.option("-o", "--output", required=True, help="Output file: .gpkg (layer `landcover`), .parquet (GeoParquet) or .fgb.")
@options.mmu_ha(0.0, "Minimum mapping unit in hectares: smaller regions are merged into a neighbouring class first.")
@click.option("--simplify-m", type=float, default=0.0, show_default=True,
              help="Topology-preserving simplification tolerance in metres (shared boundaries stay shared).")
@click.option("--crs", help="Output CRS, e.g. EPSG:4326. Default: the class map's.")
@click.option("--confidence", help="Confidence raster on the same grid (uint8 0-100) for mean_confidence.")
@click.option("--instance", help="Also write a uint32 GeoTIFF of polygon_id per pixel here.")
@click.option("--classes", help="Which values of CLASSMAP are classes, when they are not the ids of its class_names tag "
              "(e.g. another kind of raster): ids (7), ranges (33-100), names (forest) or ID=NAME (7=wetland), "
              "comma-separated. Default: the ids of its class_names tag (any other value is refused).")
@options.block_size
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def command(classmap, output, mmu_ha, simplify_m, crs, confidence, instance, classes, block_size, overwrite):
    """Polygonize a class-map GeoTIFF (geoseg's or another tool's) block by block, in bounded memory.

    One polygon per 4-connected region of one class, identical to whole-raster polygonization
    whatever the block size; attributes polygon_id, class_id, class_name, area_m2, area_ha,
    perimeter_m, mean_confidence, source, model, acquired.

    Every value must be a class: an id of the map's class_names tag, or one given with --classes (a map
    without the tag is taken as it is); otherwise nothing is written and the values are named.
    """
    from geoseg.io.raster import open_raster
    from geoseg.vector.polygons import vectorize_to_file
    from geoseg.vector.reference import class_scheme

    with open_raster(classmap) as src:  # before any output: every value is a class
        class_map = src.count == 1 and src.dtypes[0] == "uint8"  # else vectorize_to_file says what it needs
        names = class_scheme(classmap, src, classes, max(block_size, 1)) if class_map else None
    n = vectorize_to_file(classmap, output, crs=crs, overwrite=overwrite, block_size=block_size,
                          mmu_m2=mmu_ha * 1e4, simplify_m=simplify_m, confidence=confidence, instance_path=instance,
                          class_names=names)
    click.echo(f"wrote {n} polygons to {output}")

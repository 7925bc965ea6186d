"""Polygons from class maps at any size: block-wise, exact (equal to whole-array polygonize), bounded memory.

:mod:`~geoseg.vector.polygons` drives the block passes over the machinery of
:mod:`~geoseg.vector.blocks` (labelling, seam join), :mod:`~geoseg.vector.mmu` (minimum
mapping unit), :mod:`~geoseg.vector.geometry` and :mod:`~geoseg.vector.simplify` (pixel-space
geometry, coverage simplification), :mod:`~geoseg.vector.frames` (attributes),
:mod:`~geoseg.vector.writers` (GeoPackage, GeoParquet, FlatGeobuf) and
:mod:`~geoseg.vector.instance` (polygon-id raster); :mod:`~geoseg.vector.stream` runs the same
pass on blocks as tiles are stitched (no tail after the last tile); :mod:`~geoseg.vector.reference`
is the whole-array oracle.
"""

from geoseg import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "vectorize_blocks": "polygons", "vectorize_to_file": "polygons", "polygon_frame": "polygons",
    "COLUMNS": "frames", "write_polygons": "writers", "resolve_mmu": "mmu", "polygons_from_array": "reference",
    "BlockAssembler": "stream", "StreamingVectorizer": "stream",
})

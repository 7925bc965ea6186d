"""Input and output: local or S3 storage, raster reading, input lists and STAC, labels, raster writing, publishing, PostGIS.

Modules: :mod:`~geoseg.io.storage` (local paths and ``s3://`` through one API),
:mod:`~geoseg.io.raster` (open, bands, windows, AOIs), :mod:`~geoseg.io.inputs` (paths, globs,
STAC), :mod:`~geoseg.io.labels` (reference labels), :mod:`~geoseg.io.cog` (scratch GeoTIFF,
COG, atomic writes), :mod:`~geoseg.io.publish` (staging and atomic publication), :mod:`~geoseg.io.sink`
(loading results into PostGIS).
"""

from geoseg import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "RasterInfo": "raster", "open_raster": "raster", "read_window": "raster", "resolve_bands": "raster",
    "load_aoi": "raster", "gdal_path": "raster",
    "SceneInput": "inputs", "expand_inputs": "inputs",
    "load_class_map": "labels", "rasterize_labels": "labels", "remap_labels": "labels",
    "StitchedRaster": "cog", "atomic_path": "cog", "open_scratch": "cog", "write_cog": "cog",
    "Staging": "publish", "write_json": "publish",
})

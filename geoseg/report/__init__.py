"""What people open: STAC records, quicklook PNGs and the self-contained ``report.html`` of a run.

:mod:`~geoseg.report.stac` builds STAC 1.1 Items, Collections and Catalogs (classification,
projection and file extensions) of the outputs; :mod:`~geoseg.report.quicklook` writes
small PNGs of class, change, confidence and input rasters; :mod:`~geoseg.report.html` and
:mod:`~geoseg.report.charts` build the HTML page (maps with layer toggles and legend, tables,
transition matrices, SVG bar and line charts). Plain data in, files out: ``segment``,
``change`` and the monitor decide what goes in (this layer imports only ``io`` and below).
"""

from geoseg import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "MapLayer": "html", "page": "html", "map_section": "html", "table": "html", "matrix": "html",
    "bar_chart": "charts", "line_chart": "charts",
    "encode_png": "quicklook", "write_categorical": "quicklook", "write_scene": "quicklook", "write_ramp": "quicklook",
    "item": "stac", "collection": "stac", "catalog": "stac", "asset": "stac", "class_objects": "stac",
})

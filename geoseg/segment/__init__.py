"""The segment job on the driver: plan, run tiles through an executor, stitch, journal, statistics, manifest.

:func:`~geoseg.segment.pipeline.segment` runs it; :mod:`~geoseg.segment.evaluate` scores a
model through the same path.
"""

from geoseg import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "segment": "pipeline", "RunSummary": "pipeline", "SceneWriter": "stitch", "TileJournal": "journal",
    "class_table": "stats", "compare_rasters": "evaluate",
})

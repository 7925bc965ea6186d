"""The PostGIS sink: results loaded into PostgreSQL + PostGIS tables where GIS teams keep them.

:mod:`~geoseg.io.sink.target` (the ``postgresql://`` URL, schema, password never shown),
:mod:`~geoseg.io.sink.schema` (tables created on first use, versioned, migrated),
:mod:`~geoseg.io.sink.postgis` (connection, one transaction per run, advisory locks),
:mod:`~geoseg.io.sink.copy` (polygon files to binary ``COPY``, EWKB). Tables and QGIS: ``docs/postgis.md``.
"""

from geoseg import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "Sink": "postgis", "Load": "postgis", "LoadReport": "postgis", "RunInfo": "postgis", "open_sink": "postgis",
    "output_key": "postgis",
    "SinkTarget": "target", "MIGRATIONS": "schema", "migrate": "schema",
})

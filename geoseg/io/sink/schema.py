"""The sink's tables, created on first use and versioned: ``schema_version`` and an ordered list of migrations.

Every table lives in the sink's schema (``geoseg`` unless the URL says ``?schema=NAME``).
:func:`migrate` runs when a run opens the sink: under an advisory lock (two runs that
start together create the tables once), it creates the schema and ``schema_version`` if
missing, then applies, in one transaction, every migration newer than the version recorded
there, recording each. A later geoseg that changes the tables appends a migration
(``ALTER TABLE ...``) to :data:`MIGRATIONS`; a database already at a newer version than this
geoseg knows is refused rather than written in an old layout.

The tables (version 1; column meanings: ``docs/postgis.md``):

* ``runs``: one row per run that loaded something (``run_id``, command, output, config...).
  A ``segment`` or ``change`` rerun into the same output replaces the earlier run's rows.
* ``landcover_polygons``, ``class_areas``: ``geoseg segment`` results (and the monitor's periods).
* ``change_polygons``, ``transitions``, ``change_stats``: ``geoseg change`` results (and the
  monitor's comparisons).
* ``monitor_items``: which region and period the monitor history holds, and from which state.

Polygon geometries are ``geometry(MultiPolygon)`` in the input's CRS (SRID from its EPSG code),
with a GiST index, stored uncompressed (``STORAGE EXTERNAL``: compressing the long pixel-edged
polygons made loads ~15 % slower, measured, for ~30 % less disk). Monitor rows carry ``region`` and ``period``; a unique index on them makes
each region and period appear once.
"""

from __future__ import annotations

from dataclasses import dataclass

from geoseg import __version__
from geoseg.errors import SinkError


@dataclass(frozen=True)
class Migration:
    """One step of the schema: its version, what it does, and its SQL (``{s}``: the quoted schema)."""

    version: int
    description: str
    sql: str


V1 = """
CREATE TABLE {s}.runs (
    run_id uuid PRIMARY KEY,
    command text NOT NULL,
    output text,
    started_at timestamptz,
    loaded_at timestamptz NOT NULL DEFAULT now(),
    geoseg_version text,
    model text,
    host text,
    config jsonb
);
CREATE UNIQUE INDEX runs_output_key ON {s}.runs (command, output) WHERE command <> 'monitor';
COMMENT ON TABLE {s}.runs IS 'geoseg runs that loaded rows; a segment or change rerun into the same output replaces its run';

CREATE TABLE {s}.landcover_polygons (
    fid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id uuid NOT NULL REFERENCES {s}.runs ON DELETE CASCADE,
    region text,
    period text,
    input text NOT NULL,
    polygon_id bigint NOT NULL,
    class_id smallint NOT NULL,
    class_name text NOT NULL,
    area_m2 double precision,
    area_ha double precision,
    perimeter_m double precision,
    mean_confidence double precision,
    source text,
    model text,
    acquired date,
    geom geometry(MultiPolygon) NOT NULL
);
ALTER TABLE {s}.landcover_polygons ALTER COLUMN geom SET STORAGE EXTERNAL;
CREATE INDEX landcover_polygons_geom_idx ON {s}.landcover_polygons USING gist (geom);
CREATE INDEX landcover_polygons_run_idx ON {s}.landcover_polygons (run_id);
CREATE UNIQUE INDEX landcover_polygons_period_key ON {s}.landcover_polygons (region, period, polygon_id)
    WHERE region IS NOT NULL;
COMMENT ON TABLE {s}.landcover_polygons IS 'geoseg segment: one polygon per 4-connected region of one class, in the input CRS';

CREATE TABLE {s}.class_areas (
    fid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id uuid NOT NULL REFERENCES {s}.runs ON DELETE CASCADE,
    region text,
    period text,
    input text NOT NULL,
    class_id smallint NOT NULL,
    class_name text NOT NULL,
    pixels bigint NOT NULL,
    area_ha double precision NOT NULL,
    percent double precision NOT NULL
);
CREATE UNIQUE INDEX class_areas_run_key ON {s}.class_areas (run_id, input, class_id) WHERE region IS NULL;
CREATE UNIQUE INDEX class_areas_period_key ON {s}.class_areas (region, period, class_id) WHERE region IS NOT NULL;
COMMENT ON TABLE {s}.class_areas IS 'geoseg segment: area per input and class (percent of the valid area)';

CREATE TABLE {s}.change_polygons (
    fid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id uuid NOT NULL REFERENCES {s}.runs ON DELETE CASCADE,
    region text,
    period_before text,
    period text,
    polygon_id bigint NOT NULL,
    change_code smallint NOT NULL,
    from_id smallint NOT NULL,
    to_id smallint NOT NULL,
    from_class text NOT NULL,
    to_class text NOT NULL,
    change_type text,
    pixels bigint,
    area_m2 double precision,
    area_ha double precision,
    perimeter_m double precision,
    mean_confidence_before double precision,
    mean_confidence_after double precision,
    source_before text,
    source_after text,
    acquired_before date,
    acquired_after date,
    geom geometry(MultiPolygon) NOT NULL
);
ALTER TABLE {s}.change_polygons ALTER COLUMN geom SET STORAGE EXTERNAL;
CREATE INDEX change_polygons_geom_idx ON {s}.change_polygons USING gist (geom);
CREATE INDEX change_polygons_run_idx ON {s}.change_polygons (run_id);
CREATE UNIQUE INDEX change_polygons_period_key ON {s}.change_polygons (region, period, polygon_id)
    WHERE region IS NOT NULL;
COMMENT ON TABLE {s}.change_polygons IS 'geoseg change: one polygon per kept change patch (one from->to pair)';

CREATE TABLE {s}.transitions (
    fid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id uuid NOT NULL REFERENCES {s}.runs ON DELETE CASCADE,
    region text,
    period_before text,
    period text,
    from_class text NOT NULL,
    to_class text NOT NULL,
    pixels bigint NOT NULL,
    area_ha double precision NOT NULL
);
CREATE INDEX transitions_run_idx ON {s}.transitions (run_id);
CREATE UNIQUE INDEX transitions_period_key ON {s}.transitions (region, period, from_class, to_class)
    WHERE region IS NOT NULL;
COMMENT ON TABLE {s}.transitions IS 'geoseg change: from-class x to-class table (to_class uncertain: removed by a guard)';

CREATE TABLE {s}.change_stats (
    fid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id uuid NOT NULL REFERENCES {s}.runs ON DELETE CASCADE,
    region text,
    period_before text,
    period text,
    confirm_period text,
    valid_ha double precision,
    unchanged_ha double precision,
    changed_ha double precision,
    uncertain_ha double precision,
    removed_confidence_ha double precision,
    removed_persistence_ha double precision,
    removed_mmu_ha double precision,
    nodata_before_ha double precision,
    nodata_after_ha double precision,
    polygons integer,
    change_types jsonb
);
CREATE INDEX change_stats_run_idx ON {s}.change_stats (run_id);
CREATE UNIQUE INDEX change_stats_period_key ON {s}.change_stats (region, period) WHERE region IS NOT NULL;
COMMENT ON TABLE {s}.change_stats IS 'geoseg change: areas of change, named change types (ha) and guard removals';

CREATE TABLE {s}.monitor_items (
    region text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('period', 'change')),
    period text NOT NULL,
    period_before text,
    processed text NOT NULL,
    run_id uuid NOT NULL REFERENCES {s}.runs ON DELETE CASCADE,
    loaded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (region, kind, period)
);
COMMENT ON TABLE {s}.monitor_items IS 'geoseg monitor: the periods and comparisons loaded per region (processed: when the history store made them)';
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "runs, land-cover and change polygons, class areas, transitions, change statistics, monitor items", V1),
)
"""Every schema change, in order; version ``i`` is ``MIGRATIONS[i - 1]``. Append, never edit."""

VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS {s}.schema_version (
    version integer PRIMARY KEY,
    description text NOT NULL,
    geoseg_version text,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


def migrate(conn, schema: str, where: str, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Bring ``schema`` to the newest version of ``migrations`` (creating it on first use); return that version.

    ``conn``: an autocommit psycopg connection; ``where``: the sink as messages name it.
    Raises :class:`SinkError` when the database is at a version newer than ``migrations``.
    """
    from psycopg import sql

    s = sql.Identifier(schema)
    latest = migrations[-1].version if migrations else 0
    with conn.transaction():
        advisory_lock(conn, "migrate", schema)
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {s}").format(s=s))
        conn.execute(sql.SQL(VERSION_TABLE).format(s=s))
        row = conn.execute(sql.SQL("SELECT coalesce(max(version), 0) FROM {s}.schema_version").format(s=s)).fetchone()
        current = int(row[0]) if row else 0
        if current > latest:
            raise SinkError(f"{where}: the tables are at schema version {current}, written by a newer geoseg than this "
                            f"one ({__version__}, version {latest}); upgrade geoseg, or load into another ?schema=")
        for m in migrations:
            if m.version > current:
                conn.execute(sql.SQL(m.sql).format(s=s))
                conn.execute(sql.SQL("INSERT INTO {s}.schema_version (version, description, geoseg_version) "
                                     "VALUES (%s, %s, %s)").format(s=s), (m.version, m.description, __version__))
    return latest


def advisory_lock(conn, *key: str) -> None:
    """Hold a transaction-scoped advisory lock on ``key`` (released at commit or rollback)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ("geoseg:" + ":".join(key),))

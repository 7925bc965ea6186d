"""Loading results into PostgreSQL + PostGIS: one transaction per run, polygons by binary ``COPY`` (psycopg 3).

:class:`Sink` is a database geoseg loads into. :meth:`Sink.prepare` runs when a run starts,
before any model work: it connects, makes sure PostGIS is there (creating the extension
when the user may) and creates or migrates the tables (:mod:`geoseg.io.sink.schema`).
:meth:`Sink.load` opens one transaction for the whole run and hands out a :class:`Load`
that writes into it: rows of the run's tables, polygons straight from the GeoPackages the
run wrote (:mod:`geoseg.io.sink.copy`), deletes of the rows a rerun replaces, advisory locks
that make concurrent runs on the same output or region wait for each other instead of
both writing. Nothing is visible to readers until the commit; a load that fails half-way
(a bad row, a lost connection, an interrupted run) rolls back and the earlier rows stay
as they were. Every message names the sink by its masked URL (:mod:`geoseg.io.sink.target`).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from geoseg import __version__
from geoseg.errors import SinkError
from geoseg.io.sink.copy import (
    SIGNATURE,
    TRAILER,
    encode_column,
    encode_constant,
    encode_geometry,
    polygon_batches,
    rows,
)
from geoseg.io.sink.schema import advisory_lock, migrate
from geoseg.io.sink.target import SinkTarget

log = logging.getLogger(__name__)

POLYGON_TABLES = ("landcover_polygons", "change_polygons")
PASSWORD_SOURCES = "PGPASSWORD, ~/.pgpass (PGPASSFILE) or a service file (?service=NAME)"


@dataclass(frozen=True)
class RunInfo:
    """The ``runs`` row of a load: which command, into which output, when, with what."""

    command: str
    output: str | None
    model: str | None = None
    config: dict[str, Any] | None = None
    run_id: uuid.UUID = field(default_factory=uuid.uuid4)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class LoadReport:
    """What a committed load wrote: where (masked URL, schema), the run id, rows per table, seconds."""

    sink: str
    schema: str
    run_id: str
    rows: dict[str, int]
    seconds: float

    @property
    def polygons(self) -> int:
        return sum(self.rows.get(t, 0) for t in POLYGON_TABLES)

    def describe(self) -> str:
        rows = ", ".join(f"{n} {t}" for t, n in self.rows.items()) or "no rows"
        return f"loaded {rows} into {self.sink} (schema {self.schema}) in {self.seconds:.1f} s, run {self.run_id}"


class Sink:
    """A PostgreSQL + PostGIS database results are loaded into; ``source``: the key or flag naming it."""

    def __init__(self, url: str, source: str = "sink"):
        self.target = SinkTarget.parse(url, source)
        self.version: int | None = None

    @property
    def where(self) -> str:
        return f"sink {self.target.describe()}"

    def prepare(self) -> int:
        """Connect, make sure PostGIS and the tables exist (created or migrated on first use); the schema version."""
        if self.target.has_password:
            log.warning("%s: the URL carries a password; prefer %s (it is never logged or written)", self.where,
                        PASSWORD_SOURCES)
        conn = self._connect(create_postgis=True)
        try:
            self.version = migrate(conn, self.target.schema, self.where)
        except SinkError:
            raise
        except Exception as exc:
            raise self._error("cannot create or update its tables", exc) from None
        finally:
            conn.close()
        return self.version

    @contextmanager
    def load(self, run: RunInfo) -> Iterator[Load]:
        """One transaction: what the ``with`` block writes through the :class:`Load` is committed at its end
        (then :attr:`Load.report` is set), or not at all if the block raises."""
        import psycopg

        t0 = time.perf_counter()
        conn = self._connect()
        try:
            with conn.transaction():
                load = Load(conn, self.target.schema, run)
                yield load
        except psycopg.Error as exc:
            raise self._error("loading failed; nothing was loaded (the earlier rows are as they were)", exc) from None
        finally:
            conn.close()
        load.report = LoadReport(self.target.masked, self.target.schema, str(run.run_id), dict(load.rows),
                                 time.perf_counter() - t0)
        log.info("%s", load.report.describe())

    def _connect(self, create_postgis: bool = False):
        import psycopg
        from psycopg import sql
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        given = conninfo_to_dict(self.target.conninfo)
        extra = {"application_name": "geoseg"}
        if "connect_timeout" not in given and "PGCONNECT_TIMEOUT" not in os.environ:
            extra["connect_timeout"] = "10"
        try:
            conn = psycopg.connect(make_conninfo(self.target.conninfo, **extra), autocommit=True)
        except psycopg.Error as exc:
            raise self._error(f"cannot connect (check host, port, database and user; the password comes from "
                              f"{PASSWORD_SOURCES})", exc) from None
        try:
            ns = _postgis_schema(conn)
            if ns is None and create_postgis:
                ns = self._create_postgis(conn)
            if ns is None:
                raise SinkError(f"{self.where}: PostGIS is not installed in the database; rerun geoseg as a user "
                                "who may create it, or ask its administrator to run: CREATE EXTENSION postgis;")
            path = sql.SQL("{}, {}").format(sql.Identifier(self.target.schema), sql.Identifier(ns)).as_string(conn)
            conn.execute("SELECT set_config('search_path', %s, false)", (path,))
        except BaseException as exc:
            conn.close()
            if isinstance(exc, psycopg.Error):
                raise self._error("cannot set up the session", exc) from None
            raise
        return conn

    def _create_postgis(self, conn) -> str | None:
        import psycopg

        try:
            with conn.transaction():
                advisory_lock(conn, "postgis")
                if _postgis_schema(conn) is None:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        except psycopg.errors.InsufficientPrivilege as exc:
            raise self._error("the database has no PostGIS and this user may not create it; ask its administrator "
                              "to run: CREATE EXTENSION postgis;", exc) from None
        except psycopg.Error as exc:
            raise self._error("cannot create the PostGIS extension (is PostGIS installed on the server?)", exc) from None
        return _postgis_schema(conn)

    def _error(self, what: str, exc: BaseException) -> SinkError:
        detail = " ".join(str(exc).split())
        return SinkError(f"{self.where}: {what}: {self.target.scrub(detail)}")


def _postgis_schema(conn) -> str | None:
    row = conn.execute("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                       "WHERE e.extname = 'postgis'").fetchone()
    return row[0] if row else None


class Load:
    """Writes of one run inside its transaction (see :meth:`Sink.load`); :attr:`rows` counts them per table."""

    def __init__(self, conn, schema: str, run: RunInfo):
        self.conn = conn
        self.schema = schema
        self.run = run
        self.rows: dict[str, int] = {}
        self.report: LoadReport | None = None
        self._run_written = False
        self._types: dict[str, dict[str, int]] = {}

    def table(self, name: str):
        from psycopg import sql

        return sql.Identifier(self.schema, name)

    def lock(self, *key: str) -> None:
        """Wait for, then hold until the commit, the lock of ``key`` in this schema (e.g. an output, a region)."""
        advisory_lock(self.conn, self.schema, *key)

    def replace_output(self) -> int:
        """Lock this run's output and delete the runs loaded earlier into it (their rows go with them)."""
        from psycopg import sql

        self.lock(self.run.command, self.run.output or "")
        cur = self.conn.execute(sql.SQL("DELETE FROM {} WHERE command = %s AND output = %s AND run_id <> %s").format(
            self.table("runs")), (self.run.command, self.run.output, self.run.run_id))
        if cur.rowcount:
            log.info("replacing the rows of %d earlier %s run(s) into %s", cur.rowcount, self.run.command, self.run.output)
        return cur.rowcount

    def delete(self, table: str, **key: Any) -> int:
        """Delete the rows of ``table`` whose columns equal ``key``."""
        from psycopg import sql

        where = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in key)
        return self.conn.execute(sql.SQL("DELETE FROM {} WHERE {}").format(self.table(table), where),
                                 list(key.values())).rowcount

    def insert(self, table: str, rows: Iterable[Mapping[str, Any]], **fixed: Any) -> int:
        """Insert ``rows`` (dicts of column values, each with ``fixed`` added) into ``table``; dict values go as jsonb."""
        from psycopg import sql
        from psycopg.types.json import Jsonb

        data = [{**fixed, **r} for r in rows]
        if not data:
            return 0
        self._write_run()
        cols = ["run_id", *data[0]]
        stmt = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            self.table(table), sql.SQL(", ").join(map(sql.Identifier, cols)), sql.SQL(", ").join([sql.Placeholder()] * len(cols)))
        values = [[self.run.run_id, *(Jsonb(v) if isinstance(v, dict) else v for v in (r[c] for c in cols[1:]))]
                  for r in data]
        with self.conn.cursor() as cur:
            cur.executemany(stmt, values)
        return self._count(table, len(data))

    def copy_polygons(self, table: str, path: str | Path, layer: str | None = None, **fixed: Any) -> int:
        """Bulk-load the polygon file at ``path`` into ``table`` (binary ``COPY``), each row with ``fixed`` added.

        Columns of the file that ``table`` has are loaded under the same name; the geometry goes
        to ``geom`` as a MultiPolygon with the SRID of the file's CRS. Returns the row count.
        """
        import struct

        from psycopg import sql

        self._write_run()
        types = self._column_types(table)
        n = 0
        with polygon_batches(path, layer) as (geometry, srid, reader):
            skip = {"fid", "run_id", "geom", geometry, *fixed}
            file_cols = [c for c in reader.schema.names if c in types and c not in skip]
            shared = {"run_id": self.run.run_id, **fixed}
            cols = [*shared, *file_cols, "geom"]
            prefix = struct.pack(">h", len(cols)) + b"".join(encode_constant(v, types[c], c) for c, v in shared.items())
            stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                self.table(table), sql.SQL(", ").join(map(sql.Identifier, cols)))
            with self.conn.cursor() as cur, cur.copy(stmt) as copy:
                copy.write(SIGNATURE)
                for batch in reader:
                    fields = [encode_column(batch.column(c), types[c], c) for c in file_cols]
                    copy.write(rows(prefix, [*fields, encode_geometry(batch.column(geometry), srid)]))
                    n += batch.num_rows
                copy.write(TRAILER)
        return self._count(table, n)

    def loaded_items(self, region: str) -> dict[tuple[str, str], str]:
        """The monitor items of ``region`` in the sink: ``{(kind, period): processed}``."""
        from psycopg import sql

        rows = self.conn.execute(sql.SQL("SELECT kind, period, processed FROM {} WHERE region = %s").format(
            self.table("monitor_items")), (region,)).fetchall()
        return {(k, p): s for k, p, s in rows}

    def mark_item(self, region: str, kind: str, period: str, processed: str, period_before: str | None = None) -> None:
        """Record that ``region``'s ``kind`` (``period`` or ``change``) of ``period`` is loaded, as of ``processed``."""
        self.delete("monitor_items", region=region, kind=kind, period=period)
        self.insert("monitor_items", [{"region": region, "kind": kind, "period": period, "period_before": period_before,
                                       "processed": processed}])

    def _count(self, table: str, n: int) -> int:
        self.rows[table] = self.rows.get(table, 0) + n
        return n

    def _write_run(self) -> None:
        """Insert this run's ``runs`` row before its first other row (a run that loads nothing leaves none)."""
        from psycopg import sql
        from psycopg.types.json import Jsonb

        if self._run_written:
            return
        r = self.run
        self.conn.execute(sql.SQL(
            "INSERT INTO {} (run_id, command, output, started_at, geoseg_version, model, host, config) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (run_id) DO NOTHING").format(self.table("runs")),
            (r.run_id, r.command, r.output, r.started, __version__, r.model, socket.gethostname(),
             Jsonb(r.config) if r.config is not None else None))
        self._run_written = True

    def _column_types(self, table: str) -> dict[str, int]:
        """``{column: type oid}`` of ``table``."""
        from psycopg import sql

        if table not in self._types:
            found = self.conn.execute("SELECT attname, atttypid FROM pg_attribute WHERE attrelid = %s::regclass "
                                      "AND attnum > 0 AND NOT attisdropped",
                                      (sql.Identifier(self.schema, table).as_string(self.conn),)).fetchall()
            self._types[table] = {name: oid for name, oid in found}
        return self._types[table]


def open_sink(url: str | None, source: str = "sink") -> Sink | None:
    """The prepared :class:`Sink` of ``url`` (connected once, PostGIS and tables checked); None without a URL."""
    if not url:
        return None
    sink = Sink(url, source)
    sink.prepare()
    return sink


def output_key(output: str) -> str:
    """How ``runs.output`` names an output: an absolute local path, or the URI without a trailing ``/``."""
    from geoseg.io import storage

    return output.rstrip("/") if storage.is_remote(output) else str(Path(output).resolve())

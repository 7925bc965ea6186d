"""Polygon files to PostgreSQL's binary ``COPY`` format, a batch at a time, without a Python loop over rows.

The polygon files geoseg writes (``*_polygons.gpkg``, ``change_polygons.gpkg``) are read back
as Arrow record batches (``pyogrio``: GDAL's Arrow stream, never the whole file). Each batch
becomes one block of binary ``COPY`` rows built by Arrow compute kernels: every column is
encoded to its binary field (a 4-byte big-endian length, then the value in PostgreSQL's
binary representation; length -1 for NULL; :func:`encode_column`), the geometries to EWKB
``MultiPolygon`` fields with the SRID of the file's CRS (:func:`encode_geometry`: GDAL gives
ISO WKB, so a Polygon only needs a new header and a part count), and the fields of a row are
joined after a constant prefix (the field count and the values every row shares, such as the
run id; :func:`encode_constant`, :func:`rows`). A stream is :data:`SIGNATURE`, the blocks,
then :data:`TRAILER`.
"""

from __future__ import annotations

import logging
import struct
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from geoseg.errors import SinkError

log = logging.getLogger(__name__)

BATCH_ROWS = 65536
"""Features per Arrow batch read from a polygon file (one ``COPY`` block each)."""

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)

INT8, INT2, INT4, FLOAT4, FLOAT8, TEXT, VARCHAR, DATE, UUID = 20, 21, 23, 700, 701, 25, 1043, 1082, 2950
"""PostgreSQL type oids the sink's tables use (``geometry``'s oid differs per database)."""
NUMBERS: dict[int, np.dtype] = {INT8: np.dtype(">i8"), INT2: np.dtype(">i2"), INT4: np.dtype(">i4"), FLOAT4: np.dtype(">f4"),
           FLOAT8: np.dtype(">f8")}
DATE_EPOCH = 10957
"""Days from 1970-01-01 (Arrow's dates) to 2000-01-01 (PostgreSQL's)."""

_BYTES = pa.large_binary()  # 64-bit offsets: a batch of big polygons never overflows
_EMPTY = pa.scalar(b"", _BYTES)
_NULL_FIELD = struct.pack(">i", -1)
_SRID_FLAG = 0x20000000
_POLYGON, _MULTIPOLYGON, _ONE = struct.pack("<I", 3), struct.pack("<I", 6), struct.pack("<I", 1)


@contextmanager
def polygon_batches(path: str | Path, layer: str | None = None) -> Iterator[tuple[str, int, Any]]:
    """``(geometry column, SRID, pyarrow.RecordBatchReader)`` of the polygon file at ``path``."""
    from pyogrio.errors import DataSourceError
    from pyogrio.raw import open_arrow

    try:
        with open_arrow(str(path), layer=layer, use_pyarrow=True, batch_size=BATCH_ROWS) as (meta, reader):
            yield meta.get("geometry_name") or "wkb_geometry", srid_of(meta.get("crs"), path), reader
    except DataSourceError as exc:
        raise SinkError(f"{path}: cannot read the polygons to load ({exc})") from exc


def srid_of(crs: str | None, path: str | Path) -> int:
    """The EPSG code of ``crs`` (as GDAL identifies it, like the rasters' CRSs) as a PostGIS SRID; 0 (unknown),
    with a warning, when it has none."""
    from rasterio.crs import CRS

    code = CRS.from_user_input(crs).to_epsg() if crs else None
    if code is None:
        log.warning("%s: its CRS has no EPSG code; its polygons are loaded with SRID 0 (unknown)", path)
        return 0
    return int(code)


def encode_constant(value: Any, oid: int, name: str) -> bytes:
    """The binary field of one value shared by every row (``None``, text, a UUID or a number)."""
    if value is None:
        return _NULL_FIELD
    if oid in (TEXT, VARCHAR):
        data = str(value).encode()
    elif oid == UUID:
        data = uuid.UUID(str(value)).bytes
    elif oid in NUMBERS:
        data = np.asarray([value]).astype(NUMBERS[oid]).tobytes()
    else:
        raise SinkError(f"column {name}: cannot load a {type(value).__name__} into PostgreSQL type {oid}")
    return struct.pack(">i", len(data)) + data


def encode_column(arr: pa.Array | pa.ChunkedArray, oid: int, name: str) -> pa.Array:
    """The binary fields (length + value) of one Arrow column for a table column of type ``oid``."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if oid in NUMBERS:
        dt = NUMBERS[oid]
        if dt.kind == "i":
            arr = pc.cast(arr, pa.int64())
            lo, hi = pc.min_max(arr).values()
            info = np.iinfo(dt)
            if lo.is_valid and (lo.as_py() < info.min or hi.as_py() > info.max):
                raise SinkError(f"column {name}: values {lo.as_py()}..{hi.as_py()} do not fit PostgreSQL type {oid}")
        values = pc.fill_null(arr, 0).to_numpy(zero_copy_only=False).astype(dt)
        valid = None if arr.null_count == 0 else pc.is_valid(arr)
        return _fixed_fields(values, valid)
    if oid == DATE:
        if not pa.types.is_date(arr.type):
            text = pc.utf8_slice_codeunits(pc.cast(arr, pa.string()), 0, 10)
            arr = pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=True)
        days = pc.subtract(pc.cast(pc.cast(arr, pa.date32()), pa.int32()), DATE_EPOCH)
        values = pc.fill_null(days, 0).to_numpy(zero_copy_only=False).astype(">i4")
        return _fixed_fields(values, None if days.null_count == 0 else pc.is_valid(days))
    if oid in (TEXT, VARCHAR):
        return _variable_fields(pc.cast(pc.cast(arr, pa.large_string()), _BYTES))
    raise SinkError(f"column {name}: cannot load {arr.type} values into PostgreSQL type {oid}")


def encode_geometry(wkb: pa.Array | pa.ChunkedArray, srid: int) -> pa.Array:
    """The binary fields of EWKB ``MultiPolygon`` geometries with ``srid``, from ISO WKB (Multi)Polygons."""
    if isinstance(wkb, pa.ChunkedArray):
        wkb = wkb.combine_chunks()
    wkb = pc.cast(wkb, _BYTES)
    head = struct.pack("<BII", 1, 6 | _SRID_FLAG, srid)
    kind = pc.binary_slice(wkb, 1, 5)
    poly = pc.equal(kind, pa.scalar(_POLYGON, _BYTES))
    multi = pc.equal(kind, pa.scalar(_MULTIPOLYGON, _BYTES))
    little = pc.equal(pc.binary_slice(wkb, 0, 1), pa.scalar(b"\x01", _BYTES))
    if wkb.null_count or not pc.all(pc.and_(little, pc.or_(poly, multi))).as_py():
        return _variable_fields(pa.array(_ewkb_with_shapely(wkb.to_pylist(), srid), _BYTES))
    if pc.all(poly).as_py():  # the usual case: one join
        body = pc.binary_join_element_wise(pa.scalar(head + _ONE, _BYTES), wkb, _EMPTY)
    else:
        parts = pc.if_else(poly, pc.binary_join_element_wise(pa.scalar(_ONE, _BYTES), wkb, _EMPTY),
                           pc.binary_slice(wkb, 5, pc.max(pc.binary_length(wkb)).as_py()))
        body = pc.binary_join_element_wise(pa.scalar(head, _BYTES), parts, _EMPTY)
    return _variable_fields(body)


def rows(prefix: bytes, fields: list[pa.Array]) -> pa.Buffer:
    """The ``COPY`` rows of a batch: ``prefix`` (field count and shared fields), then each row's ``fields``."""
    joined = pc.binary_join_element_wise(pa.scalar(prefix, _BYTES), *fields, _EMPTY)
    if joined.null_count:  # every field is encoded, NULLs included: a null here would drop a row
        raise SinkError("internal error: a COPY row could not be encoded")
    offsets = np.frombuffer(joined.buffers()[1], np.int64)[joined.offset: joined.offset + len(joined) + 1]
    return joined.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def _fixed_fields(values: np.ndarray, valid) -> pa.Array:
    n, w = len(values), values.dtype.itemsize
    if valid is None:
        head = np.frombuffer(struct.pack(">i", w), np.uint8)
        block = np.hstack([np.broadcast_to(head, (n, 4)), values.view(np.uint8).reshape(n, w)])
        return pa.FixedSizeBinaryArray.from_buffers(pa.binary(4 + w), n, [None, pa.py_buffer(block.tobytes())]).cast(_BYTES)
    payload = pa.FixedSizeBinaryArray.from_buffers(pa.binary(w), n, [None, pa.py_buffer(values.tobytes())]).cast(_BYTES)
    return _variable_fields(pc.if_else(valid, payload, pa.scalar(None, _BYTES)))


def _variable_fields(payload: pa.Array) -> pa.Array:
    n = len(payload)
    lengths = pc.fill_null(pc.binary_length(payload), -1).to_numpy(zero_copy_only=False).astype(">i4")
    length = pa.FixedSizeBinaryArray.from_buffers(pa.binary(4), n, [None, pa.py_buffer(lengths.tobytes())]).cast(_BYTES)
    return pc.binary_join_element_wise(length, pc.fill_null(payload, _EMPTY), _EMPTY)


def _ewkb_with_shapely(wkb: list[bytes | None], srid: int) -> list[bytes]:
    """:func:`encode_geometry` for what is not a little-endian 2-D (Multi)Polygon (big-endian, 3-D...)."""
    import shapely

    geoms = shapely.force_2d(shapely.from_wkb(np.asarray(wkb, dtype=object)))
    kinds = shapely.get_type_id(geoms)
    bad = ~np.isin(kinds, (3, 6))
    if bad.any():
        first = geoms[bad][0]
        what = "null" if first is None else first.geom_type
        raise SinkError(f"{int(bad.sum())} geometries are not polygons (e.g. a {what}); only (Multi)Polygons load")
    single = kinds == 3
    geoms[single] = shapely.multipolygons(geoms[single], indices=np.arange(int(single.sum())))
    return list(shapely.to_wkb(shapely.set_srid(geoms, srid), include_srid=True, byte_order=1))

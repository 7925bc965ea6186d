"""Polygon files to binary COPY data (geoseg.io.sink.copy): fields, EWKB MultiPolygons, SRIDs, rows.

Oracles: a parser of PostgreSQL's documented binary COPY field layout (4-byte big-endian length, then
the value; -1 for NULL) written here, struct/numpy for the values, shapely (GEOS) reading the EWKB back
(type, SRID, exact coordinates), GDAL's CRS identification of the rasters, and the GeoPackage written by
the vectorizer read with geopandas. PostgreSQL itself reads the full stream in tests/system/test_postgis.py.
"""

from __future__ import annotations

import struct
import uuid
from datetime import date

import numpy as np
import pyarrow as pa
import pytest
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon

from geoseg.errors import SinkError
from geoseg.io.sink.copy import (
    DATE,
    FLOAT8,
    INT2,
    INT8,
    TEXT,
    UUID,
    encode_column,
    encode_constant,
    encode_geometry,
    polygon_batches,
    rows,
    srid_of,
)
from tests.helpers import NC_LABELS

SQUARE = Polygon([(0, 0), (2, 0), (2, 2), (0, 2)], [[(0.5, 0.5), (1, 0.5), (1, 1), (0.5, 0.5)]])
TWO = MultiPolygon([Polygon([(10, 10), (11, 10), (11, 11)]), Polygon([(20, 20), (21, 20), (21, 21)])])


def fields(buf: bytes, count: int | None = None) -> list[bytes | None]:
    """Split length-prefixed binary COPY fields (``count`` of them, else all)."""
    out: list[bytes | None] = []
    i = 0
    while i < len(buf) and (count is None or len(out) < count):
        (n,) = struct.unpack(">i", buf[i:i + 4])
        i += 4
        out.append(None if n == -1 else buf[i:i + n])
        i += max(n, 0)
    return out


def column(encoded: pa.Array) -> list[bytes | None]:
    return [fields(v)[0] for v in encoded.to_pylist()]


def geometries(encoded: pa.Array):
    return shapely.from_wkb(column(encoded))


def check(encoded: pa.Array, originals, srid: int) -> None:
    back = geometries(encoded)
    assert (shapely.get_srid(back) == srid).all() and set(shapely.get_type_id(back)) == {6}  # MultiPolygon
    for got, want in zip(back, originals):
        want = want if want.geom_type == "MultiPolygon" else MultiPolygon([want])
        assert got.equals_exact(want, tolerance=0)


@pytest.mark.parametrize("geoms", [[SQUARE, SQUARE], [SQUARE, TWO, SQUARE], [TWO]])
def test_little_endian_polygons_and_multipolygons_become_ewkb_multipolygons(geoms):
    check(encode_geometry(pa.array(shapely.to_wkb(geoms, byte_order=1)), 32612), geoms, 32612)


def test_other_encodings_go_through_shapely_with_the_same_result():
    geoms = [SQUARE, TWO]
    fast = encode_geometry(pa.array(shapely.to_wkb(geoms, byte_order=1)), 4326)
    big = encode_geometry(pa.array(shapely.to_wkb(geoms, byte_order=0)), 4326)
    z = encode_geometry(pa.array(shapely.to_wkb(shapely.force_3d(np.array(geoms)), byte_order=1)), 4326)
    check(big, geoms, 4326)
    check(z, geoms, 4326)  # 3-D comes in flattened
    assert big.to_pylist() == fast.to_pylist()  # both paths give the same bytes


def test_anything_but_polygons_is_refused():
    with pytest.raises(SinkError, match="not polygons"):
        encode_geometry(pa.array(shapely.to_wkb([SQUARE, Point(1, 1)], byte_order=1)), 4326)
    with pytest.raises(SinkError, match="not polygons"):
        encode_geometry(pa.array([shapely.to_wkb(SQUARE), None]), 4326)


def test_columns_encode_to_postgresqls_binary_values_with_nulls():
    ints = column(encode_column(pa.array([1, None, -7], pa.int32()), INT2, "class_id"))
    assert ints == [struct.pack(">h", 1), None, struct.pack(">h", -7)]
    big = column(encode_column(pa.chunked_array([[2**40], [5]]), INT8, "polygon_id"))
    assert big == [struct.pack(">q", 2**40), struct.pack(">q", 5)]
    floats = column(encode_column(pa.array([0.1, None, float("nan")]), FLOAT8, "mean_confidence"))
    assert floats[0] == struct.pack(">d", 0.1) and floats[1] is None and np.isnan(struct.unpack(">d", floats[2])[0])
    text = column(encode_column(pa.array(["forest", None, "Ucayali é"]), TEXT, "class_name"))
    assert text == [b"forest", None, "Ucayali é".encode()]
    assert column(encode_column(pa.array([None, None]), TEXT, "model")) == [None, None]
    days = column(encode_column(pa.array(["2020-07-14", None, "2000-01-01T10:00:00", "sometime"]), DATE, "acquired"))
    assert days == [struct.pack(">i", (date(2020, 7, 14) - date(2000, 1, 1)).days), None, struct.pack(">i", 0), None]
    assert column(encode_column(pa.array([date(1999, 12, 31)]), DATE, "d")) == [struct.pack(">i", -1)]


def test_values_that_do_not_fit_or_types_it_cannot_send_are_errors():
    with pytest.raises(SinkError, match="class_id: values 0..40000 do not fit"):
        encode_column(pa.array([0, 40000]), INT2, "class_id")
    with pytest.raises(SinkError, match="cannot load"):
        encode_column(pa.array([1]), 3802, "doc")


def test_rows_are_the_shared_prefix_then_each_rows_fields():
    run = uuid.uuid4()
    prefix = struct.pack(">h", 4) + encode_constant(run, UUID, "run_id") + encode_constant(None, TEXT, "region")
    assert encode_constant("lc", TEXT, "input") == struct.pack(">i", 2) + b"lc"
    assert encode_constant(3, INT2, "x") == struct.pack(">ih", 2, 3)
    with pytest.raises(SinkError):
        encode_constant(object(), 3802, "doc")
    ids = encode_column(pa.array([1, 2, 3]), INT8, "polygon_id")
    geoms = encode_geometry(pa.array(shapely.to_wkb([SQUARE, TWO, SQUARE], byte_order=1)), 32612)
    data = bytes(rows(prefix, [ids.slice(1), geoms.slice(1)]))  # slices: offsets that do not start at 0
    got, i = [], 0
    while i < len(data):
        (count,) = struct.unpack(">h", data[i:i + 2])
        row = fields(data[i + 2:], count)
        got.append(row)
        i += 2 + sum(4 + len(f or b"") for f in row)
    assert [(uuid.UUID(bytes=r[0]), r[1], struct.unpack(">q", r[2])[0]) for r in got] == [(run, None, 2), (run, None, 3)]
    assert [shapely.from_wkb(r[3]).equals_exact(MultiPolygon([g]) if g.geom_type == "Polygon" else g, 0)
            for r, g in zip(got, [TWO, SQUARE])] == [True, True]


def test_a_geopackage_reads_as_batches_with_its_srid(tmp_path):
    import geopandas as gpd
    import rasterio

    from geoseg.vector.polygons import vectorize_to_file

    out = tmp_path / "p.gpkg"
    n = vectorize_to_file(NC_LABELS, out)
    with rasterio.open(NC_LABELS) as src:
        epsg = src.crs.to_epsg()
    with polygon_batches(out, "landcover") as (geometry, srid, reader):
        batches = list(reader)
    assert srid == epsg == 32119 and sum(b.num_rows for b in batches) == n
    want = gpd.read_file(out)
    got = shapely.from_wkb(pa.concat_arrays([b.column(geometry) for b in batches]).to_pylist())
    assert all(shapely.equals_exact(got, want.geometry.values, tolerance=0))
    with pytest.raises(SinkError, match="cannot read"):
        with polygon_batches(tmp_path / "missing.gpkg"):
            pass
    assert srid_of(None, "x") == 0

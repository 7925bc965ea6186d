"""Polygon writers (geoseg.vector.writers): GeoPackage, GeoParquet and FlatGeobuf read back with geopandas/pyarrow."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pytest

from geoseg.errors import OutputError
from geoseg.vector.polygons import COLUMNS, polygon_frame, vectorize_to_file
from geoseg.vector.writers import write_polygons
from tests.helpers import blobs, write_classes


@pytest.mark.parametrize("ext", ["gpkg", "parquet", "fgb"])
def test_formats_round_trip(tmp_path, ext):
    classes = blobs(4, (20, 25))
    path = write_classes(tmp_path, classes)
    out = tmp_path / f"polys.{ext}"
    n = vectorize_to_file(path, out, block_size=6)
    read = gpd.read_parquet(out) if ext == "parquet" else gpd.read_file(out, layer="landcover")
    expected = polygon_frame(path, block_size=6)
    assert n == len(read) == len(expected)
    assert list(read.columns) == [*COLUMNS, "geometry"]
    assert read.crs.to_epsg() == 32612
    read = read.sort_values("polygon_id", ignore_index=True)
    assert read["polygon_id"].tolist() == expected["polygon_id"].tolist()
    assert read.geometry.geom_equals_exact(expected.geometry, 0).all()
    assert read["mean_confidence"].isna().all() and (read["model"] == "unet-test").all()
    with pytest.raises(OutputError, match="already exists"):
        vectorize_to_file(path, out, block_size=6)
    vectorize_to_file(path, out, block_size=6, overwrite=True, crs="EPSG:4326")
    wgs = gpd.read_parquet(out) if ext == "parquet" else gpd.read_file(out)
    assert wgs.crs.to_epsg() == 4326
    assert wgs.total_bounds[0] == pytest.approx(-111.0, abs=0.01)  # easting 500000 in UTM 12N
    assert wgs.to_crs(32612).sort_values("polygon_id").area.sum() == pytest.approx(expected.area.sum(), rel=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp files left
    if ext == "parquet":
        geo = json.loads(pq.ParquetFile(out).metadata.metadata[b"geo"])
        assert geo["version"] == "1.0.0" and geo["primary_column"] == "geometry"
        col = geo["columns"]["geometry"]
        assert col["encoding"] == "WKB" and col["geometry_types"] == ["Polygon"]
        np.testing.assert_allclose(col["bbox"], wgs.total_bounds)
        assert col["crs"]["id"]["code"] == 4326


def test_write_polygons_takes_frames_and_iterators(tmp_path):
    path = write_classes(tmp_path, blobs(5, (15, 15)))
    gdf = polygon_frame(path)
    assert write_polygons(gdf, tmp_path / "a.gpkg") == len(gdf)
    assert write_polygons(iter([gdf.iloc[:3], gdf.iloc[3:]]), tmp_path / "b.fgb") == len(gdf)
    assert write_polygons(iter([]), tmp_path / "empty.parquet", crs="EPSG:32612") == 0
    assert len(gpd.read_parquet(tmp_path / "empty.parquet")) == 0
    with pytest.raises(OutputError, match="unknown polygon format"):
        write_polygons(gdf, tmp_path / "x.shp")
    with pytest.raises(OutputError, match="does not exist"):
        write_polygons(gdf, tmp_path / "nowhere" / "x.gpkg")



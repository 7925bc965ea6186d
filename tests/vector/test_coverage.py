"""Polygon coverages (geoseg.vector.coverage): simplification, writers and the instance raster.

Oracles: the unsimplified block-wise polygons (same ids, same holes, same union: no gaps, no
overlaps, within the tolerance of the pixel edges); a rasterization of the polygons for the
instance raster; the formats read back with geopandas/pyarrow.
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from rasterio.features import rasterize

from geoseg.errors import OutputError
from geoseg.vector.coverage import write_polygons
from geoseg.vector.polygons import COLUMNS, polygon_frame, vectorize_blocks, vectorize_to_file
from tests.helpers import UTM12_30M as UTM
from tests.helpers import blobs, write_classes

# --------------------------------------------------------------------------- simplification


def _overlap_area(geoms):
    tree = shapely.STRtree(geoms)
    i, j = tree.query(geoms, predicate="intersects")
    m = i < j
    return float(shapely.area(shapely.intersection(geoms[i[m]], geoms[j[m]])).sum())


@pytest.mark.parametrize("block_size", [4, 7, 16, 100])
def test_simplification_keeps_a_valid_gap_free_coverage(tmp_path, block_size):
    classes = blobs(2)
    classes[20:24, 30:34] = 1
    classes[21:23, 31:33] = 2  # a hole in a hole
    path = write_classes(tmp_path, classes)
    before = polygon_frame(path, block_size=block_size)
    after = polygon_frame(path, block_size=block_size, simplify_m=45.0)
    g = after.geometry.values
    assert len(after) == len(before) and after["polygon_id"].tolist() == before["polygon_id"].tolist()
    assert shapely.is_valid(g).all()
    assert _overlap_area(g) == pytest.approx(0, abs=1e-6)
    assert shapely.union_all(g).area == pytest.approx(before.geometry.area.sum(), rel=1e-9)  # no gaps
    assert shapely.get_num_interior_rings(g).sum() == shapely.get_num_interior_rings(before.geometry.values).sum()
    assert shapely.get_num_coordinates(g).sum() < 0.85 * shapely.get_num_coordinates(before.geometry.values).sum()
    # within the tolerance of the pixel boundaries
    assert shapely.hausdorff_distance(shapely.union_all(shapely.boundary(g)),
                                      shapely.union_all(shapely.boundary(before.geometry.values))) < 3 * 30


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    classes=arrays(np.uint8, st.tuples(st.integers(2, 24), st.integers(2, 24)), elements=st.sampled_from([0, 1, 2, 255])),
    block_size=st.integers(1, 9),
    tolerance=st.sampled_from([20.0, 45.0, 200.0]),
    mmu_px=st.sampled_from([0, 3]),
)
def test_random_simplified_coverages_stay_valid(tmp_path, classes, block_size, tolerance, mmu_px):
    path = write_classes(tmp_path, classes)
    before = polygon_frame(path, block_size=block_size, mmu_m2=mmu_px * 900.0)
    after = polygon_frame(path, block_size=block_size, mmu_m2=mmu_px * 900.0, simplify_m=tolerance)
    g = after.geometry.values
    assert after["polygon_id"].tolist() == before["polygon_id"].tolist()
    assert shapely.is_valid(g).all()
    assert _overlap_area(g) == pytest.approx(0, abs=1e-6)
    assert (shapely.get_num_interior_rings(g) == shapely.get_num_interior_rings(before.geometry.values)).all()
    if not (classes == 255).any():
        assert shapely.union_all(g).area == pytest.approx(classes.size * 900.0, rel=1e-9)


def test_simplification_with_nodata(tmp_path):
    classes = blobs(3)
    classes[10:20, 15:30] = 255
    classes[:, :3] = 255
    path = write_classes(tmp_path, classes)
    before = polygon_frame(path, block_size=9)
    after = polygon_frame(path, block_size=9, simplify_m=40.0)
    g = after.geometry.values
    assert shapely.is_valid(g).all() and _overlap_area(g) == pytest.approx(0, abs=1e-6)
    perimeter = shapely.union_all(before.geometry.values).length
    assert shapely.union_all(g).area == pytest.approx(before.geometry.area.sum(), abs=perimeter * 40.0)


# --------------------------------------------------------------------------- outputs


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


def test_instance_raster_matches_polygons(tmp_path):
    classes = blobs(6, (30, 35))
    classes[5:8, 5:8] = 255
    path = write_classes(tmp_path, classes)
    inst = tmp_path / "instances.tif"
    gdf = polygon_frame(path, block_size=7, instance_path=inst)
    with rasterio.open(inst) as src:
        ids = src.read(1)
        assert src.dtypes[0] == "uint32" and src.nodata == 0 and src.transform == UTM
    burned = rasterize(zip(gdf.geometry, gdf.polygon_id), out_shape=classes.shape, transform=UTM, dtype="uint32")
    assert (ids == burned).all()
    assert ((ids == 0) == (classes == 255)).all()
    with pytest.raises(OutputError, match="already exists"):
        list(vectorize_blocks(path, instance_path=inst))

"""Block-wise vectorization (geoseg.vector.polygons) against whole-raster GDAL polygonize, MMU,
coverage simplification, writers and the instance raster. Tiny rasters built in tmp_path."""

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
from rasterio.features import rasterize, shapes
from rasterio.transform import from_origin

from geoseg.errors import ConfigError, GeosegError, InputError, OutputError
from geoseg.io.raster import pixel_area_m2
from geoseg.vector.coverage import write_polygons
from geoseg.vector.polygons import COLUMNS, polygon_frame, vectorize_blocks, vectorize_to_file
from tests.helpers import UTM12_30M as UTM
from tests.helpers import blobs, write_classes, write_raster

GEO = from_origin(-111.5, 37.5, 0.00027, 0.00027)


def canonical(geom, transform):
    """The polygon in pixel coordinates, rounded, without collinear vertices, normalized."""
    inv = ~transform
    px = shapely.transform(geom, lambda xy: np.column_stack(inv * (xy[:, 0], xy[:, 1])))
    c = shapely.get_coordinates(px)
    assert np.abs(c - np.round(c)).max() < 1e-6, "vertices must be pixel corners"
    return shapely.normalize(shapely.simplify(shapely.set_precision(px, 1.0), 0))


def reference(classes, transform):
    """Whole-raster GDAL polygonize: [(class, geometry)]."""
    return [(int(v), shapely.geometry.shape(g))
            for g, v in shapes(classes, mask=classes != 255, connectivity=4, transform=transform)]


def assert_matches_whole(path, classes, transform, block_size):
    gdf = polygon_frame(path, block_size=block_size)
    ref = reference(classes, transform)
    assert len(gdf) == len(ref)
    assert (gdf.geom_type == "Polygon").all() and gdf.is_valid.all()
    mine = sorted((int(c), shapely.to_wkb(canonical(g, transform))) for c, g in zip(gdf.class_id, gdf.geometry))
    theirs = sorted((c, shapely.to_wkb(canonical(g, transform))) for c, g in ref)
    assert mine == theirs  # same classes and same vertex sets, polygon by polygon
    # same planar areas (1e-6 relative), matched by class and pixel-space geometry
    ref_area = {(c, shapely.to_wkb(canonical(g, transform))): g.area for c, g in ref}
    for c, g in zip(gdf.class_id, gdf.geometry):
        assert g.area == pytest.approx(ref_area[(int(c), shapely.to_wkb(canonical(g, transform)))], rel=1e-6)
    # polygon_id = first pixel (row-major) + 1, which a whole-raster rasterize confirms
    burned = rasterize(zip(gdf.geometry, gdf.polygon_id), out_shape=classes.shape, transform=transform, dtype="int64")
    for pid in gdf.polygon_id:
        r, col = divmod(int(pid) - 1, classes.shape[1])
        assert burned[r, col] == pid
        assert not (burned.ravel()[: int(pid) - 1] == pid).any()
    return gdf


# --------------------------------------------------------------------------- exactness


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    classes=st.integers(1, 5).flatmap(lambda k: arrays(
        np.uint8, st.tuples(st.integers(1, 18), st.integers(1, 18)),
        elements=st.sampled_from(list(range(k - 1)) + [255] if k > 1 else [0]))),
    block_size=st.integers(1, 7),
)
def test_random_maps_match_whole_raster(tmp_path, classes, block_size):
    path = write_classes(tmp_path, classes)
    assert_matches_whole(path, classes, UTM, block_size)


def _spiral(n):
    a = np.zeros((n, n), np.uint8)
    r0, c0, r1, c1 = 0, 0, n - 1, n - 1
    while r0 <= r1 and c0 <= c1:
        a[r0, c0:c1 + 1] = 1
        a[r0:r1 + 1, c1] = 1
        if r1 - r0 >= 2:
            a[r1, c0 + 2:c1 + 1] = 1
        if c1 - c0 >= 2:
            a[r0 + 2:r1 + 1, c0 + 2] = 1
        r0, c0, r1, c1 = r0 + 2, c0 + 2, r1 - 2, c1 - 2
    return a


def _lattice(n, b):
    """Class 1 on both sides of every block seam of block size ``b``: one region across all blocks."""
    a = np.full((n, n), 2, np.uint8)
    idx = np.arange(n)
    on = (idx % b == 0) | (idx % b == b - 1)
    a[on, :] = 1
    a[:, on] = 1
    a[b // 2::b, b // 2::b] = 0
    return a


def _nested(n):
    """Squares within squares: holes inside holes inside holes."""
    i, j = np.indices((n, n))
    ring = np.minimum(np.minimum(i, j), np.minimum(n - 1 - i, n - 1 - j))
    return (ring // 2 % 3).astype(np.uint8)


def _nodata_holes(n):
    a = (np.indices((n, n)).sum(0) // 3 % 3).astype(np.uint8)
    a[3:6, 3:9] = 255
    a[10:, 12:] = 255
    a[0, :] = 255
    return a


CASES = {
    "checkerboard": (np.indices((17, 19)).sum(0) % 2).astype(np.uint8),
    "spiral": _spiral(23),
    "lattice": _lattice(20, 5),
    "nested": _nested(22),
    "nodata_holes": _nodata_holes(18),
    "diagonal_touch": np.array([[1, 0, 1, 0], [0, 1, 0, 1], [1, 1, 0, 0], [0, 1, 1, 1]], np.uint8),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_patterns_match_whole_raster(tmp_path, case):
    classes = CASES[case]
    path = write_classes(tmp_path, classes)
    for bs in (1, 2, 3, 4, 5, 7, 64):
        assert_matches_whole(path, classes, UTM, bs)


def test_geographic_raster_matches_whole_and_areas_are_metres(tmp_path):
    rng = np.random.default_rng(3)
    classes = rng.integers(0, 3, (21, 26)).astype(np.uint8)
    classes[4:7, 5:9] = 255
    path = write_classes(tmp_path, classes, crs="EPSG:4326", transform=GEO)
    for bs in (3, 8, 30):
        gdf = assert_matches_whole(path, classes, GEO, bs)
    # equal-area areas agree with the exact ellipsoidal cell areas
    cell = pixel_area_m2(gdf.crs, GEO, np.arange(classes.shape[0]))
    expected = np.bincount(rasterize(zip(gdf.geometry, range(1, len(gdf) + 1)), out_shape=classes.shape,
                                     transform=GEO, dtype="int64").ravel(),
                           weights=np.repeat(cell, classes.shape[1]), minlength=len(gdf) + 1)[1:]
    np.testing.assert_allclose(gdf["area_m2"], expected, rtol=1e-6)
    # perimeters: geodesic length of every ring (holes included)
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    outer = np.array([geod.geometry_length(g.exterior) for g in gdf.geometry])
    holes = shapely.get_num_interior_rings(gdf.geometry.values) > 0
    np.testing.assert_allclose(gdf["perimeter_m"][~holes], outer[~holes], rtol=1e-9)
    assert (gdf["perimeter_m"][holes] > outer[holes]).all()
    one = gdf[gdf["area_m2"] == gdf["area_m2"].min()].iloc[0]  # one pixel: ~30 m x 24 m at 37.5 N
    assert one["perimeter_m"] == pytest.approx(2 * (30.0 + 23.8), rel=0.02)


def test_polygon_ids_do_not_depend_on_block_size(tmp_path):
    rng = np.random.default_rng(7)
    classes = rng.integers(0, 3, (37, 41)).astype(np.uint8)
    path = write_classes(tmp_path, classes)
    a = polygon_frame(path, block_size=4)
    b = polygon_frame(path, block_size=13)
    assert a["polygon_id"].tolist() == b["polygon_id"].tolist()
    assert a["class_id"].tolist() == b["class_id"].tolist()
    np.testing.assert_allclose(a["area_m2"], b["area_m2"], rtol=1e-12)
    assert a["polygon_id"].is_unique and (a["polygon_id"] > 0).all()


def test_attributes_and_streaming(tmp_path):
    classes = np.zeros((12, 12), np.uint8)
    classes[2:5, 2:9] = 1  # 21 px forest
    classes[8:, 8:] = 2
    classes[0, 11] = 255
    conf = np.full_like(classes, 80)
    conf[2:5, 2:9] = 60
    conf[2, 2] = 255  # nodata: excluded from the mean
    cpath = write_classes(tmp_path, classes)
    fpath = write_raster(tmp_path / "conf.tif", conf, nodata=255)
    batches = list(vectorize_blocks(cpath, block_size=4, confidence=fpath))
    assert len(batches) > 1  # streamed, not collected
    gdf = polygon_frame(cpath, block_size=4, confidence=fpath)
    assert list(gdf.columns) == [*COLUMNS, "geometry"]
    assert sorted(np.concatenate([b["polygon_id"] for b in batches])) == gdf["polygon_id"].tolist()
    forest = gdf[gdf["class_id"] == 1].iloc[0]
    assert forest["polygon_id"] == 2 * 12 + 2 + 1
    assert forest["class_name"] == "forest"
    assert forest["area_m2"] == pytest.approx(21 * 900)
    assert forest["area_ha"] == pytest.approx(21 * 900 / 1e4)
    assert forest["perimeter_m"] == pytest.approx(2 * (7 + 3) * 30)
    assert forest["mean_confidence"] == pytest.approx(60)
    assert forest["model"] == "unet-test" and forest["acquired"] == "2015-08-18"
    assert forest["source"] == str(cpath)
    other = gdf[gdf["class_id"] == 0].iloc[0]
    assert other["mean_confidence"] == pytest.approx(80)
    plain = polygon_frame(write_classes(tmp_path, classes, tags={}), block_size=5)
    assert plain["mean_confidence"].isna().all() and plain["model"].isna().all() and plain["acquired"].isna().all()
    assert plain["class_name"].eq("unknown").all()


def test_reads_only_block_windows(tmp_path, monkeypatch):
    from geoseg.vector import polygons

    classes = blobs(8, (40, 45))
    path = write_classes(tmp_path, classes)
    windows = []
    real_open = polygons.open_raster

    class Spy:
        def __init__(self, ds):
            self._ds = ds

        def __getattr__(self, name):
            return getattr(self._ds, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._ds.close()

        def read(self, *args, window=None, **kwargs):
            windows.append(window)
            return self._ds.read(*args, window=window, **kwargs)

    monkeypatch.setattr(polygons, "open_raster", lambda p: Spy(real_open(p)))
    gdf = polygon_frame(path, block_size=8, mmu_m2=4 * 900.0)
    assert len(gdf) > 0
    assert windows and all(w is not None and w.width <= 8 and w.height <= 8 for w in windows)
    # row-major block order, each pass once over the grid (MMU: two passes)
    offsets = [(int(w.row_off), int(w.col_off)) for w in windows]
    grid = sorted({(r, c) for r in range(0, 40, 8) for c in range(0, 45, 8)})
    assert offsets == grid + grid


def test_all_nodata_raster(tmp_path):
    path = write_classes(tmp_path, np.full((9, 7), 255, np.uint8))
    gdf = polygon_frame(path, block_size=4, simplify_m=30.0)
    assert len(gdf) == 0 and list(gdf.columns) == [*COLUMNS, "geometry"]
    assert vectorize_to_file(path, tmp_path / "none.gpkg", block_size=4) == 0
    assert len(gpd.read_file(tmp_path / "none.gpkg")) == 0


# --------------------------------------------------------------------------- MMU


@pytest.mark.parametrize("block_size", [3, 8, 64])
def test_mmu_leaves_no_region_below_it(tmp_path, block_size):
    classes = blobs(1)
    path = write_classes(tmp_path, classes)
    mmu = 6 * 900.0
    before = polygon_frame(path, block_size=block_size)
    after = polygon_frame(path, block_size=block_size, mmu_m2=mmu)
    assert (before["area_m2"] < mmu).any()
    assert (after["area_m2"] >= mmu - 1e-6).all()
    assert after["area_m2"].sum() == pytest.approx(before["area_m2"].sum())
    ref = polygon_frame(path, block_size=5, mmu_m2=mmu)
    assert after["polygon_id"].tolist() == ref["polygon_id"].tolist()
    assert after["class_id"].tolist() == ref["class_id"].tolist()
    # the output is the exact vectorization of the reassigned map (same valid pixels, one polygon per region)
    burned = rasterize(zip(after.geometry, after.class_id + 1), out_shape=classes.shape, transform=UTM, dtype="int32")
    assert ((burned == 0) == (classes == 255)).all()
    reassigned = np.where(classes == 255, 255, burned - 1).astype(np.uint8)
    assert len(after) == len(reference(reassigned, UTM))


def test_a_region_of_exactly_the_mmu_is_kept(tmp_path):
    # 9 pixels of 30 m = 8100 m2 = 0.81 ha; 0.81 * 1e4 is 8100.000000000001 in floats
    classes = np.zeros((12, 12), np.uint8)
    classes[4:7, 4:7] = 1
    gdf = polygon_frame(write_classes(tmp_path, classes), block_size=8, mmu_m2=0.81 * 1e4)
    assert sorted(gdf["class_id"].tolist()) == [0, 1] and gdf["area_m2"].min() == pytest.approx(8100)
    assert polygon_frame(write_classes(tmp_path, classes), block_size=8, mmu_m2=0.82 * 1e4)["class_id"].tolist() == [0]


def test_mmu_rules_for_small_neighbours_and_islands(tmp_path):
    classes = np.zeros((12, 12), np.uint8)
    classes[4:7, 4:7] = 2  # 9 px ring of water (small) ...
    classes[5, 5] = 3  # ... around 1 px urban (small, touches only the ring)
    classes[0:2, 10:12] = 255
    classes[9:12, 0:3] = 255
    classes[10, 1] = 1  # 1 px island inside nodata: nothing to merge into
    path = write_classes(tmp_path, classes)
    gdf = polygon_frame(path, block_size=4, mmu_m2=10 * 900.0)
    assert len(gdf) == 2  # the background (ring and its centre merged into it) and the island
    big, island = gdf.sort_values("area_m2", ascending=False).itertuples()
    assert big.class_id == 0 and big.area_m2 == pytest.approx((144 - 4 - 9) * 900)
    assert island.class_id == 1 and island.area_m2 == pytest.approx(900)


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


def test_clear_errors(tmp_path):
    with pytest.raises(GeosegError, match="cannot open"):
        list(vectorize_blocks(tmp_path / "missing.tif"))
    path = write_classes(tmp_path, np.zeros((4, 4), np.uint8))
    with pytest.raises(ConfigError, match="block_size"):
        list(vectorize_blocks(path, block_size=0))
    with pytest.raises(ConfigError, match="mmu_m2"):
        list(vectorize_blocks(path, mmu_m2=-1))
    f32 = write_raster(tmp_path / "f.tif", np.zeros((1, 4, 4), np.float32))
    with pytest.raises(InputError, match="single-band uint8"):
        list(vectorize_blocks(f32))
    other = write_classes(tmp_path, np.zeros((5, 4), np.uint8))
    with pytest.raises(InputError, match="grid"):
        list(vectorize_blocks(path, confidence=other))


# --------------------------------------------------------------------------- parallel per-block work


def bounded_pool_map(func, items, workers=2, lookahead=4):
    """An ordered, lazy, bounded-look-ahead parallel map (what runtime.py provides, minus Ray)."""
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(workers) as pool:
        q = deque()
        for it in items:
            q.append(pool.submit(func, *it) if isinstance(it, tuple) else pool.submit(func, it))
            if len(q) >= lookahead:
                yield q.popleft().result()
        while q:
            yield q.popleft().result()


@pytest.mark.parametrize("block_size", [1, 7, 64])
def test_parallel_map_gives_the_sequential_output(tmp_path, block_size):
    shape = (12, 14) if block_size == 1 else (22, 25)  # block size 1: one task per pixel, keep it small
    classes = blobs(7, shape)
    classes[3:6, 4:7] = 255
    path = write_classes(tmp_path, classes)
    conf = write_raster(tmp_path / "conf.tif", np.random.default_rng(7).integers(0, 101, classes.shape, dtype=np.uint8),
                        nodata=255)
    for extra in ({}, {"mmu_m2": 5 * 900.0}, {"simplify_m": 45.0}, {"mmu_m2": 5 * 900.0, "simplify_m": 45.0}):
        seq = polygon_frame(path, block_size=block_size, confidence=conf, **extra)
        par = polygon_frame(path, block_size=block_size, confidence=conf, map_fn=bounded_pool_map, **extra)
        assert len(seq) > 1
        for col in ("polygon_id", "class_id", "class_name", "area_m2", "perimeter_m", "mean_confidence"):
            assert seq[col].tolist() == par[col].tolist(), (extra, col)
        assert shapely.to_wkb(seq.geometry.values).tolist() == shapely.to_wkb(par.geometry.values).tolist(), extra
    # the instance raster too
    ids = []
    for i, fn in enumerate((None, bounded_pool_map)):
        inst = tmp_path / f"inst{i}.tif"
        polygon_frame(path, block_size=block_size, mmu_m2=5 * 900.0, instance_path=inst, map_fn=fn)
        with rasterio.open(inst) as src:
            ids.append(src.read(1))
    assert (ids[0] == ids[1]).all()

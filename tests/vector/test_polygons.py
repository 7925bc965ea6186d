"""Block-wise vectorization (geoseg.vector.polygons): exactness, attributes, MMU, errors, parallel maps.

Oracles: whole-raster GDAL polygonize (same classes, vertex sets and areas, polygon by polygon, for
any block size), a whole-raster rasterize of the polygon ids, exact ellipsoidal cell areas and
geodesic perimeters, and the sequential output for the parallel map. Tiny rasters built in tmp_path.
(Simplification, writers and the instance raster: test_coverage.py.)
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from rasterio.features import rasterize, shapes
from rasterio.transform import from_origin

from geoseg.errors import ConfigError, GeosegError, InputError
from geoseg.grid import cell_area_m2
from geoseg.vector.polygons import COLUMNS, polygon_frame, vectorize_blocks, vectorize_to_file
from tests.helpers import UTM12_30M as UTM
from tests.helpers import blobs, spiral, write_classes, write_raster

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
    "spiral": spiral(23),
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
    cell = cell_area_m2(gdf.crs, GEO, np.arange(classes.shape[0]))
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
    from geoseg.vector import mmu, polygons

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
    monkeypatch.setattr(mmu, "open_raster", lambda p: Spy(real_open(p)))
    gdf = polygon_frame(path, block_size=8, mmu_m2=4 * 900.0)
    assert len(gdf) > 0
    assert windows and all(w is not None and w.width <= 8 and w.height <= 8 for w in windows)
    # row-major block order, each pass once over the grid (MMU: two passes)
    offsets = [(int(w.row_off), int(w.col_off)) for w in windows]
    # block rows of 8 px, the last one split in two (rows 32-35 and 36-39)
    grid = sorted({(r, c) for r in (0, 8, 16, 24, 32, 36) for c in range(0, 45, 8)})
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


# --------------------------------------------------------------------------- errors


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

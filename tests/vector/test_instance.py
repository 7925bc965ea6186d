"""The instance raster (geoseg.vector.instance). Oracle: a rasterization of the polygons with their ids."""

from __future__ import annotations

import pytest
import rasterio
from rasterio.features import rasterize

from geoseg.errors import OutputError
from geoseg.vector.polygons import polygon_frame, vectorize_blocks
from tests.helpers import UTM12_30M as UTM
from tests.helpers import blobs, write_classes


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

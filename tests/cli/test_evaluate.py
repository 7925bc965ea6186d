"""`geoseg evaluate`: the bundled model against the NC labels, metrics file and printed table.

Oracle: the NC reference labels, on the whole scene and on the model's held-out validation block.
"""

import json

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from geoseg.cli import main
from tests.helpers import NC_IMAGE, NC_LABELS


@pytest.mark.slow
def test_evaluate_cli_writes_metrics_and_prints_a_table(tmp_path):
    r = CliRunner().invoke(main, ["-q", "evaluate", str(NC_IMAGE), str(NC_LABELS), "--output", str(tmp_path / "ev"), "--local"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert set(m) >= {"per_class", "miou", "overall_accuracy", "confusion_matrix"}
    assert set(m["per_class"]["forest"]) == {"iou", "precision", "recall", "f1", "support"}
    with rasterio.open(NC_LABELS) as lab:
        labels = lab.read(1)
    assert sum(sum(row) for row in m["confusion_matrix"]) == int((labels != 255).sum())
    assert "mIoU" in r.output and "forest" in r.output


def test_the_bundled_model_scored_by_geoseg_evaluate_on_its_held_out_block(tmp_path, default_checkpoint):
    """The card's accuracy is not taken on trust: `geoseg evaluate` scores the bundled model on the NC scene's
    held-out validation block (labels outside it ignored). Oracle: the reference labels."""
    from tests.helpers import write_raster

    card = default_checkpoint.card
    col, row, width, height = card.metrics["validation_blocks"][NC_IMAGE.stem.removeprefix("nc_raleigh_")]
    with rasterio.open(NC_LABELS) as lab:
        labels, crs, transform = lab.read(1), lab.crs, lab.transform
    held_out = np.full_like(labels, 255)
    held_out[row : row + height, col : col + width] = labels[row : row + height, col : col + width]
    write_raster(tmp_path / "held_out.tif", held_out, crs=crs, transform=transform, nodata=255)
    r = CliRunner().invoke(main, ["-q", "evaluate", str(NC_IMAGE), str(tmp_path / "held_out.tif"), "--output",
                                  str(tmp_path / "ev"), "--local"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["pixels"] == int((held_out != 255).sum()) > 30000
    assert m["miou"] >= 0.45 and m["overall_accuracy"] >= 0.65, m
    assert all(m["per_class"][c]["iou"] >= 0.25 for c in card.class_names), m["per_class"]
    claimed = card.metrics["per_scene"][NC_IMAGE.stem.removeprefix("nc_raleigh_")]["miou"]
    assert abs(m["miou"] - claimed) <= 0.05, f"the card claims mIoU {claimed} on this block, evaluate gives {m['miou']}"


def test_evaluate_with_a_few_hundred_field_points(tmp_path):
    """Sparse labels: 300 labelled points (in WGS 84, field `lc`) score the map on their pixels only.
    Oracle: the written class map sampled with numpy at each point's pixel, counted by hand."""
    import geopandas as gpd
    from pyproj import Transformer

    with rasterio.open(NC_LABELS) as lab:
        labels, crs, transform = lab.read(1), lab.crs, lab.transform
    rng = np.random.default_rng(5)
    rows, cols = np.nonzero(labels != 255)
    pick = rng.choice(len(rows), 300, replace=False)
    rows, cols = rows[pick], cols[pick]
    xs, ys = rasterio.transform.xy(transform, rows, cols)
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    points = gpd.GeoDataFrame({"lc": labels[rows, cols].astype(int)}, geometry=gpd.points_from_xy(lon, lat), crs=4326)
    points.to_file(tmp_path / "points.gpkg")
    r = CliRunner().invoke(main, ["-q", "evaluate", str(NC_IMAGE), str(tmp_path / "points.gpkg"), "--class-field", "lc",
                                  "--output", str(tmp_path / "ev"), "--local"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    with rasterio.open(tmp_path / "ev" / f"{NC_IMAGE.stem}_classes.tif") as pred:
        predicted = pred.read(1)[rows, cols]
    expected = np.zeros((4, 4), int)
    np.add.at(expected, (labels[rows, cols], predicted), 1)
    assert m["pixels"] == 300 and m["class_field"] == "lc"
    assert m["confusion_matrix"] == expected.tolist()
    bad = CliRunner().invoke(main, ["-q", "evaluate", str(NC_IMAGE), str(tmp_path / "points.gpkg"),
                                    "--output", str(tmp_path / "ev2"), "--local"])
    assert bad.exit_code != 0 and "no attribute 'class'" in bad.output and "--class-field" in bad.output

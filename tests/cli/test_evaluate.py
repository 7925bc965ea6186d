"""`geoseg evaluate`: the bundled model against the NC labels, metrics file and printed table."""

import json

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

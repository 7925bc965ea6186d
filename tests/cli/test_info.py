"""`geoseg info`: the bundled model's card and a raster's bands and size."""

import json

from click.testing import CliRunner

from geoseg.cli import main
from tests.helpers import NC_IMAGE


def test_info_describes_model_and_raster():
    r = CliRunner().invoke(main, ["info", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["bands"] == ["green", "red", "nir"]
    r = CliRunner().invoke(main, ["info", str(NC_IMAGE)])
    assert r.exit_code == 0 and "2:green" in r.output and "489 x 443" in r.output


def test_info_json_of_a_raster_with_nan_nodata_is_strict_json(tmp_path):
    import numpy as np

    from tests.helpers import write_raster

    path = write_raster(tmp_path / "f.tif", np.zeros((1, 8, 8), np.float32), nodata=float("nan"))
    r = CliRunner().invoke(main, ["info", str(path), "--json"])
    assert r.exit_code == 0, r.output

    def refuse(token):
        raise AssertionError(f"bare {token} in the JSON")

    doc = json.loads(r.output, parse_constant=refuse)
    assert doc["nodata"] is None and doc["path"] == str(path)


def test_info_names_a_quality_band_or_a_quality_file(tmp_path):
    import numpy as np

    from tests.helpers import write_raster

    stack = write_raster(tmp_path / "s.tif", np.zeros((3, 8, 8), np.uint16), descriptions=["red", "nir", "QA_PIXEL"])
    r = CliRunner().invoke(main, ["info", str(stack)])
    assert r.exit_code == 0 and "quality: band 3:QA_PIXEL read as landsat_qa_pixel" in r.output
    scl = write_raster(tmp_path / "T33TWM_SCL_20m.tif", np.zeros((8, 8), np.uint8))
    assert json.loads(CliRunner().invoke(main, ["info", str(scl), "--json"]).output)["quality"] == {"band": 1,
                                                                                                   "format": "s2_scl"}
    plain = CliRunner().invoke(main, ["info", str(NC_IMAGE), "--json"])
    assert json.loads(plain.output)["quality"] is None

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

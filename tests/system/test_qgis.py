"""The outputs open styled in QGIS (Debian's QGIS, headless): the polygons by their layer_styles default
style, the class raster with its class names in the legend, the confidence raster as a colour ramp.

Oracle: QGIS itself (python3-qgis under the system Python, QT_QPA_PLATFORM=offscreen).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from geoseg.segment.pipeline import segment
from tests.helpers import CLASSES, NC_IMAGE, SPECTRAL_MODEL, require_tool, segment_config

PROBE = r"""
import json, sys
from qgis.core import QgsApplication, QgsRasterLayer, QgsVectorLayer
app = QgsApplication([], False); app.initQgis()
out = {}
v = QgsVectorLayer(sys.argv[1] + "|layername=landcover", "p", "ogr")
r = v.renderer()
out["vector"] = [v.isValid(), r.type(), r.classAttribute() if r.type() == "categorizedSymbol" else None,
                 [[c.value(), c.label(), c.symbol().color().name()] for c in getattr(r, "categories", lambda: [])()]]
c = QgsRasterLayer(sys.argv[2], "c")
out["classes"] = [c.isValid(), c.renderer().type(), [[e.value, e.label, e.color.name()] for e in getattr(c.renderer(), "classes", lambda: [])()]]
f = QgsRasterLayer(sys.argv[3], "f")
out["confidence"] = [f.isValid(), f.renderer().type()]
print(json.dumps(out), flush=True)
import os; os._exit(0)  # QGIS 3.22 may crash while tearing down: the answer is out
"""


def test_qgis_opens_the_outputs_styled(tmp_path):
    python = "/usr/bin/python3"
    require_tool(python)
    if subprocess.run([python, "-c", "import qgis.core"], capture_output=True).returncode:
        if os.environ.get("CI"):
            pytest.fail("python3-qgis is not installed; .ci/run installs it")
        pytest.skip("python3-qgis is not installed (apt-get install python3-qgis qgis-providers)")
    segment(segment_config([NC_IMAGE], tmp_path / "o", model=str(SPECTRAL_MODEL)), progress=False)
    o, stem = tmp_path / "o", NC_IMAGE.stem
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(tmp_path)}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([python, "-c", PROBE, str(o / f"{stem}_polygons.gpkg"), str(o / f"{stem}_classes.tif"),
                           str(o / f"{stem}_confidence.tif")], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    want = [[str(c["id"]), c["name"], c["color"]] for c in CLASSES]
    assert got["vector"][:3] == [True, "categorizedSymbol", "class_id"]
    assert [[str(v), lab, col] for v, lab, col in got["vector"][3]] == want
    assert got["classes"][:2] == [True, "paletted"]
    assert [[str(int(v)), lab, col] for v, lab, col in got["classes"][2]] == want
    assert got["confidence"] == [True, "singlebandpseudocolor"]

"""Make docs/report_segment.png and docs/qgis_styled.png (the README's pictures of the report and the styled layers).

Run from the repository root after `geoseg segment data/sample/nc_raleigh_landsat7_2000.tif --output out/readme --local`:
``python docs/report_figures.py out/readme``. Needs Debian's chromium and python3-qgis (as the tests do).
"""

import os
import subprocess
import sys
from pathlib import Path

out = Path(sys.argv[1]).resolve()
stem = "nc_raleigh_landsat7_2000"
docs = Path(__file__).resolve().parent
subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1100,900",
                f"--screenshot={docs / 'report_segment.png'}", (out / "report.html").as_uri()], check=True)
render = f"""
import os
from qgis.core import *
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor
app = QgsApplication([], False); app.initQgis()
r = QgsRasterLayer("{out / (stem + '_classes.tif')}", "classes")
v = QgsVectorLayer("{out / (stem + '_polygons.gpkg')}|layername=landcover", "polygons", "ogr")
v.setOpacity(0.6)
s = QgsMapSettings(); s.setLayers([v, r]); s.setDestinationCrs(r.crs()); s.setExtent(r.extent())
s.setOutputSize(QSize(900, 815)); s.setBackgroundColor(QColor("white"))
job = QgsMapRendererParallelJob(s); job.start(); job.waitForFinished()
img = job.renderedImage()
from qgis.PyQt.QtGui import QPainter, QFont
p = QPainter(img); p.setFont(QFont("DejaVu Sans", 14))
y = 24
for c in v.renderer().categories():
    p.fillRect(12, y - 14, 18, 18, c.symbol().color()); p.drawText(38, y, c.label()); y += 26
p.end()
img.save("{docs / 'qgis_styled.png'}")
os._exit(0)
"""
env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
env.pop("PYTHONPATH", None)
subprocess.run(["/usr/bin/python3", "-c", render], check=True, env=env)

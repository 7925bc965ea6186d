"""Draws docs/pucallpa_change.png: Landsat 1985 and 2020 (SWIR1/NIR/red) and the 1985 -> 2020 change map.

Run from the repository root after the monitoring demo and the 35-year comparison (README, "Change monitoring"):

    python jobs/monitor.py --config configs/monitor_pucallpa.yaml --local
    R=out/monitor/pucallpa/regions/scene/periods
    geoseg change $R/1985/landsat_1985_classes.tif $R/2020/landsat_2020_classes.tif \\
        --output out/change/pucallpa_1985_2020 --min-confidence 60 --mmu-ha 2
    python docs/pucallpa_figure.py
"""
import json

import numpy as np
import rasterio
from PIL import Image, ImageDraw, ImageFont


def falsecolor(y):
    with rasterio.open(f"data/pucallpa/landsat_{y}.tif") as s:
        return s.read([1, 2, 3]).transpose(1, 2, 0)

with rasterio.open("out/change/pucallpa_1985_2020/change.tif") as s:
    codes = s.read(1)
    cmap = s.colormap(1)
    legend = json.loads(s.tags()["legend"])
lut = np.zeros((256, 3), np.uint8)
for k, v in cmap.items():
    lut[k] = v[:3]
lut[255] = (255, 255, 255)
panels = [falsecolor(1985), falsecolor(2020), lut[codes]]
scale = 0.62
W, H = int(697 * scale), int(377 * scale)
gap, top = 6, 22
present = set(np.unique(codes).tolist())
items = [e for e in legend if e["code"] in present and e["code"] != 255]
rows = (len(items) + 3) // 4
width = 3 * W + 2 * gap
img = Image.new("RGB", (width, top + H + 8 + rows * 18 + 4), "white")
d = ImageDraw.Draw(img)
font = ImageFont.load_default()
titles = ["Landsat 1985 (SWIR1/NIR/red)", "Landsat 2020 (SWIR1/NIR/red)", "geoseg change 1985 -> 2020"]
for i, (p, t) in enumerate(zip(panels, titles)):
    x = i * (W + gap)
    img.paste(Image.fromarray(p).resize((W, H), Image.NEAREST), (x, top))
    d.text((x + 2, 5), t, fill="black", font=font)
for j, e in enumerate(items):
    x = (j % 4) * (width // 4) + 4
    y = top + H + 8 + (j // 4) * 18
    d.rectangle([x, y + 2, x + 12, y + 12], fill=tuple(lut[e["code"]].tolist()), outline="black")
    d.text((x + 17, y + 1), e["label"].replace("→", "->"), fill="black", font=font)
# a small PNG: the legend colours exactly, plus 200 colours for the imagery
fixed = sorted({tuple(c) for c in lut[[e["code"] for e in items]].tolist()} | {(0, 0, 0), (255, 255, 255)})
imagery = Image.fromarray(np.concatenate(panels[:2], axis=1)).quantize(colors=200, dither=Image.Dither.NONE)
colours = fixed + [tuple(imagery.getpalette()[3 * i:3 * i + 3]) for i in range(200)]
pal = Image.new("P", (1, 1))
pal.putpalette([v for c in colours for v in c] + [0] * 3 * (256 - len(colours)))
img.quantize(palette=pal, dither=Image.Dither.NONE).save("docs/pucallpa_change.png", optimize=True)
print(img.size)

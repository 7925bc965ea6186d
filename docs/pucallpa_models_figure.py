"""Draws docs/pucallpa_models.png: Pucallpa 1985/2000/2020 (SWIR1/NIR/red) and the class maps of the two bundled
models (the U-Net at the scenes' own 89 m pixels and resampled to its 28.5 m, the spectral-index baseline), to
choose the demo's model and pixel size by eye (there are no labels for Pucallpa).

Run from the repository root:

    Y="data/pucallpa/landsat_{1985,2000,2020}.tif"; W=geoseg/model/weights
    eval geoseg segment $Y --model $W/landcover-unet-mnv2 --output out/models/unet-native --native-resolution --local
    eval geoseg segment $Y --model $W/landcover-unet-mnv2 --output out/models/unet-resampled --local
    eval geoseg segment $Y --model $W/landcover-spectral-index --output out/models/landcover-spectral-index --local
    python docs/pucallpa_models_figure.py
"""
import numpy as np
import rasterio
from PIL import Image, ImageDraw, ImageFont

PALETTE = np.array([[227, 217, 166], [27, 120, 55], [33, 102, 172], [214, 48, 29]] + [[255, 255, 255]] * 252, np.uint8)
MODELS = {"U-Net, 89 m (the demo)": "out/models/unet-native",
          "U-Net resampled to 28.5 m": "out/models/unet-resampled",
          "spectral-index baseline": "out/models/landcover-spectral-index"}
scale = 0.5
W, H = int(697 * scale), int(377 * scale)
gap, top = 4, 16
img = Image.new("RGB", (4 * W + 3 * gap, 3 * (H + top) + 18), "white")
d = ImageDraw.Draw(img)
font = ImageFont.load_default()
for r, year in enumerate((1985, 2000, 2020)):
    with rasterio.open(f"data/pucallpa/landsat_{year}.tif") as src:
        panels = [(f"Landsat {year} (SWIR1/NIR/red)", src.read([1, 2, 3]).transpose(1, 2, 0))]
    for name, folder in MODELS.items():
        with rasterio.open(f"{folder}/landsat_{year}_classes.tif") as src:
            panels.append((f"{name} {year}", PALETTE[src.read(1)]))
    for c, (title, arr) in enumerate(panels):
        x, y = c * (W + gap), r * (H + top)
        d.text((x + 2, y + 2), title, fill="black", font=font)
        img.paste(Image.fromarray(arr).resize((W, H), Image.NEAREST), (x, y + top))
y = 3 * (H + top) + 3
for i, (name, rgb) in enumerate(zip(("other", "forest", "water", "urban"), PALETTE)):
    d.rectangle([4 + 90 * i, y, 16 + 90 * i, y + 12], fill=tuple(rgb.tolist()), outline="black")
    d.text((20 + 90 * i, y + 1), name, fill="black", font=font)
img.quantize(colors=200, dither=Image.Dither.NONE).save("docs/pucallpa_models.png", optimize=True)
print(img.size)

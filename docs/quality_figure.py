"""Draws docs/quality_layer.png: a cloud and its shadow painted over the NC sample scene, the QA_PIXEL-coded quality
layer geoseg writes, and the class maps without and with the mask.

The NC sample ships no QA band, so the cloud, its shadow and their QA_PIXEL bits (Landsat Collection 2 layout: bit 1
dilated cloud, 3 cloud, 4 cloud shadow, 6 clear; confidence bits 8-9 high) are written here over the real scene.
Run from the repository root: ``python docs/quality_figure.py`` (two local segment runs, a few seconds).
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image, ImageDraw
from scipy import ndimage

SCENE = Path("data/sample/nc_raleigh_landsat7_2000.tif")
OUT = Path("out/quality_figure")
QA_CLEAR, QA_CLOUD, QA_SHADOW, QA_DILATED = 0b0101_0101_0100_0000, 0b0101_0111_0000_1000, 0b0101_0111_0001_0000, 0b0101_0101_0000_0010


def paint() -> tuple[Path, Path]:
    """The scene with a cloud and shadow painted in (plain), and the same with its QA_PIXEL band (masked)."""
    with rasterio.open(SCENE) as src:
        bands, profile, names = src.read().astype(np.uint16), src.profile, list(src.descriptions)
    h, w = bands.shape[1:]
    yy, xx = np.mgrid[:h, :w]
    rng = np.random.default_rng(3)
    cloud = ndimage.gaussian_filter(rng.random((h, w)), 12) > 0.5
    cloud &= (yy - 150) ** 2 / 90**2 + (xx - 300) ** 2 / 110**2 < 1
    shadow = np.roll(cloud, (40, -55), axis=(0, 1)) & ~cloud
    dilated = ndimage.binary_dilation(cloud, iterations=4) & ~cloud & ~shadow
    valid = bands.all(axis=0)
    bright = np.clip(200 + rng.normal(0, 12, (h, w)), 150, 255).astype(np.uint16)
    bands[:, cloud] = bright[cloud]
    bands[:, shadow] = (bands[:, shadow] * 0.45).astype(np.uint16).clip(1)
    bands[:, ~valid] = 0
    qa = np.full((h, w), QA_CLEAR, np.uint16)
    qa[dilated], qa[cloud], qa[shadow] = QA_DILATED, QA_CLOUD, QA_SHADOW
    qa[~valid] = 1  # fill
    OUT.mkdir(parents=True, exist_ok=True)
    prof = {**profile, "dtype": "uint16"}
    plain, masked = OUT / "plain" / "scene.tif", OUT / "scene.tif"
    plain.parent.mkdir(exist_ok=True)
    with rasterio.open(plain, "w", **prof) as dst:
        dst.write(bands)
        dst.descriptions = names
    with rasterio.open(masked, "w", **{**prof, "count": prof["count"] + 1}) as dst:
        dst.write(np.concatenate([bands, qa[None]]))
        dst.descriptions = [*names, "QA_PIXEL"]
    return plain, masked


def segment(path: Path, out: Path) -> None:
    subprocess.run([sys.executable, "-m", "geoseg.cli", "-q", "segment", str(path), "--output", str(out), "--local",
                    "--overwrite"], check=True)


def coloured(path: Path) -> np.ndarray:
    with rasterio.open(path) as s:
        codes, cmap = s.read(1), s.colormap(1)
    lut = np.zeros((256, 3), np.uint8)
    for k, v in cmap.items():
        lut[k] = v[:3]
    lut[255] = (255, 255, 255)
    return lut[codes]


def main() -> None:
    plain, masked = paint()
    segment(plain, OUT / "plain_out")
    segment(masked, OUT / "masked_out")
    with rasterio.open(masked) as s:
        fc = s.read([4, 3, 2]).astype(float)  # nir, red, green
    lo, hi = np.percentile(fc[:, fc.all(axis=0)], [2, 98], axis=1)
    rgb = (np.clip((fc - lo[:, None, None]) / (hi - lo)[:, None, None], 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
    panels = [("input (NIR/red/green), painted cloud", rgb),
              ("scene_quality.tif (QA_PIXEL decoded)", coloured(OUT / "masked_out" / "scene_quality.tif")),
              ("classes without a mask", coloured(OUT / "plain_out" / "scene_classes.tif")),
              ("classes with the QA band: nodata", coloured(OUT / "masked_out" / "scene_classes.tif"))]
    h, w = rgb.shape[:2]
    scale, pad, top = 0.8, 8, 22
    pw, ph = int(w * scale), int(h * scale)
    fig = Image.new("RGB", (2 * pw + 3 * pad, 2 * (ph + top) + 3 * pad), "white")
    draw = ImageDraw.Draw(fig)
    for i, (title, arr) in enumerate(panels):
        x, y = pad + (i % 2) * (pw + pad), pad + (i // 2) * (ph + top + pad)
        draw.text((x, y + 4), title, fill="black")
        fig.paste(Image.fromarray(arr).resize((pw, ph), Image.NEAREST), (x, y + top))
    fig.save("docs/quality_layer.png", optimize=True)
    print("docs/quality_layer.png")


if __name__ == "__main__":
    main()

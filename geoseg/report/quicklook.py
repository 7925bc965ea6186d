"""Quicklook PNGs: small RGBA pictures of class, change, confidence and input rasters, on one grid.

Every quicklook of a raster is read decimated to :data:`MAX_SIDE` px on the long side (GDAL
uses the COG's overviews), so quicklooks of the same grid overlay exactly. Class and change
maps are coloured by their categories (nodata transparent); an input scene is shown in true
colour when it has red, green and blue bands, else in a standard false colour (SWIR1/NIR/red,
then NIR/red/green), stretched between the 2nd and 98th percentile of each band. PNGs are
encoded here (zlib, no imaging library): :func:`encode_png` (RGBA) and :func:`encode_png_palette`
(class and confidence maps: one byte per pixel).
"""

from __future__ import annotations

import struct
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rasterio.errors import NodataShadowWarning

from geoseg.grid import GeoGrid
from geoseg.io.raster import open_raster
from geoseg.io.styles import CONFIDENCE_RAMP, Category, rgb

MAX_SIDE = 1024
"""Long side of a quicklook, pixels (smaller rasters keep their size)."""

COMPOSITES = (("red", "green", "blue"), ("swir1", "nir", "red"), ("nir", "red", "green"))
"""Band combinations tried for an input quicklook, in order (band descriptions, case-insensitive)."""


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(rows: np.ndarray, width: int, color_type: int, extra: bytes = b"") -> bytes:
    """PNG bytes of ``rows`` (``(rows, width * bytes per pixel)`` uint8), filter 0 on every row."""
    h = rows.shape[0]
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", width, h, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + extra + _chunk(b"IDAT", zlib.compress(raw, 6))
            + _chunk(b"IEND", b""))


def encode_png(rgba: np.ndarray) -> bytes:
    """An 8-bit RGBA PNG of ``rgba`` (``(rows, cols, 4)`` uint8)."""
    rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
    h, w, bands = rgba.shape
    if bands != 4:
        raise ValueError(f"expected (rows, cols, 4) RGBA, got {rgba.shape}")
    return _png(rgba.reshape(h, w * 4), w, 6)


def encode_png_palette(indices: np.ndarray, palette: np.ndarray) -> bytes:
    """An 8-bit palette PNG: ``indices`` (``(rows, cols)`` uint8) into ``palette`` (``(n, 4)`` RGBA uint8,
    n <= 256; alpha in the tRNS chunk). A quarter of the RGBA form's bytes to compress, so faster and smaller."""
    palette = np.asarray(palette, np.uint8)
    if palette.ndim != 2 or palette.shape[1] != 4 or not 1 <= len(palette) <= 256:
        raise ValueError(f"expected an (n <= 256, 4) RGBA palette, got {palette.shape}")
    indices = np.ascontiguousarray(indices, dtype=np.uint8)
    if indices.size and int(indices.max()) >= len(palette):
        raise ValueError(f"index {int(indices.max())} outside a palette of {len(palette)} colours")
    extra = _chunk(b"PLTE", palette[:, :3].tobytes()) + _chunk(b"tRNS", palette[:, 3].tobytes())
    return _png(indices, indices.shape[1], 3, extra)


def quicklook_shape(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """``(rows, cols)`` of the quicklook of a ``width`` x ``height`` raster."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _read(path: str | Path, bands: Sequence[int], max_side: int,
          grid: GeoGrid | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decimated ``(bands, rows, cols)`` and the valid mask (nearest neighbour), on ``grid`` if given."""
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    with open_raster(path) as src:
        on_grid = grid is None or GeoGrid.from_dataset(src).almost_equals(grid)
        ds = src if grid is None or on_grid else WarpedVRT(src, crs=grid.crs, transform=grid.transform, width=grid.width,
                                           height=grid.height, resampling=Resampling.nearest)
        try:
            shape = quicklook_shape(ds.width, ds.height, max_side)
            data = ds.read(list(bands), out_shape=(len(bands), *shape), resampling=Resampling.nearest)
            with warnings.catch_warnings():  # a warped VRT's alpha band is shadowed by the nodata value: as wanted
                warnings.simplefilter("ignore", NodataShadowWarning)
                mask = ds.read_masks(list(bands), out_shape=(len(bands), *shape), resampling=Resampling.nearest)
        finally:
            if ds is not src:
                ds.close()
    return data, (mask > 0).all(axis=0)


def categorical_palette(cats: Sequence[Category], nodata: int | None = 255) -> np.ndarray:
    """``(256, 4)`` RGBA per uint8 value: each category's colour, other values and ``nodata`` transparent."""
    lut = np.zeros((256, 4), np.uint8)
    for c in cats:
        if 0 <= c.value < 256 and c.value != nodata:
            lut[c.value] = (*rgb(c.color), 255)
    return lut


def categorical_rgba(values: np.ndarray, cats: Sequence[Category], nodata: int | None = 255) -> np.ndarray:
    """RGBA of a categorical array: each category's colour, other values and ``nodata`` transparent."""
    return categorical_palette(cats, nodata)[values.astype(np.uint8)]


def ramp_rgba(values: np.ndarray, valid: np.ndarray, stops: Sequence[tuple[float, str]] = CONFIDENCE_RAMP) -> np.ndarray:
    """RGBA of a continuous array through the colour ``stops`` (linear), invalid pixels transparent."""
    xs = [float(v) for v, _ in stops]
    cols = np.array([rgb(c) for _, c in stops], float)
    out = np.zeros((*values.shape, 4), np.uint8)
    for k in range(3):
        out[..., k] = np.interp(values.astype(float), xs, cols[:, k]).round().astype(np.uint8)
    out[..., 3] = np.where(valid, 255, 0)
    return out


def ramp_palette(stops: Sequence[tuple[float, str]] = CONFIDENCE_RAMP) -> np.ndarray:
    """``(256, 4)`` RGBA of the uint8 values 0..254 through the colour ``stops`` (:func:`ramp_rgba`); 255 transparent."""
    values = np.arange(256)
    return ramp_rgba(values, values < 255, stops)


def write_categorical(raster: str | Path, png: Path, cats: Sequence[Category], nodata: int | None = 255,
                      max_side: int = MAX_SIDE, grid: GeoGrid | None = None) -> Path:
    """The quicklook PNG of a class or change map, coloured by ``cats`` (read onto ``grid`` if given)."""
    data, valid = _read(raster, [1], max_side, grid)
    lut = categorical_palette(cats, nodata)
    hidden = nodata if nodata is not None and 0 <= nodata < 256 else 255  # the entry invalid pixels take
    lut[hidden] = 0
    png.write_bytes(encode_png_palette(np.where(valid, data[0].astype(np.uint8), hidden), lut))
    return png


def write_ramp(raster: str | Path, png: Path, max_side: int = MAX_SIDE) -> Path:
    """The quicklook PNG of a confidence raster (percent, :data:`~geoseg.io.styles.CONFIDENCE_RAMP`)."""
    data, valid = _read(raster, [1], max_side)
    values = data[0]
    if values.dtype == np.uint8:  # geoseg's confidence rasters (0..100, 255 nodata): a palette PNG
        png.write_bytes(encode_png_palette(np.where(valid & (values != 255), values, 255), ramp_palette()))
    else:
        png.write_bytes(encode_png(ramp_rgba(values, valid)))
    return png


def composite_bands(descriptions: Sequence[str | None], count: int) -> tuple[list[int], str]:
    """1-based bands of an input quicklook and what they show (e.g. ``"swir1/nir/red"``)."""
    names = [(d or "").strip().lower() for d in descriptions]
    for combo in COMPOSITES:
        if all(b in names for b in combo):
            return [names.index(b) + 1 for b in combo], "/".join(combo)
    bands = [1, 2, 3] if count >= 3 else [1, 1, 1]
    return bands, "bands " + "/".join(map(str, bands)) if count >= 3 else "band 1"


def stretch(data: np.ndarray, valid: np.ndarray, low: float = 2, high: float = 98) -> np.ndarray:
    """Each band scaled to 0..255 between its ``low`` and ``high`` percentiles over valid pixels."""
    out = np.zeros(data.shape, np.uint8)
    for i, band in enumerate(data.astype(float)):
        vals = band[valid]
        if vals.size == 0:
            continue
        lo, hi = np.percentile(vals, [low, high])
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        out[i] = np.clip((np.where(valid, band, lo) - lo) * scale, 0, 255).round().astype(np.uint8)  # NaN: 0
    return out


def write_scene(raster: str | Path, png: Path, max_side: int = MAX_SIDE) -> str:
    """The quicklook PNG of an input scene (:data:`COMPOSITES`); returns what it shows."""
    with open_raster(raster) as src:
        bands, label = composite_bands(src.descriptions, src.count)
    data, valid = _read(raster, bands, max_side)
    rgb8 = stretch(data, valid)
    rgba = np.concatenate([np.moveaxis(rgb8, 0, -1), np.where(valid, 255, 0).astype(np.uint8)[..., None]], axis=-1)
    png.write_bytes(encode_png(rgba))
    return label

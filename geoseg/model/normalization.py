"""Per-scene radiometric normalisation, shared by training and inference (one code path).

Landsat scenes arrive as 8-bit DN, 16-bit DN or display-stretched bytes. A model trained
on one radiometry must run on another, so inputs are scaled per scene and per band by
robust percentiles: ``(x - p_low) / (p_high - p_low)``, clipped to ``[clip_min, clip_max]``.
The percentiles are estimated from a decimated read of the whole scene (an overview
level when the file has one), so memory stays bounded whatever the raster size.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from geoseg.config import Normalization
from geoseg.errors import InputError
from geoseg.io.raster import gdal_cause, read_masked, unreadable_message
from geoseg.io.urls import redact

log = logging.getLogger(__name__)

STATS_MAX_SIDE = 2048
"""Longest side (pixels) of the decimated read used to estimate scene percentiles."""

MIN_STATS_PIXELS = 4096
"""Fewer valid pixels than this (a 64 x 64 patch, a thin strip) give unreliable percentiles: the
segment run then warns and points to ``stats_from`` (the scene the input was cut from)."""

MIN_STATS_SIDE = 64
"""Inputs narrower than this (pixels) warn too: a strip's percentiles are those of a few land covers only."""


@dataclass(frozen=True, slots=True)
class BandStats:
    """Per-band scaling of one scene: ``offset`` and ``scale`` in the raster's DN units;
    ``pixels``: how many valid pixels they were estimated from (0: not known)."""

    offset: tuple[float, ...]
    scale: tuple[float, ...]
    pixels: int = field(default=0, compare=False)

    def to_dict(self) -> dict[str, list[float]]:
        return {"offset": list(self.offset), "scale": list(self.scale)}


def scene_stats(src: rasterio.io.DatasetReader, band_indexes: list[int], norm: Normalization,
                clear: Callable[[tuple[int, int]], np.ndarray] | None = None) -> BandStats:
    """Estimate per-band percentiles of ``src`` over its valid pixels.

    ``band_indexes`` are 1-based rasterio band indexes. Reads at most
    ``STATS_MAX_SIDE`` pixels along the longest side (nearest resampling, so GDAL
    uses an overview when there is one); nodata values and internal masks are honoured.
    ``clear``: ``(rows, cols) -> bool array`` of the pixels a quality mask leaves clear on that
    decimated grid (:meth:`geoseg.io.quality.QualityReader.clear_overview`): clouds, shadows and
    snow then do not stretch the percentiles; all valid pixels are used when fewer than
    :data:`MIN_STATS_PIXELS` (and under half of them) are clear (a scene all cloud).
    """
    factor = max(1, math.ceil(max(src.width, src.height) / STATS_MAX_SIDE))
    out_shape = (len(band_indexes), max(1, src.height // factor), max(1, src.width // factor))
    try:
        data = read_masked(src, band_indexes, out_shape=out_shape, resampling=Resampling.nearest)
        valid = ~np.ma.getmaskarray(data).any(axis=0)
        if clear is not None:
            kept = valid & clear(out_shape[1:])
            if kept.any() and kept.sum() >= min(MIN_STATS_PIXELS, valid.sum() // 2):
                valid = kept
            else:
                log.warning("%s: only %d clear pixel(s) in the decimated read; scene statistics from all %d valid "
                            "pixels, cloud included", redact(src.name), int(kept.sum()), int(valid.sum()))
        pixels = np.ma.getdata(data)[:, valid]
        error: RasterioIOError | None = None
    except RasterioIOError as exc:
        # a damaged block must fail only the tiles that read it, not the whole scene
        log.warning("%s: unreadable block(s) (GDAL: %s); scene statistics from the readable row strips",
                    redact(src.name), gdal_cause(exc))
        pixels, error = _pixels_by_strips(src, band_indexes, factor)
    if pixels.shape[1] == 0 and factor > 1:  # valid pixels too sparse for the decimated read: look at every pixel
        pixels, error = _pixels_by_strips(src, band_indexes, 1)
    if pixels.shape[1] == 0:
        if error is not None:  # nothing read, and GDAL said why: that, not "no valid pixels"
            raise InputError(unreadable_message(src, error)) from error
        raise InputError(no_valid_pixels_message(src, band_indexes))
    return stats_from_pixels(pixels, norm)


def no_valid_pixels_message(src: rasterio.io.DatasetReader, band_indexes: list[int]) -> str:
    """Why a scene cannot be segmented when none of its pixels is valid, and what to change."""
    names = [d or f"band{i}" for i, d in zip(band_indexes, (src.descriptions[i - 1] for i in band_indexes), strict=True)]
    bands = ", ".join(f"{i}:{n}" for i, n in zip(band_indexes, names, strict=True))
    floating = np.issubdtype(np.dtype(src.dtypes[0]), np.floating)
    if src.nodata is not None:
        what = f"the nodata value {src.nodata:g}" + (" or NaN/±inf" if floating else "")
    else:
        what = ("NaN/±inf or " if floating else "") + "masked (internal mask or alpha band)"
    return (f"{redact(src.name)}: has no valid pixels: in bands {bands}, every pixel is {what}; give a scene with "
            "data, fix its nodata value (e.g. rio edit-info --nodata), or choose other bands with --bands")


def _pixels_by_strips(src: rasterio.io.DatasetReader, band_indexes: list[int],
                      factor: int) -> tuple[np.ndarray, RasterioIOError | None]:
    """Valid ``(bands, n)`` pixels read strip by strip (one block row high), skipping unreadable strips;
    and the last read error (None if every strip was read)."""
    step = max(src.block_shapes[0][0], factor)
    parts = []
    error: RasterioIOError | None = None
    for row in range(0, src.height, step):
        h = min(step, src.height - row)
        window = Window(0, row, src.width, h)
        shape = (len(band_indexes), max(1, h // factor), max(1, src.width // factor))
        try:
            data = read_masked(src, band_indexes, window=window, out_shape=shape, resampling=Resampling.nearest)
        except RasterioIOError as exc:
            error = exc
            continue
        parts.append(np.ma.getdata(data)[:, ~np.ma.getmaskarray(data).any(axis=0)])
    return (np.concatenate(parts, axis=1) if parts else np.empty((len(band_indexes), 0))), error


def stats_from_pixels(values: np.ndarray, norm: Normalization) -> BandStats:
    """Per-band percentiles of a ``(bands, n)`` array of valid pixel values."""
    lo, hi = np.percentile(values.astype(np.float64), [norm.low, norm.high], axis=1)
    return BandStats(tuple(float(v) for v in lo), tuple(float(max(h - lw, 1e-6)) for lw, h in zip(lo, hi)),
                     pixels=int(values.shape[1]))


def stats_from_dict(data: dict, bands: int, source: str) -> BandStats:
    """:class:`BandStats` of a ``{"offset": [...], "scale": [...]}`` mapping (a manifest's
    ``normalization_stats``) for ``bands`` bands; :class:`InputError` naming ``source`` if it is not one."""
    try:
        offset, scale = [float(v) for v in data["offset"]], [float(v) for v in data["scale"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{source}: normalization_stats must be {{\"offset\": [...], \"scale\": [...]}} "
                         "numbers, one per band") from exc
    if len(offset) != bands or len(scale) != bands or not all(math.isfinite(v) for v in offset + scale) \
            or min(scale) <= 0:
        raise InputError(f"{source}: normalization_stats has {len(offset)} offset(s) and {len(scale)} scale(s); "
                         f"the model takes {bands} band(s), and scales must be finite and > 0")
    return BandStats(tuple(offset), tuple(scale))


def apply(data: np.ndarray, stats: BandStats, norm: Normalization) -> np.ndarray:
    """Scale a ``(bands, rows, cols)`` DN array to model input (float32, same axis order).

    The result is always finite: ±inf clip to ``[clip_min, clip_max]`` and NaN (a pixel
    the reads mark invalid) becomes 0, the band's low percentile, so that one NaN in a
    tile cannot spread through the network's convolutions to its valid neighbours.
    """
    offset = np.asarray(stats.offset, dtype=np.float32)[:, None, None]
    scale = np.asarray(stats.scale, dtype=np.float32)[:, None, None]
    out = (data.astype(np.float32) - offset) / scale
    np.clip(out, norm.clip_min, norm.clip_max, out=out)
    if np.issubdtype(data.dtype, np.floating):
        np.nan_to_num(out, copy=False, nan=0.0)
    return out

"""Per-pixel quality: cloud, shadow, snow and fill masks decoded into one flag vocabulary.

Four formats are read (``quality.format``; ``auto`` detects the first three by band description, else file name):

- ``landsat_qa_pixel``: Landsat Collection 2 ``QA_PIXEL`` bits (USGS Landsat 8-9 C2 L2 product guide):
  bit 0 fill, 1 dilated cloud, 2 cirrus (OLI only), 3 cloud, 4 cloud shadow, 5 snow (6 clear and 7 water
  are not flags: a pixel with none of bits 0-5 set is clear);
- ``s2_scl``: the Sentinel-2 L2A scene classification: 0 no data, 1 saturated/defective, 3 cloud shadow,
  8 and 9 cloud (medium, high probability), 10 thin cirrus, 11 snow; 2 and 4-7 are clear;
- ``fmask``: 0 clear land, 1 water (both clear), 2 cloud shadow, 3 snow, 4 cloud, 255 fill;
- ``binary``: 0 clear, any other value ``flagged``.

Every decoder returns a bit set per pixel (bit ``k - 1`` for flag code ``k``, several may be set) and
:func:`flag_codes` picks one code per pixel (:data:`FLAGS`, 0 = clear): the first flag of :data:`PRIORITY`
among those set, the masked flags first. Pixels the quality raster marks as nodata (its nodata value, NaN)
and values a format does not define are ``fill``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from geoseg.config import QUALITY_FLAGS
from geoseg.errors import ConfigError
from geoseg.io.styles import Category

FLAGS: tuple[str, ...] = QUALITY_FLAGS
"""Flag names; flag ``FLAGS[k - 1]`` has code ``k`` in the quality layer (0: clear, 255: outside)."""
CODES = {name: k + 1 for k, name in enumerate(FLAGS)}
CLEAR = 0
QUALITY_NODATA = 255
PRIORITY = ("fill", "saturated", "cloud", "cirrus", "dilated_cloud", "cloud_shadow", "snow", "flagged")
"""Which flag a pixel's code is when several are set (the masked ones first)."""
COLORS = {"clear": "#d9d9d9", "fill": "#000000", "cloud": "#ffffff", "cloud_shadow": "#525252", "cirrus": "#9ecae1",
          "snow": "#e7298a", "saturated": "#ff7f00", "dilated_cloud": "#fdd0a2", "flagged": "#984ea3"}
FORMATS = ("landsat_qa_pixel", "s2_scl", "fmask", "binary")

_BIT = {name: np.uint8(1 << (code - 1)) for name, code in CODES.items()}
_LANDSAT = ((0, "fill"), (1, "dilated_cloud"), (2, "cirrus"), (3, "cloud"), (4, "cloud_shadow"), (5, "snow"))
_SCL = {0: "fill", 1: "saturated", 2: None, 3: "cloud_shadow", 4: None, 5: None, 6: None, 7: None, 8: "cloud",
        9: "cloud", 10: "cirrus", 11: "snow"}
_FMASK = {0: None, 1: None, 2: "cloud_shadow", 3: "snow", 4: "cloud", 255: "fill"}


def _table(classes: dict[int, str | None]) -> np.ndarray:
    """A 256-entry lookup: class value -> flag bits (undefined values: fill)."""
    lut = np.full(256, _BIT["fill"], np.uint8)
    for value, flag in classes.items():
        lut[value] = _BIT[flag] if flag else 0
    return lut


_LUTS = {"s2_scl": _table(_SCL), "fmask": _table(_FMASK)}


def decode_bits(fmt: str, values: np.ndarray, invalid: np.ndarray | None = None) -> np.ndarray:
    """Flag bits (uint8, bit ``k - 1`` = flag code ``k``) of quality ``values`` in format ``fmt``.

    ``invalid``: pixels the raster marks as nodata (they become ``fill``).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"quality.format {fmt!r}: unknown; use one of auto, {', '.join(FORMATS)}")
    v = np.asarray(values)
    if np.issubdtype(v.dtype, np.floating):
        bad = ~np.isfinite(v)
        invalid = bad if invalid is None else (invalid | bad)
        v = np.where(bad, 0, v)
    v = v.astype(np.int64)
    if fmt == "landsat_qa_pixel":
        bits = np.zeros(v.shape, np.uint8)
        for bit, flag in _LANDSAT:
            bits |= np.where((v >> bit) & 1 == 1, _BIT[flag], np.uint8(0))
    elif fmt == "binary":
        bits = np.where(v != 0, _BIT["flagged"], np.uint8(0))
    else:
        inside = (v >= 0) & (v < 256)
        bits = np.where(inside, _LUTS[fmt][np.clip(v, 0, 255)], _BIT["fill"])
    if invalid is not None:
        bits = np.where(invalid, bits | _BIT["fill"], bits)
    return bits.astype(np.uint8)


def flag_codes(bits: np.ndarray, masked: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(codes uint8, clear bool)`` of flag ``bits``: one code per pixel, and where no ``masked`` flag is set."""
    unknown = sorted(set(masked) - set(FLAGS))
    if unknown:
        raise ConfigError(f"quality.masked_flags: unknown flag(s) {unknown}; use some of {', '.join(FLAGS)}")
    codes = np.zeros(bits.shape, np.uint8)
    order = [f for f in PRIORITY if f in masked] + [f for f in PRIORITY if f not in masked]
    for flag in reversed(order):  # the first in the order is written last, so it wins
        codes[(bits & _BIT[flag]) != 0] = CODES[flag]
    mask_bits = np.uint8(sum(int(_BIT[f]) for f in set(masked)))
    return codes, (bits & mask_bits) == 0


def decode(fmt: str, values: np.ndarray, masked: Sequence[str], invalid: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, clear)`` of quality ``values``: :func:`decode_bits` then :func:`flag_codes`."""
    return flag_codes(decode_bits(fmt, values, invalid), masked)


_NAMES = (("landsat_qa_pixel", re.compile(r"QA_PIXEL")), ("s2_scl", re.compile(r"(^|[_.-])SCL([_.-]|$)")),
          ("fmask", re.compile(r"FMASK")))


def detect_format(description: str | None, filename: str | None = None) -> str | None:
    """The format a band description (``QA_PIXEL``, ``SCL``, ``Fmask``) names, else the file name; None if neither."""
    for text in (description, PurePosixPath(filename).stem if filename else None):
        if text:
            for fmt, pattern in _NAMES:
                if pattern.search(text.upper()):
                    return fmt
    return None


def find_quality_band(band_names: Sequence[str]) -> tuple[int, str] | None:
    """``(1-based index, format)`` of the first band whose description names a quality format, else None."""
    for i, name in enumerate(band_names):
        fmt = detect_format(name)
        if fmt is not None:
            return i + 1, fmt
    return None


@dataclass(frozen=True, slots=True)
class QualitySource:
    """Where a scene's quality comes from (small, picklable: it travels to the workers in the scene job).

    ``path`` is the input itself for a band of it (``separate`` False) or a mask raster; ``warp``: the mask's
    grid differs from the input's, so it is reprojected onto it by nearest neighbour.
    """

    path: str
    band: int
    format: str
    masked: tuple[str, ...]
    separate: bool = False
    warp: bool = False
    nodata: float | None = None

    def describe(self, redact_path=str) -> dict[str, Any]:
        """JSON-ready description (journal key, manifest)."""
        return {"path": redact_path(self.path), "band": self.band, "format": self.format, "masked_flags": list(self.masked),
                "separate": self.separate, "reprojected": self.warp}


def quality_categories(counts: Sequence[int] | np.ndarray | None = None) -> list[Category]:
    """Categories of the quality layer (clear and each flag), with pixel counts per code if given."""
    names = ("clear", *FLAGS)
    return [Category(k, n, COLORS[n], int(counts[k]) if counts is not None else None) for k, n in enumerate(names)]


def read_quality(ds, source: QualitySource, window, masked: Sequence[str] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, clear)`` of ``window`` of an open quality raster (the input, the mask file or its warped VRT)."""
    from geoseg.io.raster import read_masked

    data = read_masked(ds, [source.band], window=window)
    return decode(source.format, np.ma.getdata(data)[0], source.masked if masked is None else masked,
                  np.ma.getmaskarray(data)[0])

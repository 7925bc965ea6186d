"""Per-pixel quality: cloud, shadow, snow and fill masks decoded into one flag vocabulary.

Five formats are read (``quality.format``; ``auto`` detects the first three by band description, else file name):

- ``landsat_qa_pixel``: Landsat Collection 2 ``QA_PIXEL`` bits (USGS Landsat 8-9 C2 L2 product guide):
  bit 0 fill, 1 dilated cloud, 2 cirrus (OLI only), 3 cloud, 4 cloud shadow, 5 snow (6 clear and 7 water
  are not flags: a pixel with none of bits 0-5 set is clear);
- ``s2_scl``: the Sentinel-2 L2A scene classification: 0 no data, 1 saturated/defective, 3 cloud shadow,
  8 and 9 cloud (medium, high probability), 10 thin cirrus, 11 snow; 2 and 4-7 are clear;
- ``landsat_qa_radsat``: Landsat Collection 2 ``QA_RADSAT`` bits: 0-8 a band saturated (band 1..9; bit 7 is
  unused), 9 dropped pixel (TM/ETM+), 11 terrain occlusion (OLI): saturation is ``saturated``, dropped and
  occluded pixels are ``fill``;
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

from geoseg.config import QUALITY_FLAGS, QualityConfig
from geoseg.errors import BandError, ConfigError, InputError
from geoseg.grid import GeoGrid
from geoseg.io.raster import RasterInfo, open_raster, read_masked, resolve_bands
from geoseg.io.styles import Category
from geoseg.io.urls import redact
from geoseg.tiling import PixelBox

FLAGS: tuple[str, ...] = QUALITY_FLAGS
"""Flag names; flag ``FLAGS[k - 1]`` has code ``k`` in the quality layer (0: clear, 255: outside)."""
CODES = {name: k + 1 for k, name in enumerate(FLAGS)}
CLEAR = 0
QUALITY_NODATA = 255
PRIORITY = ("fill", "saturated", "cloud", "cirrus", "dilated_cloud", "cloud_shadow", "snow", "flagged")
"""Which flag a pixel's code is when several are set (the masked ones first)."""
COLORS = {"clear": "#d9d9d9", "fill": "#000000", "cloud": "#ffffff", "cloud_shadow": "#525252", "cirrus": "#9ecae1",
          "snow": "#e7298a", "saturated": "#ff7f00", "dilated_cloud": "#fdd0a2", "flagged": "#984ea3"}
FORMATS = ("landsat_qa_pixel", "landsat_qa_radsat", "s2_scl", "fmask", "binary")

_BIT = {name: np.uint8(1 << (code - 1)) for name, code in CODES.items()}
_LANDSAT = ((0, "fill"), (1, "dilated_cloud"), (2, "cirrus"), (3, "cloud"), (4, "cloud_shadow"), (5, "snow"))
_RADSAT = (*((b, "saturated") for b in range(9) if b != 7), (9, "fill"), (11, "fill"))
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
    if fmt in ("landsat_qa_pixel", "landsat_qa_radsat"):
        bits = np.zeros(v.shape, np.uint8)
        for bit, flag in (_LANDSAT if fmt == "landsat_qa_pixel" else _RADSAT):
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


_NAMES = (("landsat_qa_pixel", re.compile(r"QA_PIXEL")), ("landsat_qa_radsat", re.compile(r"QA_RADSAT")), ("s2_scl", re.compile(r"(^|[_.-])SCL([_.-]|$)")),
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
    data = read_masked(ds, [source.band], window=window)
    return decode(source.format, np.ma.getdata(data)[0], source.masked if masked is None else masked,
                  np.ma.getmaskarray(data)[0])


FILL_VALUE = {"landsat_qa_pixel": 1, "landsat_qa_radsat": 512, "s2_scl": 0, "fmask": 255, "binary": 255}
"""The value a reprojected mask holds outside its own extent when it declares no nodata (decoded as ``fill``)."""


def resolve_quality(info: RasterInfo, q: QualityConfig, stem: str, model_bands: Sequence[int],
                    assets: dict[str, str] | None = None) -> QualitySource | None:
    """The quality source of one input (None: no mask): ``q.mask`` (``{stem}`` filled in; ``stac:KEY``: the
    asset ``KEY`` of the input's STAC Item, from ``assets``), else its ``q.band``.

    Raises :class:`ConfigError` / :class:`InputError` naming the file, band and key: an undetectable format, a
    quality band that is also a model input, a mask that does not overlap the input.
    """
    masked = tuple(q.masked_flags)
    if q.mask:
        path, key = _mask_path(q.mask, stem, info, assets)
        try:
            src = open_raster(path)
        except InputError as exc:
            raise InputError(f"--mask (`quality.mask`): {exc}") from exc
        with src:
            mgrid, desc, nodata = GeoGrid.from_dataset(src), src.descriptions[0], src.nodata
        fmt = q.format if q.format != "auto" else (detect_format(desc, path) or detect_format(key))
        if fmt is None:
            raise ConfigError(f"--mask {redact(path)}: cannot tell its format from band 1's description ({desc!r}) or "
                              f"the file name; pass --mask-format ({', '.join(FORMATS)}; `quality.format` in a config)")
        warp = not mgrid.almost_equals(info.grid)
        if warp:
            _check_overlap(redact(path), mgrid, info)
        return QualitySource(path, 1, fmt, masked, separate=True, warp=warp, nodata=nodata)
    if q.band is None:
        return None
    if q.band == "auto":
        found = find_quality_band(info.band_names)
        if found is None:
            return None
        band, fmt = found[0], (found[1] if q.format == "auto" else q.format)
    else:
        try:
            band = resolve_bands(info, [q.band], option="quality.band")[0]
        except BandError as exc:
            raise BandError(f"{exc} Or set `quality.band` to `auto`, or `null` for no mask, or give --mask FILE") from exc
        detected = q.format if q.format != "auto" else detect_format(info.band_names[band - 1])
        if detected is None:
            raise ConfigError(f"quality.band {q.band!r}: cannot tell the format of band {band}:"
                              f"{info.band_names[band - 1]} of {redact(info.path)}; set `quality.format` "
                              f"(--mask-format: {', '.join(FORMATS)})")
        fmt = detected
    if band in model_bands:
        raise ConfigError(f"quality.band: band {band}:{info.band_names[band - 1]} of {redact(info.path)} is a quality "
                          "band, but it is also given as a model input (--bands / `bands`); pass the model's bands "
                          "only, or set `quality.band: null`")
    return QualitySource(info.path, band, fmt, masked, nodata=info.nodata)


def _mask_path(mask: str, stem: str, info: RasterInfo, assets: dict[str, str] | None) -> tuple[str, str | None]:
    """``(path, STAC asset key or None)`` of the mask raster of one input."""
    if not mask.startswith(STAC_MASK):
        return mask.replace("{stem}", stem), None
    key = mask[len(STAC_MASK):]
    if assets is None:
        raise ConfigError(f"--mask {mask}: {redact(info.path)} is not a STAC input, so it has no asset {key!r}; give "
                          "STAC Items as inputs, or a mask file (`{stem}` for each input's stem)")
    if key not in assets:
        raise InputError(f"--mask {mask}: the STAC Item {stem!r} has no asset {key!r} (assets: {sorted(assets)}); "
                         "pass --mask stac:KEY with one of them")
    return assets[key], key


STAC_MASK = "stac:"
"""``quality.mask`` prefix naming an asset of each STAC input (``stac:qa_pixel``, ``stac:scl``)."""


def _check_overlap(path: str, mgrid: GeoGrid, info: RasterInfo) -> None:
    from rasterio.warp import transform_bounds

    if mgrid.crs is None or info.grid.crs is None:
        raise InputError(f"--mask {path}: has no CRS and is not on the grid of {redact(info.path)}; give the mask "
                         "a CRS, or write it on the input's grid (same size and transform)")
    left, bottom, right, top = transform_bounds(info.grid.crs, mgrid.crs, *info.grid.bounds())
    ml, mb, mr, mt = mgrid.bounds()
    if left >= mr or right <= ml or bottom >= mt or top <= mb:
        raise InputError(f"--mask {path} ({mgrid.crs.to_string()}) does not overlap {redact(info.path)} "
                         f"({info.grid.crs.to_string()}); give the quality raster of this scene (`quality.mask`, "
                         "`{stem}` for each input's stem)")


class QualityReader:
    """Reads a scene's quality by window on the input's grid: a band of the open input, a mask raster, or its
    nearest-neighbour reprojection (:class:`rasterio.vrt.WarpedVRT`)."""

    def __init__(self, source: QualitySource, grid: GeoGrid, src=None):
        self.source = source
        self._own: list[Any] = []
        if src is None or source.separate:
            src = open_raster(source.path)
            self._own.append(src)
        if source.warp:
            from rasterio.enums import Resampling
            from rasterio.vrt import WarpedVRT

            nodata = source.nodata if source.nodata is not None else FILL_VALUE[source.format]
            src = WarpedVRT(src, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                            resampling=Resampling.nearest, nodata=nodata)
            self._own.append(src)
        self.ds = src

    def read(self, box: PixelBox) -> tuple[np.ndarray, np.ndarray]:
        """``(codes, clear)`` over ``box`` of the input's grid."""
        return read_quality(self.ds, self.source, box.to_window())

    def clear_overview(self, shape: tuple[int, int]) -> np.ndarray:
        """Whether each pixel is clear (no masked flag), the whole scene read decimated to ``(rows, cols)``
        by nearest neighbour (the grid of :func:`geoseg.model.normalization.scene_stats`' read)."""
        from rasterio.enums import Resampling

        data = read_masked(self.ds, [self.source.band], out_shape=(1, *shape), resampling=Resampling.nearest)
        return decode(self.source.format, np.ma.getdata(data)[0], self.source.masked, np.ma.getmaskarray(data)[0])[1]

    def close(self) -> None:
        for ds in reversed(self._own):
            ds.close()
        self._own.clear()

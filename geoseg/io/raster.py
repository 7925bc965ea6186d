"""Reading input rasters by window: paths, band selection, nodata, AOIs, pixel areas.

Arrays are ``(bands, rows, cols)``; windows are pixel boxes of the full raster. Any
GDAL-readable raster works (GeoTIFF, COG, VRT); ``s3://bucket/key`` is read through
GDAL's ``/vsis3/``.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import NodataShadowWarning, RasterioIOError
from rasterio.windows import Window

from geoseg.errors import AOIError, BandError, InputError
from geoseg.grid import GeoGrid
from geoseg.io.bands import SENSOR_TAGS, ambiguity_hint, band_lookup
from geoseg.io.urls import redact, redact_text
from geoseg.tiling import PixelBox

log = logging.getLogger(__name__)


def gdal_path(path: str | Path) -> str:
    """The path GDAL should open: ``s3://b/k`` becomes ``/vsis3/b/k``; others pass through."""
    p = str(path)
    if p.startswith("s3://"):
        from geoseg.io.storage import configure_gdal_s3

        configure_gdal_s3()
        return "/vsis3/" + p[len("s3://") :]
    return p


def open_raster(path: str | Path) -> rasterio.io.DatasetReader:
    """Open a raster for reading, turning GDAL's errors into an :class:`InputError`."""
    try:
        return rasterio.open(gdal_path(path))
    except RasterioIOError as exc:
        raise InputError(f"{redact(str(path))}: cannot open as a raster ({redact_text(str(exc))}); check the path and that "
                         "GDAL can read it") from exc


@dataclass(frozen=True, slots=True)
class RasterInfo:
    """What the driver needs to know about an input: grid, CRS, bands (1-based indexes)."""

    path: str
    grid: GeoGrid
    dtype: str
    band_names: tuple[str, ...]
    nodata: float | None
    acquired: str | None = None
    sensor_tags: tuple[tuple[str, str], ...] = ()  # the metadata tags that name the platform or sensor

    @classmethod
    def from_dataset(cls, path: str, src: rasterio.io.DatasetReader) -> RasterInfo:
        names = tuple(d if d else f"band{i + 1}" for i, d in enumerate(src.descriptions))
        tags = src.tags()
        sensor = tuple((k, str(tags[k])) for k in SENSOR_TAGS if k in tags)
        return cls(path, GeoGrid.from_dataset(src), src.dtypes[0], names, src.nodata, acquisition_date(tags), sensor)


ACQUISITION_TAGS = ("acquired", "ACQUIRED", "acquisition_date", "ACQUISITION_DATE", "DATE_ACQUIRED",
                    "ACQUISITIONDATETIME", "TIFFTAG_DATETIME")


def acquisition_date(tags: dict) -> str | None:
    """An ISO date (``YYYY-MM-DD``) from the first date-like tag of a raster, else None."""
    for key in ACQUISITION_TAGS:
        value = tags.get(key)
        if value:
            m = re.match(r"\s*(\d{4})[-:/](\d{2})[-:/](\d{2})", value)
            return f"{m[1]}-{m[2]}-{m[3]}" if m else value.strip()
    return None


def resolve_bands(info: RasterInfo, wanted: Sequence[str | int], option: str = "--bands") -> list[int]:
    """1-based band indexes for ``wanted`` names (band descriptions, case-insensitive) or indexes.

    Raises :class:`BandError` listing the bands the file has when one is missing or one band is asked for twice
    (by name, index or both; the message names ``option``, the flag or key ``wanted`` came from).
    """
    mapping = band_lookup(info.band_names, dict(info.sensor_tags))
    lookup = mapping.lookup
    have = ", ".join(f"{i + 1}:{n}" for i, n in enumerate(info.band_names))
    out: list[int] = []
    for w in wanted:
        if isinstance(w, int) or (isinstance(w, str) and w.isdigit()):
            idx = int(w)
            if not 1 <= idx <= len(info.band_names):
                raise BandError(f"{info.path}: band index {idx} is out of range; the file has bands {have}")
            out.append(idx)
        elif w.lower() in lookup:
            out.append(lookup[w.lower()])
        else:
            raise BandError(
                f"{info.path}: no band named {w!r}; the file has bands {have}. "
                f"Set {_where(option)} to names or 1-based indexes it has."
                + ambiguity_hint(info.band_names, dict(info.sensor_tags))
            )
    dupes = sorted({i for i in out if out.count(i) > 1})
    if dupes:
        named = ", ".join(f"{i}:{info.band_names[i - 1]}" for i in dupes)
        raise BandError(
            f"{option} {','.join(str(w) for w in wanted)}: band {named} is given more than once, but each model "
            f"input needs a different band; pass each band once, in model order"
            + (" (or fix `bands` in the config)" if option.startswith("--") else "") + f"; {info.path} has bands {have}"
        )
    used = {str(w).lower() for w in wanted} & set(mapping.aliased)
    if used:
        log.info("%s: bands read by %s", info.path, mapping.describe())
    return out


def _where(option: str) -> str:
    """Where the user sets the bands that ``option`` names, for advice in a message."""
    return "`bands` in the config (or --bands)" if option == "--bands" else f"`{option}`"


def read_masked(src: rasterio.io.DatasetReader, band_indexes: list[int], **kwargs) -> np.ma.MaskedArray:
    """``src.read(..., masked=True)``, with NaN and ±inf masked too; the nodata value wins over an alpha band.

    GDAL masks only the declared nodata value (or the internal mask / alpha band): a
    float raster with no nodata, or with a nodata other than NaN, reads its NaN pixels
    as valid, and a single one would make every percentile of the scene NaN. Non-finite
    values are masked here, per band, whatever the nodata declaration. (Rasters with both
    a nodata value and a band tagged alpha, like the Pucallpa composites, make rasterio
    warn on every read that nodata defines the mask; that warning is silenced.)
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NodataShadowWarning)
        data = src.read(band_indexes, masked=True, **kwargs)
    if np.issubdtype(data.dtype, np.floating):
        bad = ~np.isfinite(np.ma.getdata(data))
        if bad.any():
            data.mask = np.ma.getmaskarray(data) | bad
    return data


def read_window(
    src: rasterio.io.DatasetReader, band_indexes: list[int], box: PixelBox
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``box`` of the selected bands: ``(data (bands, rows, cols), valid (rows, cols) bool)``.

    A pixel is valid when no selected band is masked (nodata value, internal mask or
    alpha, NaN or ±inf for float rasters: :func:`read_masked`). ``data`` is returned as
    read: invalid pixels may hold the nodata value or NaN. A failed read raises ``RasterioIOError`` naming
    the file, the window and GDAL's cause (:func:`gdal_cause`).
    """
    try:
        data = read_masked(src, band_indexes, window=box.to_window())
    except RasterioIOError as exc:  # GDAL's cause, not rasterio's "see previous exception", reaches the tile's error
        raise RasterioIOError(f"{redact(src.name)}: cannot read rows {box.row}-{box.row_stop - 1}, cols {box.col}-"
                              f"{box.col_stop - 1}: {gdal_cause(exc)}") from exc
    valid = np.asarray(~np.ma.getmaskarray(data).any(axis=0))  # (rows, cols): data is (bands, rows, cols)
    return np.ma.getdata(data), valid


def gdal_cause(exc: BaseException) -> str:
    """GDAL's own reason for a failed read: the innermost message of ``exc``'s cause chain.

    rasterio raises ``RasterioIOError("Read failed. See previous exception for details.")`` and chains
    GDAL's errors (``CPLE_*``) as its causes; the innermost is the root (a short TIFF tile, a VRT source
    that does not exist...).
    """
    messages = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        messages.append(str(cur).strip())
        cur = cur.__cause__ or cur.__context__
    useful = [m for m in messages if m and "see previous exception" not in m.lower()]
    return redact_text(useful[-1] if useful else messages[0])


def missing_sources(src: rasterio.io.DatasetReader) -> list[str]:
    """The local files a dataset (a VRT) is built from that do not exist."""
    try:
        files = list(src.files)
    except Exception:  # some drivers cannot list their files
        return []
    own = Path(src.name)
    return [f for f in files[1:] if "://" not in f and not f.startswith("/vsi") and not Path(f).exists()
            and Path(f) != own]


def unreadable_message(src: rasterio.io.DatasetReader, exc: BaseException, where: str = "") -> str:
    """An :class:`InputError` message for a raster whose pixels GDAL cannot read: the file, GDAL's cause, the fix."""
    missing = missing_sources(src)
    name = redact(src.name)
    if missing:
        return (f"{name}: cannot read its pixels{where}: its source file(s) {', '.join(missing)} do not exist "
                f"(GDAL: {gdal_cause(exc)}); restore them or fix the paths in the VRT")
    return (f"{name}: cannot read its pixels{where}: GDAL: {gdal_cause(exc)}; the file is damaged or incomplete "
            "(e.g. a truncated download): fetch or write it again")


def probe_pixels(src: rasterio.io.DatasetReader, band_indexes: list[int]) -> None:
    """Read the first and the last block of ``band_indexes`` at full resolution; :class:`InputError` if GDAL cannot.

    A truncated file (its last bytes, which hold the last blocks of a COG, are gone) or a VRT whose source is
    missing fails here, at planning, with GDAL's cause, instead of as tiles without pixels later.
    """
    bh, bw = src.block_shapes[0]
    last = Window(((src.width - 1) // bw) * bw, ((src.height - 1) // bh) * bh, 1, 1)
    for window in (Window(0, 0, 1, 1), last):
        try:
            src.read(band_indexes, window=window)
        except RasterioIOError as exc:
            raise InputError(unreadable_message(src, exc)) from exc


def load_aoi(path: str | Path, crs: CRS | None):
    """Read an AOI (GeoJSON, GeoPackage...) as one shapely geometry in ``crs``."""
    import geopandas as gpd

    try:
        gdf = gpd.read_file(gdal_path(path))
    except Exception as exc:  # pyogrio raises several types
        raise AOIError(f"AOI {path}: cannot read ({exc}); give a GeoJSON or GeoPackage of polygons") from exc
    if gdf.empty:
        raise AOIError(f"AOI {path}: has no features; give at least one polygon")
    if gdf.crs is None:
        raise AOIError(f"AOI {path}: has no CRS; save it with a CRS (GeoJSON is EPSG:4326 by definition)")
    gdf = gdf[gdf.geometry.notna()]
    if not gdf.geom_type.isin(["Polygon", "MultiPolygon"]).all():
        raise AOIError(f"AOI {path}: must contain only polygons, found {sorted(set(gdf.geom_type))}")
    if crs is not None:
        gdf = gdf.to_crs(crs)
    geom = gdf.geometry.make_valid().union_all()
    if geom.is_empty:
        raise AOIError(f"AOI {path}: geometry is empty")
    return geom


def aoi_mask(geom, box: PixelBox, grid: GeoGrid) -> np.ndarray:
    """Boolean ``(rows, cols)`` mask, True inside ``geom`` (grid CRS), for window ``box`` of ``grid``.

    A pixel is inside when its centre is (GDAL's default rasterization rule).
    """
    from rasterio.features import geometry_mask

    return geometry_mask([geom], out_shape=(box.height, box.width), transform=grid.window_transform(box), invert=True)


def box_intersects(geom, box: PixelBox, grid: GeoGrid) -> bool:
    """Whether ``geom`` (grid CRS) intersects the footprint of window ``box`` of ``grid``."""
    from shapely.geometry import box as sbox

    return bool(geom.intersects(sbox(*grid.bounds(box))))

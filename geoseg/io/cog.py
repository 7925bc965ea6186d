"""Writing rasters: scratch GeoTIFFs written by window, Cloud Optimized GeoTIFFs, atomic file writes.

Every raster geoseg writes goes through here. A result raster is assembled window by
window in a tiled, lightly compressed scratch GeoTIFF (:func:`open_scratch`; memory stays
flat), then copied by GDAL's COG driver into a Cloud Optimized GeoTIFF with internal
overviews (:func:`write_cog`). A file appears under its final name only once complete
(:func:`atomic_path`: a hidden temporary sibling, renamed into place).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil

from geoseg.grid import GeoGrid
from geoseg.tiling import PixelBox

SCRATCH_BLOCK = 256
"""Internal tile side of scratch GeoTIFFs, pixels."""

Colormap = dict[int, tuple[int, int, int, int]]


def temp_sibling(path: Path, tag: str = "tmp") -> Path:
    """A hidden, unique name next to ``path`` that keeps its suffix: ``.<name>.<hex>.<tag><suffix>``."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.{tag}{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; rename it onto ``path`` when the block succeeds.

    The temporary file (and SQLite side files a GeoPackage driver may leave) is removed
    whatever happens, so a failed write never leaves a partial file under either name.
    """
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        for p in (tmp, *(tmp.with_name(tmp.name + s) for s in ("-journal", "-wal", "-shm"))):
            p.unlink(missing_ok=True)


def open_scratch(path: Path, grid: GeoGrid, *, dtype: str = "uint8", nodata: float | None = 255,
                 mode: str = "w", colormap: Colormap | None = None, block: int = SCRATCH_BLOCK) -> Any:
    """A tiled single-band GeoTIFF on ``grid`` to fill by window (DEFLATE level 1, sparse, BigTIFF if needed).

    ``mode``: ``"w"`` or ``"w+"`` (read back while writing). With a ``colormap`` the file
    is a palette image; the colour table is written here, before any pixel (TIFF rule).
    """
    ds = rasterio.open(
        path, mode, driver="GTiff", count=1, dtype=dtype, nodata=nodata, tiled=True, blockxsize=block,
        blockysize=block, compress="DEFLATE", predictor=1, zlevel=1, BIGTIFF="IF_SAFER", SPARSE_OK=True,
        photometric="palette" if colormap else "minisblack", **grid.to_profile(),
    )
    if colormap:
        ds.write_colormap(1, colormap)
    return ds


def write_cog(scratch: Path, path: Path, *, compress: str = "DEFLATE", blocksize: int = 512,
              overview_resampling: str = "MODE") -> Path:
    """Copy the finished GeoTIFF ``scratch`` to a COG at ``path`` (internal overviews), atomically."""
    with atomic_path(path) as tmp:
        rasterio.shutil.copy(
            scratch, tmp, driver="COG", COMPRESS=compress, BLOCKSIZE=blocksize, OVERVIEW_RESAMPLING=overview_resampling,
            PREDICTOR="NO", BIGTIFF="IF_SAFER", NUM_THREADS="ALL_CPUS",
        )
    return path


class StitchedRaster:
    """A single-band raster assembled window by window, then published as a COG.

    Windows are written into a scratch GeoTIFF next to the final path (memory stays
    flat); :meth:`to_cog` writes the COG and removes the scratch file.
    """

    def __init__(self, path: Path, grid: GeoGrid, nodata: int, *, dtype: str = "uint8", blocksize: int = 512,
                 compress: str = "DEFLATE", colormap: Colormap | None = None):
        self.path = path
        self.scratch = path.with_name(path.name + ".scratch.tif")
        self.compress = compress
        self.blocksize = blocksize
        self._ds = open_scratch(self.scratch, grid, dtype=dtype, nodata=nodata, colormap=colormap)

    def write(self, box: PixelBox, values: np.ndarray) -> None:
        """Write ``values`` (``(rows, cols)``) over ``box``."""
        self._ds.write(values, 1, window=box.to_window())

    def to_cog(self, *, tags: dict[str, str] | None = None, band_description: str = "",
               overview_resampling: str = "MODE") -> Path:
        """Finish the scratch file and write it as a COG at :attr:`path` (the scratch file is removed)."""
        if tags:
            self._ds.update_tags(**tags)
        if band_description:
            self._ds.set_band_description(1, band_description)
        self._ds.close()
        try:
            write_cog(self.scratch, self.path, compress=self.compress, blocksize=self.blocksize,
                      overview_resampling=overview_resampling)
        finally:
            self.scratch.unlink(missing_ok=True)
        return self.path

    def close(self) -> None:
        """Drop the scratch file (after a failure)."""
        if not self._ds.closed:
            self._ds.close()
        self.scratch.unlink(missing_ok=True)

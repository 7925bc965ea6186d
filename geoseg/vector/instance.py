"""The instance raster: a uint32 ``polygon_id`` per pixel (0 = nodata), written block by block."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rasterio.windows import Window

from geoseg.errors import ConfigError, OutputError
from geoseg.grid import GeoGrid
from geoseg.io.cog import open_scratch, temp_sibling, write_cog
from geoseg.tiling import PixelBox


class InstanceWriter:
    """uint32 ``polygon_id`` raster (0 = nodata), written block by block.

    A block is written as soon as it is labelled, with each fragment's own first-pixel
    id; the ids of fragments of multi-block regions are corrected in place once their
    region closes (only the blocks holding them are rewritten), then the scratch file
    is copied to a COG and renamed into place.
    """

    def __init__(self, path: str | Path, grid: GeoGrid, block_size: int, overwrite: bool):
        src = grid
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise OutputError(f"{self.path}: already exists; add --overwrite to replace it, "
                              "or choose another path")
        if src.width * src.height + 1 > np.iinfo(np.uint32).max:
            raise ConfigError(f"instance raster: {src.width}x{src.height} px needs ids above 2^32; "
                              "leave out --instance for rasters of more than 4.29e9 pixels")
        if not self.path.parent.is_dir():
            raise OutputError(f"{self.path.parent}: directory does not exist; create it or choose another path")
        self.scratch = temp_sibling(self.path, "scratch")
        self.width = src.width
        self._remaps: dict[tuple[int, int], list[tuple[int, int]]] = {}  # block -> (old id, polygon_id)
        bs = max(16, min(512, (block_size + 15) // 16 * 16))
        self._ds = open_scratch(self.scratch, grid, dtype="uint32", nodata=0, mode="w+", block=bs)
        self.block_size = block_size

    def write(self, box: PixelBox, ids: np.ndarray) -> None:
        self._ds.write(ids, 1, window=box.to_window())

    def remap(self, old_ids: np.ndarray, pid: int) -> None:
        """Fragments ``old_ids`` (their own first-pixel ids) belong to region ``pid``."""
        bs = self.block_size
        for old in old_ids[old_ids != pid].tolist():
            r, c = divmod(old - 1, self.width)
            self._remaps.setdefault((r // bs, c // bs), []).append((old, pid))

    def finish(self) -> None:
        bs = self.block_size
        for (br, bc), pairs in self._remaps.items():
            r0, c0 = br * bs, bc * bs
            win = Window(c0, r0, min(bs, self._ds.width - c0), min(bs, self._ds.height - r0))
            ids = self._ds.read(1, window=win)
            old, new = np.array(pairs, np.int64).T
            order = np.argsort(old)
            old, new = old[order], new[order]
            i = np.clip(np.searchsorted(old, ids), 0, len(old) - 1)
            hit = old[i] == ids
            ids[hit] = new[i[hit]]
            self._ds.write(ids, 1, window=win)
        self._ds.update_tags(content="polygon_id of the vector output (0 = nodata)")
        self._ds.close()
        try:
            write_cog(self.scratch, self.path, overview_resampling="NEAREST")
        finally:
            self.scratch.unlink(missing_ok=True)

    def discard(self) -> None:
        if not self._ds.closed:
            self._ds.close()
        self.scratch.unlink(missing_ok=True)

"""The tile grid: deterministic core tiles with a halo, as immutable value objects.

All coordinates are pixel offsets into the full raster, ``(col, row)`` order like
rasterio's :class:`~rasterio.windows.Window`; sizes are in pixels.

Invariants (tested with hypothesis in ``tests/test_tiling.py``):

* the tile *cores* partition the raster: every pixel lies in exactly one core;
* every core lies inside its tile's *read* window;
* a read window never leaves the raster: tiles at the right and bottom edges are
  shifted back inside the image instead of being zero-padded, so every tile has
  ``tile_size`` pixels per side whenever the raster is at least that large.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from rasterio.windows import Window

from geoseg.errors import ConfigError


@dataclass(frozen=True, slots=True)
class PixelBox:
    """A half-open pixel rectangle ``[col, col+width) x [row, row+height)``."""

    col: int
    row: int
    width: int
    height: int

    @property
    def col_stop(self) -> int:
        return self.col + self.width

    @property
    def row_stop(self) -> int:
        return self.row + self.height

    def to_window(self) -> Window:
        """The same rectangle as a rasterio ``Window``."""
        return Window(self.col, self.row, self.width, self.height)

    def to_slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices for indexing a full-raster array."""
        return slice(self.row, self.row_stop), slice(self.col, self.col_stop)

    def relative_to(self, outer: PixelBox) -> tuple[slice, slice]:
        """``(rows, cols)`` slices of this box inside an array covering ``outer``."""
        r0, c0 = self.row - outer.row, self.col - outer.col
        if r0 < 0 or c0 < 0 or self.row_stop > outer.row_stop or self.col_stop > outer.col_stop:
            raise ValueError(f"{self} is not inside {outer}")
        return slice(r0, r0 + self.height), slice(c0, c0 + self.width)

    @property
    def size(self) -> int:
        return self.width * self.height


@dataclass(frozen=True, slots=True)
class Tile:
    """One unit of work: the window read for the model and the core it writes.

    ``read`` is what the worker reads and feeds to the model (core + halo, shifted
    inside the raster at its edges); ``core`` is the part of the prediction kept when
    stitching; the rest of ``read`` is context that is discarded.
    """

    index: int
    grid_row: int
    grid_col: int
    core: PixelBox
    read: PixelBox

    def core_in_read(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices of the core inside the array read for this tile."""
        return self.core.relative_to(self.read)


TILE_LAYOUT = 2
"""Version of :class:`TileGrid`'s layout (2: edge cores keep their outer halo); part of the resume journal's key,
so tiles journaled under another layout are never replayed onto this one."""


@dataclass(frozen=True, slots=True)
class TileGrid:
    """A tiling of a ``width x height`` raster into tiles of ``tile_size`` with ``halo``.

    ``tile_size`` is the model input side (pixels); cores are laid out from the top-left
    corner, ``tile_size - 2 * halo`` long, except at the raster's edges: a tile there needs no
    context beyond the edge, so it keeps its outer halo too (edge cores up to
    ``tile_size - halo``: fewer tiles for the same context, e.g. 10 instead of 11 across 4512 px
    at 512/32), and along an axis no longer than ``tile_size`` a single tile reads (and keeps)
    the whole axis. Every core has at least ``halo`` pixels of context on each side that is
    not the raster's edge.
    """

    width: int
    height: int
    tile_size: int
    halo: int

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ConfigError(f"raster size must be positive, got {self.width}x{self.height}")
        if self.halo < 0:
            raise ConfigError(f"halo must be >= 0 pixels, got {self.halo}")
        if self.tile_size - 2 * self.halo < 1:
            raise ConfigError(
                f"tile_size ({self.tile_size}) must exceed 2 x halo ({2 * self.halo}); "
                "raise tile_size or lower halo"
            )

    @property
    def core_size(self) -> int:
        return self.tile_size - 2 * self.halo

    def _axis_count(self, extent: int) -> int:
        """Tiles along an axis: the first core is ``tile - halo`` long, the last up to that, the others ``core_size``."""
        if extent <= self.tile_size:
            return 1
        rest = extent - (self.tile_size - self.halo)  # after the first core; the last core holds core_size + halo
        return 1 + max(1, _ceil_div(rest - self.halo, self.core_size))

    def _core_span(self, i: int, extent: int) -> tuple[int, int]:
        """Start and length of the ``i``-th core along an axis."""
        if extent <= self.tile_size:
            return 0, extent
        first = self.tile_size - self.halo
        if i == 0:
            return 0, first
        start = first + (i - 1) * self.core_size
        last = i == self._axis_count(extent) - 1
        return start, (extent - start) if last else self.core_size

    @property
    def shape(self) -> tuple[int, int]:
        """Number of tiles as ``(rows, cols)``."""
        return self._axis_count(self.height), self._axis_count(self.width)

    def __len__(self) -> int:
        rows, cols = self.shape
        return rows * cols

    def __iter__(self) -> Iterator[Tile]:
        rows, cols = self.shape
        for r in range(rows):
            for c in range(cols):
                yield self.tile(r, c)

    def tile(self, grid_row: int, grid_col: int) -> Tile:
        """The tile at grid position ``(grid_row, grid_col)``."""
        rows, cols = self.shape
        if not (0 <= grid_row < rows and 0 <= grid_col < cols):
            raise IndexError(f"tile ({grid_row}, {grid_col}) outside grid {rows}x{cols}")
        c0, cw = self._core_span(grid_col, self.width)
        r0, rh = self._core_span(grid_row, self.height)
        rc0, rcw = _read_span(c0, self.halo, self.tile_size, self.width)
        rr0, rrh = _read_span(r0, self.halo, self.tile_size, self.height)
        return Tile(
            index=grid_row * cols + grid_col,
            grid_row=grid_row,
            grid_col=grid_col,
            core=PixelBox(c0, r0, cw, rh),
            read=PixelBox(rc0, rr0, rcw, rrh),
        )


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _read_span(core_start: int, halo: int, tile: int, extent: int) -> tuple[int, int]:
    """Start and length of the read window along one axis, kept inside ``[0, extent)``."""
    if extent <= tile:
        return 0, extent
    start = min(max(core_start - halo, 0), extent - tile)
    return start, tile

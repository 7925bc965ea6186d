"""geoseg: land-cover segmentation of large satellite rasters on Ray.

Layers, each importing only from the layers below it (checked by import-linter, see
``[tool.importlinter]`` in ``pyproject.toml``; ``docs/architecture.md`` has the diagram)::

    cli                      one module per command
    change | train           change detection, monitoring, history | model training and validation
    segment                  the segment job (plan, stitch, journal, stats), evaluation
    runtime                  Ray: cluster, model-actor executors, bounded ordered maps
    model | vector | report  checkpoints, prediction | block-wise polygons | STAC, quicklooks, report.html
    io                       storage (local/S3), raster reading, inputs, labels, COG writing, styles, publishing
    grid | config            GeoGrid | every *Config
    tiling                   PixelBox, Tile, TileGrid
    errors                   errors and exit codes

Ray is imported only under ``runtime`` (and Ray Train in ``train.distributed``). This
package root stays light: importing it (or a subpackage) pulls in neither Ray nor torch;
subpackages export their public names lazily (``from geoseg.vector import vectorize_to_file``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__version__ = "0.1.0"

CLASS_NODATA = 255
"""Nodata value of every class map geoseg writes (never a class id)."""

__all__ = ["CLASS_NODATA", "__version__"]


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[list[str], Callable[[str], Any]]:
    """``(__all__, __getattr__)`` for a subpackage whose public names live in its modules.

    ``exports`` maps a public name to the module (relative to ``package``) defining it; the
    module is imported on first access (PEP 562), so importing the package stays cheap.
    """

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return sorted(exports), __getattr__

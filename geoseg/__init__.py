"""geoseg: land-cover segmentation of large satellite rasters on Ray.

Import the pieces from their modules (``geoseg.tiling``, ``geoseg.model.checkpoint``...);
this package root stays light so that importing it does not pull in Ray or torch.
"""

__version__ = "0.1.0"

CLASS_NODATA = 255
"""Nodata value of every class map geoseg writes (never a class id)."""

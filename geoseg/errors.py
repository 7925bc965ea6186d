"""Every error geoseg raises on purpose: one root, specific subclasses.

Messages name the file or config field at fault and say what to change, so the CLI
can print them as they are and exit non-zero.
"""

from __future__ import annotations


class GeosegError(Exception):
    """Root of all geoseg errors. The CLI turns these into a one-line message and exit code 2."""

    exit_code: int = 2


class ConfigError(GeosegError):
    """A config file or command-line option is invalid (unknown key, wrong type, bad value)."""


class InputError(GeosegError):
    """An input raster, AOI or label file cannot be used as given."""


class BandError(InputError):
    """A requested band is not in the raster; the message lists the bands it has."""


class AOIError(InputError):
    """The area of interest cannot be read or does not overlap the raster."""


class ModelError(GeosegError):
    """A checkpoint is missing, malformed, or does not match the input."""


class OutputError(GeosegError):
    """Outputs cannot be written (exists without --overwrite, not writable, ...)."""


class TileError(GeosegError):
    """One or more tiles failed after all retries; the message names them."""

    exit_code = 3


class TrainingError(GeosegError):
    """Training data or training configuration is unusable."""


class MonitorError(GeosegError):
    """One or more monitored regions failed; the others finished. The message names the failed regions."""

    exit_code = 4

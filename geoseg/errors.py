"""Every error geoseg raises on purpose: one root, specific subclasses.

Messages name the file or config field at fault and say what to change, so the CLI
can print them as they are and exit non-zero.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "AOIError", "BandError", "ConfigError", "ExitCode", "GeosegError", "InputError", "ModelError", "MonitorError",
    "OutputError", "RunInterrupted", "SinkError", "TileError", "TrainingError",
]


class ExitCode(IntEnum):
    """Exit codes of every ``geoseg`` command and job, defined once."""

    OK = 0
    """Success."""
    BAD_INPUT = 2
    """Bad input, config, model or output location (the message names the file, flag or key)."""
    TILES_FAILED = 3
    """Tiles failed after all retries: nothing published, ``manifest.failed.json`` lists them."""
    REGIONS_FAILED = 4
    """``monitor``: one or more regions failed (named); the others finished."""
    INTERRUPTED = 130
    """Ctrl-C (SIGINT): finished tiles are journaled; rerun the same command to resume."""
    TERMINATED = 143
    """SIGTERM (pod eviction, spot reclaim, ``ray job stop``): finished tiles are journaled."""


class GeosegError(Exception):
    """Root of all geoseg errors. The CLI turns these into a one-line message and :attr:`exit_code`."""

    exit_code: ExitCode = ExitCode.BAD_INPUT


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


class SinkError(OutputError):
    """The PostGIS sink cannot be reached, set up or loaded; the message names it with its password masked."""


class TileError(GeosegError):
    """One or more tiles failed after all retries; the message names them."""

    exit_code = ExitCode.TILES_FAILED


class TrainingError(GeosegError):
    """Training data or training configuration is unusable."""


class MonitorError(GeosegError):
    """One or more monitored regions failed; the others finished. The message names the failed regions."""

    exit_code = ExitCode.REGIONS_FAILED


class RunInterrupted(BaseException):
    """Ctrl-C or SIGTERM stopped a run: the message says how many tiles are saved and that rerunning resumes.

    A :class:`BaseException` (like the :class:`KeyboardInterrupt` it replaces), so that code which
    carries on after a failed part (``except Exception``, e.g. ``monitor``'s regions) still stops.
    """

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.INTERRUPTED):
        super().__init__(message)
        self.exit_code = exit_code

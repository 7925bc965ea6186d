"""The ``geoseg`` command line, one module per command (like rasterio's ``rio``).

The group configures logging, turns SIGTERM into a clean exit (143; Ctrl-C: 130, with how many
tiles are saved for a rerun to resume from), and handles errors once:
a :class:`~geoseg.errors.GeosegError` raised by any command prints as one message and
exits with its code (:class:`~geoseg.errors.ExitCode`); URLs in messages and logs lose their
query strings and user-info (:mod:`geoseg.io.urls`). Shared options: :mod:`geoseg.cli.options`.
"""

from __future__ import annotations

import logging
import sys

import click

from geoseg.errors import ExitCode, GeosegError, RunInterrupted
from geoseg.io.urls import RedactingFilter, redact_text

__all__ = ["main", "run_job"]

log = logging.getLogger("geoseg")

GLOBAL_FLAGS = {"-v", "-vv", "-q", "-qq", "--verbose", "--quiet"}


class GeosegGroup(click.Group):
    """A click group that reports :class:`GeosegError` once, for every command."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (GeosegError, RunInterrupted) as exc:
            click.secho(f"error: {redact_text(str(exc))}", fg="red", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:  # a command without a journal: say so, rather than click's bare "Aborted!"
            click.secho(f"interrupted (Ctrl-C): `geoseg {ctx.invoked_subcommand}` stopped; "
                        "nothing was published", fg="red", err=True)
            ctx.exit(ExitCode.INTERRUPTED)


@click.group(cls=GeosegGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", count=True, help="More log output (repeat for debug).")
@click.option("-q", "--quiet", count=True, help="Less log output; -q also hides progress bars.")
@click.version_option(package_name="geoseg")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: int) -> None:
    """geoseg: land-cover segmentation (forest, water, urban, other) of large satellite rasters on Ray."""
    _setup_logging(verbose, quiet)
    _exit_cleanly_on_sigterm()
    ctx.obj = {"progress": quiet == 0}


def _setup_logging(verbose: int, quiet: int) -> None:
    level = logging.INFO - 10 * verbose + 10 * quiet
    logging.basicConfig(level=max(logging.DEBUG, level), format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:  # no query string or user-info of a URL reaches a log
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    for noisy in ("rasterio", "fiona", "pyogrio", "urllib3", "botocore", "timm"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM (Kubernetes on pod eviction or spot reclaim, ``ray job stop``) into ``SystemExit(143)``.

    The default action kills the process on the spot; raising instead runs the ``finally``
    blocks, so the tile journal saves the tiles it buffered and staging folders are removed.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        log.warning("terminated (signal %d): saving finished tiles and exiting", signum)
        raise SystemExit(ExitCode.TERMINATED)

    signal.signal(signal.SIGTERM, handler)


def run_job(command: str, argv: list[str]) -> int:
    """Entry point of the Ray job scripts (``jobs/*.py``): ``geoseg COMMAND ARGV``, returning the exit code.

    geoseg's ``-v``/``-q`` may appear anywhere in ``argv``; they are moved before the subcommand.
    """
    flags = [a for a in argv if a in GLOBAL_FLAGS]
    try:
        main([*flags, command, *[a for a in argv if a not in GLOBAL_FLAGS]], standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _register() -> None:
    from geoseg.cli import change, composite, evaluate, info, monitor, segment, train, vectorize

    for module in (segment, train, evaluate, vectorize, change, composite, monitor, info):
        main.add_command(module.command)


_register()

"""Options shared by several ``geoseg`` commands, defined once, and the config key each one sets.

:func:`load_config` loads a command's YAML with its flags as overrides; a bad value given
by a flag is reported under the flag's name (``--tile-size 100: ...``), not the config key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import BaseModel

from geoseg.config import BLOCK_SIZE, load_yaml

M = TypeVar("M", bound=BaseModel)

FLAGS: dict[str, str] = {
    "inputs": "INPUTS", "output": "--output", "output_root": "--output-root", "model": "--model",
    "tile_size": "--tile-size", "halo": "--halo", "bands": "--bands", "aoi": "--aoi", "device": "--device",
    "engine": "--engine", "batch_size": "--batch-size", "overwrite": "--overwrite", "sink": "--sink",
    "runtime.num_workers": "--workers", "runtime.local": "--local", "segment.runtime.local": "--local",
    "steps": "--steps", "seed": "--seed", "min_confidence": "--min-confidence", "mmu_ha": "--mmu-ha",
    "grid": "--grid", "block_size": "--block-size", "native_resolution": "--native-resolution",
    "leave_one_scene_out.enabled": "--leave-one-scene-out", "leave_one_scene_out.steps": "--loso-steps",
    "quality.mask": "--mask", "quality.format": "--mask-format", "stats_from": "--stats-from",
}
"""Config key -> the command-line flag (or argument) that sets it, in every command that has it."""


def load_config(path: str | Path | None, model: type[M], overrides: dict[str, Any]) -> M:
    """:func:`geoseg.config.load_yaml` of ``path`` with the flags' ``overrides``; errors name the flags given.

    A ``sink`` given by ``--sink`` is checked here too, so that its error names the flag.
    """
    cfg = load_yaml(path, model, overrides, flags=FLAGS)
    if overrides.get("sink"):
        from geoseg.io.sink.target import SinkTarget

        SinkTarget.parse(overrides["sink"], "--sink")
    return cfg


def output_dir(help: str = "Output directory (created if missing).", required: bool = False):
    return click.option("-o", "--output", required=required, type=click.Path(file_okay=False), help=help)


def config(help: str = "YAML config (see configs/); flags override it.", required: bool = False):
    return click.option("-c", "--config", "config_path", required=required, type=click.Path(dir_okay=False), help=help)


model = click.option("-m", "--model", help="Checkpoint directory (model.json + weights.safetensors), local or s3://. "
                     "Default: the bundled model.")
local = click.option("--local", is_flag=True, default=None, help="Run in this process without Ray (debugging, small jobs).")
overwrite = click.option("--overwrite", is_flag=True, default=None, help="Replace existing outputs.")
sink = click.option("--sink", metavar="postgresql://USER@HOST:PORT/DB[?schema=NAME]",
                    help="Also load the results into this PostgreSQL + PostGIS database, in one transaction "
                    "(docs/postgis.md). The password comes from PGPASSWORD, ~/.pgpass or a service file.")
native_resolution = click.option(
    "--native-resolution", is_flag=True, default=None,
    help="Predict at the input's own pixel size, even where the model was trained for another (card `gsd_m`).")
block_size = click.option("--block-size", type=int, default=BLOCK_SIZE, show_default=True,
                          help="Window side in pixels; memory grows with width x block size.")


def mmu_ha(default: float, help: str):
    return click.option("--mmu-ha", type=float, default=default, show_default=True, help=help)


def split_list(value: str | None) -> list[str] | None:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; None or empty -> None."""
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()] or None

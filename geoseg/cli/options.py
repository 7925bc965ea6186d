"""Options shared by several ``geoseg`` commands, defined once."""

from __future__ import annotations

import click

from geoseg.config import BLOCK_SIZE


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
block_size = click.option("--block-size", type=int, default=BLOCK_SIZE, show_default=True,
                          help="Window side in pixels; memory grows with width x block size.")


def mmu_ha(default: float, help: str):
    return click.option("--mmu-ha", type=float, default=default, show_default=True, help=help)


def split_list(value: str | None) -> list[str] | None:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; None or empty -> None."""
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()] or None

"""Run configuration: pydantic models loaded from YAML (``configs/``), unknown keys rejected.

Every run saves its fully resolved config in ``manifest.json`` next to its outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from geoseg.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RuntimeConfig(Strict):
    """Where and how wide the job runs."""

    address: str | None = Field(None, description="Ray address; None: RAY_ADDRESS if set, else a local Ray")
    num_workers: int | None = Field(None, ge=1, description="model actors; None: one per GPU, else one per CPU")
    threads_per_worker: int = Field(1, ge=1, description="torch intra-op threads per CPU actor")
    tiles_per_task: int = Field(4, ge=1, description="tiles sent to an actor per call (one batch)")
    max_tasks_in_flight_per_worker: int = Field(2, ge=1, description="queued calls per actor; bounds memory")
    max_task_retries: int = Field(2, ge=0, description="retries of a call that failed (actor/node lost, read error)")
    actor_start_timeout_s: float = Field(600, gt=0, description="give up when no model actor can be (re)started for this long")
    checkpoint_tiles: int = Field(64, ge=1, description="journal finished tiles in chunks of this many (resume)")
    checkpoint_seconds: float = Field(60, gt=0, description="...or at least this often, seconds")
    local: bool = Field(False, description="run in this process without Ray (debugging, tests)")


class OutputConfig(Strict):
    """What is written and how."""

    compress: Literal["DEFLATE", "ZSTD"] = "DEFLATE"
    polygons: bool = Field(True, description="write <stem>_polygons.gpkg")
    confidence: bool = Field(True, description="write <stem>_confidence.tif")
    blocksize: int = Field(512, ge=64, description="COG internal tile size, pixels (multiple of 16)")
    mmu_ha: float = Field(0.0, ge=0, description="polygons: minimum mapping unit in hectares (0: off)")
    simplify_m: float = Field(0.0, ge=0, description="polygons: topology-preserving simplification, metres (0: off)")
    vectorize_block: int = Field(1024, ge=64, description="polygons: window side in pixels for block-wise vectorization")

    @field_validator("blocksize")
    @classmethod
    def _mult16(cls, v: int) -> int:
        if v % 16:
            raise ValueError("must be a multiple of 16")
        return v


class SegmentConfig(Strict):
    """``geoseg segment`` settings. Command-line flags override these keys."""

    inputs: list[str] = Field(default_factory=list, description="rasters to segment (paths, globs, s3:// URIs/globs, STAC JSON)")
    stac_asset: str | None = Field(None, description="STAC inputs: asset key to read; None: the first GeoTIFF/COG asset")
    output: str | None = Field(None, description="output directory or s3:// prefix")
    model: str | None = Field(None, description="checkpoint directory (local or s3://); None: the bundled default model")
    bands: list[str | int] | None = Field(None, description="band names or 1-based indexes; None: the model's bands")
    tile_size: int | None = Field(None, ge=32, description="model input side, pixels (multiple of 32); None: model card")
    halo: int | None = Field(None, ge=0, description="overlap discarded per tile side, pixels; None: model card")
    batch_size: int = Field(4, ge=1, description="tiles per forward pass")
    aoi: str | None = Field(None, description="GeoJSON/GeoPackage restricting the tiles and masking the output")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    overwrite: bool = Field(False, description="replace existing outputs")
    resume: bool = Field(True, description="reuse tiles journaled under the output by an interrupted run of the same job")
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    outputs: OutputConfig = Field(default_factory=OutputConfig)

    @field_validator("tile_size")
    @classmethod
    def _mult32(cls, v: int | None) -> int | None:
        if v is not None and v % 32:
            raise ValueError(f"must be a multiple of 32 (the encoder downsamples 32x), e.g. {max(32, v // 32 * 32)}")
        return v


def load_yaml(path: str | Path, model: type[M], overrides: dict[str, Any] | None = None) -> M:
    """Load ``path`` into ``model``, apply ``overrides`` (None values ignored), validate.

    Raises :class:`ConfigError` naming the file and each bad key.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config {p}: no such file")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {p}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"config {p}: top level must be a mapping of keys, got {type(data).__name__}")
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, key, value)
    return validate(data, model, source=str(path) if path else "command line")


def validate(data: dict[str, Any], model: type[M], source: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e["loc"]) or "<root>"
            msg = "unknown key (check the spelling; see the README for valid keys)" if e["type"] == "extra_forbidden" else e["msg"]
            lines.append(f"  {loc}: {msg}")
        raise ConfigError(f"config {source}: invalid\n" + "\n".join(lines)) from exc


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value

"""The config machinery: strict sections, model-card parts, YAML loading with errors naming keys or flags,
and the Markdown key tables of ``docs/configuration.md``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
)

from geoseg import CLASS_NODATA
from geoseg.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

BLOCK_SIZE = 1024
"""Default window side (pixels) of block-wise passes over a raster: vectorize, change, evaluate."""


def mask_password(url: str) -> str:
    """``url`` with its password (``user:PASSWORD@``, ``password=...``) replaced by ``***``: safe to log or write."""
    url = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/@:?#]*):[^/@?#]*@", r"\1:***@", url)
    return re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", url)


SinkUrl = Annotated[str | None, PlainSerializer(lambda v: v and mask_password(v))]
"""A ``sink`` key (checked by :class:`geoseg.io.sink.SinkTarget`), written (manifests, dumps) with its password masked."""
SINK_HELP = ("PostgreSQL + PostGIS database loaded in one transaction per run, `postgresql://USER@HOST:PORT/DB[?schema=NAME]` "
             "(schema `geoseg` by default; password from `PGPASSWORD`, `~/.pgpass` or a service file; docs/postgis.md)")


class Strict(BaseModel):
    """A config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- model card parts

class ClassInfo(BaseModel):
    """One output class: id (the pixel value), name, and display colour ``#rrggbb``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int = Field(ge=0, lt=CLASS_NODATA)
    name: str = Field(min_length=1)
    color: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")

    def rgba(self) -> tuple[int, int, int, int]:
        h = self.color.lstrip("#")
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), 255


class Normalization(BaseModel):
    """How model inputs are scaled; stored in the model card."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str = Field("scene_percentile", pattern="^scene_percentile$", description="per-scene percentile scaling")
    low: float = Field(2.0, ge=0, lt=50, description="lower percentile, per band")
    high: float = Field(98.0, gt=50, le=100, description="upper percentile, per band")
    clip_min: float = Field(-0.5, description="scaled values are clipped to [clip_min, clip_max]")
    clip_max: float = Field(1.5, description="upper clip of scaled values")




def markdown_table(model: type[BaseModel], prefix: str = "") -> str:
    """A Markdown table ``key | default | meaning`` of ``model``'s fields, from their ``Field`` descriptions.

    A field that is itself a config section points to its own table instead of a default.
    """
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for name, f in model.model_fields.items():
        ann = f.annotation
        section = isinstance(ann, type) and issubclass(ann, BaseModel)
        if section:
            default = "(section)"
        elif f.is_required():
            default = "required"
        else:
            value = f.get_default(call_default_factory=True)
            default = f"`{_yaml_scalar(value)}`"
        meaning = (f.description or "").replace("|", "\\|")
        rows.append(f"| `{prefix}{name}` | {default} | {meaning} |")
    return "\n".join(rows) + "\n"


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("\n...").strip()


def load_yaml(path: str | Path | None, model: type[M], overrides: dict[str, Any] | None = None,
              flags: dict[str, str] | None = None) -> M:
    """Load ``path`` into ``model``, apply ``overrides`` (None values ignored), validate.

    Raises :class:`ConfigError` naming the file and each bad key; ``flags``: key -> the command-line flag
    that set it (``{"tile_size": "--tile-size"}``), named in the message instead of the key.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config {p}: no such file; check the --config path (examples: configs/)")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {p}: not valid YAML; fix the syntax where it says: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"config {p}: top level must be a mapping of keys, got {type(data).__name__}")
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, key, value)
    given = {k: f for k, f in (flags or {}).items() if (overrides or {}).get(k) is not None}
    return validate(data, model, source=str(path) if path else "command line", flags=given)


def validate(data: dict[str, Any], model: type[M], source: str, flags: dict[str, str] | None = None) -> M:
    """``model`` of ``data``, or a :class:`ConfigError` naming each bad key (``flags``: the flag, for keys set by one)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e["loc"]) or "<root>"
            msg = ("unknown key (check the spelling; valid keys: docs/configuration.md)" if e["type"] == "extra_forbidden"
                   else e["msg"].removeprefix("Value error, "))
            flag = next((f for k, f in (flags or {}).items() if loc == k or loc.startswith(k + ".")), None)
            lines.append(f"  {flag} {e['input']!r}: {msg}" if flag else f"  {loc}: {msg}")
        head = "invalid command-line option(s)" if source == "command line" else f"config {source}: invalid"
        raise ConfigError(head + "\n" + "\n".join(lines)) from exc


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value

"""Every configuration of geoseg: pydantic models loaded from YAML (``configs/``), unknown keys rejected.

One set of defaults serves the Python API, the command line and the monitor: the
``*Config`` models below. Command-line flags override keys (:func:`load_yaml`); every
run saves its fully resolved config in ``manifest.json``. The key tables of
``docs/configuration.md`` are generated from the ``Field`` descriptions here
(:func:`markdown_table`; ``python tools/gen_config_docs.py``).
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from geoseg import CLASS_NODATA
from geoseg.errors import ConfigError, TrainingError
from geoseg.tiling import PixelBox

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


# --------------------------------------------------------------------------- segment

class RuntimeConfig(Strict):
    """Where and how wide the job runs."""

    address: str | None = Field(None, description="Ray address; `null` = `RAY_ADDRESS` if set, else a local Ray")
    num_workers: int | None = Field(None, ge=1, description="model actors; `null` = one per GPU, else one per CPU / `threads_per_worker`")
    threads_per_worker: int = Field(1, ge=1, description="torch threads per CPU actor (two 1-thread actors beat one 2-thread process)")
    tiles_per_task: int = Field(4, ge=1, description="tiles per actor call")
    max_tasks_in_flight_per_worker: int = Field(2, ge=1, description="outstanding calls per actor (bounds memory)")
    max_task_retries: int = Field(2, ge=0, description="resubmissions of a call that failed, lost its actor or node, or lost its result (a dead actor is replaced)")
    actor_start_timeout_s: float = Field(600, gt=0, description="fail when no model actor can start for this long (e.g. an autoscaler never adds the GPU nodes)")
    checkpoint_tiles: int = Field(64, ge=1, description="journal finished tiles in chunks of this many")
    checkpoint_seconds: float = Field(60, gt=0, description="...or at least this often")
    local: bool | None = Field(None, description="`true`: run in this process without Ray (`--local`); `false`: always on Ray; `null`: in this process when no cluster address is set (`address`, `RAY_ADDRESS`) and the job has at most `local_max_mpx` pixels to predict, else on Ray")
    local_max_mpx: float = Field(64.0, ge=0, description="with `local: null`, the largest job (megapixels left to predict) that runs in this process instead of starting a local Ray")


class OutputConfig(Strict):
    """What is written and how."""

    compress: Literal["DEFLATE", "ZSTD"] = Field("DEFLATE", description="`DEFLATE` or `ZSTD` for the COGs")
    polygons: bool = Field(True, description="write `<stem>_polygons.gpkg`")
    confidence: bool = Field(True, description="write `<stem>_confidence.tif`")
    blocksize: int = Field(512, ge=64, multiple_of=16, description="COG internal tile size, px")
    mmu_ha: float = Field(0.0, ge=0, description="minimum mapping unit of the polygons, hectares: smaller regions are first merged into the neighbouring class they share most boundary with (0: off)")
    simplify_m: float = Field(0.0, ge=0, description="topology-preserving simplification tolerance of the polygons, metres (0: off)")
    vectorize_block: int = Field(BLOCK_SIZE, ge=64, description="window side (px) of the block-wise vectorizer; memory grows with width \u00d7 this")


QualityFlag = Literal["fill", "cloud", "cloud_shadow", "cirrus", "snow", "saturated", "dilated_cloud", "flagged"]
QUALITY_FLAGS: tuple[QualityFlag, ...] = get_args(QualityFlag)
"""Flags of the quality layer, code = position + 1 (0: clear); see :mod:`geoseg.io.quality`."""


class QualityConfig(Strict):
    """Quality masks (clouds, shadows, snow, fill; docs/quality.md): pixels they flag become nodata."""

    band: str | None = Field("auto", description="quality band of each input, by name or 1-based index; `auto`: a band described `QA_PIXEL`, `SCL` or `Fmask` if the input has one (else no mask); `null`: none")
    mask: str | None = Field(None, description="a separate quality raster instead (`--mask`), band 1, on any grid (nearest neighbour); `{stem}` stands for each input's stem; `stac:KEY`: that asset of each STAC input (e.g. `stac:qa_pixel`)")
    format: Literal["auto", "landsat_qa_pixel", "landsat_qa_radsat", "s2_scl", "fmask", "binary"] = Field("auto", description="how to decode it (`--mask-format`): `auto` from the band description or file name (`QA_PIXEL`, `QA_RADSAT`, `SCL`, `Fmask`); `binary`: 0 clear, else `flagged`")
    masked_flags: list[QualityFlag] = Field(list(QUALITY_FLAGS), description="flags that make a pixel nodata in the class and confidence maps (all by default, snow included); the others are only reported")


class SegmentConfig(Strict):
    """``geoseg segment`` settings. Command-line flags override these keys."""

    inputs: list[str] = Field(default_factory=list, description="rasters to segment: paths, globs, `s3://` URIs and globs (`s3://bucket/2024/*.tif`), STAC JSON (an ItemCollection or Item, local or `s3://`; outputs are named by item id) (CLI arguments replace it)")
    stac_asset: str | None = Field(None, description="STAC inputs: the asset key to read; `null` = each item's first GeoTIFF/COG asset")
    output: str | None = Field(None, description="output directory or `s3://bucket/prefix` (`--output`)")
    model: str | None = Field(None, description="checkpoint directory, local or `s3://` prefix; `null` = the bundled default model")
    bands: list[str | int] | None = Field(None, description="band names or 1-based indexes, in model order; `null` = the model card's `bands`")
    tile_size: int | None = Field(None, ge=32, description="model input side in px, multiple of 32; `null` = the card's (512)")
    halo: int | None = Field(None, ge=0, description="context px discarded on each tile side; `null` = the card's (32)")
    batch_size: int = Field(4, ge=1, description="tiles per forward pass")
    aoi: str | None = Field(None, description="GeoJSON/GeoPackage polygons in any CRS: only tiles touching it run, output is 255 outside")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="`auto` (GPU actors when the cluster has GPUs), `cpu`, `cuda`")
    engine: Literal["auto", "torch", "onnxruntime"] = Field("auto", description="inference engine: `auto` = ONNX Runtime on CPU when its export agrees with PyTorch on >= 99.5 % of pixels, PyTorch on GPU; `torch`; `onnxruntime` (CPU only)")
    native_resolution: bool = Field(False, description="predict at each input's own pixel size; default: where the model card's `gsd_m` differs by more than 20 %, tiles are resampled to it for the model and the predictions back to the input grid (`--native-resolution`)")
    overwrite: bool = Field(False, description="replace existing outputs")
    resume: bool = Field(True, description="journal finished tiles under the output and reuse them when an interrupted run is rerun")
    sink: SinkUrl = Field(None, description=SINK_HELP + ": polygons and class areas (`--sink`)")
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig, description="where and how wide the job runs")
    outputs: OutputConfig = Field(default_factory=OutputConfig, description="what is written and how")
    quality: QualityConfig = Field(default_factory=QualityConfig, description="cloud, shadow, snow and fill masks")

    @field_validator("tile_size")
    @classmethod
    def _mult32(cls, v: int | None) -> int | None:
        if v is not None and v % 32:
            raise ValueError(f"must be a multiple of 32 (the encoder downsamples 32x), e.g. {max(32, v // 32 * 32)}")
        return v


# --------------------------------------------------------------------------- train

class ValidationConfig(Strict):
    """The spatially held-out block: a strip on one ``side`` of the scene, or an explicit ``block``."""

    side: Literal["left", "right", "top", "bottom"] = "right"
    fraction: float = Field(0.2, gt=0, lt=0.9, description="share of the scene held out (with `side`)")
    block: tuple[int, int, int, int] | None = Field(
        None, description="explicit held-out block [col_off, row_off, width, height] in pixels; overrides side"
    )
    gap: int = Field(16, ge=0, description="pixels around the block used for neither training nor validation")

    def box(self, width: int, height: int) -> PixelBox:
        if self.block is not None:
            c, r, w, h = self.block
            if c < 0 or r < 0 or w < 1 or h < 1 or c + w > width or r + h > height:
                raise TrainingError(f"validation.block {list(self.block)} is not inside the {width}x{height} scene")
            return PixelBox(c, r, w, h)
        n_cols, n_rows = round(width * self.fraction), round(height * self.fraction)
        return {
            "left": PixelBox(0, 0, n_cols, height),
            "right": PixelBox(width - n_cols, 0, n_cols, height),
            "top": PixelBox(0, 0, width, n_rows),
            "bottom": PixelBox(0, height - n_rows, width, n_rows),
        }[self.side]


VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".fgb", ".shp", ".parquet")


class TrainSceneConfig(Strict):
    """One training scene: an image and its labels."""

    image: str = Field(description="image raster (GeoTIFF/COG/VRT, local or s3://)")
    labels: str = Field(description="class raster on any grid (resampled by nearest neighbour to the image grid), or labelled polygons (GeoPackage/GeoJSON/FlatGeobuf/GeoParquet, any CRS) rasterized onto the image grid")
    class_field: str = Field("class", description="attribute holding the label value, for polygon labels")
    class_map: dict[int, int] | None = Field(None, description="source label value -> model class id")
    validation: ValidationConfig | None = Field(None, description="this scene's held-out block (default: the top-level one)")
    group: str | None = Field(None, description="place name: scenes of one group (dates of one place) are held out "
                              "together in leave-one-scene-out (default: the image's file stem)")

    @property
    def place(self) -> str:
        """The leave-one-scene-out group of this scene."""
        return self.group or self.image.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]


class AugmentConfig(Strict):
    """Training-chip augmentation (normalised units; every draw is per chip, per band where it says so)."""

    gain: float = Field(0.15, ge=0, lt=1, description="per-band gain drawn in 1 ± gain")
    offset: float = Field(0.08, ge=0, lt=1, description="per-band offset drawn in ± offset")
    gamma: float = Field(0.0, ge=0, lt=1, description="per-band gamma drawn in 1 ± gamma (on values clipped to 0–1); 0: off")
    haze: float = Field(0.0, ge=0, le=1, description="probability of blending the chip towards a bright haze (0–40 %)")
    scale: tuple[float, float] = Field((1.0, 1.0), description="pixel-size factor range [min, max]: a chip covers "
                                       "size × factor input pixels resampled to size (>1: coarser pixels)")

    @model_validator(mode="after")
    def _check_scale(self) -> AugmentConfig:
        lo, hi = self.scale
        if not 0.25 <= lo <= hi <= 4:
            raise ValueError(f"augment.scale {list(self.scale)}: need 0.25 <= min <= max <= 4")
        return self


class LeaveOneOutConfig(Strict):
    """Leave-one-scene-out validation (``geoseg train --leave-one-scene-out``)."""

    enabled: bool = Field(False, description="train one model per held-out place and score it on that place")
    steps: int | None = Field(None, ge=1, description="optimisation steps of each fold's model (null: `steps`)")
    tile_size: int = Field(256, ge=32, description="tile side of the scoring segment runs, pixels")
    places: list[str] | None = Field(None, description="hold out only these places (group names); null: every place")


class TrainerConfig(Strict):
    """Where the loop runs."""

    ray: bool = Field(True, description="run on Ray Train (TorchTrainer); false: in this process")
    num_workers: int = Field(1, ge=1, description="Ray Train workers (DDP); one per GPU when use_gpu")
    use_gpu: bool | None = Field(None, description="null: when the Ray cluster has GPUs")
    address: str | None = Field(None, description="Ray address; null: RAY_ADDRESS if set, else a local Ray")
    storage_path: str | None = Field(None, description="Ray Train storage (shared or s3:// on multi-node clusters)")


class TrainConfig(Strict):
    """``geoseg train`` settings (``configs/train_*.yaml``). Command-line flags override these keys."""

    name: str = Field("landcover", description="model name (the card's `name`)")
    version: str = Field("1", description="model version (the card's `version`)")
    output: str = Field(description="checkpoint directory to write (local or s3://)")
    arch: str = Field("unet", description="unet, deeplabv3plus, fpn (segmentation-models-pytorch), spectral_index (fitted "
                      "baseline) or spectral_rule (the fixed rule, nothing fitted)")
    encoder: str = Field("mobilenet_v2", description="smp encoder name")
    arch_kwargs: dict[str, Any] = Field(default_factory=dict, description="extra keywords of the smp class")
    bands: list[str] = Field(description="input bands by name, in model order")
    classes: list[ClassInfo] = Field(description="output classes: id, name, colour")
    normalization: Normalization = Field(default_factory=Normalization, description="input scaling")
    scenes: list[TrainSceneConfig] = Field(min_length=1, description="training scenes")
    validation: ValidationConfig = Field(default_factory=ValidationConfig, description="default held-out block")
    chip_size: int = Field(128, ge=32, description="training chip side, pixels")
    batch_size: int = Field(16, ge=1, description="chips per optimisation step")
    steps: int = Field(1500, ge=1, description="optimisation steps")
    eval_every: int = Field(100, ge=1, description="steps between validations")
    patience: int = Field(5, ge=1, description="evaluations without mIoU gain before stopping")
    lr: float = Field(3e-3, gt=0, description="AdamW learning rate")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay")
    seed: int = Field(0, description="random seed (chips, augmentation, initialisation)")
    threads: int | None = Field(None, description="torch threads per worker")
    trainer: TrainerConfig = Field(default_factory=TrainerConfig, description="where the loop runs")
    tile_size: int = Field(512, description="recommended inference tile side written to the card, pixels")
    halo: int = Field(32, description="recommended inference halo written to the card, pixels")
    licence: str | None = Field(None, description="licence of the weights, written to the card")
    index_channels: list[Literal["ndvi", "ndwi"]] = Field(
        default_factory=list, description="spectral indexes appended to the bands inside the network (written to the card)")
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="chip augmentation")
    leave_one_scene_out: LeaveOneOutConfig = Field(default_factory=LeaveOneOutConfig,
                                                   description="leave-one-scene-out validation")


# --------------------------------------------------------------------------- change and monitor


class GuardsConfig(Strict):
    """Guards against false change (see :mod:`geoseg.change.detect`)."""

    min_confidence: float = Field(50.0, ge=0, le=100, description="both dates at least this confident, percent (0: off)")
    mmu_ha: float = Field(0.5, ge=0, allow_inf_nan=False,
                          description="changed patches smaller than this are uncertain, hectares (0: off)")


class ChangeConfig(GuardsConfig):
    """``geoseg change`` settings: the guards, the common grid and the window size."""

    grid: str = Field("after", description="common grid: after, before, or the path of a raster whose grid to use")
    block_size: int = Field(BLOCK_SIZE, ge=16, description="window side, pixels (memory)")


PERIOD_FORMAT = r"^\d{4}(-\d{2}(-\d{2})?)?$"
"""A period: ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` (string order is chronological)."""


def _period_text(v):
    """YAML reads ``2020`` as an int and ``2020-07-14`` as a date: take them as the period strings they spell."""
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return v.isoformat() if isinstance(v, date) else v


PeriodStr = Annotated[str, BeforeValidator(_period_text), StringConstraints(pattern=PERIOD_FORMAT)]


class MonitorGuardsConfig(GuardsConfig):
    """The change guards of the monitor, with persistence over later periods."""

    persistence: int = Field(0, ge=0, le=5, description="keep a change only if the next `k` periods all still show it (`0`/`false`: off, `true`: 1, `2`: the next two); the newest `k` periods then wait for later runs")


class RegionConfig(Strict):
    """One monitored region: a name, an optional AOI, and where its imagery is."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="region id (letters, digits, `_.-`)")
    aoi: str | None = Field(None, description="GeoJSON/GeoPackage polygons in any CRS; `null`: the whole image")
    imagery: str = Field(description="where each period's image is: a pattern with `{period}` (`data/pucallpa/landsat_{period}.tif`, local or `s3://`), a STAC ItemCollection `.json` (one period per item, from its `datetime`), or a directory / `s3://` prefix ending in `/` (each `.tif`, period = the first `YYYY[-MM[-DD]]` in its name)")
    periods: list[PeriodStr] | None = Field(None, description="this region's periods (overrides `periods`); a listed period without an image fails the region")
    stac_asset: str | None = Field(None, description="STAC asset key; null: the first GeoTIFF/COG asset")
    stac_period: Literal["year", "month", "date"] = Field("date", description="STAC: period of an item's datetime")


class MonitorConfig(Strict):
    """``jobs/monitor.py`` settings (``configs/monitor_*.yaml``)."""

    output_root: str = Field(description="history store and per-period outputs: directory or `s3://` prefix (`--output-root`)")
    periods: list[PeriodStr] | None = Field(None, description="periods for every region (`YYYY`, `YYYY-MM` or `YYYY-MM-DD`; YAML years and dates need no quotes); `null`: discovered from each region's imagery")
    regions: list[RegionConfig] = Field(min_length=1, description="the monitored regions")
    guards: MonitorGuardsConfig = Field(default_factory=MonitorGuardsConfig, description="guards against false change")
    segment: SegmentConfig = Field(default_factory=SegmentConfig, description="any `geoseg segment` key (`model`, `bands`, `tile_size`, `runtime`, `outputs`, ...) except `inputs`, `output`, `aoi`, `sink`")
    block_size: int = Field(BLOCK_SIZE, ge=16, description="change detection window, px")
    sink: SinkUrl = Field(None, description=SINK_HELP + ": the history, each region and period once (`--sink`)")

    @field_validator("segment")
    @classmethod
    def _per_region(cls, v: SegmentConfig) -> SegmentConfig:
        if v.inputs or v.output or v.aoi or v.sink:
            raise ValueError("inputs, output, aoi and sink are set per region or at the top level (regions[].imagery, "
                             "output_root, regions[].aoi, sink)")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> MonitorConfig:
        names = [r.name for r in self.regions]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"region names must be unique: {dupes}")
        if self.guards.min_confidence > 0 and not self.segment.outputs.confidence:
            raise ValueError("guards.min_confidence needs the confidence rasters: set segment.outputs.confidence: "
                             "true, or guards.min_confidence: 0")
        return self


# --------------------------------------------------------------------------- documentation

DOC_TABLES: dict[str, tuple[type[BaseModel], str]] = {}
"""Tables of ``docs/configuration.md``: marker name -> (model, key prefix); see :func:`markdown_table`."""


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


DOC_TABLES.update({
    "SegmentConfig": (SegmentConfig, ""), "RuntimeConfig": (RuntimeConfig, "runtime."),
    "OutputConfig": (OutputConfig, "outputs."), "QualityConfig": (QualityConfig, "quality."), "TrainConfig": (TrainConfig, ""),
    "TrainSceneConfig": (TrainSceneConfig, "scenes[]."), "ValidationConfig": (ValidationConfig, "validation."),
    "TrainerConfig": (TrainerConfig, "trainer."), "AugmentConfig": (AugmentConfig, "augment."),
    "LeaveOneOutConfig": (LeaveOneOutConfig, "leave_one_scene_out."), "ChangeConfig": (ChangeConfig, ""), "MonitorConfig": (MonitorConfig, ""),
    "RegionConfig": (RegionConfig, "regions[]."), "MonitorGuardsConfig": (MonitorGuardsConfig, "guards."),
})

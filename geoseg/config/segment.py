"""``geoseg segment`` settings: inputs, model, tiling, runtime, outputs, quality masks."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import (
    Field,
    field_validator,
)

from geoseg.config.base import BLOCK_SIZE, SINK_HELP, SinkUrl, Strict


class RuntimeConfig(Strict):
    """Where and how wide the job runs."""

    address: str | None = Field(None, description="Ray address; `null` = `RAY_ADDRESS` if set, else a local Ray")
    num_workers: int | None = Field(None, ge=1, description="model actors; `null` = one per GPU, else one per CPU / `threads_per_worker`")
    threads_per_worker: int = Field(1, ge=1, description="torch threads per CPU actor (two 1-thread actors beat one 2-thread process)")
    tiles_per_task: int = Field(4, ge=1, description="tiles per actor call")
    max_tasks_in_flight_per_worker: int = Field(2, ge=1, description="outstanding calls per actor (bounds memory)")
    max_task_retries: int = Field(2, ge=0, description="resubmissions of a call that failed, lost its actor or node, or lost its result (a dead actor is replaced)")
    actor_start_timeout_s: float = Field(600, gt=0, description="fail when no model actor can start for this long (e.g. an autoscaler never adds the GPU nodes)")
    checkpoint_tiles: int = Field(16, ge=1, description="journal finished tiles in chunks of this many (a killed driver loses at most this many; the last chunk is written after the last tile)")
    checkpoint_seconds: float = Field(60, gt=0, description="...or at least this often")
    local: bool | None = Field(None, description="`true`: run in this process without Ray (`--local`); `false`: always on Ray; `null`: in this process when no cluster address is set (`address`, `RAY_ADDRESS`) and the job runs on CPU or has at most `local_max_mpx` pixels to predict, else on Ray")
    local_max_mpx: float = Field(64.0, ge=0, description="with `local: null` and a GPU, the largest job (megapixels left to predict) that runs in this process instead of starting a local Ray (one actor per GPU); CPU jobs without a cluster address always run in this process")


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
    stats_from: str | None = Field(None, description="scale every input by the percentiles of this raster instead of its own (`--stats-from`): the scene a strip or small crop was cut from, so its pixels get the same classes as there; or a geoseg `manifest.json` (its first input's `normalization_stats`); `null`: each input's own (a warning names inputs with under 4096 valid pixels)")
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

"""``geoseg train`` settings: scenes, held-out blocks, augmentation, leave-one-scene-out, trainer."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    model_validator,
)

from geoseg.config.base import ClassInfo, Normalization, Strict
from geoseg.errors import TrainingError
from geoseg.tiling import PixelBox


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
    gsd_m: float | None = Field(None, gt=0, description="pixel size the model is trained for, metres (the card's "
                                "`gsd_m`; needs `resample_scenes`); null: the coarsest scene's with `resample_scenes`, "
                                "else the median over places (`group`: the dates of a place count once)")
    resample_scenes: bool = Field(False, description="resample scenes whose pixels differ from `gsd_m` by more than "
                                  "20 % to it when loaded, as `segment` resamples inputs; false: chips at each scene's "
                                  "own pixel size and `gsd_m` the median over places (unless given)")
    class_balance: float = Field(
        0.5, ge=0, le=1, description="chip centres drawn by class with probability share^this: 1 as in the labels, "
        "0.5 the square root (rare classes more often), 0 every class equally often")
    leave_one_scene_out: LeaveOneOutConfig = Field(default_factory=LeaveOneOutConfig,
                                                   description="leave-one-scene-out validation")

    @model_validator(mode="after")
    def _check_gsd(self) -> TrainConfig:
        if self.gsd_m is not None and not self.resample_scenes:
            raise ValueError(f"gsd_m {self.gsd_m}: set resample_scenes: true as well (the chips are drawn at that "
                             "pixel size), or leave gsd_m out (the card then records the median over places)")
        return self

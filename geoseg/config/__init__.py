"""Every configuration of geoseg: pydantic models loaded from YAML (``configs/``), unknown keys rejected.

One set of defaults serves the Python API, the command line and the monitor: the ``*Config``
models of :mod:`~geoseg.config.segment`, :mod:`~geoseg.config.train` and :mod:`~geoseg.config.change`,
built on :mod:`~geoseg.config.base` (strict sections, YAML loading, error messages). Command-line
flags override keys (:func:`load_yaml`); every run saves its fully resolved config in ``manifest.json``.
The key tables of ``docs/configuration.md`` are generated from the ``Field`` descriptions
(:data:`DOC_TABLES`, :func:`markdown_table`; ``python tools/gen_config_docs.py``).
"""

from __future__ import annotations

from pydantic import BaseModel

from geoseg.config.base import (
    BLOCK_SIZE,
    SINK_HELP,
    ClassInfo,
    Normalization,
    SinkUrl,
    Strict,
    load_yaml,
    markdown_table,
    mask_password,
    validate,
)
from geoseg.config.change import (
    PERIOD_FORMAT,
    ChangeConfig,
    GuardsConfig,
    MonitorConfig,
    MonitorGuardsConfig,
    PeriodStr,
    RegionConfig,
)
from geoseg.config.segment import (
    QUALITY_FLAGS,
    OutputConfig,
    QualityConfig,
    QualityFlag,
    RuntimeConfig,
    SegmentConfig,
)
from geoseg.config.train import (
    VECTOR_SUFFIXES,
    AugmentConfig,
    LeaveOneOutConfig,
    TrainConfig,
    TrainerConfig,
    TrainSceneConfig,
    ValidationConfig,
)

DOC_TABLES: dict[str, tuple[type[BaseModel], str]] = {
    "SegmentConfig": (SegmentConfig, ""), "RuntimeConfig": (RuntimeConfig, "runtime."),
    "OutputConfig": (OutputConfig, "outputs."), "QualityConfig": (QualityConfig, "quality."), "TrainConfig": (TrainConfig, ""),
    "TrainSceneConfig": (TrainSceneConfig, "scenes[]."), "ValidationConfig": (ValidationConfig, "validation."),
    "TrainerConfig": (TrainerConfig, "trainer."), "AugmentConfig": (AugmentConfig, "augment."),
    "LeaveOneOutConfig": (LeaveOneOutConfig, "leave_one_scene_out."), "ChangeConfig": (ChangeConfig, ""),
    "MonitorConfig": (MonitorConfig, ""), "RegionConfig": (RegionConfig, "regions[]."),
    "MonitorGuardsConfig": (MonitorGuardsConfig, "guards."),
}
"""Tables of ``docs/configuration.md``: marker name -> (model, key prefix); see :func:`markdown_table`."""

__all__ = [
    "BLOCK_SIZE", "DOC_TABLES", "PERIOD_FORMAT", "QUALITY_FLAGS", "SINK_HELP", "VECTOR_SUFFIXES", "AugmentConfig",
    "ChangeConfig", "ClassInfo", "GuardsConfig", "LeaveOneOutConfig", "MonitorConfig", "MonitorGuardsConfig",
    "Normalization", "OutputConfig", "PeriodStr", "QualityConfig", "QualityFlag", "RegionConfig", "RuntimeConfig",
    "SegmentConfig", "SinkUrl", "Strict", "TrainConfig", "TrainSceneConfig", "TrainerConfig", "ValidationConfig",
    "load_yaml", "markdown_table", "mask_password", "validate",
]

"""``geoseg change`` and monitor settings: guards against false change, periods, regions."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from geoseg.config.base import BLOCK_SIZE, SINK_HELP, SinkUrl, Strict
from geoseg.config.segment import SegmentConfig


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
    imagery: str = Field(description="where each period's image is: a pattern with `{period}` (`data/pucallpa/landsat_{period}.tif`, local or `s3://`), a STAC ItemCollection `.json` (one period per item, from its `datetime`), or a directory / `s3://` prefix ending in `/` (each `.tif`, period = the first `YYYY[-MM[-DD]]` in its name); several images of one period (items or files with the same period, or an extra `*` in the pattern: `landsat_{period}_*.tif`) are composited, see `min_looks`")
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
    min_looks: int = Field(1, ge=1, description="a period of several images (acquisitions) is one composite map (`geoseg composite`: per pixel the most frequent clear class); a pixel needs this many clear looks, else nodata (a period with fewer images: all of them); one-image periods are not composited")
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

"""The stitch stage: tile results -> one scene's class/confidence rasters and class areas.

Plain Python (no Ray): :class:`SceneWriter` takes :class:`~geoseg.model.predict.TileResult`
objects in any order, writes each tile core by window (the halo was already discarded
by the worker), accumulates per-class pixel counts and areas, and at the end turns the
scratch rasters into COGs (with a quality source also the flag-code layer ``<stem>_quality.tif``), their style sidecars (QML, SLD, a raster attribute table),
quicklook PNGs and polygons. Because tile cores partition the raster (:mod:`geoseg.tiling`),
the stitched map does not depend on tile size or arrival order.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from geoseg import CLASS_NODATA, __version__
from geoseg.io.cog import StitchedRaster
from geoseg.io.quality import FLAGS, QUALITY_NODATA, QualitySource, quality_categories
from geoseg.io.raster import RasterInfo
from geoseg.io.urls import redact, redact_text
from geoseg.model.checkpoint import ModelCard
from geoseg.model.predict import CONFIDENCE_NODATA, TileResult
from geoseg.runtime.local import lower_thread_priority
from geoseg.segment.stats import flag_table
from geoseg.tiling import Tile

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from geoseg.vector.stream import BlockAssembler, StreamingVectorizer


class SceneWriter:
    """Assembles one input's outputs under ``staging_dir`` (file names from :func:`scene_files`)."""

    def __init__(
        self,
        info: RasterInfo,
        stem: str,
        staging_dir: Path,
        card: ModelCard,
        *,
        confidence: bool = True,
        polygons: bool = True,
        blocksize: int = 512,
        compress: str = "DEFLATE",
        vectorize: dict | None = None,
        quality: QualitySource | None = None,
        model_id: str | None = None,
    ):
        self.info = info
        self.stem = stem
        self.card = card
        self.dir = staging_dir
        self.files = scene_files(stem, confidence, polygons, quality is not None)
        ncls = len(card.classes)
        self.counts = np.zeros(ncls, np.int64)
        self.area_m2 = np.zeros(ncls)
        self.quality_source = quality
        self.flag_counts = np.zeros(len(FLAGS) + 1, np.int64)
        """Pixels of each quality code (0 clear, then :data:`~geoseg.io.quality.FLAGS`), with a quality source."""
        self.flag_area_m2 = np.zeros(len(FLAGS) + 1)
        self.done = 0
        self.skipped = 0
        self.failed: list[dict] = []
        self.polygon_count: int | None = None
        self.seconds = {"stitch": 0.0, "cog": 0.0, "vectorize": 0.0, "quicklook": 0.0}
        self.composite = ""
        """What the input quicklook shows (e.g. ``swir1/nir/red``), once written."""
        self.vectorize_options = vectorize or {}
        cmap = {**{c.id: c.rgba() for c in card.classes}, CLASS_NODATA: (0, 0, 0, 0)}
        self._classes = StitchedRaster(self.dir / self.files["classes"], info.grid, CLASS_NODATA, blocksize=blocksize,
                                       compress=compress, colormap=cmap)
        self._confidence = (
            StitchedRaster(self.dir / self.files["confidence"], info.grid, CONFIDENCE_NODATA, blocksize=blocksize,
                           compress=compress)
            if confidence else None
        )
        qmap = {**{c.value: (*c.rgb, 255) for c in quality_categories()}, QUALITY_NODATA: (0, 0, 0, 0)}
        self._quality = (StitchedRaster(self.dir / self.files["quality"], info.grid, QUALITY_NODATA, blocksize=blocksize,
                                        compress=compress, colormap=qmap) if quality is not None else None)
        self._input_look: Future[str] = _background().submit(self._input_quicklook)
        self.model_id = model_id
        self._blocks: BlockAssembler | None = None
        self._stream: StreamingVectorizer | None = None
        if polygons and model_id is not None and not self.vectorize_options.get("mmu_m2"):
            self._start_stream(model_id)

    def _start_stream(self, model_id: str) -> None:
        """Polygons vectorized block by block while tiles arrive (:mod:`geoseg.vector.stream`); with a
        minimum mapping unit (two passes over the whole map) they are vectorized in :meth:`finish` instead."""
        from geoseg.io.styles import categories, polygon_style
        from geoseg.vector.frames import RegionContext
        from geoseg.vector.polygons import DEFAULT_BLOCK
        from geoseg.vector.stream import BlockAssembler, StreamingVectorizer

        block = int(self.vectorize_options.get("block_size", DEFAULT_BLOCK))
        ctx = RegionContext.for_map(self.info.path, self.info.grid, self.card.class_names, model_id, self.info.acquired)
        self._blocks = BlockAssembler(self.info.grid.width, self.info.grid.height, block, self._confidence is not None,
                                      CONFIDENCE_NODATA)
        self._stream = StreamingVectorizer(self.dir / self.files["polygons"], ctx, block,
                                           float(self.vectorize_options.get("simplify_m", 0.0)),
                                           conf_nodata=CONFIDENCE_NODATA,
                                           style=polygon_style(categories(self.card.classes), "landcover"))

    def add(self, results: list[TileResult]) -> None:
        """Write the cores of ``results`` and count their classes."""
        t0 = time.perf_counter()
        for r in results:
            if self._quality is not None and r.quality is not None:
                assert r.flag_counts is not None and r.flag_area_m2 is not None  # set with the codes
                self._quality.write(r.tile.core, r.quality)
                self.flag_counts += r.flag_counts
                self.flag_area_m2 += r.flag_area_m2
            if self._blocks is not None and self._stream is not None:  # complete blocks to the vectorizer
                self._stream.feed(self._blocks.add(r.tile.core, r.classes, r.confidence))  # skipped: no classes
            if r.skipped:
                self.skipped += 1
                continue
            assert r.classes is not None  # only skipped tiles carry no arrays
            self._classes.write(r.tile.core, r.classes)
            if self._confidence is not None:
                assert r.confidence is not None  # predicted tiles (and their journal copies) carry confidence
                self._confidence.write(r.tile.core, r.confidence)
            self.counts += r.counts
            self.area_m2 += r.area_m2
            self.done += 1
        self.seconds["stitch"] += time.perf_counter() - t0

    def quality_summary(self) -> dict:
        """Pixels and hectares per quality flag and masked in total (:func:`geoseg.segment.stats.flag_table`)."""
        assert self.quality_source is not None  # only inputs with a quality source have one
        return flag_table(self.flag_counts, self.flag_area_m2, self.quality_source.masked)

    def fail(self, tiles: tuple[Tile, ...], error: str | None, attempts: int = 1) -> None:
        """Record tiles that failed after all retries (reported in the manifest)."""
        self.failed.extend({"tile": t.index, "window": list(t.core.to_window().flatten()),
                            "error": redact_text(error) if error else error,
                            "attempts": attempts} for t in tiles)

    def finish(self, model_id: str, map_fn=None) -> list[str]:
        """Write the COGs (and polygons, block-wise); return the staged file names.

        ``map_fn``: an ordered, lazy map used to run the vectorizer's per-block work in
        parallel (e.g. Ray tasks, :meth:`geoseg.runtime.executors.RayExecutor.map`); None: sequential.
        """
        from geoseg.vector.polygons import vectorize_to_file

        tags = {
            "class_names": ",".join(self.card.class_names),
            "class_ids": ",".join(str(c.id) for c in self.card.classes),
            "model": model_id,
            "source": redact(self.info.path),
            "software": f"geoseg {__version__}",
        }
        if self.info.acquired:
            tags["acquired"] = self.info.acquired
        # the COG chains run side by side (GDAL releases the GIL) while the vectorizer thread ends its last
        # blocks, at a lower priority: the vectorizer's end is serial, so it goes first on a contended core
        t0 = time.perf_counter()
        with ThreadPoolExecutor(3, thread_name_prefix="geoseg-cog", initializer=lower_thread_priority) as pool:
            jobs = [pool.submit(self._classes_chain, tags)]
            if self._confidence is not None:
                jobs.append(pool.submit(self._confidence_chain, tags))
            if self._quality is not None:
                jobs.append(pool.submit(self._quality_cog, tags))
            for job in jobs:
                job.result()
        self._styles()
        self.seconds["cog"] += time.perf_counter() - t0  # COGs, their quicklooks and styles, side by side
        log.debug("%s: COGs, quicklooks and styles in %.2f s", self.stem, time.perf_counter() - t0)
        self.composite = self._input_look.result()
        if self._stream is not None:  # the rows left when the last tile landed: vectorized during the COGs
            assert model_id == self.model_id, (model_id, self.model_id)  # the polygons carry the streamed id
            t0 = time.perf_counter()
            self.polygon_count = self._stream.finish()
            log.debug("%s: waited %.2f s for the last polygons after the COGs", self.stem, time.perf_counter() - t0)
            self.seconds["vectorize"] += self._stream.seconds
            self._stream = None
        elif "polygons" in self.files:
            t0 = time.perf_counter()
            conf = self.dir / self.files["confidence"] if self._confidence is not None else None
            self.polygon_count = vectorize_to_file(self.dir / self.files["classes"], self.dir / self.files["polygons"],
                                                   confidence=conf, class_names=self.card.class_names,
                                                   map_fn=map_fn, **self.vectorize_options)
            self.seconds["vectorize"] += time.perf_counter() - t0
        return list(self.files.values())

    def _styles(self) -> None:
        """QML + SLD + raster attribute table (with pixel counts) of the class COG; QML + SLD of the confidence COG."""
        from geoseg.io import styles

        cats = styles.categories(self.card.classes, self.counts)
        f = self.files
        styles.write_raster_sidecars(self.dir / f["classes"], styles.raster_qml(cats),
                                     styles.raster_sld(Path(f["classes"]).stem, cats), styles.pam_xml(cats))
        if "confidence" in f:
            styles.write_raster_sidecars(self.dir / f["confidence"], styles.ramp_qml(),
                                         styles.ramp_sld(Path(f["confidence"]).stem), None)
        if "quality" in f:
            qcats = quality_categories(self.flag_counts)
            styles.write_raster_sidecars(self.dir / f["quality"], styles.raster_qml(qcats),
                                         styles.raster_sld(Path(f["quality"]).stem, qcats, title="quality"),
                                         styles.pam_xml(qcats))

    def _classes_chain(self, tags: dict[str, str]) -> None:
        """The class COG, then its quicklook PNG."""
        from geoseg.io.styles import categories
        from geoseg.report import quicklook

        self._classes.to_cog(tags=tags, band_description="class", overview_resampling="MODE")
        f = self.files
        quicklook.write_categorical(self.dir / f["classes"], self.dir / f["classes_png"], categories(self.card.classes))

    def _confidence_chain(self, tags: dict[str, str]) -> None:
        """The confidence COG, then its quicklook PNG."""
        from geoseg.report import quicklook

        assert self._confidence is not None  # only submitted with a confidence output
        self._confidence.to_cog(tags={**tags, "units": "percent (max softmax probability)"},
                                band_description="confidence", overview_resampling="AVERAGE")
        quicklook.write_ramp(self.dir / self.files["confidence"], self.dir / self.files["confidence_png"])

    def _quality_cog(self, tags: dict[str, str]) -> None:
        assert self._quality is not None and self.quality_source is not None  # the raster exists only with a source
        q = self.quality_source
        self._quality.to_cog(tags={**tags, "flag_names": ",".join(("clear", *FLAGS)),
                                   "flag_codes": ",".join(str(k) for k in range(len(FLAGS) + 1)),
                                   "masked_flags": ",".join(q.masked), "quality_format": q.format,
                                   "quality_source": f"{redact(q.path)} band {q.band}"},
                             band_description="quality", overview_resampling="MODE")

    def _input_quicklook(self) -> str:
        """The input's quicklook PNG (read from the input alone: written while tiles are predicted)."""
        from geoseg.report import quicklook

        t0 = time.perf_counter()
        try:
            return quicklook.write_scene(self.info.path, self.dir / self.files["input_png"])
        finally:
            self.seconds["quicklook"] += time.perf_counter() - t0

    def close(self) -> None:
        """Drop scratch files (after a failure) and stop a vectorizer still running."""
        if self._stream is not None:
            self._stream.abort()
            self._stream = None
        if not self._input_look.cancel():
            with contextlib.suppress(Exception):  # a failed run: only wait until it no longer writes
                self._input_look.result()
        self._classes.close()
        if self._confidence is not None:
            self._confidence.close()
        if self._quality is not None:
            self._quality.close()


@functools.cache
def _background() -> ThreadPoolExecutor:
    """One worker thread for the input quicklooks of every writer (they read the inputs while tiles run)."""
    return ThreadPoolExecutor(1, thread_name_prefix="geoseg-quicklook")


def scene_files(stem: str, confidence: bool = True, polygons: bool = True, quality: bool = False) -> dict[str, str]:
    """The output file names for one input, by kind: ``classes`` (and its ``classes_qml``, ``classes_sld``,
    ``classes_pam`` sidecars and ``classes_png`` quicklook), ``confidence`` (and ``confidence_qml``,
    ``confidence_sld``, ``confidence_png``), ``polygons``, ``quality`` (flag codes, with ``quality_qml``,
    ``quality_sld``, ``quality_pam``), and ``input_png`` (quicklook of the input)."""
    from geoseg.io.styles import sidecar_names

    names = {"classes": f"{stem}_classes.tif",
             **{f"classes_{k}": v for k, v in sidecar_names(f"{stem}_classes.tif").items()},
             "classes_png": f"{stem}_classes.png"}
    if confidence:
        names.update({"confidence": f"{stem}_confidence.tif",
                      **{f"confidence_{k}": v for k, v in sidecar_names(f"{stem}_confidence.tif", pam=False).items()},
                      "confidence_png": f"{stem}_confidence.png"})
    if polygons:
        names["polygons"] = f"{stem}_polygons.gpkg"
    if quality:
        names.update({"quality": f"{stem}_quality.tif",
                      **{f"quality_{k}": v for k, v in sidecar_names(f"{stem}_quality.tif").items()}})
    names["input_png"] = f"{stem}_input.png"
    return names

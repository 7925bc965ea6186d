"""``geoseg evaluate``: score a model on a labelled raster through the same tiled pipeline as ``segment``.

The labels (a class raster on any grid) are aligned to the image grid by nearest
neighbour through a :class:`rasterio.vrt.WarpedVRT` and compared block by block with the
predicted class map, so memory stays bounded. Pixels that are nodata in either are
ignored.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from geoseg import CLASS_NODATA
from geoseg.config import BLOCK_SIZE as BLOCK
from geoseg.config import SegmentConfig
from geoseg.errors import InputError
from geoseg.io.labels import VECTOR_SUFFIXES, burn_labels, load_class_map, read_label_features, remap_labels
from geoseg.io.publish import write_json
from geoseg.io.raster import open_raster
from geoseg.io.urls import redact
from geoseg.model.metrics import confusion_matrix, scores

log = logging.getLogger(__name__)


def check_labels(image: str, labels: str, class_field: str = "class") -> None:
    """Refuse, before any segmentation, labels that cannot be scored against ``image``: not a raster nor a vector
    file (:data:`VECTOR_SUFFIXES`), or not overlapping the image. Raises :class:`InputError` naming the labels."""
    from geoseg.grid import GeoGrid

    try:
        with open_raster(image) as src:
            grid = GeoGrid.from_dataset(src)
    except InputError:
        return  # not a plain raster (a STAC item...): segment resolves and checks it
    what = "labels"
    if labels.lower().endswith(VECTOR_SUFFIXES):
        from shapely.geometry import box

        gdf = read_label_features(labels, class_field, grid.crs)
        hit = bool(len(gdf)) and bool(gdf.intersects(box(*grid.bounds())).any())
        what = f"labelled features ({len(gdf)})"
    else:
        try:
            with open_raster(labels) as lab:
                lgrid = GeoGrid.from_dataset(lab)
        except InputError as exc:
            raise InputError(f"labels {redact(labels)}: not a raster or vector file GDAL can read; give a label raster "
                             f"(e.g. GeoTIFF) or labelled features ({', '.join(VECTOR_SUFFIXES)})") from exc
        if lgrid.crs is None:
            raise InputError(f"labels {redact(labels)}: have no CRS; they must be georeferenced to be aligned with "
                             f"{redact(image)} (assign one, e.g. with rio edit-info --crs)")
        hit = grid.overlaps(lgrid)
    if not hit:
        raise InputError(f"labels {redact(labels)}: {what} do not overlap the image {redact(image)}; there is nothing "
                         "to score: give labels of this image's area (check both files' CRS and extent with "
                         "`geoseg info`)")


def compare_rasters(classes_path: Path, labels_path: str | Path, n_classes: int,
                    class_map: dict[int, int] | None = None, class_field: str = "class") -> np.ndarray:
    """Confusion matrix (reference rows x predicted columns) of a class map against labels: a raster on any
    grid, or labelled polygons, lines or points (``class_field``; sparse: unlabelled pixels are ignored)."""
    if str(labels_path).lower().endswith(VECTOR_SUFFIXES):
        return _compare_features(classes_path, str(labels_path), n_classes, class_map, class_field)
    cm = np.zeros((n_classes, n_classes), np.int64)
    with rasterio.open(classes_path) as pred, open_raster(labels_path) as lab:
        if lab.crs is None:
            raise InputError(f"{labels_path}: labels have no CRS; they must be georeferenced to be aligned")
        with WarpedVRT(lab, crs=pred.crs, transform=pred.transform, width=pred.width, height=pred.height,
                       resampling=Resampling.nearest, nodata=lab.nodata if lab.nodata is not None else CLASS_NODATA) as ref:
            for row in range(0, pred.height, BLOCK):
                for col in range(0, pred.width, BLOCK):
                    win = Window(col, row, min(BLOCK, pred.width - col), min(BLOCK, pred.height - row))
                    p = pred.read(1, window=win)
                    r = ref.read(1, window=win)
                    if ref.nodata is not None:
                        r = np.where(r == ref.nodata, CLASS_NODATA, r)
                    r = remap_labels(r.astype(np.uint8), class_map, n_classes, str(labels_path))
                    cm += confusion_matrix(r, p, n_classes)
    return cm


def _compare_features(classes_path: Path, labels_path: str, n_classes: int, class_map: dict[int, int] | None,
                      class_field: str) -> np.ndarray:
    cm = np.zeros((n_classes, n_classes), np.int64)
    with rasterio.open(classes_path) as pred:
        gdf = read_label_features(labels_path, class_field, pred.crs)
        for row in range(0, pred.height, BLOCK):
            for col in range(0, pred.width, BLOCK):
                win = Window(col, row, min(BLOCK, pred.width - col), min(BLOCK, pred.height - row))
                r = burn_labels(gdf, class_field, pred.window_transform(win), (win.height, win.width))
                r = remap_labels(r, class_map, n_classes, labels_path)
                cm += confusion_matrix(r, pred.read(1, window=win), n_classes)
    return cm


def evaluate(image: str, labels: str, output: str, model: str | None = None, class_map_path: str | None = None,
             cfg: SegmentConfig | None = None, progress: bool = True, class_field: str = "class") -> dict:
    """Segment ``image`` into ``output``, score it against ``labels``; writes ``output/metrics.json``.

    Labels that cannot be scored (:func:`check_labels`) are refused before anything is segmented."""
    from geoseg.model.checkpoint import load_checkpoint
    from geoseg.segment.pipeline import segment

    check_labels(image, labels, class_field)  # before any model or segmentation work: nothing is written
    load_class_map(class_map_path)
    base = cfg or SegmentConfig()
    run_cfg = base.model_copy(update={"inputs": [image], "output": output, "model": model or base.model, "sink": None,
                                      "outputs": base.outputs.model_copy(update={"polygons": False})})
    summary = segment(run_cfg, progress=progress)
    card = load_checkpoint(run_cfg.model).card
    classes_path = Path(output) / f"{summary.inputs[0].stem}_classes.tif"
    cm = compare_rasters(classes_path, labels, len(card.classes), load_class_map(class_map_path), class_field)
    metrics = scores(cm, card.class_names)
    metrics.update({"image": redact(image), "labels": redact(labels), "model": summary.manifest["model"]["id"],
                    "class_map": class_map_path,
                    "class_field": class_field if labels.lower().endswith(VECTOR_SUFFIXES) else None})
    write_json(Path(output) / "metrics.json", metrics)
    return metrics


def format_table(metrics: dict) -> str:
    """A plain-text table of per-class scores, mIoU and overall accuracy."""
    lines = [f"{'class':10s} {'IoU':>7s} {'prec':>7s} {'recall':>7s} {'F1':>7s} {'support':>10s}"]

    def fmt(v: float | None) -> str:
        return f"{v:7.3f}" if v is not None else "    n/a"

    for name, m in metrics["per_class"].items():
        lines.append(f"{name:10s} {fmt(m['iou'])} {fmt(m['precision'])} {fmt(m['recall'])} {fmt(m['f1'])} {m['support']:10d}")
    lines.append(f"mIoU {fmt(metrics['miou']).strip()}   overall accuracy {fmt(metrics['overall_accuracy']).strip()}"
                 f"   pixels {metrics['pixels']}")
    return "\n".join(lines)

"""Segmentation metrics from a confusion matrix (rows = reference, columns = prediction)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(reference: np.ndarray, predicted: np.ndarray, n_classes: int, ignore: int = 255) -> np.ndarray:
    """``(n_classes, n_classes)`` int64 counts; pixels where either array is ``ignore`` are skipped."""
    ref = np.asarray(reference).ravel()
    pred = np.asarray(predicted).ravel()
    keep = (ref != ignore) & (pred != ignore) & (ref < n_classes) & (pred < n_classes)
    idx = ref[keep].astype(np.int64) * n_classes + pred[keep].astype(np.int64)
    return np.bincount(idx, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def scores(cm: np.ndarray, class_names: list[str]) -> dict:
    """Per-class IoU/precision/recall/F1/support, mIoU and overall accuracy.

    Classes with no reference and no predicted pixel get ``None`` scores and are left
    out of the mean IoU.
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    per_class = {}
    ious = []
    for k, name in enumerate(class_names):
        union = support[k] + predicted[k] - tp[k]
        iou = tp[k] / union if union else None
        prec = tp[k] / predicted[k] if predicted[k] else None
        rec = tp[k] / support[k] if support[k] else None
        f1 = 2 * prec * rec / (prec + rec) if prec and rec else (0.0 if prec is not None and rec is not None else None)
        per_class[name] = {
            "iou": _r(iou),
            "precision": _r(prec),
            "recall": _r(rec),
            "f1": _r(f1),
            "support": int(support[k]),
        }
        if iou is not None:
            ious.append(iou)
    total = cm.sum()
    return {
        "per_class": per_class,
        "miou": _r(float(np.mean(ious)) if ious else None),
        "overall_accuracy": _r(tp.sum() / total if total else None),
        "confusion_matrix": cm.astype(np.int64).tolist(),
        "pixels": int(total),
    }


def _r(v: float | None) -> float | None:
    return None if v is None else round(float(v), 4)

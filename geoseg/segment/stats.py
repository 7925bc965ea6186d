"""Area statistics per class: pixel counts, hectares and percent of the valid area."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def class_table(counts: np.ndarray, area_m2: np.ndarray, class_names: list[str]) -> list[dict]:
    """One row per class: ``class_id, class_name, pixels, area_ha, percent`` (percent of valid area)."""
    total = float(np.sum(area_m2))
    return [
        {
            "class_id": k,
            "class_name": name,
            "pixels": int(counts[k]),
            "area_ha": round(float(area_m2[k]) / 1e4, 4),
            "percent": round(100.0 * float(area_m2[k]) / total, 4) if total else 0.0,
        }
        for k, name in enumerate(class_names)
    ]


def write_stats_csv(path: Path, per_input: dict[str, list[dict]]) -> Path:
    """``input, class_id, class_name, pixels, area_ha, percent``: one row per input and class."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["input", "class_id", "class_name", "pixels", "area_ha", "percent"])
        w.writeheader()
        for name, rows in per_input.items():
            for row in rows:
                w.writerow({"input": name, **row})
    return path

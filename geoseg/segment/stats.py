"""Area statistics per class: pixel counts, hectares and percent of the valid area (``stats.json``, ``stats.csv``)."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class ClassArea:
    """One class of one input: pixels, hectares and percent of the valid area."""

    class_id: int
    class_name: str
    pixels: int
    area_ha: float
    percent: float


def class_table(counts: np.ndarray, area_m2: np.ndarray, class_names: list[str]) -> list[ClassArea]:
    """One row per class (percent of the valid area; areas rounded to 4 decimals)."""
    total = float(np.sum(area_m2))
    return [
        ClassArea(
            class_id=k,
            class_name=name,
            pixels=int(counts[k]),
            area_ha=round(float(area_m2[k]) / 1e4, 4),
            percent=round(100.0 * float(area_m2[k]) / total, 4) if total else 0.0,
        )
        for k, name in enumerate(class_names)
    ]


def stats_document(tables: dict[str, list[ClassArea]]) -> dict[str, Any]:
    """The ``stats.json`` document: per input stem, its classes, valid pixels and valid area."""
    return {"inputs": {
        stem: {"classes": [asdict(r) for r in rows], "valid_pixels": int(sum(r.pixels for r in rows)),
               "valid_area_ha": round(sum(r.area_ha for r in rows), 4)}
        for stem, rows in tables.items()
    }}


def write_stats_csv(path: Path, per_input: dict[str, list[ClassArea]]) -> Path:
    """``input, class_id, class_name, pixels, area_ha, percent``: one row per input and class."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["input", "class_id", "class_name", "pixels", "area_ha", "percent"])
        w.writeheader()
        for name, rows in per_input.items():
            for row in rows:
                w.writerow({"input": name, **asdict(row)})
    return path

"""Area statistics per class: pixel counts, hectares and percent of the valid area (``stats.json``, ``stats.csv``);
with a quality source, the area of each quality flag and the masked area (``stats.json``, ``manifest.json``)."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.io.quality import FLAGS


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


def flag_table(flag_counts: np.ndarray, flag_area_m2: np.ndarray, masked: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """The quality of one input: per flag its pixels, hectares and whether it masks (pixels of several flags count
    under the one their quality code names); the clear and the masked totals."""
    flags = {name: {"pixels": int(flag_counts[k + 1]), "area_ha": round(float(flag_area_m2[k + 1]) / 1e4, 4),
                    "masked": name in masked} for k, name in enumerate(FLAGS)}
    hit = [k + 1 for k, name in enumerate(FLAGS) if name in masked]
    return {"masked_pixels": int(sum(flag_counts[k] for k in hit)),
            "masked_area_ha": round(float(sum(flag_area_m2[k] for k in hit)) / 1e4, 4),
            "clear_pixels": int(flag_counts[0]), "clear_area_ha": round(float(flag_area_m2[0]) / 1e4, 4),
            "flags": flags}


def stats_document(tables: dict[str, list[ClassArea]], quality: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The ``stats.json`` document: per input stem, its classes, valid pixels and valid area, and (inputs with a
    quality source, ``quality``: stem -> :func:`flag_table`) the masked area per flag."""
    doc: dict[str, Any] = {"inputs": {
        stem: {"classes": [asdict(r) for r in rows], "valid_pixels": int(sum(r.pixels for r in rows)),
               "valid_area_ha": round(sum(r.area_ha for r in rows), 4)}
        for stem, rows in tables.items()
    }}
    for stem, q in (quality or {}).items():
        doc["inputs"][stem]["quality"] = q
    return doc


def write_stats_csv(path: Path, per_input: dict[str, list[ClassArea]]) -> Path:
    """``input, class_id, class_name, pixels, area_ha, percent``: one row per input and class."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["input", "class_id", "class_name", "pixels", "area_ha", "percent"])
        w.writeheader()
        for name, rows in per_input.items():
            for row in rows:
                w.writerow({"input": name, **asdict(row)})
    return path

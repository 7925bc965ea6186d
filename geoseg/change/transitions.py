"""Change codes, their legend and colours, named change types, and the transition table.

Pure functions and small value types, no I/O (used by :mod:`geoseg.change.detect`).

Change raster codes (uint8), for a class scheme of ``n`` classes with ids ``0..n-1``:

* ``0``: no change (valid in both dates, same class);
* ``1 + from_id * n + to_id`` for every changed pair ``from_id != to_id`` (``1..n²``; the
  diagonal codes are never used);
* ``254``: uncertain: the class differs between the dates but a guard (confidence,
  persistence, minimum mapping unit) removed the change;
* ``255``: nodata in either date (or outside either raster).

The transition table has one row per ``from`` class and one column per ``to`` class
plus ``uncertain``; unchanged pixels are on the diagonal, so its total is the area
valid in both dates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from geoseg import CLASS_NODATA

NO_CHANGE = 0
UNCERTAIN = 254
NODATA = CLASS_NODATA
UNCERTAIN_NAME = "uncertain"
MAX_CLASSES = 15
"""``1 + n²`` must stay below :data:`UNCERTAIN`: at most 15 classes."""

CHANGE_TYPES = ("deforestation", "reforestation", "urbanization", "water_gain", "water_loss")
"""Named change types, in the priority used for a polygon's single ``change_type``.

They overlap (forest → urban is deforestation *and* urbanization); summaries count a
pair under every type it belongs to."""

_TYPE_COLORS = {  # shades per primary type, assigned to pairs in code order
    "deforestation": ("#d7191c", "#fd8d3c", "#800026", "#f768a1"),
    "reforestation": ("#1a9641", "#a6d96a", "#006d2c", "#66bd63"),
    "urbanization": ("#c51b8a", "#7a0177", "#dd3497", "#ae017e"),
    "water_gain": ("#2c7bb6", "#74add1", "#08519c", "#6baed6"),
    "water_loss": ("#b15928", "#dfc27d", "#8c510a", "#bf812d"),
    "other_change": ("#ffd92f", "#e5c494", "#b3b3b3", "#fee08b", "#fdae61", "#c7eae5", "#bababa"),
}
NO_CHANGE_COLOR = "#f0f0f0"
UNCERTAIN_COLOR = "#737373"


def change_code(from_id, to_id, n: int):
    """The change code of ``from_id → to_id`` (arrays or ints; meaningful where they differ)."""
    return 1 + np.asarray(from_id, np.int64) * n + np.asarray(to_id, np.int64)


def decode(code, n: int):
    """``(from_id, to_id)`` of a change code ``1..n²`` (ints or arrays)."""
    return (code - 1) // n, (code - 1) % n


def pair_types(from_name: str, to_name: str) -> list[str]:
    """Every named change type the pair ``from_name → to_name`` belongs to (may be empty)."""
    if from_name == to_name:
        return []
    types = []
    if from_name == "forest":
        types.append("deforestation")
    if to_name == "forest":
        types.append("reforestation")
    if to_name == "urban":
        types.append("urbanization")
    if to_name == "water":
        types.append("water_gain")
    if from_name == "water":
        types.append("water_loss")
    return types


def primary_type(from_name: str, to_name: str) -> str:
    """One change type for a pair: the first of :data:`CHANGE_TYPES` it belongs to, else ``other_change``."""
    types = pair_types(from_name, to_name)
    return types[0] if types else "other_change"


@dataclass(frozen=True)
class Legend:
    """The change codes of a class scheme, with labels, types and colours."""

    class_names: tuple[str, ...]
    entries: tuple[dict, ...] = field(default=(), compare=False)

    @classmethod
    def for_classes(cls, class_names: list[str] | tuple[str, ...]) -> Legend:
        names = tuple(class_names)
        n = len(names)
        if not 2 <= n <= MAX_CLASSES:
            raise ValueError(f"change codes support 2..{MAX_CLASSES} classes, got {n}")
        used = {t: 0 for t in _TYPE_COLORS}
        entries = [{"code": NO_CHANGE, "label": "no change", "color": NO_CHANGE_COLOR}]
        for f in range(n):
            for t in range(n):
                if f == t:
                    continue
                kind = primary_type(names[f], names[t])
                shades = _TYPE_COLORS[kind]
                color = shades[used[kind] % len(shades)]
                used[kind] += 1
                entries.append({"code": int(change_code(f, t, n)), "from_id": f, "to_id": t, "from_class": names[f],
                                "to_class": names[t], "label": f"{names[f]} → {names[t]}", "change_type": kind,
                                "change_types": pair_types(names[f], names[t]), "color": color})
        entries.append({"code": UNCERTAIN, "label": "uncertain (change removed by a guard)", "color": UNCERTAIN_COLOR})
        entries.append({"code": NODATA, "label": "nodata (either date)", "color": None})
        return cls(names, tuple(entries))

    @property
    def n(self) -> int:
        return len(self.class_names)

    def colormap(self) -> dict[int, tuple[int, int, int, int]]:
        """GDAL colour table: code -> RGBA (nodata transparent)."""
        out = {}
        for e in self.entries:
            h = (e["color"] or "#000000").lstrip("#")
            out[e["code"]] = (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), 255 if e["color"] else 0)
        return out

    def pairs(self) -> list[dict]:
        """The legend entries of changed pairs only."""
        return [e for e in self.entries if "from_id" in e]


class TransitionCounter:
    """Accumulates pixels and m² per ``(from, to)`` cell; ``to == n`` is the ``uncertain`` column."""

    def __init__(self, n: int):
        self.n = n
        self.pixels = np.zeros((n, n + 1), np.int64)
        self.area_m2 = np.zeros((n, n + 1), np.float64)

    def add(self, from_id: np.ndarray, to_id: np.ndarray, mask: np.ndarray, row_area: np.ndarray) -> None:
        """Count the pixels of ``mask`` (``(rows, cols)``) at ``(from_id, to_id)``; ``row_area``: m² per row."""
        if not mask.any():
            return
        idx = (from_id.astype(np.int64) * (self.n + 1) + to_id)[mask]
        w = np.broadcast_to(row_area[:, None], mask.shape)[mask]
        size = self.n * (self.n + 1)
        self.pixels += np.bincount(idx, minlength=size).reshape(self.n, self.n + 1)
        self.area_m2 += np.bincount(idx, weights=w, minlength=size).reshape(self.n, self.n + 1)

    def total(self) -> tuple[int, float]:
        return int(self.pixels.sum()), float(self.area_m2.sum())


def ha(m2: float) -> float:
    """Square metres to hectares, rounded to 4 decimals (1 m²)."""
    return round(float(m2) / 1e4, 4)


def measure(pixels, area_m2) -> dict:
    """``{"pixels", "area_ha"}`` of a count and an area in m²."""
    return {"pixels": int(pixels), "area_ha": ha(area_m2)}


def transition_rows(counter: TransitionCounter, names: tuple[str, ...]) -> list[dict]:
    """Every cell of the table (zeros included): ``from_id, from_class, to_id, to_class, pixels, area_ha``.

    ``to_id`` is None and ``to_class`` is ``uncertain`` in the last column.
    """
    rows = []
    for f in range(counter.n):
        for t in range(counter.n + 1):
            rows.append({"from_id": f, "from_class": names[f], "to_id": t if t < counter.n else None,
                         "to_class": names[t] if t < counter.n else UNCERTAIN_NAME,
                         "pixels": int(counter.pixels[f, t]), "area_ha": ha(counter.area_m2[f, t])})
    return rows


def by_pair(counter: TransitionCounter, names: tuple[str, ...]) -> list[dict]:
    """Non-zero off-diagonal cells of ``counter`` (``to`` < n): what a guard removed, per pair."""
    return [{"from_class": names[f], "to_class": names[t], **measure(counter.pixels[f, t], counter.area_m2[f, t])}
            for f in range(counter.n) for t in range(counter.n) if f != t and counter.pixels[f, t]]


def change_type_summary(counter: TransitionCounter, names: tuple[str, ...]) -> dict[str, dict]:
    """Pixels and ha of each named change type (reported change only; types overlap)."""
    out = {}
    for kind in CHANGE_TYPES:
        pairs = [(f, t) for f in range(counter.n) for t in range(counter.n) if kind in pair_types(names[f], names[t])]
        px = sum(int(counter.pixels[f, t]) for f, t in pairs)
        m2 = sum(float(counter.area_m2[f, t]) for f, t in pairs)
        out[kind] = {**measure(px, m2), "pairs": [f"{names[f]} → {names[t]}" for f, t in pairs]}
    return out


def matrix(counter: TransitionCounter, names: tuple[str, ...]) -> dict:
    """The table as matrices: ``rows`` (from), ``columns`` (to + uncertain), ``pixels`` and ``area_ha``."""
    return {"rows": list(names), "columns": [*names, UNCERTAIN_NAME], "pixels": counter.pixels.tolist(),
            "area_ha": [[ha(v) for v in row] for row in counter.area_m2]}

"""Class area statistics (geoseg.segment.stats): the per-class table and its CSV file.

Oracles: hectares and percentages worked out by hand for a small table; for random tables, the
pixel shares (equal pixel areas) and the exact total area; the CSV read back with the csv module.
"""

import csv
import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoseg.segment.stats import class_table, write_stats_csv
from tests.helpers import CLASS_NAMES


def test_class_table_by_hand():
    """10, 0, 5 and 5 pixels of 900 m² (a class absent from the scene included): 0.9/0/0.45/0.45 ha, 50/0/25/25 %."""
    rows = class_table(np.array([10, 0, 5, 5]), np.array([9000.0, 0.0, 4500.0, 4500.0]), CLASS_NAMES)
    assert [dataclasses.asdict(r) for r in rows] == [
        {"class_id": 0, "class_name": "other", "pixels": 10, "area_ha": 0.9, "percent": 50.0},
        {"class_id": 1, "class_name": "forest", "pixels": 0, "area_ha": 0.0, "percent": 0.0},
        {"class_id": 2, "class_name": "water", "pixels": 5, "area_ha": 0.45, "percent": 25.0},
        {"class_id": 3, "class_name": "urban", "pixels": 5, "area_ha": 0.45, "percent": 25.0},
    ]


def test_percent_is_of_area_not_of_pixels():
    """On a geographic grid pixels differ in area: 1 pixel of 300 m² against 1 of 100 m² is 75 % / 25 %."""
    rows = class_table(np.array([1, 1]), np.array([300.0, 100.0]), ["a", "b"])
    assert [r.percent for r in rows] == [75.0, 25.0]
    assert [r.pixels for r in rows] == [1, 1]


def test_an_empty_scene_has_zero_percent_not_a_division_error():
    rows = class_table(np.zeros(4, np.int64), np.zeros(4), CLASS_NAMES)
    assert [r.percent for r in rows] == [0.0] * 4 and [r.area_ha for r in rows] == [0.0] * 4


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 10**7), min_size=2, max_size=12).filter(lambda c: sum(c) > 0),
       st.floats(0.01, 5000.0))
def test_random_tables_add_up(counts, pixel_m2):
    """Equal pixel areas: each percent is the class's share of the pixels; the hectares add up to the total."""
    counts = np.array(counts)
    area = counts * pixel_m2
    rows = class_table(counts, area, [f"c{i}" for i in range(len(counts))])
    assert [r.class_id for r in rows] == list(range(len(counts)))
    assert [r.pixels for r in rows] == counts.tolist()
    for r, n in zip(rows, counts):
        assert r.percent == pytest.approx(100 * n / counts.sum(), abs=1e-4)
        assert r.area_ha == pytest.approx(n * pixel_m2 / 1e4, abs=1e-4)
    assert sum(r.percent for r in rows) == pytest.approx(100, abs=1e-4 * len(rows))
    assert sum(r.area_ha for r in rows) == pytest.approx(counts.sum() * pixel_m2 / 1e4, abs=1e-4 * len(rows))


def test_stats_csv_round_trip(tmp_path):
    """One row per input and class, in order, under the documented header; values read back unchanged."""
    per_input = {
        "scene_a": class_table(np.array([3, 1, 0, 4]), np.array([2700.0, 900.0, 0.0, 3600.0]), CLASS_NAMES),
        "scene_b": class_table(np.array([0, 7, 2, 0]), np.array([0.0, 6300.5, 1800.25, 0.0]), CLASS_NAMES),
    }
    path = write_stats_csv(tmp_path / "stats.csv", per_input)
    assert path == tmp_path / "stats.csv"
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["input", "class_id", "class_name", "pixels", "area_ha", "percent"]
        back = list(reader)
    expected = [(name, r) for name, rows in per_input.items() for r in rows]
    assert len(back) == len(expected) == 8
    for got, (name, row) in zip(back, expected):
        assert got["input"] == name and got["class_name"] == row.class_name
        assert (int(got["class_id"]), int(got["pixels"])) == (row.class_id, row.pixels)
        assert (float(got["area_ha"]), float(got["percent"])) == (row.area_ha, row.percent)
    # scene_b by hand: 6300.5 / 8100.75 = 77.7767 %, 1800.25 / 8100.75 = 22.2233 %
    assert [float(r["percent"]) for r in back[4:]] == pytest.approx([0.0, 77.7767, 22.2233, 0.0], abs=1e-4)

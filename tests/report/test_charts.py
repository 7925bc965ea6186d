"""SVG charts (geoseg.report.charts). Oracle: the SVG parsed back (bar lengths proportional to the values)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from geoseg.report.charts import bar_chart, fmt, line_chart, nice_max

SVG = "{http://www.w3.org/2000/svg}"


def test_axis_maximum_and_number_format():
    assert [nice_max(v) for v in (0, 0.7, 3, 230, 4900)] == [1.0, 1.0, 5, 250, 5000]
    assert (fmt(0), fmt(12345.6), fmt(2.25), fmt(0.125)) == ("0", "12,346", "2.2", "0.12")


def test_bars_are_proportional_to_the_values():
    svg = ET.fromstring(bar_chart(["a", "b", "c"], [10.0, 40.0, 0.0], ["#111111", "#222222", "#333333"]))
    widths = [float(r.get("width")) for r in svg.iter(f"{SVG}rect")]
    assert widths[1] == pytest.approx(4 * widths[0]) and widths[2] == 0.5
    assert [r.get("fill") for r in svg.iter(f"{SVG}rect")] == ["#111111", "#222222", "#333333"]


def test_lines_leave_gaps_for_missing_values():
    svg = ET.fromstring(line_chart(["1985", "2000", "2020"], [("forest", [5.0, None, 3.0], "#00ff00")]))
    assert len(list(svg.iter(f"{SVG}polyline"))) == 2 and len(list(svg.iter(f"{SVG}circle"))) == 2

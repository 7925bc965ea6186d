"""Inline SVG charts for the HTML report: horizontal bars (area per class) and lines (time series).

Plain SVG text with the numbers as tooltips (``<title>``) and labels, no script and no
external resource, so a report is one self-contained file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from xml.sax.saxutils import escape


def nice_max(value: float) -> float:
    """A round axis maximum >= ``value`` (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 2.5, 5, 10):
        if m * exp >= value:
            return m * exp
    return 10 * exp


def fmt(value: float) -> str:
    """A number for a label: thousands separated, at most 2 decimals for small values."""
    if value == int(value) or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.1f}"
    return f"{value:.2f}"


def bar_chart(labels: Sequence[str], values: Sequence[float], colors: Sequence[str], unit: str = "ha",
              title: str = "") -> str:
    """Horizontal bars, one per label, with the value written at the end of each bar."""
    bar, gap, left, right, top = 22, 8, 150, 90, 28
    width = 640
    plot = width - left - right
    top_value = nice_max(max(values, default=0))
    height = top + len(labels) * (bar + gap) + 24
    parts = [f'<svg class="chart bar-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title or "bar chart")}">',
             f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>']
    for k in range(5):
        x = left + plot * k / 4
        parts.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 20}" class="grid"/>'
                     f'<text x="{x:.1f}" y="{height - 6}" class="tick" text-anchor="middle">{fmt(top_value * k / 4)}</text>')
    for i, (label, value, color) in enumerate(zip(labels, values, colors)):
        y = top + i * (bar + gap)
        w = plot * value / top_value if top_value else 0
        parts.append(f'<text x="{left - 8}" y="{y + bar * 0.7:.1f}" text-anchor="end" class="label">{escape(label)}</text>'
                     f'<rect x="{left}" y="{y}" width="{max(w, 0.5):.1f}" height="{bar}" fill="{color}" class="bar">'
                     f"<title>{escape(label)}: {fmt(value)} {unit}</title></rect>"
                     f'<text x="{left + w + 6:.1f}" y="{y + bar * 0.7:.1f}" class="value">{fmt(value)} {unit}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(x_labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None], str]], unit: str = "ha",
               title: str = "") -> str:
    """Lines over the ``x_labels`` (periods), one per ``(name, values, colour)``; None values leave a gap."""
    width, height, left, right, top, bottom = 640, 300, 70, 150, 28, 40
    pw, ph = width - left - right, height - top - bottom
    vals = [v for _, ys, _ in series for v in ys if v is not None]
    top_value = nice_max(max(vals, default=0))
    n = len(x_labels)

    def x(i: int) -> float:
        return left + (pw * i / (n - 1) if n > 1 else pw / 2)

    def y(v: float) -> float:
        return top + ph * (1 - v / top_value)

    parts = [f'<svg class="chart line-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title or "line chart")}">',
             f'<text x="{left}" y="16" class="chart-title">{escape(title)} ({escape(unit)})</text>']
    for k in range(5):
        v = top_value * k / 4
        parts.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + pw}" y2="{y(v):.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" class="tick">{fmt(v)}</text>')
    for i, label in enumerate(x_labels):
        parts.append(f'<text x="{x(i):.1f}" y="{height - bottom + 18}" text-anchor="middle" class="tick">{escape(label)}</text>')
    for j, (name, ys, color) in enumerate(series):
        runs: list[list[tuple[float, float]]] = [[]]
        for i, yv in enumerate(ys):
            if yv is None:
                runs.append([])
            else:
                runs[-1].append((x(i), y(yv)))
        for run in (r for r in runs if r):
            pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in run)
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2.5" class="series"/>')
        for i, yv in enumerate(ys):
            if yv is not None:
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(yv):.1f}" r="3.5" fill="{color}">'
                             f"<title>{escape(name)} {escape(x_labels[i])}: {fmt(yv)} {unit}</title></circle>")
        ly = top + 14 + j * 18
        parts.append(f'<rect x="{left + pw + 14}" y="{ly - 9}" width="12" height="12" fill="{color}"/>'
                     f'<text x="{left + pw + 32}" y="{ly + 1}" class="label">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)

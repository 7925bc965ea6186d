"""``report.html``: one self-contained page (no network needed) a project lead can open.

A page is a title, a few facts and sections. Sections are HTML strings built here: a map
(stacked PNG quicklooks embedded as base64 ``data:`` URIs, a checkbox per layer to toggle it,
an opacity slider for the overlays, and a legend), tables, a transition matrix (cells
shaded by area) and the SVG charts of :mod:`geoseg.report.charts`. The only script is the
few lines that toggle layers; styles are inline.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from geoseg import __version__
from geoseg.report.charts import fmt


@dataclass(frozen=True, slots=True)
class MapLayer:
    """One quicklook of a map: its PNG file, the name shown next to its checkbox, whether it starts visible."""

    name: str
    png: Path
    visible: bool = True
    base: bool = False


def data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def png_size(png: Path) -> tuple[int, int]:
    """``(width, height)`` of a PNG file (from its header)."""
    with open(png, "rb") as f:
        head = f.read(24)
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def map_section(map_id: str, title: str, layers: Sequence[MapLayer], legend: Sequence[tuple[str, str]],
                note: str = "") -> str:
    """A map of stacked quicklooks (first layer at the bottom) with layer toggles and a legend (label, colour)."""
    imgs, toggles = [], []
    w, h = png_size(layers[0].png)
    for i, layer in enumerate(layers):
        lid = f"{map_id}-layer{i}"
        hidden = "" if layer.visible else ' style="display:none"'
        cls = "base" if layer.base else "overlay"
        imgs.append(f'<img id="{lid}" class="layer {cls}" src="{data_uri(layer.png)}" alt="{escape(layer.name)}"{hidden}>')
        checked = " checked" if layer.visible else ""
        toggles.append(f'<label><input type="checkbox" data-layer="{lid}"{checked}> {escape(layer.name)}</label>')
    keys = "".join(f'<li><span class="swatch" style="background:{c}"></span>{escape(label)}</li>' for label, c in legend)
    return (f'<section class="map-section"><h2>{escape(title)}</h2><div class="map-wrap">'
            f'<div class="map" id="{map_id}" style="aspect-ratio:{w}/{h}">{"".join(imgs)}</div>'
            f'<div class="map-side"><fieldset class="layers"><legend>Layers</legend>{"".join(toggles)}'
            f'<label class="opacity">overlay opacity <input type="range" min="0" max="100" value="75" '
            f'data-opacity="{map_id}"></label></fieldset>'
            f'<div class="legend"><h3>Legend</h3><ul>{keys}</ul></div></div></div>'
            + (f'<p class="note">{escape(note)}</p>' if note else "") + "</section>")


def table(header: Sequence[str], rows: Sequence[Sequence[object]], cls: str = "data") -> str:
    """An HTML table; numbers are formatted (:func:`~geoseg.report.charts.fmt`) and right-aligned."""
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)

    def cell(v: object) -> str:
        if isinstance(v, int | float) and not isinstance(v, bool):
            return f'<td class="num">{fmt(float(v)) if isinstance(v, float) else f"{v:,}"}</td>'
        return f"<td>{escape(str(v))}</td>"

    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def matrix(rows: Sequence[str], columns: Sequence[str], values: Sequence[Sequence[float]], unit: str = "ha") -> str:
    """The transition matrix: ``from`` classes down, ``to`` classes across; cells shaded by their share, diagonal marked."""
    top = max((v for r in values for v in r), default=0) or 1
    head = "<th>from \\ to</th>" + "".join(f"<th>{escape(c)}</th>" for c in columns) + "<th>total</th>"
    body = []
    for i, (name, row) in enumerate(zip(rows, values)):
        cells = []
        for j, v in enumerate(row):
            alpha = 0.08 + 0.8 * (v / top) ** 0.5 if v else 0
            diag = " diag" if j == i else ""
            cells.append(f'<td class="num{diag}" style="background:rgba(33,102,172,{alpha:.2f})" '
                         f'title="{escape(name)} → {escape(columns[j])}: {fmt(v)} {unit}">{fmt(v)}</td>')
        body.append(f"<tr><th>{escape(name)}</th>{''.join(cells)}<td class='num total'>{fmt(sum(row))}</td></tr>")
    totals = [sum(r[j] for r in values) for j in range(len(columns))]
    foot = "<tr><th>total</th>" + "".join(f'<td class="num total">{fmt(t)}</td>' for t in totals) + \
        f'<td class="num total">{fmt(sum(totals))}</td></tr>'
    return (f'<table class="matrix"><caption>area in {escape(unit)}; rows: from (earlier date), columns: to '
            f"(later date); diagonal: unchanged</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}{foot}</tbody></table>")


def section(title: str, *parts: str) -> str:
    return f"<section><h2>{escape(title)}</h2>{''.join(parts)}</section>"


def facts(items: Sequence[tuple[str, str]]) -> str:
    """A definition list of ``(term, value)`` facts."""
    return '<dl class="facts">' + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items) + "</dl>"


def page(title: str, intro: str, sections: Sequence[str]) -> str:
    """The whole self-contained HTML document."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body><header><h1>{escape(title)}</h1>"
            f'<p class="intro">{escape(intro)}</p></header>\n<main>' + "\n".join(sections)
            + f'</main>\n<footer>geoseg {escape(__version__)}: every picture and number is in this file; '
              f"the data are the files next to it.</footer>\n<script>{SCRIPT}</script></body></html>\n")


SCRIPT = """
document.querySelectorAll('input[data-layer]').forEach(function (box) {
  box.addEventListener('change', function () {
    document.getElementById(box.dataset.layer).style.display = box.checked ? '' : 'none';
  });
});
document.querySelectorAll('input[data-opacity]').forEach(function (slider) {
  var apply = function () {
    document.querySelectorAll('#' + slider.dataset.opacity + ' img.overlay').forEach(function (img) {
      img.style.opacity = slider.value / 100;
    });
  };
  slider.addEventListener('input', apply);
  apply();
});
"""

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1b4332;color:#fff;padding:16px 28px}header h1{margin:0 0 6px;font-size:24px}
.intro{margin:0;opacity:.9}main{padding:8px 28px 28px;max-width:1280px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px 18px;margin:18px 0}
h2{font-size:18px;margin:4px 0 12px}h3{font-size:14px;margin:10px 0 6px}
.map-wrap{display:flex;gap:18px;align-items:flex-start;flex-wrap:wrap}
.map{position:relative;width:760px;max-width:100%;border:1px solid #bbb;background:#eee}
.map img.layer{position:absolute;left:0;top:0;width:100%;height:100%;image-rendering:pixelated}
.map-side{min-width:200px}fieldset.layers{border:1px solid #ccc;border-radius:4px}
fieldset.layers label{display:block;margin:4px 0}.legend ul{list-style:none;padding:0;margin:0}
.legend li{margin:3px 0}.swatch{display:inline-block;width:14px;height:14px;margin-right:8px;vertical-align:middle;border:1px solid #666}
table{border-collapse:collapse;margin:8px 0 14px;font-size:14px}th,td{border:1px solid #ddd;padding:4px 8px}
th{background:#f0f0f0;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.diag{font-weight:600;outline:2px solid #1b4332;outline-offset:-2px}td.total{background:#f6f6f6}
caption{caption-side:bottom;text-align:left;font-size:12px;color:#555;padding-top:4px}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:6px 0}dt{font-weight:600}dd{margin:0}
svg.chart{display:block;margin:6px 0 12px;font-size:12px}svg .grid{stroke:#e3e3e3}svg .tick{fill:#555}
svg .chart-title{font-weight:600;fill:#222}svg .label{fill:#222}svg .value{fill:#333}
.note{font-size:13px;color:#555}footer{padding:10px 28px 24px;font-size:12px;color:#666}
"""

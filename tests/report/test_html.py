"""The HTML page parts (geoseg.report.html). Oracles: the HTML parsed back; the page in Chromium is tested in
tests/system/test_browser.py."""

from __future__ import annotations

from html.parser import HTMLParser

import numpy as np

from geoseg.report import html
from geoseg.report.quicklook import encode_png


class Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def parse(text: str) -> list[tuple[str, dict]]:
    p = Collect()
    p.feed(text)
    return p.tags


def test_a_map_embeds_its_layers_with_toggles(tmp_path):
    png = tmp_path / "a.png"
    png.write_bytes(encode_png(np.zeros((20, 30, 4), np.uint8)))
    assert html.png_size(png) == (30, 20)
    text = html.map_section("m", "t", [html.MapLayer("base", png, base=True), html.MapLayer("top", png, visible=False)],
                            [("forest", "#00ff00")])
    tags = parse(text)
    imgs = [a for t, a in tags if t == "img"]
    assert [i["id"] for i in imgs] == ["m-layer0", "m-layer1"] and all(i["src"].startswith("data:image/png;base64,") for i in imgs)
    assert imgs[1]["style"] == "display:none"
    boxes = [a for t, a in tags if t == "input" and a.get("type") == "checkbox"]
    assert [b["data-layer"] for b in boxes] == ["m-layer0", "m-layer1"] and "checked" in boxes[0] and "checked" not in boxes[1]


def test_matrix_totals_and_page_is_self_contained():
    text = html.matrix(["a", "b"], ["a", "b", "uncertain"], [[1.0, 2.0, 0.0], [3.0, 4.0, 1.0]])
    cells = [c for c in text.split("<td") if "total" in c.split(">")[0]]
    assert [c.split(">")[1].split("<")[0] for c in cells] == ["3", "8", "4", "6", "1", "11"]
    page = html.page("T", "intro", [html.section("S", html.table(["x", "n"], [("row", 1234)]))])
    assert page.startswith("<!DOCTYPE html>") and "1,234" in page
    assert not [a for t, a in parse(page) if t in ("link", "script") and ("href" in a or "src" in a)]

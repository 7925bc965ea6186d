"""report.html in a real headless browser (Debian's Chromium through Playwright): loads with no console error
and no request leaving the file, shows the map and the chart (screenshot pixels), toggles layers.

Oracles: Chromium's console and page errors, the network requests it makes, the rendered screenshot.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from geoseg.change.detect import detect_change
from geoseg.config import ChangeConfig
from geoseg.segment.pipeline import segment
from tests.helpers import NC_IMAGE, SPECTRAL_MODEL, blobs, require_tool, segment_config, write_pair


@pytest.fixture(scope="module")
def browser():
    chromium = require_tool("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    d = tmp_path_factory.mktemp("reports")
    segment(segment_config([NC_IMAGE], d / "seg", model=str(SPECTRAL_MODEL)), progress=False)
    before, after = write_pair(d, blobs(5, (60, 70)), blobs(6, (60, 70)))
    detect_change(before, after, str(d / "chg"), options=ChangeConfig(min_confidence=0, mmu_ha=0))
    return {"segment": d / "seg" / "report.html", "change": d / "chg" / "report.html"}


def screenshot(page, selector) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(page.locator(selector).first.screenshot())).convert("RGB")).astype(int)


@pytest.mark.parametrize("kind", ["segment", "change"])
def test_report_loads_cleanly_and_shows_the_map_and_chart(browser, reports, kind, tmp_path):
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(reports[kind].as_uri())
    page.wait_for_load_state("load")
    assert errors == []
    assert all(u.startswith(("file:", "data:")) for u in requests), requests  # nothing from the network
    page.screenshot(path=str(tmp_path / f"{kind}.png"), full_page=True)
    m = screenshot(page, ".map")
    assert m.std() > 20 and len(np.unique(m.reshape(-1, 3), axis=0)) > 8  # a picture, not a blank box
    chart = screenshot(page, "svg.chart")
    assert (chart.sum(axis=2) < 600).mean() > 0.01  # bars/lines drawn on white
    # the overlay toggle hides the top layer
    overlay = page.locator(".map img.overlay").first
    assert overlay.is_visible()
    page.locator(f"input[data-layer='{overlay.get_attribute('id')}']").uncheck()
    assert not overlay.is_visible()
    page.close()

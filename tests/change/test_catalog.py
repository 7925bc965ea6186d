"""The monitor's STAC catalog and history report (geoseg.change.catalog).

Oracles: the STAC schemas (offline), the files the hrefs point to, pystac walking the catalog, the history
tables.
"""

from __future__ import annotations

import json
from pathlib import Path

from geoseg.change.catalog import STAC_DIR
from geoseg.change.monitor import run_monitor
from geoseg.config import MonitorConfig, load_yaml
from tests.change.test_monitor import imagery, region, write_config  # noqa: F401  (imagery is a fixture)
from tests.helpers import validate_stac


def test_catalog_has_one_valid_item_per_region_and_period(tmp_path, imagery):  # noqa: F811
    import pystac

    d, crop = imagery
    crop("2020")
    root = tmp_path / "root"
    cfg = load_yaml(write_config(tmp_path, root, region("city", f"{d}/img_{{period}}.tif")), MonitorConfig)
    (res,) = run_monitor(cfg)
    assert res.error is None
    stac_dir = root.joinpath(*STAC_DIR)
    docs = [json.loads(p.read_text()) for p in sorted(stac_dir.rglob("*.json"))]
    for doc in docs:
        validate_stac(doc)
    items = {p.stem: json.loads(p.read_text()) for p in (stac_dir / "city").glob("[0-9]*.json")}
    assert sorted(items) == ["1985", "2000", "2020"]
    for period, item in items.items():
        for key, a in item["assets"].items():
            assert (stac_dir / "city" / a["href"]).resolve().is_file(), (period, key)
    assert "change_change" not in items["1985"]["assets"] and "change_change" in items["2000"]["assets"]
    assert items["2020"]["properties"]["geoseg:compared_with"] == "2000"
    cat = pystac.Catalog.from_file(str(stac_dir / "catalog.json"))
    assert sorted(i.id for i in cat.get_items(recursive=True)) == ["city-1985", "city-2000", "city-2020"]
    page = (root / "history" / "report.html").read_text()
    assert "city: area per class" in page and "city: transitions 2000 → 2020" in page
    assert Path(root / "history" / "report.html").stat().st_size > 1000

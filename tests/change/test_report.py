"""The typed change report is the published transitions.json, read back (independent: the file on disk)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from geoseg.change.detect import detect_change
from geoseg.change.report import GUARDS, Area, ChangeReport
from geoseg.config import ChangeConfig
from tests.helpers import PX_HA, blobs, write_pair


def test_typed_report_equals_the_published_document(tmp_path):
    b, a = blobs(1), blobs(2)
    before, after = write_pair(tmp_path, b, a)
    res = detect_change(before, after, str(tmp_path / "o"), options=ChangeConfig(min_confidence=0, mmu_ha=0, block_size=16))
    doc = json.loads((Path(res.output_dir) / "transitions.json").read_text())
    assert json.loads(json.dumps(res.document)) == doc
    r = res.report
    assert dataclasses.replace(r, document={}) == dataclasses.replace(ChangeReport.from_document(doc), document={})
    valid = int(((b != 255) & (a != 255)).sum())
    changed = int(((b != a) & (b != 255) & (a != 255)).sum())
    assert r.valid == Area(valid, round(valid * PX_HA, 4))
    assert r.changed.pixels == changed and r.unchanged.pixels == valid - changed and r.uncertain.pixels == 0
    assert set(r.removed) == set(GUARDS) and all(v.pixels == 0 for v in r.removed.values())
    assert r.polygons == doc["polygons"]["count"] > 0
    assert np.isclose(r.changed.area_ha, changed * PX_HA)

"""Leave-one-scene-out folds of a training recipe, without training the final model.

Runs :func:`geoseg.train.loso.leave_one_scene_out` on ``configs/train_default.yaml`` (or ``--config``) with
dotted-key overrides (values in YAML), prints the Markdown table and writes the block as JSON. Each fold
trains one model on the other places (``leave_one_scene_out.steps``) and scores it, the fitted baseline and
the fixed rule on the held-out place through the segment pipeline (run from the repository root; needs
``../shared/data``; ~9 min per fold
on 2 CPU cores). Results of the levers tried: ``benchmarks/results_loso_levers.json``.

    python benchmarks/loso_folds.py --out /tmp/d.json 'index_channels=[ndvi, ndwi]' \\
        'leave_one_scene_out.places=[nc_raleigh, zion_north]'
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))  # `python benchmarks/<script>.py` finds `geoseg`

import argparse
import json
import logging
from pathlib import Path

import yaml

from benchmarks.bench_segment import REPO


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """``raw`` with each ``dotted.key=yaml-value`` set (nested tables created as needed)."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{item!r}: give overrides as dotted.key=value")
        *path, last = key.split(".")
        node = raw
        for part in path:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    return raw


def main() -> None:
    from geoseg.config import TrainConfig
    from geoseg.train.data import resolve_paths
    from geoseg.train.loso import format_table, leave_one_scene_out
    from geoseg.train.run import fit_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="dotted.key=value (YAML), e.g. class_balance=0")
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "train_default.yaml")
    ap.add_argument("--out", type=Path, help="write the leave-one-scene-out block as JSON here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    raw = apply_overrides(yaml.safe_load(args.config.read_text()), args.overrides)
    cfg = resolve_paths(TrainConfig(**raw))
    block = leave_one_scene_out(cfg, fit_model)
    block["overrides"] = args.overrides
    if args.out:
        args.out.write_text(json.dumps(block, indent=1) + "\n")
    print(format_table(block))


if __name__ == "__main__":
    main()

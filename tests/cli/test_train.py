"""`geoseg train` on the command line: a bad config is one error line naming the key, exit 2; a run prints the
checkpoint and its validation scores (oracle: the card it wrote)."""

from __future__ import annotations

import json

import yaml
from click.testing import CliRunner

from geoseg.cli import main
from tests.helpers import CLASSES, ZION_IMAGE, ZION_LABELS


def _write(tmp_path, **kw):
    cfg = dict(output=str(tmp_path / "ck"), bands=["green", "red", "nir"], classes=CLASSES,
               arch_kwargs={"encoder_depth": 3, "decoder_channels": [32, 16, 8]},
               scenes=[{"image": str(ZION_IMAGE), "labels": str(ZION_LABELS)}],
               chip_size=64, batch_size=4, steps=2, eval_every=2, threads=1, trainer={"ray": False})
    cfg.update(kw)
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_unknown_key_is_one_error_line_and_exit_2(tmp_path):
    r = CliRunner().invoke(main, ["train", "--config", str(_write(tmp_path, stepz=3))])
    assert r.exit_code == 2 and "stepz: unknown key" in r.output and "Traceback" not in r.output


def test_train_prints_the_checkpoint_and_its_scores(tmp_path):
    r = CliRunner().invoke(main, ["train", "--config", str(_write(tmp_path)), "--steps", "2", "--seed", "3"])
    assert r.exit_code == 0, r.output
    card = json.loads((tmp_path / "ck" / "model.json").read_text())
    assert f"validation mIoU {card['metrics']['pooled']['miou']}" in r.output
    assert card["training"]["steps_run"] == 2

"""Leave-one-scene-out validation: how a training recipe does on places it never saw.

For each place (a scene, or the scenes of one ``group``: dates of one place are held out
together), a model is trained with the recipe on the other places and scored on every
labelled pixel of the held-out place through the same tiled path as ``geoseg segment``
(:func:`geoseg.segment.pipeline.segment` then :func:`geoseg.segment.evaluate.compare_rasters`),
beside the spectral-index baseline fitted on the same scenes and the fixed rule
(:class:`geoseg.model.baseline.SpectralRuleNet`). Scores are pooled over a place's scenes;
``mean`` averages the places. The result goes into the final model's card
(``metrics.leave_one_scene_out``).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.config import SegmentConfig, TrainConfig, TrainSceneConfig
from geoseg.errors import TrainingError
from geoseg.model.checkpoint import ModelCard, save_checkpoint
from geoseg.model.metrics import scores

log = logging.getLogger(__name__)

Fit = Callable[[TrainConfig], tuple[ModelCard, dict]]
METHODS = ("model", "fitted_baseline", "fixed_rule")
"""The three scored per place: the recipe's model, the fitted spectral-index baseline, the fixed rule."""


def places(cfg: TrainConfig) -> dict[str, list[TrainSceneConfig]]:
    """Scenes by place (``group``, else the image's stem), in config order; at least two places."""
    out: dict[str, list[TrainSceneConfig]] = {}
    for sc in cfg.scenes:
        out.setdefault(sc.place, []).append(sc)
    if len(out) < 2:
        raise TrainingError(f"leave_one_scene_out needs scenes of at least two places; the config has {sorted(out)} "
                            "(give scenes of different places, or different `group` names)")
    return out


def fold_config(cfg: TrainConfig, held_out: str, output: Path, method: str) -> TrainConfig:
    """The training config of one fold: every scene but ``held_out``'s, written to ``output``."""
    update: dict[str, Any] = {
        "scenes": [s for s in cfg.scenes if s.place != held_out],
        "output": str(output),
        "steps": cfg.leave_one_scene_out.steps or cfg.steps,
        "leave_one_scene_out": cfg.leave_one_scene_out.model_copy(update={"enabled": False}),
    }
    if method != "model":
        update.update(arch="spectral_index" if method == "fitted_baseline" else "spectral_rule",
                      encoder="none", arch_kwargs={}, index_channels=[])
    return cfg.model_copy(update=update)


def score_scene(model: Path, scene: TrainSceneConfig, n_classes: int, out: Path, tile_size: int) -> np.ndarray:
    """Confusion matrix of ``model`` on every labelled pixel of ``scene``, through the segment pipeline."""
    from geoseg.segment.evaluate import compare_rasters
    from geoseg.segment.pipeline import segment

    cfg = SegmentConfig(inputs=[scene.image], output=str(out), model=str(model), tile_size=tile_size,
                        device="cpu", overwrite=True, resume=False, runtime={"local": True},
                        outputs={"polygons": False, "confidence": False})
    segment(cfg, progress=False)
    classes = next(out.glob("*_classes.tif"))
    return compare_rasters(classes, scene.labels, n_classes, scene.class_map)


def leave_one_scene_out(cfg: TrainConfig, fit: Fit, workdir: str | Path | None = None) -> dict[str, Any]:
    """Train and score one fold per place; returns the ``metrics.leave_one_scene_out`` block."""
    by_place = places(cfg)
    wanted = cfg.leave_one_scene_out.places
    if wanted is not None:
        unknown = sorted(set(wanted) - set(by_place))
        if unknown:
            raise TrainingError(f"leave_one_scene_out.places: {unknown} are not places of this config; "
                                f"its places are {sorted(by_place)}")
        by_place = {p: s for p, s in by_place.items() if p in wanted}
    names = [c.name for c in cfg.classes]
    n = len(names)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="geoseg-loso-", dir=workdir) as tmp:
        root = Path(tmp)
        result: dict[str, Any] = {}
        for place, held in by_place.items():
            entry: dict[str, Any] = {"scenes": [s.image for s in held]}
            for method in METHODS:
                fold = fold_config(cfg, place, root / place / method, method)
                t1 = time.perf_counter()
                card, state = fit(fold)
                save_checkpoint(fold.output, card, state)
                trained = time.perf_counter() - t1
                per_scene = {}
                total = np.zeros((n, n), np.int64)
                for i, sc in enumerate(held):
                    cm = score_scene(Path(fold.output), sc, n, root / place / f"{method}-run{i}",
                                     cfg.leave_one_scene_out.tile_size)
                    per_scene[Path(sc.image).name] = scores(cm, names)
                    total += cm
                entry[method] = scores(total, names)
                entry[method]["per_scene"] = per_scene
                entry[method]["train_seconds"] = round(trained, 1)
                log.info("leave-one-scene-out %s / %s: mIoU %s", place, method, entry[method]["miou"])
            result[place] = entry
    mean = {m: _mean([result[p][m]["miou"] for p in result]) for m in METHODS}
    margins = [_margin(result[p]) for p in result]
    return {
        "protocol": "per place: trained on the other places' scenes, scored on every labelled pixel of the place "
                    "through the segment pipeline (tiled, whole scene); scores pooled over the place's scenes",
        "steps": cfg.leave_one_scene_out.steps or cfg.steps,
        "places": result,
        "mean_miou": mean,
        "min_margin": None if None in margins else round(min(m for m in margins if m is not None), 4),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return None if len(known) < len(values) else round(float(np.mean(known)), 4)


def _margin(entry: dict[str, Any]) -> float | None:
    """Model mIoU minus the better baseline's, for one place."""
    vals = [entry[m]["miou"] for m in METHODS]
    if None in vals:
        return None
    return float(vals[0] - max(vals[1:]))


def format_table(block: dict[str, Any]) -> str:
    """The leave-one-scene-out block as a Markdown table (per place: mIoU, overall accuracy, per-class IoU)."""
    first = next(iter(block["places"].values()))["model"]
    classes = list(first["per_class"])
    head = ["place", "method", "mIoU", "OA", *[f"IoU {c}" for c in classes]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    for place, entry in block["places"].items():
        for m in METHODS:
            s = entry[m]
            cells = [place, m.replace("_", " "), f(s["miou"]), f(s["overall_accuracy"]),
                     *[f(s["per_class"][c]["iou"]) for c in classes]]
            lines.append("| " + " | ".join(cells) + " |")
    mean = block["mean_miou"]
    lines.append(f"| **mean** | model / fitted / fixed | {f(mean['model'])} / {f(mean['fitted_baseline'])} / "
                 f"{f(mean['fixed_rule'])} |" + " |" * (len(head) - 3))
    return "\n".join(lines)

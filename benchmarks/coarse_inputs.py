"""Benchmark: inputs coarser than the model's ``gsd_m``, resampled to it (the default) or kept at native size.

The labelled NC (Landsat 7, 28.5 m) and Zion (Landsat 8, 30 m) scenes of ``../shared/data`` are block-averaged
by ``--factor`` (3: ≈ 86–90 m, the Pucallpa series' pixel size), their labels aggregated by mode, and each
model segments them twice through the segment pipeline (in-process, no polygons): with the tiles resampled to
the card's ``gsd_m`` and with ``native_resolution``. Scores are mIoU and per-class IoU against the coarsened
labels. Both scenes are training scenes of the bundled models, so the numbers compare the two ways of running
one model, not the models' accuracy on new places (that is leave-one-scene-out, docs/models.md).

    python benchmarks/coarse_inputs.py --factor 3 --models geoseg/model/weights/landcover-unet-mnv2 OTHER_CKPT \\
        --out benchmarks/results_coarse_inputs.json

``results_coarse_inputs.json`` also has version 1 of the bundled model (trained on NC and Zion only): its files
are in git history (``git show 28396f6:geoseg/model/weights/landcover-unet-mnv2/weights.safetensors`` and
``model.json``, into a directory passed as ``OTHER_CKPT``).
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))  # `python benchmarks/<script>.py` finds `benchmarks`

import argparse
import json
import tempfile
from pathlib import Path

import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window

from geoseg import __version__
from geoseg.config import SegmentConfig
from geoseg.model.checkpoint import load_checkpoint
from geoseg.segment.evaluate import evaluate

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SCENES = {"nc_raleigh": ("nc_raleigh/landsat7_2000.tif", "nc_raleigh/labels_4class.tif"),
          "zion_north": ("zion_north/landsat8_2015.tif", "zion_north/labels_4class.tif")}


def coarsen(src_path: Path, dst: Path, resampling: Resampling, factor: int) -> float:
    """``factor`` x ``factor`` blocks of ``src_path`` aggregated by ``resampling`` (the rows and columns past the
    last whole block dropped), written to ``dst`` on the coarser grid (same origin and CRS); its pixel size."""
    with rasterio.open(src_path) as s:
        h, w = s.height // factor, s.width // factor
        window = Window(0, 0, w * factor, h * factor)
        data = s.read(window=window, out_shape=(s.count, h, w), resampling=resampling)
        prof = {k: v for k, v in s.profile.items() if k not in ("blockxsize", "blockysize", "tiled")}
        prof.update(height=h, width=w, transform=s.transform * Affine.scale(factor))
        with rasterio.open(dst, "w", **prof) as d:
            d.write(data)
            d.descriptions = s.descriptions
            d.update_tags(**s.tags())
        return float(max(abs(s.transform.a), abs(s.transform.e)) * factor)


def score(image: Path, labels: Path, model: str, native: bool, out: Path) -> dict:
    """``geoseg evaluate`` of ``model`` on ``image`` (in-process, no confidence), resampled or at native size."""
    cfg = SegmentConfig(device="cpu", overwrite=True, resume=False, native_resolution=native, runtime={"local": True},
                        outputs={"confidence": False})
    m = evaluate(str(image), str(labels), str(out), model, cfg=cfg, progress=False)
    return {"model": m["model"], "miou": m["miou"], "overall_accuracy": m["overall_accuracy"],
            "iou": {c: v["iou"] for c, v in m["per_class"].items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--factor", type=int, default=3, help="block-averaging factor (3: ~90 m pixels)")
    ap.add_argument("--models", nargs="+", default=[str(REPO / "geoseg/model/weights/landcover-unet-mnv2")])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="geoseg-coarse-") as tmp:
        root = Path(tmp)
        for place, (img, lab) in SCENES.items():
            image, labels = root / f"{place}.tif", root / f"{place}_labels.tif"
            pixel_m = coarsen(DATA / img, image, Resampling.average, args.factor)
            coarsen(DATA / lab, labels, Resampling.mode, args.factor)
            for model in args.models:
                for native in (False, True):
                    r = score(image, labels, model, native, root / "out")
                    rows.append({"place": place, "pixel_m": round(pixel_m, 1), "gsd_m": load_checkpoint(model).card.gsd_m,
                                 "native_resolution": native, **r})
                    print(f"{place} {pixel_m:.0f} m  {r['model']}  {'native' if native else 'resampled'}: "
                          f"mIoU {r['miou']:.3f}  " + " ".join(f"{c} {v:.2f}" for c, v in r["iou"].items()
                                                               if v is not None), flush=True)
    if args.out:
        doc = {"protocol": f"NC and Zion scenes block-averaged {args.factor}x{args.factor} (labels: mode), segmented "
                           "in-process without polygons, resampled to the card's gsd_m and at native resolution; "
                           "mIoU against the coarsened labels (training scenes of the bundled models)",
               "geoseg": __version__, "factor": args.factor, "rows": rows}
        args.out.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Models: the checkpoint format (card + safetensors), normalisation, prediction, the spectral baseline, metrics.

The bundled checkpoints are in ``weights/``. Loading never unpickles code.
"""

from geoseg import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "Checkpoint": "checkpoint", "ModelCard": "checkpoint", "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "BandStats": "normalization", "scene_stats": "normalization", "apply": "normalization",
    "Predictor": "predict", "TileProcessor": "predict", "TileResult": "predict", "SceneJob": "predict",
    "SpectralIndexNet": "baseline",
    "confusion_matrix": "metrics", "scores": "metrics",
})

"""Training: scenes and chips (:mod:`~geoseg.train.data`), the loop (:mod:`~geoseg.train.loop`), Ray Train
(:mod:`~geoseg.train.distributed`). Settings: :class:`geoseg.config.TrainConfig`."""

from geoseg import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "train": "loop", "fit": "loop", "train_on_ray": "distributed",
    "Scene": "data", "load_scene": "data", "sample_chips": "data",
})

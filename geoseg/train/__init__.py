"""Training: scenes and chips (:mod:`~geoseg.train.data`), the loop (:mod:`~geoseg.train.loop`), where it runs (:mod:`~geoseg.train.run`), Ray Train
(:mod:`~geoseg.train.distributed`). Settings: :class:`geoseg.config.TrainConfig`."""

from geoseg import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "train": "run", "fit": "loop", "train_on_ray": "distributed",
    "Scene": "data", "load_scene": "data", "sample_chips": "data",
})

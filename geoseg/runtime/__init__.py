"""Where work runs: the one place Ray is started or joined, the model-actor pool, bounded ordered maps.

Everything else in geoseg is plain Python; this subpackage (and Ray Train in
:mod:`geoseg.train.distributed`) is the only one that imports Ray.
"""

from geoseg import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "connect": "cluster", "RaySession": "cluster",
    "LocalExecutor": "local", "RayExecutor": "executors", "Task": "tasks", "TaskOutcome": "tasks",
    "make_executor": "executors",
    "bounded_ordered_map": "maps", "ray_ordered_map": "maps",
})

"""What an executor is given and gives back: tasks (batches of tiles of one scene), their outcomes,
and the :class:`Executor` protocol the segment job drives (:class:`~geoseg.runtime.local.LocalExecutor`,
:class:`~geoseg.runtime.executors.RayExecutor`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from geoseg.model.predict import SceneJob, TileResult
from geoseg.tiling import Tile


@dataclass(frozen=True)
class Task:
    """One call to a worker: a batch of tiles of one scene."""

    scene: int
    tiles: tuple[Tile, ...]


@dataclass
class TaskOutcome:
    task: Task
    results: list[TileResult] | None
    error: str | None = None
    attempts: int = 1


class Executor(Protocol):
    """What the segment job needs of an executor (:class:`~geoseg.runtime.local.LocalExecutor`, :class:`~geoseg.runtime.executors.RayExecutor`)."""

    description: str

    def run(self, jobs: list[SceneJob], tasks: Iterable[Task], retries: int = ...) -> Iterator[TaskOutcome]:
        """Yield one outcome per task, in any order."""
        ...

    def release_actors(self) -> None: ...

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterable[Any]:
        """An ordered, lazy map for the write stage (see :data:`geoseg.vector.blocks.MapFn`)."""
        ...

    @property
    def cpus(self) -> int: ...

    def close(self) -> None: ...

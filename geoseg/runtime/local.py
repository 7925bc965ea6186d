"""The in-process executor: tiles read and predicted in one worker thread of this process, no Ray.

:class:`LocalExecutor` runs the same :class:`~geoseg.model.predict.TileProcessor` as the Ray
actors, in a single worker thread that stays one task ahead of the caller: while the caller
stitches, journals and vectorizes the results of one task, the worker reads and predicts the
next. On CPU that thread (and the inference engine's own threads, which it starts) runs at a
lower scheduling priority (:data:`INFERENCE_NICE`, Linux), so the threads that stitch,
vectorize and write the outputs run first when both cores are busy: they keep up with the
tiles, and little of their work is left when the last tile lands. Total work is unchanged;
it is only done earlier.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from geoseg.model.checkpoint import ModelPayload
from geoseg.model.engines import gpu_present
from geoseg.model.predict import Predictor, SceneJob, TileProcessor
from geoseg.runtime.tasks import Task, TaskOutcome

log = logging.getLogger(__name__)

INFERENCE_NICE = 10
"""Niceness the in-process CPU inference thread takes (Linux; 0..19, higher runs later): at 10 a thread
at the default priority gets about 9 times its share of a contended core."""

LOOKAHEAD = 1
"""Tasks the worker runs ahead of the caller (results held: one task's tiles)."""


def lower_thread_priority(nice: int = INFERENCE_NICE) -> bool:
    """Raise this thread's niceness to at least ``nice`` (Linux, where niceness is per thread; threads it
    starts inherit it). Returns whether it did; elsewhere, or when refused, nothing changes."""
    if not sys.platform.startswith("linux"):
        return False
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) >= nice:
            return False
        os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError as exc:  # a sandbox that forbids it: run at the default priority
        log.debug("could not lower the inference thread's priority: %s", exc)
        return False
    return True


class LocalExecutor:
    """Runs tasks in order in one worker thread of this process (no Ray), one task ahead of the caller.

    ``threads``: the engine's intra-op threads (None: every core); ``nice``: the worker's niceness
    on CPU (None: :data:`INFERENCE_NICE`; 0 keeps the default priority).
    """

    def __init__(self, payload: ModelPayload, device: str, threads: int | None, batch_size: int,
                 nice: int | None = None):
        self._pool: ThreadPoolExecutor | None = ThreadPoolExecutor(1, thread_name_prefix="geoseg-infer")
        cpu = device == "cpu" or (device == "auto" and not gpu_present())
        self.niced = False
        """Whether the worker runs at a lower priority (CPU inference on Linux)."""
        self.processor: TileProcessor | None = self._pool.submit(
            self._start, payload, device, threads, batch_size, (INFERENCE_NICE if nice is None else nice) if cpu else 0
        ).result()
        p = self.processor.predictor
        self.description = f"in-process ({p.device}, {p.engine})"

    def _start(self, payload: ModelPayload, device: str, threads: int | None, batch_size: int,
               nice: int) -> TileProcessor:
        """In the worker: lower its priority first (the engine's threads, started with the model, inherit it)."""
        if nice > 0:
            self.niced = lower_thread_priority(nice)
        return TileProcessor(Predictor.from_payload(payload, device=device, threads=threads), batch_size)

    def run(self, jobs: list[SceneJob], tasks: Iterable[Task], retries: int = 0) -> Iterator[TaskOutcome]:
        """One :class:`TaskOutcome` per task, in order; a task that fails ``retries + 1`` times carries the error."""
        if self._pool is None:
            raise RuntimeError("the executor was released")
        pool = self._pool
        todo = iter(tasks)
        pending: deque[tuple[Task, Future[TaskOutcome]]] = deque()

        def submit() -> None:
            task = next(todo, None)
            if task is not None:
                pending.append((task, pool.submit(self._attempts, jobs[task.scene], task, retries)))

        try:
            for _ in range(1 + LOOKAHEAD):
                submit()
            while pending:
                _, job = pending.popleft()
                outcome = job.result()
                submit()  # the worker starts on it while the caller takes this one
                yield outcome
        finally:  # closed early (an error or Ctrl-C in the caller): drop what has not started
            for _, job in pending:
                job.cancel()

    def _attempts(self, job: SceneJob, task: Task, retries: int) -> TaskOutcome:
        assert self.processor is not None  # tasks are only submitted before release_actors
        results, error, attempts = None, None, 0
        for _ in range(retries + 1):
            attempts += 1
            try:
                results = self.processor.process(job, list(task.tiles))
                break
            except Exception as exc:  # recorded per tile, reported at the end
                error = f"{type(exc).__name__}: {exc}"
        return TaskOutcome(task, results, None if results is not None else error, attempts)

    def release_actors(self) -> None:
        """Inference is over: stop the worker (after the task it runs) and free the model."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self.processor = None  # the model and its engine's memory go with it

    def map(self, fn, items):
        """Ordered, lazy map in this process."""
        return map(fn, items)

    @property
    def cpus(self) -> int:
        return 1

    def close(self) -> None:
        self.release_actors()

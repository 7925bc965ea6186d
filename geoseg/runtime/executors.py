"""Executors of tile batches: a pool of Ray model actors fed a bounded queue, or this process.

Stages stay plain Python (:class:`geoseg.model.predict.TileProcessor`); this module wraps one
in a Ray actor per GPU (``num_gpus=1``) or per CPU slot, submits batches of tiles with
at most ``workers x max_tasks_in_flight_per_worker`` outstanding (so memory does not grow
with the raster), and retries batches whose actor died. :func:`make_executor` picks it or the
in-process :class:`~geoseg.runtime.local.LocalExecutor` (the same processor, without Ray).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from geoseg.config import RuntimeConfig
from geoseg.errors import ConfigError
from geoseg.model.checkpoint import ModelPayload
from geoseg.model.engines import gpu_present
from geoseg.model.predict import Predictor, SceneJob, TileProcessor, TileResult
from geoseg.runtime.cluster import autoscaler_present, connect, local_node_cpus, shutdown, worker_env
from geoseg.runtime.local import LocalExecutor, lower_thread_priority
from geoseg.runtime.maps import ray_ordered_map
from geoseg.runtime.tasks import Executor, Task, TaskOutcome
from geoseg.tiling import Tile

__all__ = ["Executor", "LocalExecutor", "RayExecutor", "Task", "TaskOutcome", "make_executor", "run_in_process"]

log = logging.getLogger(__name__)

ACTOR_GRACE_S = 20.0
"""Seconds the pool waits for the other actors once the first is up, before it starts work without them."""

PROGRESS_S = 15.0
"""While no actor is up (an autoscaler adding nodes), a progress line every this many seconds."""

class RayExecutor:
    """A fixed pool of Ray actors, each holding the model, fed through a bounded window of calls."""

    def __init__(self, payload: ModelPayload, device: str, runtime: RuntimeConfig, batch_size: int):
        import ray

        self._ray = ray
        self._owns_ray = connect(runtime.address)
        try:
            self._start_pool(payload, device, runtime, batch_size)
        except BaseException:
            self.close()
            raise

    def _start_pool(self, payload: ModelPayload, device: str, runtime: RuntimeConfig, batch_size: int) -> None:
        ray = self._ray
        self.actors: list[Any] = []
        self._starting: dict[Any, Any] = {}
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        cpus = int(resources.get("CPU", 1))
        use_gpu = device == "cuda" or (device == "auto" and gpus > 0)
        if device == "cuda" and gpus == 0:
            if not autoscaler_present():  # nothing will ever add one: say so now, not after the start timeout
                raise ConfigError("--device cuda: the Ray cluster has 0 GPUs and no autoscaler can add them; run with "
                                  "--device cpu or --device auto, or add GPU nodes to the cluster")
            if runtime.num_workers is None:
                raise ConfigError("--device cuda: the Ray cluster has 0 GPUs yet; use --device auto or cpu, or set "
                                  "--workers (`runtime.num_workers`) to wait for its autoscaler to add GPU nodes")
        if use_gpu:
            n = runtime.num_workers or gpus
            # two concurrent calls per GPU actor: one reads and normalises while the other runs the model
            options: dict[str, Any] = {"num_gpus": 1, "num_cpus": 1, "max_concurrency": 2}
            dev = "cuda"
        else:
            n = runtime.num_workers or max(1, cpus // runtime.threads_per_worker)
            options = {"num_cpus": runtime.threads_per_worker}
            dev = "cpu"
        env = worker_env()
        if env:  # merged into the job's runtime env (its working_dir etc. stay)
            options["runtime_env"] = {"env_vars": env}
        # The model travels once through the object store; the pool (not Ray) replaces dead
        # actors, so a lost actor's calls are resubmitted to a fresh one (see `run`).
        self._payload_ref = ray.put(payload)
        actor_cls = ray.remote(max_restarts=0)(_TileActor)
        self._new_actor = lambda: actor_cls.options(**options).remote(
            [self._payload_ref], dev, runtime.threads_per_worker, batch_size
        )
        self.per_worker = runtime.max_tasks_in_flight_per_worker
        self.start_timeout = runtime.actor_start_timeout_s
        self._pool_label = f"Ray, {n} {dev.upper()} actor(s)"
        self.description = self._pool_label  # the engine is added once an actor reports it
        self.replaced = 0
        # consecutive failed starts (reset when one comes up); past 2 x n the actor itself cannot
        # start (bad image, no memory for the model...), not bad luck with a node: stop trying
        self._max_start_failures = 2 * n
        self._start_failures = 0
        self._start_error: Exception | None = None
        # actors that are not up yet (waiting for resources, e.g. GPU nodes an autoscaler is
        # adding) join the pool when ready() answers; work starts once the first one is up
        for _ in range(n):
            actor = self._new_actor()
            self._starting[actor.ready.remote()] = actor
        started = time.monotonic()
        deadline = started + self.start_timeout
        need = f"{n} actor(s) with {_resources(options)}"
        while not self.actors:  # work starts once one actor is up
            left = deadline - time.monotonic()
            done: list[Any] = []
            if left > 0 and self._starting:
                done, _ = ray.wait(list(self._starting), num_returns=1, timeout=min(left, PROGRESS_S))
                if not done and time.monotonic() < deadline:
                    log.warning("waiting for the cluster to provide %s: %.0f s of %.0f s (`runtime.actor_start_timeout_s`)"
                                "; cluster now: %s", need, time.monotonic() - started, self.start_timeout,
                                _resources(ray.cluster_resources()))
                    continue
            if not done:
                if not self._starting and self._start_error is not None:
                    raise ConfigError(
                        f"no model actor could start: {self._start_failures} tries failed in a row ({need}); last error: {_last_line(self._start_error)}. Check the workers' image and that "
                        "the model fits their memory (`runtime.threads_per_worker`, --batch-size, --device)"
                    ) from self._start_error
                raise ConfigError(f"no model actor could start within {self.start_timeout:.0f} s "
                                  f"(`runtime.actor_start_timeout_s`): {need} wanted, the cluster has "
                                  f"{_resources(resources)}; add nodes or lower --workers (`runtime.num_workers`)")
            self._admit(done[0])
        ready = ray.wait(list(self._starting), num_returns=len(self._starting), timeout=ACTOR_GRACE_S)[0] if self._starting else []
        for ref in ready:
            self._admit(ref)
        log.info("started %s (%d up, %d starting)", self.description, len(self.actors), len(self._starting))

    def run(self, jobs: list[SceneJob], tasks: Iterable[Task], retries: int = 2) -> Iterator[TaskOutcome]:
        """Yield outcomes as they complete (not in order); at most ``actors x per_worker`` calls out.

        A call that fails (its actor or node died, its result was lost, or it raised) is
        retried up to ``retries`` times on whichever actor is free. A dead actor leaves
        the pool at once and a replacement is started; it joins when it is up, so losing
        a node shrinks the pool instead of stalling it. If no actor is left and none can
        start within ``actor_start_timeout_s`` (or every start fails), the remaining tasks
        fail; ``attempts`` of a task never tried is 0.
        """
        ray = self._ray
        job_refs = [ray.put(j) for j in jobs]
        queue: deque[tuple[Task, int]] = deque()
        source = iter(tasks)
        pending: dict[Any, tuple[Task, int, Any]] = {}
        load: dict[Any, int] = {a: 0 for a in self.actors}

        def submit(task: Task, attempt: int) -> None:
            actor = min(self.actors, key=load.__getitem__)
            pending[actor.process.remote(job_refs[task.scene], task.tiles)] = (task, attempt, actor)
            load[actor] += 1

        exhausted = False
        while True:
            while self.actors and len(pending) < len(self.actors) * self.per_worker and (queue or not exhausted):
                if queue:
                    submit(*queue.popleft())
                    continue
                nxt = next(source, None)
                if nxt is None:
                    exhausted = True
                    break
                submit(nxt, 0)
            if not pending and not queue and exhausted:
                return
            waiting = list(pending) + list(self._starting)
            done, _ = ray.wait(waiting, num_returns=1, timeout=None if pending else self.start_timeout) if waiting else ([], [])
            if not done:  # no actor left and none could start: fail what is left rather than hang
                if waiting:
                    msg = (f"no model actor could be started for {self.start_timeout:.0f} s (cluster resources: "
                           f"{ray.available_resources()}); add nodes or lower --workers (`runtime.num_workers`)")
                else:
                    msg = (f"no model actor is left and {self._start_failures} replacement(s) in a row failed to "
                           f"start (last error: {_last_line(self._start_error or RuntimeError('unknown'))})")
                for task, attempt in queue:
                    yield TaskOutcome(task, None, msg, attempt)
                for task in source:
                    yield TaskOutcome(task, None, msg, 0)
                return
            ref = done[0]
            if ref in self._starting:
                actor = self._starting[ref]
                if self._admit(ref):
                    load[actor] = 0
                    log.info("a model actor joined the pool (%d up)", len(self.actors))
                continue
            task, attempt, actor = pending.pop(ref)
            load[actor] -= 1
            try:
                results = ray.get(ref)
            except ray.exceptions.RayError as exc:
                if isinstance(exc, ray.exceptions.RayActorError) and actor in self.actors:
                    self.actors.remove(actor)
                    self._ray.kill(actor)  # unreachable rather than dead: it must not keep its CPU/GPU
                    log.warning("a model actor died (%d left); starting a replacement", len(self.actors))
                    self._start_replacement()
                msg = f"{type(exc).__name__}: {_last_line(exc)}"
                if attempt < retries:
                    log.warning("tiles %s failed (attempt %d): %s; retrying", [t.index for t in task.tiles], attempt + 1, msg)
                    queue.append((task, attempt + 1))
                else:
                    yield TaskOutcome(task, None, msg, attempt + 1)
                continue
            yield TaskOutcome(task, results, None, attempt + 1)

    def _admit(self, ready_ref) -> bool:
        """Move a starting actor whose ``ready()`` finished into the pool; True if it did.

        An actor that died while starting is replaced, unless starts have failed
        ``2 x workers`` times in a row (then the error is kept in ``_start_error``).
        """
        actor = self._starting.pop(ready_ref)
        try:
            engine = self._ray.get(ready_ref)
        except self._ray.exceptions.RayError as exc:
            self._ray.kill(actor)
            self._start_failures += 1
            self._start_error = exc
            if self._start_failures > self._max_start_failures:
                log.error("a model actor failed to start (%s); %d failures in a row, starting no more",
                          _last_line(exc), self._start_failures)
            else:
                log.warning("a model actor failed to start (%s); starting another", _last_line(exc))
                self._start_replacement()
            return False
        self._start_failures = 0
        self.actors.append(actor)
        self.description = f"{self._pool_label}, {engine}"
        return True

    def _start_replacement(self) -> None:
        """Start a fresh actor; it joins the pool once ``ready()`` answers (it may wait for resources)."""
        actor = self._new_actor()
        self._starting[actor.ready.remote()] = actor
        self.replaced += 1

    def release_actors(self) -> None:
        """Kill the model actors (their CPUs/GPUs go back to the cluster for later stages)."""
        for a in [*self.actors, *self._starting.values()]:
            self._ray.kill(a)
        self.actors = []
        self._starting = {}

    @property
    def cpus(self) -> int:
        """CPUs of the driver's node: where :meth:`map` runs its tasks."""
        return local_node_cpus()

    def map(self, fn, items):
        """Ordered, lazy map over Ray tasks on the driver's node (see :func:`~geoseg.runtime.maps.ray_ordered_map`)."""
        return ray_ordered_map(fn, items)

    def close(self) -> None:
        self.release_actors()
        if self._owns_ray:
            shutdown()


class _TileActor:
    """Ray actor body: one model, one :class:`TileProcessor`."""

    def __init__(self, payload_ref: list, device: str, threads: int, batch_size: int):
        # payload_ref arrives nested in a list so that Ray passes the reference, not the bytes
        import ray

        os.environ.setdefault("GDAL_CACHEMAX", "64")
        if device == "cpu" or (device == "auto" and not gpu_present()):
            lower_thread_priority()  # the driver's stitching, vectorizing and writing run first on shared cores
        payload: ModelPayload = ray.get(payload_ref[0])
        self.processor = TileProcessor(Predictor.from_payload(payload, device=device, threads=threads), batch_size)

    def ready(self) -> str:
        """The engine this actor runs (``onnxruntime`` or ``torch``)."""
        return self.processor.predictor.engine

    def process(self, job: SceneJob, tiles: tuple[Tile, ...]) -> list[TileResult]:
        return self.processor.process(job, list(tiles))


def _resources(res: dict[str, Any]) -> str:
    """Ray resources (actor options or the cluster's) in words: ``1 GPU + 1 CPU each``, ``2 CPU, 0 GPU``."""
    if "num_cpus" in res or "num_gpus" in res:
        parts = [f"{res[k]:g} {name}" for k, name in (("num_gpus", "GPU"), ("num_cpus", "CPU")) if k in res]
        return " + ".join(parts) + " each"
    return ", ".join(f"{res.get(k, 0):g} {k}" for k in ("CPU", "GPU"))


def _last_line(exc: Exception) -> str:
    """The line of a (remote) traceback that names the error, e.g. ``RasterioIOError: ...``."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    for line in reversed(lines):  # pydantic and others append hints after the error line
        if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b.*:", line):
            return line
    return lines[-1]


def run_in_process(runtime: RuntimeConfig, mpx: float, gpu: bool = False) -> tuple[bool, str]:
    """Whether a job with ``mpx`` megapixels to predict runs in this process, and why (for the summary).

    ``runtime.local`` decides when set. Otherwise a job goes to Ray when a cluster is named
    (``runtime.address``, ``$RAY_ADDRESS``) or this process is already connected, and runs in
    this process when it is too small to pay for starting Ray (``runtime.local_max_mpx``) or
    runs on CPU (``gpu`` False): on one machine, one process with every core in ONNX Runtime's
    thread pool is as fast as Ray's actors and holds less memory (measured at 67 Mpx on 2 cores:
    64.8 s and 1.6 GB against 60.1 s and 2.3 GB), so a local Ray pays only for GPUs (an actor each).
    """
    import sys

    if runtime.local is not None:
        return runtime.local, "runtime.local" if runtime.local else ""
    if runtime.address or os.environ.get("RAY_ADDRESS"):
        return False, ""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return False, ""
    if mpx <= runtime.local_max_mpx:
        return True, f"{mpx:.2f} Mpx <= runtime.local_max_mpx {runtime.local_max_mpx:g}: no Ray started"
    if not gpu:
        return True, f"{mpx:.2f} Mpx on CPU without a cluster address: no Ray started (runtime.local: false for a local Ray)"
    return False, ""


def make_executor(payload: ModelPayload, device: str, runtime: RuntimeConfig, batch_size: int,
                  mpx: float = float("inf")) -> Executor:
    """``LocalExecutor`` when :func:`run_in_process` says so for ``mpx`` megapixels, else a ``RayExecutor``."""
    local, why = run_in_process(runtime, mpx, device == "cuda" or (device == "auto" and gpu_present()))
    if local:
        ex = LocalExecutor(payload, device, None, batch_size)  # every core: one process, intra-op threads
        if why:
            ex.description += f"; {why}"
        return ex
    return RayExecutor(payload, device, runtime, batch_size)

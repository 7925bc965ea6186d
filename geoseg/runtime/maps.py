"""Bounded, ordered, lazy maps: ``map(fn, items)`` that runs ahead in parallel with a fixed look-ahead.

Results come back in input order, so a sequential consumer (the block-wise vectorizer's
seam join) can merge them while at most ``lookahead`` results are held. Both maps here
share one skeleton, :func:`bounded_ordered_map`: submit up to ``lookahead`` items, then
yield the oldest result before submitting the next.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from geoseg.runtime.cluster import local_node_cpus

T = TypeVar("T")
R = TypeVar("R")


def bounded_ordered_map(submit: Callable[[T], Any], result: Callable[[Any], R], items: Iterable[T],
                        lookahead: int) -> Iterator[R]:
    """Yield ``result(submit(item))`` for every item, in order, with at most ``lookahead`` submitted ahead."""
    if lookahead < 1:
        raise ValueError(f"lookahead must be >= 1, got {lookahead}")
    queue: deque[Any] = deque()
    for it in items:
        queue.append(submit(it))
        if len(queue) >= lookahead:
            yield result(queue.popleft())
    while queue:
        yield result(queue.popleft())


def ray_ordered_map(fn: Callable[[T], R], items: Iterable[T], lookahead: int | None = None) -> Iterator[R]:
    """Ordered, lazy map of ``fn(item)`` over Ray tasks, at most ``lookahead`` outstanding (default 2 x CPUs).

    The tasks run on this process's node only: they read files the driver staged on its
    local disk, which other nodes do not see. Without CPUs there, it is the builtin map.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    cpus = local_node_cpus()
    if cpus < 1:
        yield from map(fn, items)
        return
    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
    # ray's stubs list only placement-group strategies for `scheduling_strategy`
    remote_fn = ray.remote(num_cpus=1, max_retries=2, scheduling_strategy=here)(fn)  # type: ignore[call-overload]
    fetch: Callable[[Any], R] = ray.get  # one object ref -> its value
    yield from bounded_ordered_map(remote_fn.remote, fetch, items, lookahead or 2 * cpus)

"""Bounded ordered maps: same results and order as the builtin map, never more than the look-ahead in flight."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geoseg.runtime.maps import bounded_ordered_map, ray_ordered_map


@given(st.lists(st.integers(), max_size=40), st.integers(1, 8))
def test_bounded_ordered_map_is_map_with_bounded_lookahead(items, lookahead):
    submitted, fetched, peak = [], [], [0]

    def submit(x):
        submitted.append(x)
        peak[0] = max(peak[0], len(submitted) - len(fetched))
        return ("ticket", x)

    def result(ticket):
        fetched.append(ticket)
        return ticket[1] * 2

    out = bounded_ordered_map(submit, result, iter(items), lookahead)
    assert submitted == []  # lazy: nothing runs before the first next()
    assert list(out) == [x * 2 for x in items]
    assert peak[0] <= lookahead


def test_bounded_ordered_map_rejects_no_lookahead():
    with pytest.raises(ValueError, match="lookahead"):
        list(bounded_ordered_map(lambda x: x, lambda x: x, [1], 0))


def _square(x: int) -> int:
    return x * x


@pytest.mark.slow
def test_ray_ordered_map_keeps_order(ray_cluster):
    assert list(ray_ordered_map(_square, range(25), lookahead=3)) == [x * x for x in range(25)]

"""The generator's log-linear histogram against known distributions: a percentile is never below
the true value and at most 1/1024 above it; counts, min, max, mean and merge are exact."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgate._native import loadgen

Histogram = loadgen.Histogram
MAX_VALUE, SUB_BUCKETS = loadgen.MAX_VALUE, loadgen.SUB_BUCKETS

PRECISION = 1 / SUB_BUCKETS


def true_percentile(values: list[int], q: float) -> int:
    """The value at rank ceil(q/100 * n) (1-based), HdrHistogram's definition."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def test_small_values_are_exact() -> None:
    h = Histogram()
    for v in range(1, 1001):
        h.record(v)
    assert h.count == 1000
    assert (h.min, h.max) == (1, 1000)
    assert h.mean == pytest.approx(500.5)
    assert h.percentile(50) == 500
    assert h.percentile(99) == 990
    assert h.percentile(100) == 1000


def test_uniform_microseconds_within_precision() -> None:
    # 1 µs .. 100 ms in ns, uniform: percentiles are q% of the range
    h = Histogram()
    values = list(range(1_000, 100_000_001, 1_000))
    for v in values:
        h.record(v)
    for q in (50, 90, 99, 99.9):
        want = true_percentile(values, q)
        got = h.percentile(q)
        assert want <= got <= want * (1 + PRECISION), (q, want, got)
    assert h.max == 100_000_000


def test_bimodal_tail_is_seen() -> None:
    """99 % fast (1 ms) and 1 % stalled (1 s): p99 is fast, p99.9 and max are the stall."""
    h = Histogram()
    h.record(1_000_000, 9_900)
    h.record(1_000_000_000, 100)
    assert h.percentile(99) <= 1_000_000 * (1 + PRECISION)
    assert h.percentile(99.5) >= 1_000_000_000
    assert h.max == 1_000_000_000


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**11), min_size=1, max_size=400),
       st.sampled_from([0.1, 1, 25, 50, 75, 90, 99, 99.9, 100]))
def test_random_inputs_within_precision(values: list[int], q: float) -> None:
    h = Histogram()
    for v in values:
        h.record(v)
    want = true_percentile(values, q) if q > 0 else min(values)
    got = h.percentile(q)
    assert want <= got <= max(want * (1 + PRECISION), want + 1), (want, got)
    assert h.count == len(values)
    assert h.max == max(values) and h.min == min(values)


def test_bucket_bounds_cover_the_value() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        v = rng.randrange(0, 10**12)
        lo, hi = Histogram.bucket_bounds(v)
        assert lo <= v <= hi
        assert hi - lo <= max(0, lo * PRECISION)


def test_merge_copy_reset_and_clamp() -> None:
    a, b = Histogram(), Histogram()
    a.record(10, 3)
    b.record(5_000_000, 1)
    b.record(-5)  # a clock that went backwards counts as 0
    a.merge(b)
    assert a.count == 5 and a.min == 0 and a.max == 5_000_000
    c = a.copy()
    a.reset()
    assert a.count == 0 and a.max == 0 and a.percentile(99) == 0
    assert c.count == 5
    big = Histogram()
    big.record(MAX_VALUE * 4)
    assert big.max == MAX_VALUE
    assert sum(n for _lo, _hi, n in c.buckets()) == 5

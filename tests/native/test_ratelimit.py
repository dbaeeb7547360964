"""Tests for fastgate._native.ratelimit against its oracle fastgate.ratelimit_model.

Fixed clocks everywhere except the default-clock test; hypothesis drives native and model with the
same operations and requires identical Decisions, table contents and counters at every step.
"""

from __future__ import annotations

import gc
import math
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastgate import ratelimit_model as model
from fastgate._native import ratelimit as native

IMPLS = [pytest.param(native, id="native"), pytest.param(model, id="model")]
SETTINGS = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])


def fields(d) -> tuple:
    return (d.allowed, d.limit, d.remaining, d.reset_after, d.retry_after)


def ns(t: float) -> int:
    """The nanosecond the limiters see for a clock reading t."""
    return math.floor(t * 1e9 + 0.5)


class FakeClock:
    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


# -- GCRA, fixed clock ----------------------------------------------------------------------------


@pytest.mark.parametrize("rl", IMPLS)
def test_gcra_60_per_minute_burst_then_one_per_second(rl):
    lim = rl.GcraLimiter(requests=60, per=60.0, max_keys=10)
    for i in range(60):
        d = lim.check("k", now=0.0)
        assert fields(d) == (True, 60, 59 - i, float(i + 1), 0.0)
    assert fields(lim.check("k", now=0.0)) == (False, 60, 0, 60.0, 1.0)
    assert fields(lim.check("k", now=0.5)) == (False, 60, 0, 59.5, 0.5)
    assert fields(lim.check("k", now=1.0)) == (True, 60, 0, 60.0, 0.0)
    assert fields(lim.check("k", now=1.0)) == (False, 60, 0, 60.0, 1.0)
    # Half-way drained: 30 s later 30 requests fit again and the bucket is full 30 s after that.
    assert fields(lim.peek("k", now=31.0)) == (True, 60, 30, 30.0, 0.0)
    assert fields(lim.peek("k", now=61.0)) == (True, 60, 60, 0.0, 0.0)
    assert fields(lim.peek("k", now=1000.0)) == (True, 60, 60, 0.0, 0.0)


@pytest.mark.parametrize("rl", IMPLS)
def test_gcra_cost(rl):
    lim = rl.GcraLimiter(60, 60.0)
    assert fields(lim.check("k", cost=10, now=0.0)) == (True, 60, 50, 10.0, 0.0)
    # 51 does not fit (50 left): denied, retry when one more has been emitted, state unchanged.
    assert fields(lim.check("k", cost=51, now=0.0)) == (False, 60, 50, 10.0, 1.0)
    assert fields(lim.check("k", cost=50, now=0.0)) == (True, 60, 0, 60.0, 0.0)
    assert fields(lim.check("k", cost=5, now=2.0)) == (False, 60, 2, 58.0, 3.0)
    assert fields(lim.check("k", cost=5, now=5.0)) == (True, 60, 0, 60.0, 0.0)


@pytest.mark.parametrize("rl", IMPLS)
def test_gcra_cost_above_burst_is_never_admitted(rl):
    lim = rl.GcraLimiter(60, 60.0)
    d = lim.check("k", cost=61, now=0.0)
    assert fields(d) == (False, 60, 60, 0.0, math.inf)
    assert len(lim) == 0  # a denied unknown key is not tracked
    lim.check("k", now=0.0)
    assert fields(lim.check("k", cost=1000, now=0.0)) == (False, 60, 59, 1.0, math.inf)
    assert fields(lim.check("k", cost=10**30, now=0.0)) == (False, 60, 59, 1.0, math.inf)
    sw = rl.SlidingWindow(60, 60.0)
    assert fields(sw.check("k", cost=10**30, now=0.0)) == (False, 60, 60, 0.0, math.inf)


@pytest.mark.parametrize("rl", IMPLS)
def test_gcra_peek_consumes_nothing(rl):
    lim = rl.GcraLimiter(3, 3.0)
    assert fields(lim.peek("k", now=0.0)) == (True, 3, 3, 0.0, 0.0)
    assert len(lim) == 0 and "k" not in lim
    lim.check("k", now=0.0)
    for _ in range(10):
        assert fields(lim.peek("k", now=0.0)) == (True, 3, 2, 1.0, 0.0)
    lim.check("k", cost=2, now=0.0)
    assert fields(lim.peek("k", now=0.0)) == (False, 3, 0, 3.0, 1.0)
    assert fields(lim.check("k", now=1.0)) == (True, 3, 0, 3.0, 0.0)


@pytest.mark.parametrize("rl", IMPLS)
def test_gcra_denied_requests_consume_nothing(rl):
    lim = rl.GcraLimiter(5, 1.0)
    for _ in range(5):
        assert lim.check("k", now=0.0).allowed
    for _ in range(1000):
        assert not lim.check("k", now=0.1).allowed
    assert lim.check("k", now=0.2).allowed  # exactly one T after the burst


@pytest.mark.parametrize("rl", IMPLS)
def test_gcra_burst_option(rl):
    lim = rl.GcraLimiter(10, 1.0, burst=1)  # strict spacing: one every 100 ms, no burst
    assert fields(lim.check("k", now=0.0)) == (True, 10, 0, 0.1, 0.0)
    assert fields(lim.check("k", now=0.05)) == (False, 10, 0, 0.05, 0.05)
    assert lim.check("k", now=0.1).allowed
    assert lim.burst == 1


@pytest.mark.parametrize("rl", IMPLS)
def test_gcra_window_of_length_per_can_hold_twice_requests(rl):
    """GCRA is a token bucket: `requests` at once, then one per T. A closed window of length
    `per` can therefore see 2*requests, never more (the bound is burst + W/T). It is not a
    "never more than requests in any per" limiter; burst=1 gives that (requests + 1 when closed)."""
    lim = rl.GcraLimiter(60, 60.0)
    admitted = sum(lim.check("k", now=0.0).allowed for _ in range(100))
    admitted += sum(lim.check("k", now=float(t)).allowed for t in range(1, 61))
    assert admitted == 120
    strict = rl.GcraLimiter(60, 60.0, burst=1)
    assert sum(strict.check("k", now=t * 0.5).allowed for t in range(121)) == 61


@given(
    requests=st.integers(1, 1000),
    per=st.one_of(st.sampled_from([1.0, 0.3, 7.0, 60.0, 0.001, 3600.0]), st.floats(1e-6, 1e5)),
    t0=st.one_of(st.sampled_from([0.0, 12345.678, 1.7e9]), st.floats(-1e6, 1e8)),
)
@SETTINGS
def test_gcra_admits_exactly_burst_at_one_instant(requests, per, t0):
    # With doubles, T = per/requests is inexact and the last of the burst flips with the rate.
    lim = native.GcraLimiter(requests, per)
    got = [lim.check("k", now=t0).allowed for _ in range(requests + 1)]
    assert got == [True] * requests + [False]


# -- SlidingWindow, fixed clock -------------------------------------------------------------------


@pytest.mark.parametrize("rl", IMPLS)
def test_sliding_weighted_estimate(rl):
    sw = rl.SlidingWindow(100, 1.0)
    for i in range(100):
        assert fields(sw.check("k", now=0.5)) == (True, 100, 99 - i, 1.5, 0.0)
    # Full: curr becomes prev at 1.0; at 1.01 it weighs 100 * 0.99 = 99, so 1 more fits.
    assert fields(sw.check("k", now=0.5)) == (False, 100, 0, 1.5, 0.51)
    assert fields(sw.check("k", now=1.005)) == (False, 100, 0, 0.995, 0.005)
    assert fields(sw.check("k", now=1.01)) == (True, 100, 0, 1.99, 0.0)
    assert fields(sw.peek("k", now=1.2)) == (True, 100, 19, 1.8, 0.0)
    assert fields(sw.check("k", cost=20, now=1.2)) == (False, 100, 19, 1.8, 0.01)
    assert fields(sw.check("k", cost=19, now=1.2)) == (True, 100, 0, 1.8, 0.0)
    # Two windows later everything has slid out.
    assert fields(sw.peek("k", now=3.0)) == (True, 100, 100, 0.0, 0.0)


@pytest.mark.parametrize("rl", IMPLS)
def test_sliding_cost_above_requests_and_peek(rl):
    sw = rl.SlidingWindow(10, 1.0)
    assert fields(sw.check("k", cost=11, now=0.0)) == (False, 10, 10, 0.0, math.inf)
    assert len(sw) == 0
    sw.check("k", cost=4, now=0.25)
    for _ in range(5):
        assert fields(sw.peek("k", now=0.25)) == (True, 10, 6, 1.75, 0.0)
    assert fields(sw.check("k", cost=7, now=0.25)) == (False, 10, 6, 1.75, 1.0)


@pytest.mark.parametrize("rl", IMPLS)
def test_sliding_worst_case_overshoot_in_a_trailing_window(rl):
    """The documented worst case: the previous window's requests all came at its very end, the
    estimate spreads them out, so a trailing window of length per holds 2*requests - 1."""
    sw = rl.SlidingWindow(100, 1.0)
    assert sum(sw.check("k", now=0.999999999).allowed for _ in range(100)) == 100
    # 1.999999998: the previous window weighs 100 * 2e-9, so 99 more fit; all 199 lie in
    # (0.999999998, 1.999999998], a window of length 1.0.
    assert sum(sw.check("k", now=1.999999998).allowed for _ in range(100)) == 99


# -- native == model ------------------------------------------------------------------------------

KEYS = ["a", "b", "c", "d", "e"]


def op_strategy(max_cost: int):
    return st.tuples(
        st.sampled_from(["check", "check", "check", "peek", "sweep"]),
        st.sampled_from(KEYS),
        st.one_of(st.just(0.0), st.floats(0.0, 3.0), st.integers(0, 40).map(lambda k: k * 0.25)),
        st.integers(1, max_cost),
    )


T0 = st.one_of(st.sampled_from([0.0, 1e-9, 12345.678, 1.7e9]), st.floats(-1e5, 1e7))
PER = st.one_of(st.sampled_from([1.0, 0.3, 2.5, 7.0, 60.0]), st.floats(0.01, 100.0))


def run_both(make, ops, t0, per):
    nat, ref = make(native), make(model)
    t = t0
    for kind, key, dt, cost in ops:
        t += dt * per
        if kind == "check":
            a, b = nat.check(key, cost, t), ref.check(key, cost, t)
        elif kind == "peek":
            a, b = nat.peek(key, now=t), ref.peek(key, now=t)
        else:
            assert nat.sweep(t) == ref.sweep(t)
            continue
        assert fields(a) == fields(b), (kind, key, t, cost)
        assert len(nat) == len(ref) <= nat.max_keys
        assert (nat.evictions, nat.reclaimed) == (ref.evictions, ref.reclaimed)
        assert [k in nat for k in KEYS] == [k in ref for k in KEYS]


@given(
    requests=st.integers(1, 12),
    burst=st.one_of(st.none(), st.integers(1, 12)),
    per=PER,
    max_keys=st.integers(1, 6),
    t0=T0,
    ops=st.lists(op_strategy(14), max_size=80),
)
@SETTINGS
def test_gcra_native_equals_model(requests, burst, per, max_keys, t0, ops):
    def make(rl):
        return rl.GcraLimiter(requests, per, max_keys, clock=lambda: 0.0, burst=burst)

    run_both(make, ops, t0, per)


@given(
    requests=st.integers(1, 12),
    per=PER,
    max_keys=st.integers(1, 6),
    t0=T0,
    ops=st.lists(op_strategy(14), max_size=80),
)
@SETTINGS
def test_sliding_native_equals_model(requests, per, max_keys, t0, ops):
    def make(rl):
        return rl.SlidingWindow(requests, per, max_keys, clock=lambda: 0.0)

    run_both(make, ops, t0, per)


# -- what any window can hold -----------------------------------------------------------------------

ARRIVALS = st.lists(
    st.tuples(
        st.one_of(st.just(0.0), st.floats(0.0, 0.5), st.integers(0, 8).map(lambda k: k / 8)),
        st.integers(1, 4),
    ),
    min_size=1,
    max_size=120,
)


def admitted_log(lim, arrivals, t0, per):
    log, t = [], t0
    for dt, cost in arrivals:
        t += dt * per
        if lim.check("k", cost, t).allowed:
            log.append((ns(t), cost))
    return log


@given(
    requests=st.integers(1, 10),
    burst=st.one_of(st.none(), st.integers(1, 10)),
    per=PER,
    t0=T0,
    arrivals=ARRIVALS,
)
@SETTINGS
def test_gcra_any_window_holds_at_most_burst_plus_w_over_t(requests, burst, per, t0, arrivals):
    lim = native.GcraLimiter(requests, per, burst=burst)
    per_ns, b = math.floor(per * 1e9 + 0.5), lim.burst
    log = admitted_log(lim, arrivals, t0, per)
    for i in range(len(log)):
        total = 0
        for j in range(i, len(log)):
            total += log[j][1]
            width = log[j][0] - log[i][0]
            # total <= burst + width / T, with T = per_ns / requests, in exact integers
            assert total * per_ns <= b * per_ns + width * requests


@given(requests=st.integers(1, 10), per=PER, t0=T0, arrivals=ARRIVALS)
@SETTINGS
def test_sliding_any_window_up_to_per_holds_at_most_r_times_1_plus_w_over_per(
    requests, per, t0, arrivals
):
    lim = native.SlidingWindow(requests, per)
    per_ns = math.floor(per * 1e9 + 0.5)
    log = admitted_log(lim, arrivals, t0, per)
    for i in range(len(log)):
        total = 0
        for j in range(i, len(log)):
            width = log[j][0] - log[i][0]
            if width > per_ns:
                break
            total += log[j][1]
            assert total * per_ns <= requests * per_ns + requests * width


# -- bounded key table ----------------------------------------------------------------------------


@pytest.mark.parametrize("rl", IMPLS)
def test_table_never_exceeds_max_keys(rl):
    lim = rl.GcraLimiter(10, 10.0, max_keys=100)
    for i in range(1000):
        assert lim.check(f"10.0.{i // 256}.{i % 256}", now=0.0).allowed
        assert len(lim) <= 100
    assert len(lim) == 100
    # All 900 extra keys arrived while every bucket was still draining: each evicted a live key.
    assert (lim.evictions, lim.reclaimed) == (900, 0)
    # Most recent keys survive, oldest are gone.
    assert "10.0.3.231" in lim and "10.0.0.0" not in lim


@pytest.mark.parametrize("rl", IMPLS)
def test_table_evicts_expired_before_live(rl):
    lim = rl.GcraLimiter(10, 10.0, max_keys=4)  # T = 1 s
    lim.check("heavy", cost=10, now=0.0)  # LRU; its bucket is full again at 10 s
    lim.check("light", now=0.0)  # full again at 1 s
    lim.check("x", cost=10, now=4.0)
    lim.check("y", cost=10, now=4.0)
    lim.check("new", now=5.0)  # table full; LRU "heavy" is live, "light" expired
    assert "heavy" in lim and "light" not in lim and "new" in lim
    assert (lim.evictions, lim.reclaimed) == (0, 1)
    lim.check("newer", now=5.0)  # nothing expired: the LRU goes
    assert "heavy" not in lim and "newer" in lim
    assert (lim.evictions, lim.reclaimed) == (1, 1)
    # An evicted key that was not idle comes back with a full bucket (the documented trade-off).
    assert lim.peek("heavy", now=5.0).remaining == 10


@pytest.mark.parametrize("rl", IMPLS)
def test_table_lru_is_refreshed_by_check_not_peek(rl):
    lim = rl.GcraLimiter(10, 10.0, max_keys=2)
    lim.check("a", now=0.0)
    lim.check("b", now=0.0)
    lim.peek("a", now=0.0)
    lim.check("c", now=0.0)  # evicts a: peek did not refresh it
    assert "a" not in lim and "b" in lim
    assert not lim.check("b", cost=100, now=0.0).allowed  # denied still counts as use
    lim.check("d", now=0.0)
    assert "b" in lim and "c" not in lim


@pytest.mark.parametrize("rl", IMPLS)
def test_table_tail_expired_is_reclaimed_and_sweep(rl):
    lim = rl.SlidingWindow(5, 1.0, max_keys=3)
    for k in "abc":
        lim.check(k, now=0.5)
    lim.check("d", now=2.0)  # a's counts have slid out: reclaimed, not evicted
    assert (lim.evictions, lim.reclaimed, len(lim)) == (0, 1, 3)
    assert lim.sweep(now=2.0) == 2 and len(lim) == 1 and "d" in lim
    assert lim.sweep(now=2.0) == 0


def test_native_flood_of_distinct_keys_keeps_memory_bounded():
    lim = native.GcraLimiter(60, 60.0, max_keys=10_000)
    for i in range(20_000):
        lim.check(f"k{i}", now=0.0)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for i in range(20_000, 300_000):
        lim.check(f"k{i}", now=0.0)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(lim) == 10_000
    assert lim.evictions == 290_000
    # Keys are replaced, not added: allow churn in dict slack, not 280k entries (~20 MB).
    assert grown < 2_000_000, grown


# -- clock, validation ----------------------------------------------------------------------------


@pytest.mark.parametrize("rl", IMPLS)
def test_default_clock_is_monotonic(rl):
    lim = rl.GcraLimiter(10, 10.0)  # T = 1 s
    assert lim.clock is time.monotonic
    before = time.monotonic()
    assert lim.check("k").allowed
    d = lim.peek("k", now=time.monotonic())
    # The check stamped the key at a monotonic time at or after `before`.
    assert 0.0 < d.reset_after <= 1.0
    assert lim.peek("k", now=before - 1.0).reset_after >= 1.0


@pytest.mark.parametrize("rl", IMPLS)
def test_injected_clock(rl):
    clock = FakeClock(100.0)
    lim = rl.SlidingWindow(2, 1.0, clock=clock)
    assert lim.check("k").allowed and lim.check("k").allowed
    assert lim.check("k").retry_after == 1.5  # at 101.5 prev weighs 1
    clock.t = 101.5
    assert fields(lim.check("k")) == (True, 2, 0, 1.5, 0.0)
    assert lim.sweep() == 0
    clock.t = 103.0
    assert lim.sweep() == 1


@pytest.mark.parametrize("rl", IMPLS)
@pytest.mark.parametrize(
    "args, kwargs, exc",
    [
        ((0, 1.0), {}, ValueError),
        ((2**32 + 1, 1.0), {}, ValueError),
        ((10, 0.0), {}, ValueError),
        ((10, -1.0), {}, ValueError),
        ((10, float("nan")), {}, ValueError),
        ((10, float("inf")), {}, ValueError),
        ((10, 1e-12), {}, ValueError),
        ((10, 1.0, 0), {}, ValueError),
        ((10, 1.0), {"burst": 0}, ValueError),
        ((10.5, 1.0), {}, TypeError),
        ((10, 1.0, 10, "not callable"), {}, TypeError),
    ],
)
def test_bad_config(rl, args, kwargs, exc):
    cls = rl.GcraLimiter if kwargs else rl.SlidingWindow
    with pytest.raises(exc):
        cls(*args, **kwargs)
    if cls is rl.SlidingWindow:
        with pytest.raises(exc):
            rl.GcraLimiter(*args)


@pytest.mark.parametrize("rl", IMPLS)
def test_bad_calls(rl):
    for lim in (rl.GcraLimiter(10, 1.0), rl.SlidingWindow(10, 1.0)):
        for bad in (0, -1):
            with pytest.raises(ValueError, match="cost must be >= 1"):
                lim.check("k", bad, 0.0)
        with pytest.raises(TypeError):
            lim.check("k", 1.5, 0.0)
        for now in (float("nan"), float("inf"), 1e10):
            with pytest.raises(ValueError, match="now must be a finite time"):
                lim.check("k", 1, now)
        with pytest.raises(TypeError):
            lim.check(["unhashable"], 1, 0.0)
        assert len(lim) == 0


def test_native_without_init_does_not_crash():
    for cls in (native.GcraLimiter, native.SlidingWindow):
        lim = cls.__new__(cls)
        assert lim.check("k", now=0.0).limit == 1
        assert len(lim) == 1 and lim.sweep(now=10.0) == 1
    lim = native.GcraLimiter(10, 1.0)
    lim.check("k", now=0.0)
    with pytest.raises(TypeError, match="re-initialised"):
        lim.__init__(10, 1.0, 1)
    assert lim.check("k", now=0.0).remaining == 8

"""Micro-benchmarks: fastgate._native.ratelimit against its pure-Python reference model.

Invariant: both sides run the same calls on the same keys; timings are reported, never asserted
(only the Decisions are). Each round is a batch of calls, so ns/call = round time / BATCH.
"""

from __future__ import annotations

import time

import pytest

from fastgate import ratelimit_model as model
from fastgate._native import ratelimit as native

BATCH = 10_000
KEYS = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(BATCH)]
IMPLS = [pytest.param(native, id="native"), pytest.param(model, id="model")]
CLASSES = ["GcraLimiter", "SlidingWindow"]


def make(rl, cls: str, max_keys: int = 100_000):
    # A rate nobody reaches in a benchmark: every call takes the same (admitted) path.
    return getattr(rl, cls)(1_000_000_000, 1.0, max_keys)


def one_key(lim):
    check = lim.check
    for _ in range(BATCH):
        check("203.0.113.7")


def rotating(lim):
    check = lim.check
    for k in KEYS:
        check(k)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("rl", IMPLS)
def test_check_existing_key(benchmark, rl, cls):
    lim = make(rl, cls)
    lim.check("203.0.113.7")
    benchmark(one_key, lim)
    assert len(lim) == 1


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("rl", IMPLS)
def test_check_10k_rotating_keys(benchmark, rl, cls):
    lim = make(rl, cls)
    rotating(lim)
    benchmark(rotating, lim)
    assert len(lim) == BATCH


@pytest.mark.parametrize("rl", IMPLS)
def test_check_new_key_into_full_table(benchmark, rl):
    """Flood path: every call is an unknown key that evicts a live one."""
    lim = make(rl, "GcraLimiter", max_keys=1_000)
    counter = iter(range(10**9))

    def flood():
        check = lim.check
        for _ in range(BATCH):
            check(f"k{next(counter)}")

    benchmark(flood)
    assert len(lim) == 1_000


def per_call_ns(fn, lim, repeat: int = 7) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn(lim)
        best = min(best, time.perf_counter_ns() - t0)
    return best / BATCH


def test_print_native_vs_model_ratio(capsys):
    """Prints ns/call (best of 7 batches) and the native speed-up; not pass/fail on timing."""
    rows = []
    for cls in CLASSES:
        for label, fn in (("existing key", one_key), ("10k rotating keys", rotating)):
            nat, ref = make(native, cls), make(model, cls)
            rotating(nat), rotating(ref)
            nat.check("203.0.113.7"), ref.check("203.0.113.7")
            n, m = per_call_ns(fn, nat), per_call_ns(fn, ref, repeat=3)
            rows.append(f"{cls:<14} {label:<18} native {n:7.0f} ns  model {m:7.0f} ns  x{m / n:5.1f}")
    lim = make(native, "GcraLimiter", max_keys=100_000)
    for i in range(100_000):
        lim.check(f"k{i}", now=0.0)
    t0 = time.perf_counter_ns()
    lim.sweep(now=0.0)  # nothing expired: a full walk
    rows.append(f"GcraLimiter    sweep of a full 100k table: {(time.perf_counter_ns() - t0) / 1e3:.0f} us")
    with capsys.disabled():
        print("\nrate-limit check, per call (includes the Python loop, ~10 ns):")
        print("\n".join(rows))

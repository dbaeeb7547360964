"""The objective, the capacity search and the --baseline check on synthetic steps (a queueing
model stands in for a gateway; the real thing is in test_runs.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastgate.bench import report
from fastgate.bench.capacity import Objective, find_capacity, knee_of
from fastgate.bench.measure import StepResult


def step(rate: float, p99: float, *, sent: int = 1000, errors: int = 0, s429: int = 0,
         p99_no429: float | None = None) -> StepResult:
    return StepResult("gateway", rate, 1.0, sent=sent, completed=sent - errors, errors=errors,
                      achieved=rate, latency_ms={"p50": p99 / 3, "p90": p99 / 2, "p99": p99, "max": p99 * 2},
                      latency_no429_ms={"p99": p99 if p99_no429 is None else p99_no429},
                      rate_limited=s429, status={"200": sent - errors - s429, "429": s429})


def model(capacity: float):
    """M/M/1-like: 1 ms at no load, growing as 1 / (1 - load); errors past 110 %."""
    calls: list[float] = []

    def measure(rate: float) -> StepResult:
        calls.append(rate)
        load = rate / capacity
        p99 = 1.0 / (1 - load) if load < 1 else 1000.0
        return step(rate, p99, errors=0 if load < 1.1 else 500)

    return measure, calls


def test_judge() -> None:
    o = Objective(5.0)
    assert o.judge(step(100, 4.9)).passed
    s = o.judge(step(100, 5.1))
    assert not s.passed and "p99 5.10 ms > 5 ms" in s.verdict
    s = o.judge(step(100, 1.0, errors=2))
    assert not s.passed and "2 failures of 1,000" in s.verdict
    assert not o.judge(step(0.5, 0.0, sent=0)).passed  # nothing was due: not a pass


def test_429_count_unless_excluded() -> None:
    s = step(100, 9.0, s429=50, p99_no429=2.0)
    assert not Objective(5.0).judge(s).passed
    assert Objective(5.0, exclude_429=True).judge(s).passed


def test_search_finds_the_boundary_within_precision() -> None:
    measure, calls = model(capacity=4000)
    # p99 <= 5 ms  <=>  load <= 0.8  <=>  rate <= 3200
    search = find_capacity(measure, Objective(5.0), start=250, limit=50_000)
    assert calls[:5] == [250, 500, 1000, 2000, 4000]  # doubling first
    assert 3200 * 0.95 <= search.capacity <= 3200
    assert search.first_failure > 3200
    assert not search.generator_bound
    assert search.knee is not None and search.knee <= search.capacity


def test_search_stops_at_the_honest_limit() -> None:
    measure, calls = model(capacity=1_000_000)
    search = find_capacity(measure, Objective(5.0), start=1000, limit=5000)
    assert max(calls) == 5000
    assert search.generator_bound and search.capacity == 5000


def test_search_steps_down_when_the_start_fails() -> None:
    measure, _ = model(capacity=400)
    search = find_capacity(measure, Objective(5.0), start=2000, limit=50_000)
    assert search.capacity is not None and search.capacity <= 320
    assert search.steps[0].passed is False


def test_knee() -> None:
    # p90 = p99 / 2 here: the lowest is 0.5 ms, so the knee is the last step with p90 <= 1.5 ms
    steps = [step(100, 1.2), step(200, 1.0), step(400, 2.9), step(800, 3.5), step(1600, 9.0)]
    assert knee_of(steps) == 400
    assert knee_of([step(100, 1.0), step(200, 1.0, errors=5), step(400, 1.0)]) == 100


def results(capacity: float | None, slo: float = 5.0) -> dict:
    return {"schema": report.SCHEMA, "objective": {"p99_ms": slo}, "capacity": {"rate": capacity}}


def test_baseline_regression_message(tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text(json.dumps(results(10_000)))
    ok, message = report.check_baseline(old, results(8_000), max_drop=10)
    assert not ok
    assert message == ("capacity regression: 20.0% below the baseline (10,000 -> 8,000 req/s at "
                       "p99 ≤ 5 ms); --max-drop allows 10%")
    ok, message = report.check_baseline(old, results(9_500), max_drop=10)
    assert ok and "-5.0% change" in message
    ok, message = report.check_baseline(old, results(None), max_drop=10)
    assert not ok and "no rate met the objective" in message


def test_baseline_that_cannot_be_compared(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(report.BaselineError, match="not a `fastgate bench --out` file"):
        report.check_baseline(bad, results(1), 10)
    nocap = tmp_path / "nocap.json"
    nocap.write_text(json.dumps(results(None)))
    with pytest.raises(report.BaselineError, match="has no capacity"):
        report.check_baseline(nocap, results(1), 10)

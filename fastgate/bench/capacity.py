"""The latency objective and the search for the highest arrival rate that meets it.

judge() decides one step: p99 (optionally without 429s) within the objective and failures
(transport errors, timeouts, unsent, non-429 4xx/5xx) at most `max_error_ratio` of what was due.
find_capacity() doubles the rate from `start` until a step fails (or the generator's honest
limit is reached), then bisects between the last pass and the first fail.
Invariant: the search never asks for more than `limit` (80 % of the generator's own ceiling), so
a reported capacity is never the generator's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .measure import StepResult

HONEST_FRACTION = 0.8  # a gateway figure above 80 % of the generator's ceiling is not reported


@dataclass(frozen=True)
class Objective:
    p99_ms: float
    exclude_429: bool = False
    max_error_ratio: float = 0.001  # 0.1 %

    def judge(self, step: StepResult) -> StepResult:
        due = step.sent + step.unsent
        failures = step.failures(include_429=not self.exclude_429)
        p99 = step.p99(self.exclude_429)
        if due == 0:
            step.passed = False
            step.verdict = "no request was due (rate × duration < 1)"
        elif failures / due > self.max_error_ratio:
            step.passed = False
            step.verdict = f"{failures:,} failures of {due:,} ({failures / due:.2%})"
        elif p99 > self.p99_ms:
            step.passed = False
            step.verdict = f"p99 {p99:.2f} ms > {self.p99_ms:g} ms"
        else:
            step.passed = True
            step.verdict = f"p99 {p99:.2f} ms ≤ {self.p99_ms:g} ms"
        return step


@dataclass
class Search:
    steps: list[StepResult] = field(default_factory=list)
    capacity: float | None = None  # highest passing rate
    knee: float | None = None
    generator_bound: bool = False  # passed at the search's limit: the gateway may take more
    first_failure: float | None = None


def knee_of(steps: list[StepResult], exclude_429: bool = False) -> float | None:
    """Where latency starts to climb: the highest rate below which every measured step keeps its
    p90 within 3x the lowest p90 seen and has no failures. p90, not p99: queueing moves the body
    of the distribution first, and p90 is far less noisy than the tail on a shared machine."""
    done = sorted((s for s in steps if s.completed), key=lambda s: s.rate)
    if not done:
        return None

    def p90(s: StepResult) -> float:
        lat = s.latency_no429_ms if exclude_429 else s.latency_ms
        return lat.get("p90", lat.get("p99", 0.0))

    floor = max(min(p90(s) for s in done), 1e-6)
    knee = None
    for s in done:
        if p90(s) > 3 * floor or s.failures(not exclude_429):
            break
        knee = s.rate
    return knee


def find_capacity(measure: Callable[[float], StepResult], objective: Objective, *, start: float,
                  limit: float, precision: float = 0.05, max_steps: int = 14) -> Search:
    """Step up x2 from `start`, then bisect to within `precision` (relative) of the boundary."""
    search = Search()
    rate = min(start, limit)
    lo: float | None = None
    hi: float | None = None

    def step(r: float) -> bool:
        s = objective.judge(measure(r))
        search.steps.append(s)
        return bool(s.passed)

    # up: double while passing; if the very first step fails, halve instead
    while len(search.steps) < max_steps:
        if step(rate):
            lo = rate
            if rate >= limit:
                search.generator_bound = True
                break
            if hi is not None:
                break
            rate = min(rate * 2, limit)
        else:
            hi = rate
            if lo is not None:
                break
            rate = round(rate / 2)
            if rate < 1:
                break
    # bisect
    while lo is not None and hi is not None and hi - lo > precision * lo and len(search.steps) < max_steps:
        mid = round((lo + hi) / 2)
        if mid in (lo, hi):
            break
        if step(mid):
            lo = mid
        else:
            hi = mid
    search.capacity = lo
    search.first_failure = hi
    search.knee = knee_of(search.steps, objective.exclude_429)
    return search

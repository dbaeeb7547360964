"""The arrival schedule with a fake clock: request i is due at start + i / rate, however the
target behaves; `due(now)` is how many the generator has sent or queued by `now`."""

from __future__ import annotations

import pytest

from fastgate._native import loadgen

Schedule = loadgen.Schedule

START = 1_000_000_000_000  # an arbitrary monotonic reading (ns)


def test_send_times_at_200_per_second() -> None:
    s = Schedule(200, START, 2.0)
    assert s.total == 400
    assert [s.time(i) - START for i in range(4)] == [0, 5_000_000, 10_000_000, 15_000_000]
    assert s.time(399) - START == 1_995_000_000


def test_due_counts_with_a_fake_clock() -> None:
    s = Schedule(200, START, 2.0)
    assert s.due(START - 1) == 0
    assert s.due(START) == 1  # request 0 is due at the start
    assert s.due(START + 4_999_999) == 1
    assert s.due(START + 5_000_000) == 2
    assert s.due(START + 1_000_000_000) == 201
    assert s.due(START + 60 * 10**9) == 400  # never more than the run's total


def test_fractional_rate_and_exact_boundaries() -> None:
    s = Schedule(3, START, 10.0)
    assert s.total == 30
    assert s.time(1) - START == 333_333_333
    assert s.time(3) - START == 1_000_000_000
    for i in range(30):
        assert s.due(s.time(i)) == i + 1
        assert s.due(s.time(i) - 1) == i


def test_the_schedule_does_not_wait_for_answers() -> None:
    """Open loop: after a 1 s stall the schedule is 200 requests further, not paused."""
    s = Schedule(200, START, 3.0)
    stall_end = START + 1_500_000_000
    assert s.due(stall_end) - s.due(START + 500_000_000) == 200


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Schedule(0, START, 1.0)

"""Failed-attempt throttle (fastgate/policies/throttle.py) with a fake clock."""

from __future__ import annotations

import pytest

from fastgate.policies.throttle import FailureThrottle, LoginThrottle, ip_key


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def fail(th: FailureThrottle, key: str, n: int = 1) -> None:
    for _ in range(n):
        assert th.retry_after(key) == 0
        th.begin(key)
        th.end(key, False)


def test_blocks_after_threshold_then_doubles_up_to_cap():
    clock = Clock()
    th = FailureThrottle(3, window=300, base_block=30, max_block=100, clock=clock)
    fail(th, "alice", 2)
    assert th.retry_after("alice") == 0
    fail(th, "alice")
    assert th.retry_after("alice") == pytest.approx(30)
    clock.t += 10
    assert th.retry_after("alice") == pytest.approx(20)
    clock.t += 20
    assert th.retry_after("alice") == 0
    fail(th, "alice", 3)
    assert th.retry_after("alice") == pytest.approx(60)
    clock.t += 60
    fail(th, "alice", 3)
    assert th.retry_after("alice") == pytest.approx(100)  # 120 capped
    clock.t += 100
    fail(th, "alice", 3)
    assert th.retry_after("alice") == pytest.approx(100)


def test_failures_outside_the_window_are_forgotten():
    clock = Clock()
    th = FailureThrottle(3, window=300, clock=clock)
    fail(th, "alice", 2)
    clock.t += 301
    fail(th, "alice", 2)
    assert th.retry_after("alice") == 0


def test_ladder_decays_after_a_quiet_window():
    clock = Clock()
    th = FailureThrottle(2, window=300, base_block=30, clock=clock)
    fail(th, "k", 2)
    clock.t += 30 + 301  # block over, then a quiet window
    fail(th, "k", 2)
    assert th.retry_after("k") == pytest.approx(30)  # back to the first rung, not 60


def test_attempts_in_flight_count_against_the_threshold():
    clock = Clock()
    th = FailureThrottle(3, clock=clock)
    for _ in range(3):
        assert th.retry_after("k") == 0
        th.begin("k")
    assert th.retry_after("k") == 1.0  # three in flight could already block it
    th.end("k", True)
    assert th.retry_after("k") == 0


def test_abandoned_attempts_count_nothing():
    th = FailureThrottle(2, clock=Clock())
    for _ in range(5):
        th.begin("k")
        th.abandon("k")
    assert th.retry_after("k") == 0


def test_success_resets_only_when_configured():
    clock = Clock()
    users = FailureThrottle(3, reset_on_success=True, clock=clock)
    ips = FailureThrottle(3, reset_on_success=False, clock=clock)
    for th in (users, ips):
        fail(th, "k", 2)
        th.begin("k")
        th.end("k", True)
        fail(th, "k")
    assert users.retry_after("k") == 0
    assert ips.retry_after("k") > 0


def test_table_is_bounded_lru():
    th = FailureThrottle(5, max_keys=100, clock=Clock())
    for i in range(1000):
        th.failure(f"user{i}")
    assert len(th) == 100
    th.failure("user999")  # still present, moved to the end
    assert len(th) == 100


def test_ip_key_groups_ipv6_by_64_and_unmaps_ipv4():
    assert ip_key("203.0.113.7") == "203.0.113.7"
    assert ip_key("2001:db8:1:2:aaaa::1") == ip_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert ip_key("2001:db8:1:3::1") != ip_key("2001:db8:1:2::1")
    assert ip_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert ip_key("fe80::1%eth0") == "fe80::/64"
    assert ip_key("") == ""


def test_login_throttle_checks_user_and_ip():
    clock = Clock()
    lt = LoginThrottle(user_threshold=2, ip_threshold=3, clock=clock)
    for _ in range(2):
        assert lt.begin("alice", "198.51.100.1") == 0
        lt.end("alice", "198.51.100.1", False)
    assert lt.begin("alice", "198.51.100.2") > 0  # user blocked from any IP
    assert lt.begin("bob", "198.51.100.1") == 0  # the IP has one failure left
    lt.end("bob", "198.51.100.1", False)
    assert lt.begin("carol", "198.51.100.1") > 0  # IP blocked for every user
    assert lt.begin(None, "198.51.100.9") == 0
    lt.abandon(None, "198.51.100.9")


def test_refused_begin_registers_nothing():
    clock = Clock()
    lt = LoginThrottle(user_threshold=1, ip_threshold=100, clock=clock)
    lt.begin("alice", "198.51.100.1")
    lt.end("alice", "198.51.100.1", False)
    for _ in range(50):
        assert lt.begin("alice", "198.51.100.1") > 0
    assert lt.begin("bob", "198.51.100.1") == 0  # the refused ones did not charge the IP

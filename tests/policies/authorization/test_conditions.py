"""Rule conditions on their own: client addresses and CIDRs, claims, time windows (frozen clock,
fixed-offset and DST zones, wrap past midnight)."""

from __future__ import annotations

import pytest

from fastgate.config.model import TimeWindow
from fastgate.policies.authorization.rules import ClaimsMatch, NetSet, Window, parse_ip

from .support import Clock, utc


# ---------------------------------------------------------------- addresses
def test_parse_ip():
    assert parse_ip("10.1.2.3") == (4, 0x0A010203)
    assert parse_ip("::ffff:10.1.2.3") == (4, 0x0A010203)  # IPv4-mapped -> v4
    assert parse_ip("::FFFF:10.1.2.3") == (4, 0x0A010203)
    assert parse_ip("2001:db8::1") == (6, 0x20010DB8 << 96 | 1)
    assert parse_ip("fe80::1%eth0") == (6, 0xFE80 << 112 | 1)
    for bad in ("", "unix", "10.1.2", "10.1.2.3.4", "1.2.3.256", "::g", None):
        assert parse_ip(bad) is None


@pytest.mark.parametrize("cidrs, ip, ok", [
    (("10.0.0.0/8",), "10.200.3.4", True),
    (("10.0.0.0/8",), "11.0.0.1", False),
    (("192.0.2.7",), "192.0.2.7", True),  # a bare address is a /32
    (("192.0.2.7",), "192.0.2.8", False),
    (("192.0.2.7/24",), "192.0.2.200", True),  # host bits are ignored
    (("10.0.0.0/8",), "::ffff:10.9.9.9", True),  # v4 client over a dual-stack socket
    (("::ffff:10.0.0.0/104",), "10.1.1.1", True),  # mapped network written in v6
    (("::ffff:10.0.0.0/104",), "11.1.1.1", False),
    (("2001:db8::/32",), "2001:db8:1::5", True),
    (("2001:db8::/32",), "2001:db9::5", False),
    (("2001:db8::/32",), "10.0.0.1", False),
    (("10.0.0.0/8",), "2001:db8::1", False),
    (("::/0",), "10.0.0.1", False),  # v6 "everything" is not v4
    (("0.0.0.0/0",), "203.0.113.1", True),
    (("10.0.0.0/8", "2001:db8::/32"), "2001:db8::1", True),
    (("10.0.0.0/8",), "garbage", False),
])
def test_netset(cidrs, ip, ok):
    assert NetSet(cidrs).contains(parse_ip(ip)) is ok


def test_netset_rejects_bad_cidr():
    with pytest.raises(ValueError):
        NetSet(("10.0.0.0/33",))


# ---------------------------------------------------------------- claims
@pytest.mark.parametrize("want, claims, ok", [
    ({"tenant": "acme"}, {"tenant": "acme"}, True),
    ({"tenant": "acme"}, {"tenant": "other"}, False),
    ({"tenant": "acme"}, {}, False),  # missing claim never matches
    ({"tenant": ["acme", "globex"]}, {"tenant": "globex"}, True),  # list = in
    ({"tenant": ["acme", "globex"]}, {"tenant": "initech"}, False),
    ({"groups": "staff"}, {"groups": ["students", "staff"]}, True),  # list claim: any element
    ({"groups": ["admin", "staff"]}, {"groups": ["students", "staff"]}, True),
    ({"groups": "staff"}, {"groups": ["students"]}, False),
    ({"groups": "staff"}, {"groups": []}, False),
    ({"email_verified": True}, {"email_verified": True}, True),
    ({"email_verified": True}, {"email_verified": 1}, False),  # no True == 1
    ({"level": 1}, {"level": True}, False),
    ({"level": 3}, {"level": 3}, True),
    ({"level": 3}, {"level": "3"}, False),  # no type coercion
    ({"a": "x", "b": "y"}, {"a": "x", "b": "y"}, True),  # all named claims must match
    ({"a": "x", "b": "y"}, {"a": "x", "b": "z"}, False),
    ({"org": {"id": 1}}, {"org": {"id": 1}}, True),
])
def test_claims(want, claims, ok):
    assert ClaimsMatch(want).matches(claims) is ok


# ---------------------------------------------------------------- time windows
def window(start: str, end: str, tz: str) -> Window:
    return Window(TimeWindow(start, end, tz))


@pytest.mark.parametrize("hh, mm, ss, ok", [
    (5, 59, 59, False), (6, 0, 0, True), (12, 0, 0, True), (21, 59, 59, True), (22, 0, 0, False),
    (0, 0, 0, False), (23, 59, 0, False),
])
def test_colombo_day_window(hh, mm, ss, ok):
    w = window("06:00", "22:00", "Asia/Colombo")  # UTC+05:30 all year
    assert w.contains(Clock().at("Asia/Colombo", 2026, 3, 1, hh, mm, ss).t) is ok


def test_colombo_window_is_local_not_utc():
    w = window("06:00", "22:00", "Asia/Colombo")
    assert not w.contains(utc(2026, 3, 1, 0, 29))  # 05:59 Colombo
    assert w.contains(utc(2026, 3, 1, 0, 30))  # 06:00 Colombo
    assert w.contains(utc(2026, 3, 1, 16, 29))  # 21:59 Colombo
    assert not w.contains(utc(2026, 3, 1, 16, 30))  # 22:00 Colombo


@pytest.mark.parametrize("hh, mm, ok", [
    (21, 59, False), (22, 0, True), (23, 59, True), (0, 0, True), (5, 59, True), (6, 0, False), (12, 0, False),
])
def test_wraparound_window(hh, mm, ok):
    w = window("22:00", "06:00", "Europe/Berlin")
    assert w.contains(Clock().at("Europe/Berlin", 2026, 1, 15, hh, mm).t) is ok


def test_start_equals_end_is_whole_day_and_24h_end():
    w = window("06:00", "06:00", "UTC")
    assert all(w.contains(utc(2026, 1, 1, h, m)) for h in range(24) for m in (0, 59))
    w = window("18:00", "24:00", "UTC")
    assert w.contains(utc(2026, 1, 1, 23, 59)) and w.contains(utc(2026, 1, 1, 18, 0))
    assert not w.contains(utc(2026, 1, 1, 17, 59)) and not w.contains(utc(2026, 1, 1, 0, 0))


def test_new_york_spring_forward_day():
    # 2024-03-10: 02:00 EST jumps to 03:00 EDT; a 01:00-03:00 window is one real hour long
    w = window("01:00", "03:00", "America/New_York")
    assert not w.contains(utc(2024, 3, 10, 5, 59))  # 00:59 EST
    assert w.contains(utc(2024, 3, 10, 6, 0))  # 01:00 EST
    assert w.contains(utc(2024, 3, 10, 6, 59))  # 01:59 EST
    assert not w.contains(utc(2024, 3, 10, 7, 0))  # 03:00 EDT
    # a 09:00-17:00 office window moves by an hour in UTC across the change
    w = window("09:00", "17:00", "America/New_York")
    assert not w.contains(utc(2024, 3, 9, 13, 59)) and w.contains(utc(2024, 3, 9, 14, 0))  # EST
    assert not w.contains(utc(2024, 3, 11, 12, 59)) and w.contains(utc(2024, 3, 11, 13, 0))  # EDT
    assert w.contains(utc(2024, 3, 11, 20, 59)) and not w.contains(utc(2024, 3, 11, 21, 0))


def test_new_york_fall_back_day():
    # 2024-11-03: 02:00 EDT goes back to 01:00 EST; 01:00-02:00 happens twice, both count
    w = window("01:00", "02:00", "America/New_York")
    assert not w.contains(utc(2024, 11, 3, 4, 59))  # 00:59 EDT
    assert w.contains(utc(2024, 11, 3, 5, 30))  # 01:30 EDT
    assert w.contains(utc(2024, 11, 3, 6, 30))  # 01:30 EST (again)
    assert not w.contains(utc(2024, 11, 3, 7, 0))  # 02:00 EST


def test_minute_cache_follows_the_clock():
    w = window("06:00", "22:00", "Asia/Colombo")
    t = utc(2026, 3, 1, 0, 29, 0)  # 05:59:00 Colombo
    assert not w.contains(t)
    assert not w.contains(t + 59.999)  # same minute, cached
    assert w.contains(t + 60)  # next minute: recomputed
    assert not w.contains(t)  # and back (a clock may step backwards)


@pytest.mark.parametrize("start, end, tz", [
    ("6", "22:00", "UTC"), ("06:60", "22:00", "UTC"), ("25:00", "26:00", "UTC"), ("24:00", "01:00", "UTC"),
    ("06:00", "22:00", "Mars/Olympus"), ("aa:bb", "22:00", "UTC"),
])
def test_window_invalid(start, end, tz):
    with pytest.raises(Exception):  # noqa: B017 (ValueError or ZoneInfoNotFoundError)
        window(start, end, tz)

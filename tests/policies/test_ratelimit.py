"""Traffic control unit: every level with a fake clock, in the contract's order (first denial
wins, later levels untouched), tiers from a real config file, bandwidth debt, memory bounds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fastgate import errors
from fastgate.config.loader import load_config
from fastgate.context import RequestContext
from fastgate.identity import Identity
from fastgate.policies.ratelimit.policy import TrafficControl, build
from fastgate.policies.shared import SharedState
from fastgate.policies.throttle import ip_key
from fastgate.quota import LocalQuota
from fastgate.quota.bandwidth import BandwidthMeter

BASE = """version: 1
listeners:
  - {name: p, address: 127.0.0.1:0}
tiers:
  gold: {requests: 1000, per: 1h, burst: {requests: 25, per: 1m}}
  silver: {requests: 5, per: 1m}
  bronze: {requests: 3, per: 1m, bandwidth: 1000}
  tiny: {requests: 2, per: 1m}
  unlimited: {}
applications:
  - name: goldapp
    tier: gold
    api_keys: [{id: k1, hash: "sha256:HASH"}]
  - name: subapp
    tier: silver
    subscriptions: [{api: a, tier: tiny}]
  - {name: bwapp, tier: bronze}
  - {name: freeapp, tier: unlimited}
  - {name: notier}
apis:
  - name: a
    base_path: /a
    authentication: [api_key]
    upstream: {urls: ["http://127.0.0.1:9"]RPS}
    rate_limits:
RL
"""


BASE = BASE.replace("HASH", "0" * 64)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make(tmp_path: Path, rate_limits: str, rps: str = "", public: bool = False):
    text = BASE.replace("RL", rate_limits).replace("RPS", rps)
    if public:
        text = text.replace("    authentication: [api_key]\n", "")
    f = tmp_path / "gw.yaml"
    f.write_text(text)
    config = load_config(f)
    clock = Clock()
    tc = build(config.apis[0], config, SharedState())
    assert isinstance(tc, TrafficControl)
    tc.backend = LocalQuota(clock)
    tc.local = LocalQuota(clock)
    tc.meter = BandwidthMeter(clock=clock)
    return tc, clock


def ctx(ip: str = "192.0.2.1") -> RequestContext:
    return RequestContext("r", ip, "p", "https", None)


def admit(tc, app: str | None, path: str = "/x", method: bytes = b"GET", ip: str = "192.0.2.1"):
    c = ctx(ip)
    ident = Identity("api_key", application=app) if app is not None else None
    asyncio.run(tc.admit(c, method, path, ident))
    return c


def denied(tc, app: str | None, path: str = "/x", method: bytes = b"GET", ip: str = "192.0.2.1"):
    c = ctx(ip)
    ident = Identity("api_key", application=app) if app is not None else None
    with pytest.raises(errors.GatewayError) as e:
        asyncio.run(tc.admit(c, method, path, ident))
    return e.value, c


def test_no_limits_builds_nothing(tmp_path: Path) -> None:
    f = tmp_path / "gw.yaml"
    f.write_text(BASE.replace("    rate_limits:\nRL\n", "").replace("RPS", ""))
    config = load_config(f)
    assert build(config.apis[0], config, SharedState()) is None


def test_application_tier_and_headers(tmp_path: Path) -> None:
    tc, clock = make(tmp_path, "      application: true")
    for i in range(5):
        c = admit(tc, "subapp")
        assert c.rate_decision.limit == 5 and c.rate_decision.remaining == 4 - i
    err, c = denied(tc, "subapp")
    assert isinstance(err, errors.RateLimited) and (err.level, err.tier) == ("application", "silver")
    assert c.decision == "rate_limits.application"
    assert dict(err.headers)["retry-after"] == "12"  # one request every 12 s
    clock.t += 12
    admit(tc, "subapp")
    # another application has its own quota; an unknown or tierless one is not limited here
    admit(tc, "bwapp")
    for _ in range(20):
        admit(tc, "notier")
        admit(tc, "freeapp")
        admit(tc, None)


def test_subscription_before_application(tmp_path: Path) -> None:
    tc, clock = make(tmp_path, "      application: true\n      subscription: true")
    admit(tc, "subapp")
    admit(tc, "subapp")
    err, c = denied(tc, "subapp")  # tiny (2/min) is hit first: subscription, not application
    assert (err.level, err.tier) == ("subscription", "tiny")
    # the denied request spent nothing at the application level (silver 5/min)
    tc.use_subscription = False
    tc._plans.clear()
    for _ in range(3):
        admit(tc, "subapp")
    err, _ = denied(tc, "subapp")
    assert (err.level, err.tier) == ("application", "silver")


def test_burst_on_top_of_long_window(tmp_path: Path) -> None:
    """1000/hour with a 25/minute burst, one attempt a second for three hours: the burst window
    paces every minute while the hourly quota lasts, then the hourly quota (16.7/min) governs."""
    tc, clock = make(tmp_path, "      application: true")
    for _ in range(25):
        admit(tc, "goldapp")
    err, c = denied(tc, "goldapp")
    assert (err.level, err.tier) == ("burst", "gold") and c.decision == "rate_limits.burst"
    assert dict(err.headers)["retry-after"] == "3"  # 60 s / 25
    per_minute = [0] * 180
    levels = set()
    for second in range(180 * 60):
        clock.t += 1
        try:
            admit(tc, "goldapp")
            per_minute[second // 60] += 1
        except errors.RateLimited as e:
            levels.add(e.level)
    assert levels == {"burst", "application"}
    # GCRA: 1000 at once + 1000/h refill bounds any 3 h at 4000; the burst bounds it at 25/min
    assert 25 + sum(per_minute) <= 1000 + 3 * 1000 + 1
    assert all(24 <= n <= 26 for n in per_minute[1:110]), per_minute[:110]
    assert all(15 <= n <= 18 for n in per_minute[130:]), per_minute[130:]


def test_api_level_is_shared_by_all(tmp_path: Path) -> None:
    tc, clock = make(tmp_path, "      api: {requests: 3, per: 1s}")
    admit(tc, "goldapp")
    admit(tc, "subapp")
    admit(tc, None)
    err, c = denied(tc, "bwapp")
    assert (err.level, err.tier) == ("api", "") and c.rate_decision.remaining == 0
    clock.t += 1
    admit(tc, "bwapp")


def test_resource_limits_by_method_and_template(tmp_path: Path) -> None:
    tc, clock = make(tmp_path, "      resources:\n"
                     "        - {path: '/orders/{id}', methods: [POST], requests: 2, per: 1s}\n"
                     "        - {path: '/files/**', requests: 1, per: 1s}")
    admit(tc, "goldapp", "/orders/1", b"POST")
    admit(tc, "subapp", "/orders/2", b"POST")  # all consumers, every id of the template
    err, _ = denied(tc, "bwapp", "/orders/3", b"POST")
    assert err.level == "resource"
    for _ in range(5):
        admit(tc, "goldapp", "/orders/3", b"GET")  # another method: not this resource
        admit(tc, "goldapp", "/orders", b"POST")  # another path
    admit(tc, "goldapp", "/files/a/b/c", b"GET")
    err, _ = denied(tc, "goldapp", "/files", b"DELETE")
    assert err.level == "resource"


def test_order_resource_before_api(tmp_path: Path) -> None:
    tc, clock = make(tmp_path, "      api: {requests: 100, per: 1s}\n"
                     "      resources: [{path: /r, requests: 1, per: 1s}]")
    admit(tc, None, "/r")
    for _ in range(5):
        err, _ = denied(tc, None, "/r")
        assert err.level == "resource"
    # the API level counted one request, not six
    assert tc.backend.take_now("api:a", 100, 1.0).remaining == 98


def test_anonymous_per_ip_on_public_api(tmp_path: Path) -> None:
    tc, clock = make(tmp_path, "      anonymous: {requests: 2, per: 1m}", public=True)
    admit(tc, None, ip="192.0.2.1")
    admit(tc, None, ip="192.0.2.1")
    err, _ = denied(tc, None, ip="192.0.2.1")
    assert err.level == "anonymous"
    admit(tc, None, ip="192.0.2.2")
    # IPv6: one /64 is one client
    admit(tc, None, ip="2001:db8::1")
    admit(tc, None, ip="2001:db8::2")
    err, _ = denied(tc, None, ip="2001:db8::ffff:1")
    assert err.level == "anonymous"
    admit(tc, None, ip="2001:db8:0:1::1")


def test_anonymous_ignored_on_authenticated_api(tmp_path: Path) -> None:
    f = tmp_path / "gw.yaml"
    f.write_text(BASE.replace("RL", "      anonymous: {requests: 1, per: 1m}").replace("RPS", ""))
    config = load_config(f)
    assert build(config.apis[0], config, SharedState()) is None


def test_backend_max_requests_per_second(tmp_path: Path) -> None:
    tc, clock = make(tmp_path, "      application: true", rps=", max_requests_per_second: 2")
    admit(tc, "goldapp")
    c = admit(tc, "subapp")
    assert c.rate_decision.limit == 5  # RateLimit-* describe the client's quota, not the backend's
    err, _ = denied(tc, "bwapp")
    assert isinstance(err, errors.BackendBusy) and err.status == 503 and err.code == "backend_busy"
    assert dict(err.headers)["retry-after"] == "1"
    clock.t += 0.5
    admit(tc, "bwapp")


def test_bandwidth_debt_denies_the_next_request(tmp_path: Path) -> None:
    tc, clock = make(tmp_path, "      application: true")
    c = admit(tc, "bwapp")
    assert c.charges and c.charges[0].bandwidth == 1000
    c.bytes_in, c.bytes_out = 100, 2900  # three windows' worth in one exchange
    tc.charge(c)
    err, c2 = denied(tc, "bwapp")
    assert (err.level, err.tier) == ("application", "bronze")
    assert c2.decision == "rate_limits.application.bandwidth"
    # 3000 bytes at 1000/min drain in 3 min; a request may start once under one window (2 min)
    assert dict(err.headers)["retry-after"] == "120"
    clock.t += 119
    denied(tc, "bwapp")
    clock.t += 1.5
    admit(tc, "bwapp")


def test_reload_keeps_counters_and_applies_changed_tier(tmp_path: Path) -> None:
    """Counters are keyed by quota name in process-wide stores: a reload keeps them, and a tier
    whose numbers changed applies to the next request."""
    shared = SharedState()
    f = tmp_path / "gw.yaml"
    text = BASE.replace("RL", "      application: true\n      api: {requests: 4, per: 1m}").replace("RPS", "")
    f.write_text(text)
    c1 = load_config(f)
    tc1 = build(c1.apis[0], c1, shared)
    for _ in range(4):
        asyncio.run(tc1.admit(ctx(), b"GET", "/x", Identity("api_key", application="subapp")))
    f.write_text(text.replace("silver: {requests: 5, per: 1m}", "silver: {requests: 1, per: 1m}"))
    c2 = load_config(f)
    tc2 = build(c2.apis[0], c2, shared)
    assert tc2.backend is tc1.backend  # same store, same counters
    with pytest.raises(errors.RateLimited) as e:  # the API level still remembers its 4
        asyncio.run(tc2.admit(ctx(), b"GET", "/x", Identity("api_key", application="goldapp")))
    assert e.value.level == "api"


def test_memory_bounded_under_ip_flood(tmp_path: Path) -> None:
    tc, clock = make(tmp_path, "      anonymous: {requests: 5, per: 1m}", public=True)
    tc.backend = LocalQuota(clock, max_keys=1000)
    for i in range(5000):
        admit(tc, None, ip=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    assert len(tc.backend) <= 1000


def test_bandwidth_meter_bounded() -> None:
    m = BandwidthMeter(clock=Clock(), max_keys=100)
    for i in range(1000):
        m.charge(f"k{i}", 10, 1000, 60.0)
    assert len(m) == 100


def test_client_key() -> None:  # anonymous quotas key clients as the login throttle does
    assert ip_key("192.0.2.1") == "192.0.2.1"
    assert ip_key("2001:db8::1") == ip_key("2001:db8::ffff") == "2001:db8::/64"
    assert ip_key("::ffff:192.0.2.1") == "192.0.2.1"

"""Traffic control through the real gateway: tiers per application and subscription, burst, API
and resource limits, backend throughput (503), bandwidth, RateLimit-* headers, denial metrics by
level and tier, a reload that keeps counters and applies a changed tier, and Redis-shared quotas."""

from __future__ import annotations

import socket
import time

import pytest

from fastgate.credentials import api_key_hash
from tests.helpers import connect, read_response
from tests.integration.conftest import config_yaml

KEYS = {"gold": "gold-key-0123456789abcdef", "silver": "silver-key-0123456789abcdef",
        "bronze": "bronze-key-0123456789abcdef"}


def tiers_and_apps(silver: str = "{requests: 4, per: 1m}") -> str:
    return f"""tiers:
  gold: {{requests: 1000, per: 1h, burst: {{requests: 3, per: 1m}}}}
  silver: {silver}
  bronze: {{requests: 100, per: 1m, bandwidth: 3KiB}}
  tiny: {{requests: 2, per: 1m}}
applications:
  - name: goldapp
    tier: gold
    api_keys: [{{id: g1, hash: "{api_key_hash(KEYS['gold'])}"}}]
  - name: silverapp
    tier: silver
    api_keys: [{{id: s1, hash: "{api_key_hash(KEYS['silver'])}"}}]
    subscriptions: [{{api: sub, tier: tiny}}]
  - name: bronzeapp
    tier: bronze
    api_keys: [{{id: b1, hash: "{api_key_hash(KEYS['bronze'])}"}}]
"""


def apis(port: int, rps: int = 1000) -> str:
    return f"""
  - name: echo
    base_path: /echo/v1
    authentication: [api_key]
    upstream: {{urls: ["http://127.0.0.1:{port}"], max_requests_per_second: {rps}}}
    rate_limits:
      application: true
      resources:
        - {{path: "/orders/{{id}}", methods: [POST], requests: 2, per: 1m}}
  - name: sub
    base_path: /sub/v1
    authentication: [api_key]
    upstream: {{urls: ["http://127.0.0.1:{port}"]}}
    rate_limits: {{application: true, subscription: true}}
  - name: shared
    base_path: /shared/v1
    authentication: [api_key]
    upstream: {{urls: ["http://127.0.0.1:{port}"]}}
    rate_limits:
      api: {{requests: 3, per: 1m}}
"""


class Client:
    """One keep-alive TLS connection."""

    def __init__(self, port: int, ctx) -> None:
        self.s = connect(port, ctx)
        self.buf = bytearray()

    def request(self, path: str, key: str | None = None, method: str = "GET", body: bytes = b""):
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n"
        if key is not None:
            head += f"X-API-Key: {key}\r\n"
        if body or method == "POST":
            head += f"Content-Length: {len(body)}\r\n"
        self.s.sendall(head.encode() + b"\r\n" + body)
        return read_response(self.s, self.buf)

    def close(self) -> None:
        self.s.close()


def last_log(g, **match) -> dict:
    """The newest access-log record with these fields (the log line trails the response)."""
    deadline = time.monotonic() + 5
    while True:
        recs = [r for r in g.access_log() if all(r.get(k) == v for k, v in match.items())]
        if recs or time.monotonic() > deadline:
            assert recs, f"no access-log record with {match}"
            return recs[-1]
        time.sleep(0.05)


def metrics(g) -> str:
    raw = socket.create_connection(("127.0.0.1", g.admin_port), timeout=5)
    raw.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    text = read_response(raw).body.decode()
    raw.close()
    return text


@pytest.fixture
def gateway(pki, echo, start_gateway):
    return start_gateway(config_yaml(pki, echo.port, apis=apis(echo.port), extra=tiers_and_apps()))


def test_application_tier_429_with_ratelimit_headers(gateway, tls_client):
    c = Client(gateway.ports["public"], tls_client)
    seen = [c.request("/echo/v1/a", KEYS["silver"]) for _ in range(5)]
    assert [r.status for r in seen] == [200, 200, 200, 200, 429]
    assert [r.header("ratelimit-remaining") for r in seen[:4]] == ["3", "2", "1", "0"]
    assert all(r.header("ratelimit-limit") == "4" for r in seen)
    denied = seen[4]
    assert denied.json()["code"] == "rate_limited"
    assert denied.header("content-type") == "application/problem+json"
    assert int(denied.header("retry-after")) == 15  # 60 s / 4
    assert 0 < int(denied.header("ratelimit-reset")) <= 60
    assert KEYS["silver"] not in denied.body.decode()
    # another application has its own tier
    assert c.request("/echo/v1/a", KEYS["bronze"]).status == 200
    rec = last_log(gateway, status=429)
    assert rec["decision"] == "rate_limits.application" and rec["application"] == "silverapp"
    assert 'fastgate_ratelimit_denials_total{api="echo",level="application",tier="silver"} 1.0' in metrics(gateway)
    c.close()


def test_burst_then_subscription_before_application(gateway, tls_client):
    c = Client(gateway.ports["public"], tls_client)
    # gold: 1000/h, but a burst of 3 per minute (node-local)
    codes = [c.request("/echo/v1/b", KEYS["gold"]).status for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    # silverapp x sub has the tiny tier (2/min): it is hit before silver (4/min)
    codes = [c.request("/sub/v1/x", KEYS["silver"]).status for _ in range(3)]
    assert codes == [200, 200, 429]
    text = metrics(gateway)
    assert 'fastgate_ratelimit_denials_total{api="echo",level="burst",tier="gold"} 1.0' in text
    assert 'fastgate_ratelimit_denials_total{api="sub",level="subscription",tier="tiny"} 1.0' in text
    # the subscription denial spent nothing of silver: two more on another API still pass
    assert [c.request("/echo/v1/y", KEYS["silver"]).status for _ in range(2)] == [200, 200]
    c.close()


def test_resource_and_api_levels(gateway, tls_client):
    c = Client(gateway.ports["public"], tls_client)
    codes = [c.request(f"/echo/v1/orders/{i}", KEYS["bronze"], "POST", b"{}").status for i in range(3)]
    assert codes == [200, 200, 429]
    c.close()  # refused before its body was read: the gateway closes that connection
    c = Client(gateway.ports["public"], tls_client)
    assert c.request("/echo/v1/orders/9", KEYS["bronze"]).status == 200  # GET: not that resource
    # the API level counts every consumer together
    codes = [c.request("/shared/v1/x", KEYS[k]).status for k in ("gold", "silver", "bronze", "gold")]
    assert codes == [200, 200, 200, 429]
    text = metrics(gateway)
    assert 'fastgate_ratelimit_denials_total{api="echo",level="resource",tier=""} 1.0' in text
    assert 'fastgate_ratelimit_denials_total{api="shared",level="api",tier=""} 1.0' in text
    c.close()


def test_bandwidth_denies_the_next_request_once_over(gateway, tls_client):
    c = Client(gateway.ports["public"], tls_client)
    r = c.request("/echo/v1/bytes/5000/x", KEYS["bronze"])  # 5000 bytes > 3 KiB a minute
    assert r.status == 200 and len(r.body) == 5000
    denied = c.request("/echo/v1/a", KEYS["bronze"])
    assert denied.status == 429 and denied.json()["code"] == "rate_limited"
    assert 1 <= int(denied.header("retry-after")) <= 60
    assert last_log(gateway, status=429)["decision"] == "rate_limits.application.bandwidth"
    c.close()


def test_backend_max_requests_per_second(pki, echo, start_gateway, tls_client):
    g = start_gateway(config_yaml(pki, echo.port, apis=apis(echo.port, rps=3), extra=tiers_and_apps()))
    c = Client(g.ports["public"], tls_client)
    seen = [c.request("/echo/v1/a", KEYS["bronze"]) for _ in range(4)]
    assert [r.status for r in seen] == [200, 200, 200, 503]
    assert seen[3].json()["code"] == "backend_busy" and seen[3].header("retry-after") == "1"
    assert 'level="backend",tier=""} 1.0' in metrics(g)
    c.close()


def test_reload_keeps_counters_and_applies_changed_tier(pki, echo, start_gateway, tls_client):
    text = config_yaml(pki, echo.port, apis=apis(echo.port), extra=tiers_and_apps())
    g = start_gateway(text)
    c = Client(g.ports["public"], tls_client)
    assert [c.request("/echo/v1/a", KEYS["silver"]).status for _ in range(3)] == [200, 200, 200]
    assert [c.request("/shared/v1/a", KEYS["gold"]).status for _ in range(2)] == [200, 200]
    # silver goes from 4/min to 10/min: applies at once, and the 3 already spent still count
    g.path.write_text(config_yaml(pki, echo.port, apis=apis(echo.port),
                                  extra=tiers_and_apps(silver="{requests: 10, per: 1m}")))
    g.sighup()
    g.wait_line("config reloaded", stream="err")
    codes = [c.request("/echo/v1/a", KEYS["silver"]).status for _ in range(8)]
    assert codes == [200] * 7 + [429]
    r = c.request("/shared/v1/a", KEYS["gold"])  # the API level remembers its 2 of 3
    assert r.status == 200 and r.header("ratelimit-remaining") == "0"
    c.close()

"""The admin listener of a real gateway: health, readiness, Prometheus metrics with every family
of the contract, counters that move with traffic, and no admin surface on the public listener."""

from __future__ import annotations

import socket
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import Gateway, connect, exchange, get, read_response
from tests.integration.conftest import config_yaml

# name as exposed -> Prometheus type (CONTRACT.md "Metrics")
FAMILIES = {
    "fastgate_requests_total": "counter",
    "fastgate_request_duration_seconds": "histogram",
    "fastgate_policy_rejections_total": "counter",
    "fastgate_ratelimit_denials_total": "counter",
    "fastgate_upstream_errors_total": "counter",
    "fastgate_tls_handshake_failures_total": "counter",
    "fastgate_active_connections": "gauge",
    "fastgate_config_reloads_total": "counter",
}


@pytest.fixture(scope="module")
def gw(pki, echo, tmp_path_factory):
    g = Gateway(config_yaml(pki, echo.port), tmp_path_factory.mktemp("gw"))
    yield g
    g.stop()


def admin(gw: Gateway, path: str, method: str = "GET"):
    return exchange(gw.admin_port, f"{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n".encode())


def samples(gw: Gateway, name: str) -> list[tuple[dict[str, str], float]]:
    text = admin(gw, "/metrics").body.decode()
    return [(s.labels, s.value) for fam in text_string_to_metric_families(text)
            for s in fam.samples if s.name == name]


def value(gw: Gateway, name: str, **labels: str) -> float:
    return sum(v for lab, v in samples(gw, name) if all(lab.get(k) == x for k, x in labels.items()))


def test_healthz(gw):
    r = admin(gw, "/healthz")
    assert r.status == 200
    assert r.body.strip() == b"ok"
    assert r.header("cache-control") == "no-store"


def test_readyz(gw):
    r = admin(gw, "/readyz")
    assert r.status == 200
    assert r.body.strip() == b"ok"


def test_head_healthz_has_no_body(gw):
    with socket.create_connection(("127.0.0.1", gw.admin_port), timeout=5) as s:
        s.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: admin\r\n\r\n")
        r = read_response(s, head_only=True)
        assert r.status == 200
        s.settimeout(2)
        assert s.recv(100) == b""  # closed, and no body bytes after the head


def test_metrics_content_type_and_every_contract_family(gw):
    r = admin(gw, "/metrics")
    assert r.status == 200
    assert r.header("content-type").startswith("text/plain; version=0.0.4")
    text = r.body.decode()
    for name, kind in FAMILIES.items():
        assert f"# HELP {name} " in text, name
        assert f"# TYPE {name} {kind}" in text, name
    # and the text parses as Prometheus exposition format
    names = {fam.name for fam in text_string_to_metric_families(text)}
    assert "fastgate_requests" in names and "fastgate_active_connections" in names


def test_requests_counter_and_histogram_move(gw, tls_client):
    port = gw.ports["public"]
    before = value(gw, "fastgate_requests_total", api="echo", status="200", code="")
    hist_before = value(gw, "fastgate_request_duration_seconds_count", api="echo")
    for _ in range(3):
        assert get(port, "/echo/v1/count", tls_client).status == 200
    time.sleep(0.05)
    assert value(gw, "fastgate_requests_total", api="echo", status="200", code="") == before + 3
    assert value(gw, "fastgate_request_duration_seconds_count", api="echo") == hist_before + 3
    # an upstream status is counted under its own status
    s418 = value(gw, "fastgate_requests_total", api="echo", status="418")
    assert get(port, "/echo/v1/status/418", tls_client).status == 418
    assert value(gw, "fastgate_requests_total", api="echo", status="418") == s418 + 1


def test_gateway_errors_counted_with_code(gw, tls_client):
    before = value(gw, "fastgate_requests_total", status="404", code="not_found")
    assert get(gw.ports["public"], "/no/api/here", tls_client).status == 404
    assert value(gw, "fastgate_requests_total", status="404", code="not_found") == before + 1


def test_active_connections_gauge(gw, tls_client):
    base = value(gw, "fastgate_active_connections", listener="public")
    socks = [connect(gw.ports["public"], tls_client) for _ in range(3)]
    try:
        for s in socks:  # a served request proves each connection is fully open
            s.sendall(b"GET /echo/v1/g HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(s).status == 200
        assert value(gw, "fastgate_active_connections", listener="public") == base + 3
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + 3
    while value(gw, "fastgate_active_connections", listener="public") != base:
        assert time.monotonic() < deadline, "gauge did not come back down"
        time.sleep(0.05)


def test_unknown_admin_path_is_404(gw):
    assert admin(gw, "/nothing").status == 404
    assert admin(gw, "/metrics/x").status == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_admin_other_methods_405(gw, method):
    r = admin(gw, "/metrics", method)
    assert r.status == 405


def test_admin_405_names_allowed_methods(gw):
    r = admin(gw, "/metrics", "POST")
    assert r.status == 405
    allowed = {m.strip() for m in (r.header("allow") or "").split(",")}
    assert {"GET", "HEAD"} <= allowed


def test_admin_not_on_public_listener(gw, tls_client):
    for path in ("/metrics", "/healthz", "/readyz"):
        r = get(gw.ports["public"], path, tls_client)
        assert r.status == 404, path
        assert r.header("content-type") == "application/problem+json"
        assert r.json()["code"] == "not_found"
        assert b"fastgate_" not in r.body


def test_metrics_carry_no_request_data(gw, tls_client):
    """Label values come from config and fixed vocabularies, never from the request."""
    get(gw.ports["public"], "/no-such-api-UNIQUEPATH?secret=UNIQUEQUERY", tls_client,
        headers={"X-Probe": "UNIQUEHEADER"})
    text = admin(gw, "/metrics").body.decode()
    for marker in ("UNIQUEPATH", "UNIQUEQUERY", "UNIQUEHEADER"):
        assert marker not in text


def test_slow_admin_client_does_not_block_others(gw):
    with socket.create_connection(("127.0.0.1", gw.admin_port), timeout=5) as idle:
        idle.sendall(b"GET /hea")  # never finished
        assert admin(gw, "/healthz").status == 200

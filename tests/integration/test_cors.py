"""CORS through the real gateway: the gateway answers preflights itself, exact origins only."""

from __future__ import annotations

import pytest

from tests.helpers import Gateway, get
from tests.integration.conftest import config_yaml

APIS = """
  - name: web
    base_path: /web
    upstream:
      urls: [http://127.0.0.1:{port}]
    cors:
      origins: ["https://app.example.com"]
      methods: [GET, POST]
      headers: [content-type, authorization]
      credentials: true
      max_age: 10m
"""


@pytest.fixture(scope="module")
def gw(pki, echo, tmp_path_factory):
    g = Gateway(config_yaml(pki, echo.port, apis=APIS.format(port=echo.port)), tmp_path_factory.mktemp("cors"))
    yield g
    g.stop()


def test_preflight_answered_by_the_gateway(gw, tls_client, echo):
    r = get(gw.ports["public"], "/web/cors-pre-ok", tls_client, method="OPTIONS", headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Content-Type"})
    assert r.status == 204
    assert r.header("access-control-allow-origin") == "https://app.example.com"
    assert r.header("access-control-allow-credentials") == "true"
    assert "POST" in r.header("access-control-allow-methods")
    assert r.header("access-control-max-age") == "600"
    assert "Origin" in r.header("vary")
    assert not echo.seen("/cors-pre-ok")


@pytest.mark.parametrize("origin", ["https://app.example.com.evil.com", "https://evilapp.example.com",
                                    "null", "http://app.example.com"])
def test_preflight_from_other_origins_refused(gw, tls_client, origin):
    r = get(gw.ports["public"], "/web/x", tls_client, method="OPTIONS", headers={
        "Origin": origin, "Access-Control-Request-Method": "GET"})
    assert r.status == 403
    assert r.json()["code"] == "forbidden"
    assert r.header("access-control-allow-origin") in (None, "https://app.example.com") and \
        r.header("access-control-allow-origin") != origin


def test_actual_response_carries_exact_origin_and_vary(gw, tls_client):
    ok = get(gw.ports["public"], "/web/data", tls_client, headers={"Origin": "https://app.example.com"})
    assert ok.status == 200
    assert ok.header("access-control-allow-origin") == "https://app.example.com"
    assert "Origin" in ",".join(ok.header_all("vary"))
    other = get(gw.ports["public"], "/web/data", tls_client, headers={"Origin": "https://evil.example"})
    assert other.header("access-control-allow-origin") is None
    assert "Origin" in ",".join(other.header_all("vary"))


def test_disallowed_method_in_preflight(gw, tls_client):
    r = get(gw.ports["public"], "/web/x", tls_client, method="OPTIONS", headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "DELETE"})
    assert r.status == 403

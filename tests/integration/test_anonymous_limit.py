"""`rate_limits.anonymous` per client IP on a public API, through the real gateway."""

from __future__ import annotations

import socket

from tests.helpers import read_response
from tests.integration.conftest import config_yaml

APIS = """
  - name: echo
    base_path: /echo/v1
    upstream:
      urls: [http://127.0.0.1:{port}]
    rate_limits:
      anonymous: {{requests: 3, per: 1m}}
"""


def _get_from(port: int, ctx, source_ip: str, path: str):
    raw = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source_ip, 0))
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return read_response(s)


def test_anonymous_limit_per_client_ip(pki, echo, start_gateway, tls_client):
    g = start_gateway(config_yaml(pki, echo.port, apis=APIS.format(port=echo.port)))
    port = g.ports["public"]
    seen = [_get_from(port, tls_client, "127.0.0.1", "/echo/v1/a") for _ in range(4)]
    assert [r.status for r in seen] == [200, 200, 200, 429]
    assert [r.header("ratelimit-remaining") for r in seen[:3]] == ["2", "1", "0"]
    assert all(r.header("ratelimit-limit") == "3" for r in seen)
    denied = seen[3]
    assert denied.json()["code"] == "rate_limited"
    assert 1 <= int(denied.header("retry-after")) <= 20
    assert int(denied.header("ratelimit-reset")) <= 60
    # another client IP has its own bucket; X-Forwarded-For cannot fake one
    assert _get_from(port, tls_client, "127.0.0.2", "/echo/v1/b").status == 200
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with tls_client.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"GET /echo/v1/c HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.9.9.9\r\n\r\n")
        assert read_response(s).status == 429
    raw = socket.create_connection(("127.0.0.1", g.admin_port), timeout=5)
    raw.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    metrics = read_response(raw).body.decode()
    raw.close()
    assert 'fastgate_ratelimit_denials_total{api="echo",level="anonymous",tier=""} 2.0' in metrics
    assert 'fastgate_policy_rejections_total{api="echo",code="rate_limited",policy="rate_limits.anonymous"} 2.0' in metrics

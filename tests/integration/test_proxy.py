"""The reverse proxy end to end: real TLS client -> gateway process -> echo upstream process.
Every test runs with the native fast path and with h11 alone (`http.fast_path: false`)."""

from __future__ import annotations

import pytest

from tests.helpers import Gateway, connect, exchange, get, is_closed, read_response
from tests.integration.conftest import config_yaml

APIS = """
  - name: echo
    base_path: /echo/v1
    upstream:
      urls: [http://127.0.0.1:{port}]
      timeout: 2s
  - name: echo-deep
    base_path: /echo/v1/deep
    upstream:
      urls: [http://127.0.0.1:{port}]
      path: /inner
  - name: root
    base_path: /
    upstream:
      urls: [http://127.0.0.1:{port}]
      path: /rootapi
"""


@pytest.fixture(scope="module", params=[True, False], ids=["fast", "h11"])
def gw(request, pki, echo, tmp_path_factory):
    text = config_yaml(pki, echo.port, apis=APIS.format(port=echo.port), fast_path=request.param)
    g = Gateway(text, tmp_path_factory.mktemp("gw"))
    yield g
    g.stop()


@pytest.fixture
def port(gw):
    return gw.ports["public"]


def test_get_is_proxied_with_path_rewrite(port, tls_client):
    r = get(port, "/echo/v1/items/7?q=1&x=%20y", tls_client)
    assert r.status == 200
    doc = r.json()
    assert doc["method"] == "GET"
    assert doc["target"] == "/items/7?q=1&x=%20y"


def test_longest_prefix_wins_on_segment_boundaries(port, tls_client):
    assert get(port, "/echo/v1/deep/a", tls_client).json()["target"] == "/inner/a"
    assert get(port, "/echo/v1/deeper", tls_client).json()["target"] == "/deeper"
    assert get(port, "/echo/v10", tls_client).json()["target"] == "/rootapi/echo/v10"
    assert get(port, "/echo/v1", tls_client).json()["target"] == "/"



def test_not_found(pki, echo, start_gateway, tls_client):
    text = config_yaml(pki, echo.port)
    g = start_gateway(text)
    r = get(g.ports["public"], "/nothing/here", tls_client)
    assert r.status == 404
    assert r.header("content-type") == "application/problem+json"
    doc = r.json()
    assert doc["code"] == "not_found" and doc["status"] == 404
    assert doc["request_id"] == r.header("x-request-id")


def test_headers_rewritten_both_ways(port, tls_client):
    r = get(port, "/echo/v1/h", tls_client, headers={
        "X-Forwarded-For": "6.6.6.6", "X-Forwarded-Host": "evil", "X-Forwarded-Proto": "http",
        "X-Request-Id": "client-chosen", "X-Fastgate-Subject": "admin", "X-Fastgate-Scopes": "all",
        "Connection": "close, X-Secret-Hop", "X-Secret-Hop": "1", "Keep-Alive": "timeout=5",
        "Proxy-Authorization": "Basic Zm9vOmJhcg==", "TE": "trailers", "Upgrade": "h2c",
        "X-Custom": "kept", "X_Forwarded_For": "7.7.7.7", "X_Fastgate_Subject": "root",
    })
    assert r.status == 200
    sent = {}
    for name, value in r.json()["headers"]:
        sent.setdefault(name, []).append(value)
    assert sent["x-forwarded-for"] == ["127.0.0.1"]
    assert sent["x-forwarded-proto"] == ["https"]
    assert sent["x-forwarded-host"] == ["localhost"]
    assert sent["x-request-id"] == [r.header("x-request-id")]
    assert sent["x-request-id"] != ["client-chosen"]
    assert sent["x-custom"] == ["kept"]
    for gone in ("x_forwarded_for", "x_fastgate_subject", "x-fastgate-subject", "x-fastgate-scopes", "x-secret-hop", "keep-alive",
                 "proxy-authorization", "te", "upgrade", "connection"):
        assert gone not in sent, gone
    # response side: banners and hop-by-hop removed, request id present
    assert r.header("server") is None
    assert r.header("x-powered-by") is None
    assert r.header("x-request-id")


def test_post_body_with_content_length(port, tls_client):
    body = b"a" * 100_000
    r = get(port, "/echo/v1/upload", tls_client, method="POST", body=body)
    assert r.status == 200
    doc = r.json()
    assert doc["body_length"] == len(body)
    import hashlib
    assert doc["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_chunked_request_body_is_streamed(port, tls_client):
    chunks = [b"hello ", b"chunked ", b"world" * 1000]
    data = b"".join(b"%x\r\n%b\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    r = exchange(port, b"POST /echo/v1/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                       b"Connection: close\r\n\r\n" + data, tls_client)
    assert r.status == 200
    assert r.json()["body_length"] == sum(map(len, chunks))


def test_keep_alive_and_pipelining_answer_in_order(port, tls_client):
    reqs = b"".join(
        b"GET /echo/v1/p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5)
    )
    with connect(port, tls_client) as s:
        s.sendall(reqs)
        buf = bytearray()
        targets = [read_response(s, buf).json()["target"] for _ in range(5)]
        assert targets == [f"/p{i}" for i in range(5)]
        # the connection is still usable afterwards
        s.sendall(b"GET /echo/v1/again HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s, buf).json()["target"] == "/again"


def test_large_response_streamed(port, tls_client):
    r = get(port, "/echo/v1/bytes/3000000", tls_client)
    assert r.status == 200
    assert len(r.body) == 3_000_000


def test_chunked_upstream_response_reaches_client(port, tls_client):
    r = get(port, "/echo/v1/chunked/5", tls_client)
    assert r.status == 200
    assert r.body.count(b'"method"') == 5


def test_head_has_no_body(port, tls_client):
    with connect(port, tls_client) as s:
        s.sendall(b"HEAD /echo/v1/h HTTP/1.1\r\nHost: x\r\n\r\nGET /echo/v1/after HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = bytearray()
        head = read_response(s, buf, head_only=True)
        assert head.status == 200
        assert int(head.header("content-length")) > 0
        nxt = read_response(s, buf)
        assert nxt.json()["target"] == "/after"


def test_expect_100_continue(port, tls_client):
    with connect(port, tls_client) as s:
        s.sendall(b"POST /echo/v1/e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        buf = bytearray()
        interim = read_response(s, buf)
        assert interim.status == 100
        s.sendall(b"hello")
        final = read_response(s, buf)
        assert final.status == 200
        assert final.json()["body_length"] == 5


def test_upstream_status_and_reason_forwarded(port, tls_client):
    r = get(port, "/echo/v1/status/418", tls_client)
    assert r.status == 418


def test_http10_client_gets_close(port, tls_client):
    with connect(port, tls_client) as s:
        s.sendall(b"GET /echo/v1/old HTTP/1.0\r\n\r\n")
        r = read_response(s)
        assert r.status == 200
        assert r.json()["target"] == "/old"
        assert is_closed(s)


@pytest.mark.parametrize("path,expected", [
    ("/echo/v1/a/../b", "/b"),
    ("/echo/v1/a/./b", "/a/b"),
    ("/echo/v1//a//b", "/a/b"),
    ("/echo/v1/%61bc", "/abc"),
    ("/echo/v1/a/%2e%2e/b", "/b"),
    ("/echo/v1/a/%2E%2E/%2e%2e/c", "/rootapi/echo/c"),  # left the API: routed as /echo/c
])
def test_path_normalised_before_routing_and_forwarding(port, tls_client, path, expected):
    r = get(port, path, tls_client)
    assert r.status == 200
    assert r.json()["target"] == expected


@pytest.mark.parametrize("path", [
    "/echo/v1/../../rootapi/x",
    "/echo/v1/%2e%2e/x",
    "/echo/v1/..%2f..%2fadmin",
    "/echo/v1/..",
])
def test_traversal_never_leaves_the_api_unnoticed(port, tls_client, path, echo):
    """Dot segments resolve before routing: whatever API the result hits is the one routed to,
    and the forwarded path is the resolved one, so the backend cannot be tricked."""
    r = get(port, path, tls_client)
    if r.status == 200:
        target = r.json()["target"]
        assert ".." not in target and "%2e" not in target.lower()
    else:
        assert r.status in (400, 404)
        assert r.json()["code"] in ("bad_request", "not_found")


@pytest.mark.parametrize("path", ["/echo/v1/a%2fb", "/echo/v1/a%5cb", "/echo/v1/a%00b", "/echo/v1/a\\b",
                                  "/echo/v1/%zz"])
def test_encoded_separators_refused(port, tls_client, path, echo):
    marker = path.replace("/echo/v1", "")
    r = get(port, path, tls_client)
    assert r.status == 400
    assert r.json()["code"] == "bad_request"
    assert not echo.seen(marker)


def test_absolute_form_target_refused(port, tls_client):
    r = exchange(port, b"GET http://evil.example/echo/v1/x HTTP/1.1\r\nHost: evil.example\r\n\r\n", tls_client)
    assert r.status == 400


def test_access_log_has_contract_fields_and_no_secrets(gw, port, tls_client):
    get(port, "/echo/v1/logme?api_key=SECRET123&token=abc", tls_client,
        headers={"Authorization": "Bearer SECRETTOKEN", "Cookie": "session=SECRETCOOKIE"})
    import time
    time.sleep(0.3)
    recs = [r for r in gw.access_log() if r["path"] == "/echo/v1/logme"]
    assert recs, gw.out[-5:]
    rec = recs[-1]
    for key in ("time", "request_id", "client_ip", "listener", "api", "method", "path", "status", "code",
                "bytes_in", "bytes_out", "upstream_ms", "total_ms", "application", "subject", "decision"):
        assert key in rec
    assert rec["api"] == "echo" and rec["status"] == 200 and rec["listener"] == "public"
    everything = "\n".join(gw.out + gw.err)
    for secret in ("SECRET123", "SECRETTOKEN", "SECRETCOOKIE"):
        assert secret not in everything

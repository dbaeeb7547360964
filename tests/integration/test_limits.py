"""Every `limits` key just under and just over its bound, through the real gateway, in both
codecs; slow and oversized input gets the contract's status and never reaches the upstream."""

from __future__ import annotations

import socket
import ssl
import time

import pytest

from tests.helpers import Gateway, connect, exchange, is_closed, read_response
from tests.integration.conftest import config_yaml

LIMITS = """  max_request_line: 200
  max_header_bytes: 400
  max_headers: 5
  max_body_bytes: 1000
  header_timeout: 1s
  body_timeout: 1s
  idle_timeout: 1500ms
"""


@pytest.fixture(scope="module", params=[True, False], ids=["fast", "h11"])
def gw(request, pki, echo, tmp_path_factory):
    g = Gateway(config_yaml(pki, echo.port, limits=LIMITS, fast_path=request.param),
                tmp_path_factory.mktemp("gw"))
    yield g
    g.stop()


@pytest.fixture
def port(gw):
    return gw.ports["public"]


def _line(target_len: int) -> bytes:
    target = "/echo/v1/" + "a" * (target_len - 9)
    return f"GET {target} HTTP/1.1\r\n".encode()


def test_request_line_at_limit_passes(port, tls_client):
    line = _line(200 - 13)
    assert len(line) - 2 == 200
    r = exchange(port, line + b"Host: x\r\n\r\n", tls_client)
    assert r.status == 200


def test_request_line_over_limit_is_414(port, tls_client, echo):
    line = _line(200 - 12)
    with connect(port, tls_client) as s:
        s.sendall(line + b"Host: x\r\n\r\n")
        r = read_response(s)
        assert r.status == 414 and r.json()["code"] == "uri_too_long"
        assert is_closed(s)


def test_request_line_without_end_is_414_early(port, tls_client):
    with connect(port, tls_client) as s:
        s.sendall(b"GET /" + b"a" * 300)  # no CRLF yet: refused as soon as it cannot fit
        r = read_response(s)
        assert r.status == 414


def _headers(total: int, count: int = 2) -> bytes:
    """`count` headers (Host first) whose name+value+4 bytes sum to `total`."""
    hs = [("Host", "x")]
    for i in range(count - 2):
        hs.append((f"X-H{i}", "v"))
    used = sum(len(n) + len(v) + 4 for n, v in hs)
    pad = total - used - len("X-Pad") - 4
    hs.append(("X-Pad", "p" * pad))
    return "".join(f"{n}: {v}\r\n" for n, v in hs).encode()


def test_header_bytes_at_limit_pass(port, tls_client):
    r = exchange(port, b"GET /echo/v1/h HTTP/1.1\r\n" + _headers(400) + b"\r\n", tls_client)
    assert r.status == 200


def test_header_bytes_over_limit_are_431(port, tls_client):
    r = exchange(port, b"GET /echo/v1/h HTTP/1.1\r\n" + _headers(401) + b"\r\n", tls_client)
    assert r.status == 431 and r.json()["code"] == "headers_too_large"


def test_header_count_at_limit_passes(port, tls_client):
    r = exchange(port, b"GET /echo/v1/h HTTP/1.1\r\n" + _headers(60, count=5) + b"\r\n", tls_client)
    assert r.status == 200


def test_header_count_over_limit_is_431(port, tls_client):
    r = exchange(port, b"GET /echo/v1/h HTTP/1.1\r\n" + _headers(80, count=6) + b"\r\n", tls_client)
    assert r.status == 431


def test_endless_headers_refused_without_buffering(port, tls_client):
    with connect(port, tls_client) as s:
        s.sendall(b"GET /echo/v1/h HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(200):
                s.sendall(b"X-Flood: " + b"y" * 100 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass
        r = read_response(s)
        assert r.status == 431


def test_body_at_limit_passes(port, tls_client):
    body = b"b" * 1000
    r = exchange(port, b"POST /echo/v1/b HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + body, tls_client)
    assert r.status == 200 and r.json()["body_length"] == 1000


def test_body_over_limit_refused_from_content_length(port, tls_client, echo):
    with connect(port, tls_client) as s:
        # no body sent at all: the answer comes from the declared length alone
        s.sendall(b"POST /echo/v1/big413 HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n")
        r = read_response(s)
        assert r.status == 413 and r.json()["code"] == "payload_too_large"
    assert not echo.seen("/big413")


def test_chunked_body_over_limit_cut_mid_stream(port, tls_client, echo):
    with connect(port, tls_client) as s:
        s.sendall(b"POST /echo/v1/chunk413 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(10):
                s.sendall(b"c8\r\n" + b"z" * 200 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass
        r = read_response(s)
        assert r.status == 413
    time.sleep(0.2)
    assert not echo.seen("/chunk413")  # the upstream never got a complete request


def test_slow_head_is_408_and_closed(port, tls_client):
    with connect(port, tls_client) as s:
        start = time.monotonic()
        s.sendall(b"GET /echo/v1/slow HTTP/1.1\r\n")
        # slowloris: a byte at a time, each well inside any per-read timeout
        try:
            for ch in b"X-Drip: aaaaaaaaaaaa":
                s.sendall(bytes([ch]))
                time.sleep(0.15)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass
        r = read_response(s)
        assert r.status == 408 and r.json()["code"] == "request_timeout"
        assert time.monotonic() - start < 3.5
        assert is_closed(s)


def test_slow_body_is_408(port, tls_client):
    with connect(port, tls_client) as s:
        s.sendall(b"POST /echo/v1/slowbody HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        r = read_response(s, timeout=5)
        assert r.status == 408


def test_idle_keepalive_connection_closed_quietly(port, tls_client):
    with connect(port, tls_client) as s:
        s.sendall(b"GET /echo/v1/i HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s).status == 200
        start = time.monotonic()
        assert is_closed(s, timeout=4)
        assert 1.0 < time.monotonic() - start < 3.5


def test_max_connections_waits_in_backlog(pki, echo, start_gateway, tls_client):
    g = start_gateway(config_yaml(pki, echo.port, limits="  max_connections: 2\n"))
    port = g.ports["public"]
    a = connect(port, tls_client)
    b = connect(port, tls_client)
    raw = socket.create_connection(("127.0.0.1", port), timeout=0.7)
    with pytest.raises((TimeoutError, socket.timeout, ssl.SSLError)):
        tls_client.wrap_socket(raw, server_hostname="localhost")  # not accepted yet
    raw.close()
    a.close()
    time.sleep(0.3)
    c = connect(port, tls_client)  # a slot is free again
    c.sendall(b"GET /echo/v1/ok HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(c).status == 200
    b.close()
    c.close()


def test_silent_connection_closed_without_an_answer(port, tls_client):
    """A connection that never sends a byte gets header_timeout, then a quiet close (no 408)."""
    with connect(port, tls_client) as s:
        s.settimeout(4)
        start = time.monotonic()
        data = s.recv(100)
        assert data == b""
        assert time.monotonic() - start < 3

"""Request-smuggling and malformed-framing shapes: 400 `bad_request`, connection closed, and the
request is never forwarded. Both codecs."""

from __future__ import annotations

import time

import pytest

from tests.helpers import Gateway, connect, is_closed, read_response
from tests.integration.conftest import config_yaml


@pytest.fixture(scope="module", params=[True, False], ids=["fast", "h11"])
def gw(request, pki, echo, tmp_path_factory):
    g = Gateway(config_yaml(pki, echo.port, fast_path=request.param, limits="  body_timeout: 1s\n"),
                tmp_path_factory.mktemp("gw"))
    yield g
    g.stop()


SHAPES = {
    "cl-te": b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
    "te-cl": b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    "dup-cl-differ": b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "dup-cl-same": b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    "cl-list": b"Content-Length: 3, 3\r\n\r\nabc",
    "cl-plus": b"Content-Length: +3\r\n\r\nabc",
    "cl-negative": b"Content-Length: -1\r\n\r\n",
    "cl-hex": b"Content-Length: 0x3\r\n\r\nabc",
    "space-before-colon": b"Content-Length : 3\r\n\r\nabc",
    "te-xchunked": b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "te-chunked-identity": b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    "te-identity": b"Transfer-Encoding: identity\r\n\r\n",
    "te-obs-fold": b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
    "bad-chunk-size": b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "chunk-missing-crlf": b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcX0\r\n\r\n",
    "nul-in-header": b"X-A: a\x00b\r\n\r\n",
    "bare-cr-in-header": b"X-A: a\rb\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_smuggling_shape_refused(gw, tls_client, echo, name):
    marker = f"/smuggle-{name}-{id(gw)}"
    head = f"POST /echo/v1{marker} HTTP/1.1\r\nHost: x\r\n".encode()
    with connect(gw.ports["public"], tls_client) as s:
        s.sendall(head + SHAPES[name])
        r = read_response(s)
        assert r.status == 400, (name, r.status, r.body)
        assert r.json()["code"] == "bad_request"
        assert r.header("connection") == "close"
        assert is_closed(s)
    time.sleep(0.1)
    assert not echo.seen(marker)


def test_huge_chunk_size_never_forwarded(gw, tls_client, echo):
    """h11 accepts chunk sizes of up to 20 hex digits; such a chunk is cut when its bytes pass
    max_body_bytes (413) or when they stop coming (408, body_timeout): never forwarded whole."""
    marker = f"/hugechunk-{id(gw)}"
    with connect(gw.ports["public"], tls_client) as s:
        s.sendall(f"POST /echo/v1{marker} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
                  + b"ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n")
        r = read_response(s, timeout=5)
        assert r.status == 408
        assert is_closed(s)
    assert not echo.seen(marker)


def test_no_host_http11_refused(gw, tls_client):
    with connect(gw.ports["public"], tls_client) as s:
        s.sendall(b"GET /echo/v1/nohost HTTP/1.1\r\n\r\n")
        assert read_response(s).status == 400


def test_two_hosts_refused(gw, tls_client):
    with connect(gw.ports["public"], tls_client) as s:
        s.sendall(b"GET /echo/v1/twohosts HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        r = read_response(s)
        assert r.status == 400


def test_garbage_is_400(gw, tls_client):
    with connect(gw.ports["public"], tls_client) as s:
        s.sendall(b"\x16\x03\x01garbage\r\n\r\n")
        assert read_response(s).status == 400


def test_non_http_bytes_refused_at_once(gw, tls_client):
    """A TLS ClientHello (or any binary junk) where a request line belongs: 400 now, not at the
    header timeout."""
    with connect(gw.ports["public"], tls_client) as s:
        start = time.monotonic()
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        r = read_response(s)
        assert r.status == 400
        assert time.monotonic() - start < 0.9

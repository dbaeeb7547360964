"""Micro-benchmarks: fastgate._native.httpfast against h11 (the reference it must beat).

Each pair times the same bytes through both and prints µs per head and the h11/fast ratio;
invariant: both sides produce the same result on these heads (asserted), and the fast path
beats h11 by a stated floor (asserted; the goal for request heads is 20x).
Run: .venv/bin/pytest benchmarks/micro/test_httpfast_bench.py --benchmark-only -s
"""

from __future__ import annotations

import h11
import pytest

from fastgate._native.httpfast import (
    parse_request_head,
    parse_response_head,
    serialize_response_head,
)

# A typical browser/SPA API call: 8 headers, ~350 bytes.
REQUEST = (
    b"GET /api/v1/orders/12345 HTTP/1.1\r\n"
    b"Host: api.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: application/json\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Authorization: Bearer eyJhbGciOiJ9.eyJzdWIiOiIxIn0.c2ln\r\n"
    b"Connection: keep-alive\r\n"
    b"X-Request-Id: 7f9c2ba4e88f\r\n"
    b"\r\n"
)

RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json; charset=utf-8\r\n"
    b"Content-Length: 1234\r\n"
    b"Date: Mon, 25 Nov 2024 12:00:00 GMT\r\n"
    b"Cache-Control: no-store\r\n"
    b"ETag: \"33a64df551425fcc55e4d42a148795d9f25f89d4\"\r\n"
    b"Vary: Accept-Encoding\r\n"
    b"X-Request-Id: 7f9c2ba4-e88f-11ee-9c5f\r\n"
    b"Server: upstream/1.0\r\n"
    b"\r\n"
)

RESPONSE_HEADERS = [
    (b"Content-Type", b"application/json; charset=utf-8"),
    (b"Content-Length", b"1234"),
    (b"Date", b"Mon, 25 Nov 2024 12:00:00 GMT"),
    (b"Cache-Control", b"no-store"),
    (b"X-Request-Id", b"7f9c2ba4-e88f-11ee-9c5f"),
    (b"RateLimit-Limit", b"100"),
    (b"RateLimit-Remaining", b"99"),
    (b"RateLimit-Reset", b"30"),
]

ITERATIONS = 200  # calls per timed round for the fast path
ROUNDS = 20000
_median: dict[str, float] = {}


def _record(benchmark, name: str) -> None:
    if not benchmark.disabled and benchmark.stats is not None:
        _median[name] = benchmark.stats.stats.median  # seconds per call (per iteration)


def h11_parse_request(data: bytes = REQUEST):
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    return conn.next_event()


def _h11_client_waiting():
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    return (conn,), {}


def h11_parse_response(conn: h11.Connection):
    conn.receive_data(RESPONSE)
    return conn.next_event()


def _h11_server_responding():
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.next_event()
    return (conn,), {}


def h11_serialize_response(conn: h11.Connection):
    return conn.send(h11.Response(status_code=200, reason=b"OK", headers=RESPONSE_HEADERS))


def _fast(benchmark, fn, *args):
    """Batches of calls per round: sub-microsecond calls would otherwise time the timer."""
    return benchmark.pedantic(fn, args=args, iterations=ITERATIONS, rounds=ROUNDS)


def _report(capsys, benchmark, key: str, label: str, floor: float) -> None:
    """Print µs per call and the h11/fast ratio; the fast path must beat h11 by `floor`."""
    _record(benchmark, f"{key}_h11")
    if f"{key}_fast" not in _median or f"{key}_h11" not in _median:
        return
    fast = _median[f"{key}_fast"] * 1e6
    ref = _median[f"{key}_h11"] * 1e6
    with capsys.disabled():
        print(f"\n{label:34} fast {fast:7.3f} µs   h11 {ref:7.2f} µs   ratio {ref / fast:5.1f}x")
    assert ref / fast >= floor


def test_heads_agree_with_h11():
    assert 330 <= len(REQUEST) <= 380
    fast = parse_request_head(REQUEST)
    ev = h11_parse_request()
    assert (fast.method, fast.target, fast.headers) == (ev.method, ev.target, list(ev.headers))
    (conn,), _ = _h11_client_waiting()
    ev = h11_parse_response(conn)
    fast = parse_response_head(RESPONSE)
    assert (fast.status, fast.reason, fast.headers) == (ev.status_code, ev.reason, list(ev.headers))
    (conn,), _ = _h11_server_responding()
    assert serialize_response_head(200, b"OK", RESPONSE_HEADERS) == h11_serialize_response(conn)


@pytest.mark.benchmark(group="parse-request")
def test_parse_request_fast(benchmark):
    assert _fast(benchmark, parse_request_head, REQUEST) is not None
    _record(benchmark, "parse_request_fast")


@pytest.mark.benchmark(group="parse-request")
def test_parse_request_h11(benchmark, capsys):
    # Per head: a new h11.Connection, receive_data, next_event (what the h11 path does).
    assert type(benchmark(h11_parse_request)) is h11.Request
    _report(capsys, benchmark, "parse_request", f"parse request head ({len(REQUEST)} B)", 10)


@pytest.mark.benchmark(group="parse-response")
def test_parse_response_fast(benchmark):
    assert _fast(benchmark, parse_response_head, RESPONSE) is not None
    _record(benchmark, "parse_response_fast")


@pytest.mark.benchmark(group="parse-response")
def test_parse_response_h11(benchmark, capsys):
    # A fresh client connection per round (setup, not timed): receive_data + next_event only.
    ev = benchmark.pedantic(h11_parse_response, setup=_h11_client_waiting, rounds=ROUNDS)
    assert type(ev) is h11.Response
    _report(capsys, benchmark, "parse_response", f"parse response head ({len(RESPONSE)} B)", 5)


@pytest.mark.benchmark(group="serialize-response")
def test_serialize_response_fast(benchmark):
    assert _fast(benchmark, serialize_response_head, 200, b"OK", RESPONSE_HEADERS)
    _record(benchmark, "serialize_response_fast")


@pytest.mark.benchmark(group="serialize-response")
def test_serialize_response_h11(benchmark, capsys):
    # h11.Response(...) + Connection.send() on a connection that just read a request.
    assert benchmark.pedantic(h11_serialize_response, setup=_h11_server_responding, rounds=ROUNDS)
    _report(capsys, benchmark, "serialize_response", "serialize response head (8 hdrs)", 5)

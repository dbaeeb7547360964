"""Differential tests: fastgate._native.httpfast against h11, the authority.

Invariant checked on every input: when the fast path returns a head, h11 accepts the same bytes
and yields the same fields, framing, keep-alive and 100-continue; when h11 rejects, the fast
path returns None. h11 is fed whole and byte by byte and must agree with itself.
"""

from __future__ import annotations

import h11
import pytest
from h11._connection import _body_framing, _keep_alive
from h11._receivebuffer import ReceiveBuffer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fastgate._native import httpfast
from fastgate._native.httpfast import (
    RequestHead,
    ResponseHead,
    find_head_end,
    parse_request_head,
    parse_response_head,
    serialize_request_head,
    serialize_response_head,
)

from .corpus_http import ERROR, FAST, INCOMPLETE, NONE, OK, REQUESTS, RESPONSES

BIG = 10 * 1024 * 1024  # h11's 16 KiB incomplete-event cap would make whole vs bytewise differ

# ---------------------------------------------------------------------------------------------
# The oracle
# ---------------------------------------------------------------------------------------------


def _request_view(conn: h11.Connection, ev: h11.Request) -> dict:
    return {
        "method": ev.method,
        "target": ev.target,
        "http_version": ev.http_version,
        "headers": list(ev.headers),
        "framing": _body_framing(ev.method, ev),
        "keep_alive": conn._cstate.keep_alive and _keep_alive(ev),
        "expect_continue": conn.they_are_waiting_for_100_continue,
        # CONNECT / Upgrade make h11 pause for a protocol switch: never a fast-path request.
        "switch_proposed": bool(conn._cstate.pending_switch_proposals),
        "their_state": conn.their_state,
    }


def _run(conn: h11.Connection, data: bytes, bytewise: bool):
    if not data:
        return h11.NEED_DATA  # receive_data(b"") would mean EOF, not "nothing yet"
    chunks = [data[i : i + 1] for i in range(len(data))] if bytewise else [data]
    ev = h11.NEED_DATA
    try:
        for chunk in chunks:
            conn.receive_data(chunk)
            ev = conn.next_event()
            if ev is not h11.NEED_DATA:
                break
    except h11.RemoteProtocolError:
        return "error"
    return ev


def h11_parse(data: bytes, bytewise: bool = False):
    """h11's verdict on a request: a dict of what it parsed, "error" or "incomplete"."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=BIG)
    ev = _run(conn, data, bytewise)
    if ev == "error":
        return "error"
    if ev is h11.NEED_DATA:
        return "incomplete"
    assert type(ev) is h11.Request, ev
    return _request_view(conn, ev)


def h11_parse_response(data: bytes, bytewise: bool = False):
    """h11's verdict on a response to GET /: a dict, "informational", "error" or "incomplete"."""
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=BIG)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    ev = _run(conn, data, bytewise)
    if ev == "error":
        return "error"
    if ev is h11.NEED_DATA:
        return "incomplete"
    if type(ev) is h11.InformationalResponse:
        return "informational"
    assert type(ev) is h11.Response, ev
    return {
        "status": ev.status_code,
        "reason": ev.reason,
        "http_version": ev.http_version,
        "headers": list(ev.headers),
        "framing": _body_framing(b"GET", ev),
        "keep_alive": conn._cstate.keep_alive and _keep_alive(ev),
    }


def h11_head_end(data: bytes) -> int:
    rb = ReceiveBuffer()
    rb += data
    if rb.maybe_extract_lines() is None:
        return -1
    return len(data) - len(rb)


def h11_verdict(ref) -> str:
    if ref == "error":
        return ERROR
    if ref == "incomplete":
        return INCOMPLETE
    return OK


# ---------------------------------------------------------------------------------------------
# Differential checks
# ---------------------------------------------------------------------------------------------


def check_request(data: bytes):
    """Assert the invariant for `data` given to parse_request_head as is; return both verdicts."""
    ref = h11_parse(data)
    assert h11_parse(data, bytewise=True) == ref, "h11 disagrees with itself (harness bug)"
    fast = parse_request_head(data)
    if fast is None:
        return None, ref
    assert isinstance(fast, RequestHead)
    assert isinstance(ref, dict), f"fast path accepted what h11 calls {ref!r}: {data!r}"
    assert fast.method == ref["method"]
    assert fast.target == ref["target"]
    assert fast.http_version == ref["http_version"]
    assert fast.headers == ref["headers"]
    assert all(type(n) is bytes and type(v) is bytes for n, v in fast.headers)
    assert ("content-length", (max(fast.content_length, 0),)) == ref["framing"]
    has_cl = any(n == b"content-length" for n, _ in ref["headers"])
    assert (fast.content_length >= 0) == has_cl
    assert fast.keep_alive == ref["keep_alive"]
    assert fast.expect_continue == ref["expect_continue"]
    assert not ref["switch_proposed"]
    assert ref["their_state"] is h11.SEND_BODY
    hosts = [v for n, v in ref["headers"] if n == b"host"]
    assert fast.host == (hosts[0] if hosts else None)
    return fast, ref


def check_response(data: bytes):
    ref = h11_parse_response(data)
    assert h11_parse_response(data, bytewise=True) == ref, "h11 disagrees with itself"
    fast = parse_response_head(data)
    if fast is None:
        return None, ref
    assert isinstance(fast, ResponseHead)
    assert isinstance(ref, dict), f"fast path accepted what h11 calls {ref!r}: {data!r}"
    assert fast.status == ref["status"]
    assert fast.reason == ref["reason"]
    assert fast.http_version == ref["http_version"]
    assert fast.headers == ref["headers"]
    if fast.status not in (204, 304):  # h11 forces length 0 there; the caller decides
        if fast.content_length < 0:
            assert ref["framing"] == ("http/1.0", ())
        else:
            assert ref["framing"] == ("content-length", (fast.content_length,))
    assert fast.keep_alive == ref["keep_alive"]
    return fast, ref


def _head_of(data: bytes) -> bytes:
    end = find_head_end(data)
    return data if end < 0 else data[:end]


# ---------------------------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------------------------


def test_corpus_is_big_enough_and_consistent():
    assert len(REQUESTS) >= 60
    assert len({label for label, *_ in REQUESTS}) == len(REQUESTS)
    assert len({label for label, *_ in RESPONSES}) == len(RESPONSES)
    for label, _, fast, h in REQUESTS + RESPONSES:
        assert fast in (FAST, NONE) and h in (OK, ERROR, INCOMPLETE), label
        assert fast == NONE or h == OK, label


@pytest.mark.parametrize("label,data,fast_verdict,h11_expected", REQUESTS, ids=[r[0] for r in REQUESTS])
def test_request_corpus(label, data, fast_verdict, h11_expected):
    head = _head_of(data)
    fast, ref = check_request(head)
    assert h11_verdict(h11_parse(data)) == h11_expected
    assert (fast is not None) == (fast_verdict == FAST), (fast, ref)
    if head != data:
        # Anything after the blank line (body, pipelined request) is not part of a head.
        assert parse_request_head(data) is None
    # The same head in a bytearray or memoryview parses the same.
    for other in (bytearray(head), memoryview(head)):
        again = parse_request_head(other)
        assert (again is None) == (fast is None)
        if fast is not None:
            assert (again.method, again.target, again.headers) == (fast.method, fast.target, fast.headers)


@pytest.mark.parametrize("label,data,fast_verdict,h11_expected", RESPONSES, ids=[r[0] for r in RESPONSES])
def test_response_corpus(label, data, fast_verdict, h11_expected):
    head = _head_of(data)
    fast, ref = check_response(head)
    assert h11_verdict(h11_parse_response(data)) == h11_expected
    assert (fast is not None) == (fast_verdict == FAST), (fast, ref)
    if head != data:
        assert parse_response_head(data) is None


def test_fields_of_a_typical_request():
    data = next(d for label, d, *_ in REQUESTS if label == "post with body")
    h = parse_request_head(_head_of(data))
    assert h.method == b"POST" and h.target == b"/o" and h.http_version == b"1.1"
    assert h.headers == [(b"host", b"example.com"), (b"content-length", b"13")]
    assert h.content_length == 13 and h.keep_alive and not h.expect_continue
    assert h.host == b"example.com"
    assert "RequestHead(" in repr(h)
    with pytest.raises(AttributeError):
        h.method = b"PUT"


def test_known_names_are_interned_and_unknown_are_fresh():
    h1 = parse_request_head(b"GET / HTTP/1.1\r\nHOST: a\r\nX-Odd-Thing: 1\r\n\r\n")
    h2 = parse_request_head(b"GET / HTTP/1.1\r\nhost: a\r\nX-ODD-THING: 1\r\n\r\n")
    assert h1.headers[0][0] is h2.headers[0][0] is h1.headers[0][0]
    assert h1.headers[1][0] == h2.headers[1][0] == b"x-odd-thing"


def test_result_types_can_be_built_from_python():
    r = RequestHead(b"GET", b"/", b"1.1", [(b"host", b"x")], host=b"x")
    assert (r.content_length, r.keep_alive, r.expect_continue, r.host) == (-1, True, False, b"x")
    s = ResponseHead(200, b"OK", b"1.1", [])
    assert (s.status, s.content_length, s.keep_alive) == (200, -1, True)


def test_types_refused():
    with pytest.raises(TypeError):
        parse_request_head("GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(TypeError):
        parse_response_head(None)
    with pytest.raises(TypeError):
        find_head_end("abc")
    with pytest.raises(ValueError):
        find_head_end(b"abc", -1)


def test_limits_exported():
    assert httpfast.MAX_HEADERS == 128
    assert httpfast.MAX_CONTENT_LENGTH_DIGITS == 18


# ---------------------------------------------------------------------------------------------
# find_head_end vs h11's ReceiveBuffer
# ---------------------------------------------------------------------------------------------

HEAD_END_EXTRA = [
    b"", b"\r", b"\n", b"\r\n", b"\n\n", b"\r\n\r", b"a\n\n", b"a\r\n\r\n", b"a\n\r\n", b"a\n\r",
    b"a\n\rb\n\n", b"a\r\r\n\r\n", b"\r\r\n", b"x\r\n\r\nGET", b"\n\r\n",
]


@pytest.mark.parametrize("data", [d for _, d, *_ in REQUESTS + RESPONSES] + HEAD_END_EXTRA)
def test_find_head_end_matches_h11(data):
    assert find_head_end(data) == h11_head_end(data)
    assert find_head_end(bytearray(data)) == h11_head_end(data)
    # Every prefix, and every split into two receives, gives h11's answer.
    for k in range(len(data) + 1):
        assert find_head_end(data[:k]) == h11_head_end(data[:k])
        rb = ReceiveBuffer()
        rb += data[:k]
        got = rb.maybe_extract_lines()
        consumed = k - len(rb)
        if got is None:
            rb += data[k:]
            got = rb.maybe_extract_lines()
            consumed = len(data) - len(rb)
        assert (consumed if got is not None else -1) == find_head_end(data)
    # `start` is where the head begins (after earlier pipelined bytes).
    end = find_head_end(data)
    assert find_head_end(b"JUNK" + data, 4) == (end + 4 if end >= 0 else -1)
    assert find_head_end(data, len(data)) == -1


@given(st.binary(max_size=64), st.binary(max_size=8))
@settings(max_examples=500, deadline=None)
def test_find_head_end_random(data, pre):
    data = data.replace(b"x", b"\n").replace(b"y", b"\r")
    assert find_head_end(data) == h11_head_end(data)
    end = find_head_end(data)
    assert find_head_end(pre + data, len(pre)) == (end + len(pre) if end >= 0 else -1)


# ---------------------------------------------------------------------------------------------
# Hypothesis: valid heads (must take the fast path), mutations, random bytes
# ---------------------------------------------------------------------------------------------

TCHARS = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
VCHARS = bytes(range(0x21, 0x7F))
VALUE_BYTES = VCHARS + bytes(range(0x80, 0x100))

token = st.binary(min_size=1, max_size=12).map(lambda b: bytes(TCHARS[x % len(TCHARS)] for x in b))
ows = st.sampled_from([b"", b" ", b"\t", b"  ", b" \t "])


@st.composite
def field_value(draw):
    words = draw(st.lists(st.binary(min_size=1, max_size=10), max_size=4))
    words = [bytes(VALUE_BYTES[x % len(VALUE_BYTES)] for x in w) for w in words]
    seps = [draw(st.sampled_from([b" ", b"\t", b"  ", b" \t"])) for _ in words]
    out = b""
    for i, w in enumerate(words):
        out += (seps[i] if i else b"") + w
    return out


def _case(draw, name: bytes) -> bytes:
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return bytes(c ^ 0x20 if f and chr(c).isalpha() else c for c, f in zip(name, flips, strict=True))


COMMA_VALUES = st.lists(
    st.sampled_from([b"close", b"Close", b"keep-alive", b"100-continue", b"100-Continue", b"x", b"", b" "]),
    max_size=4,
).map(lambda xs: b",".join(xs))


@st.composite
def valid_request(draw):
    """A head inside the strict subset: the fast path must parse it and agree with h11."""
    method = draw(st.one_of(token, st.sampled_from([b"GET", b"POST", b"CONNECT", b"connect"])))
    target = b"/" + draw(st.binary(max_size=30).map(lambda b: bytes(VCHARS[x % len(VCHARS)] for x in b)))
    version = draw(st.sampled_from([b"1.1", b"1.0"]))
    headers = []
    if version == b"1.1" or draw(st.booleans()):
        headers.append((_case(draw, b"host"), draw(field_value())))
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.integers(0, 5))
        if kind == 0:
            headers.append((_case(draw, b"connection"), draw(COMMA_VALUES)))
        elif kind == 5 and draw(st.integers(0, 9)) == 0:
            headers.append((_case(draw, b"upgrade"), draw(st.sampled_from([b"websocket", b""]))))
        elif kind == 1:
            headers.append((_case(draw, b"expect"), draw(COMMA_VALUES)))
        else:
            name = draw(token)
            if name.lower() in (b"host", b"content-length", b"transfer-encoding", b"upgrade"):
                continue
            headers.append((name, draw(field_value())))
    if draw(st.booleans()):
        digits = draw(st.integers(1, 18))
        cl = str(draw(st.integers(0, 10**digits - 1))).zfill(digits).encode()
        headers.insert(draw(st.integers(0, len(headers))), (_case(draw, b"content-length"), cl))
    lines = [b"%s %s HTTP/%s" % (method, target, version)]
    lines += [n + b":" + draw(ows) + v + draw(ows) for n, v in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


@given(valid_request())
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_valid_requests_take_the_fast_path(data):
    fast, ref = check_request(data)
    if not data.lower().startswith(b"connect ") and b"\r\nupgrade:" not in data.lower():
        assert fast is not None, (data, ref)


INTERESTING = [b"\r", b"\n", b" ", b"\t", b":", b"\x00", b"\x80", b"\xff", b",", b"\x7f", b"\x0b",
               b"\x01", b"\r\n", b"\n\n", b"\r\n ", b"/", b"0", b"-", b"+"]


@st.composite
def mutated(draw, base):
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.integers(0, 4))
        pos = draw(st.integers(0, len(data)))
        if op == 0 and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == 1:
            data[pos:pos] = draw(st.sampled_from(INTERESTING))
        elif op == 2 and pos < len(data):
            del data[pos]
        elif op == 3:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        else:
            # duplicate a line: duplicate Host / Content-Length / Connection shapes
            lines = bytes(data).split(b"\r\n")
            if len(lines) > 2:
                i = draw(st.integers(1, len(lines) - 2))
                lines.insert(i, lines[i])
                data = bytearray(b"\r\n".join(lines))
    return bytes(data)


SPECIAL_HEADERS = [
    b"Transfer-Encoding: chunked", b"Content-Length: 5", b"Content-Length: 5", b"Host: y",
    b"Connection: close", b"Expect: 100-continue", b"Upgrade: websocket", b"TE: trailers",
]


@st.composite
def request_with_specials(draw):
    head = draw(valid_request())
    extra = draw(st.lists(st.sampled_from(SPECIAL_HEADERS), max_size=3))
    return head[:-2] + b"".join(e + b"\r\n" for e in extra) + b"\r\n"


@given(mutated(request_with_specials()))
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n")
@example(b"GET / HTTP/1.1\r\nHost: x\r\n\x00: v\r\n\r\n")
def test_mutated_requests(data):
    check_request(data)
    check_request(_head_of(data))


@given(st.sampled_from([b"GET / HTTP/1.1\r\n", b"POST /x HTTP/1.0\r\n", b"GET / HTTP/1.1\r\nHost: x\r\n"]),
       st.binary(max_size=80), st.booleans())
@settings(max_examples=800, deadline=None)
def test_random_bytes_after_request_line(prefix, junk, terminate):
    data = prefix + junk + (b"\r\n\r\n" if terminate else b"")
    check_request(data)
    check_request(_head_of(data))


@given(st.binary(max_size=60))
@settings(max_examples=500, deadline=None)
def test_fully_random_bytes(data):
    check_request(data)
    check_response(data)


@st.composite
def valid_response(draw):
    version = draw(st.sampled_from([b"1.1", b"1.0"]))
    status = draw(st.one_of(st.integers(200, 599), st.integers(0, 999)))
    reason = draw(st.one_of(st.none(), field_value()))
    line = b"HTTP/%s %03d" % (version, status) + (b"" if reason is None else b" " + reason)
    lines = [line]
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 3))
        if kind == 0:
            lines.append(_case(draw, b"connection") + b":" + draw(ows) + draw(COMMA_VALUES))
        else:
            name = draw(token)
            if name.lower() in (b"content-length", b"transfer-encoding"):
                continue
            lines.append(name + b":" + draw(ows) + draw(field_value()) + draw(ows))
    if draw(st.booleans()):
        lines.append(b"Content-Length: %d" % draw(st.integers(0, 10**12)))
    return b"\r\n".join(lines) + b"\r\n\r\n"


@given(valid_response())
@settings(max_examples=500, deadline=None)
def test_valid_responses_take_the_fast_path(data):
    fast, ref = check_response(data)
    if 200 <= int(data[9:12]) < 600:
        assert fast is not None, (data, ref)


RESPONSE_SPECIALS = [b"Transfer-Encoding: chunked", b"Content-Length: 5", b"Connection: close"]


@st.composite
def response_with_specials(draw):
    head = draw(valid_response())
    extra = draw(st.lists(st.sampled_from(RESPONSE_SPECIALS), max_size=2))
    return head[:-2] + b"".join(e + b"\r\n" for e in extra) + b"\r\n"


@given(mutated(response_with_specials()))
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_responses(data):
    check_response(data)
    check_response(_head_of(data))


# ---------------------------------------------------------------------------------------------
# Serializers: round trip through h11, byte-equal to h11's own writer, injection refused
# ---------------------------------------------------------------------------------------------

header_list = st.lists(
    st.tuples(
        token.filter(lambda n: n.lower() not in (b"host", b"content-length", b"transfer-encoding",
                                                 b"connection", b"upgrade", b"expect")),
        field_value(),
    ),
    max_size=8,
)


@given(token.filter(lambda m: m.lower() != b"connect"), st.binary(max_size=20), header_list)
@settings(max_examples=400, deadline=None)
def test_serialize_request_round_trip(method, path, headers):
    target = b"/" + bytes(VCHARS[x % len(VCHARS)] for x in path)
    headers = [(b"Host", b"upstream.internal")] + headers
    wire = serialize_request_head(method, target, headers)
    ref = h11_parse(wire)
    assert isinstance(ref, dict)
    assert (ref["method"], ref["target"], ref["http_version"]) == (method, target, b"1.1")
    assert ref["headers"] == [(n.lower(), v) for n, v in headers]
    # h11 writes the very same bytes for the same event (Host first, order kept).
    conn = h11.Connection(h11.CLIENT)
    assert conn.send(h11.Request(method=method, target=target, headers=headers)) == wire
    # and the fast path reads it back
    fast, _ = check_request(wire)
    assert fast is not None


@given(st.integers(200, 999), field_value(), header_list, st.integers(0, 10**9))
@settings(max_examples=400, deadline=None)
def test_serialize_response_round_trip(status, reason, headers, length):
    headers = headers + [(b"Content-Length", str(length).encode())]
    wire = serialize_response_head(status, reason, headers)
    ref = h11_parse_response(wire)
    assert isinstance(ref, dict)
    assert (ref["status"], ref["reason"], ref["http_version"]) == (status, reason, b"1.1")
    assert ref["headers"] == [(n.lower(), v) for n, v in headers]
    server = h11.Connection(h11.SERVER)
    server.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    server.next_event()
    ev = h11.Response(status_code=status, reason=reason, headers=headers)
    assert server.send(ev) == wire
    if status < 600:
        fast, _ = check_response(wire)
        assert fast is not None


def test_serialize_exact_bytes():
    assert serialize_response_head(200, b"OK", [(b"Content-Length", b"0")]) == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    )
    assert serialize_response_head(204, b"", []) == b"HTTP/1.1 204 \r\n\r\n"
    assert serialize_request_head(b"GET", b"/x?y=1", [(b"Host", b"a"), (b"X", b"")]) == (
        b"GET /x?y=1 HTTP/1.1\r\nHost: a\r\nX: \r\n\r\n"
    )
    # Any iterable of pairs works; non-bytes does not.
    assert serialize_request_head(b"GET", b"/", ((b"Host", b"a"),)) == b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    assert serialize_request_head(b"GET", b"/", [[b"Host", b"a"]]) == b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    with pytest.raises(TypeError):
        serialize_request_head(b"GET", b"/", [("Host", "a")])
    with pytest.raises(TypeError):
        serialize_response_head(200, "OK", [])


BAD = [b"\r", b"\n", b"\x00", b"\r\n", b"a\r\nX-Injected: 1", b"a\nb", b"\x00a"]


@pytest.mark.parametrize("bad", BAD)
def test_serializers_refuse_injection(bad):
    ok = [(b"Host", b"x")]
    with pytest.raises(ValueError):
        serialize_response_head(200, b"OK", [(b"X-A", bad)])
    with pytest.raises(ValueError):
        serialize_response_head(200, b"OK", [(b"X-A" + bad, b"v")])
    with pytest.raises(ValueError):
        serialize_response_head(200, b"O" + bad, ok)
    with pytest.raises(ValueError):
        serialize_request_head(b"GET", b"/", ok + [(b"X-A", bad)])
    with pytest.raises(ValueError):
        serialize_request_head(b"GET", b"/", [(bad, b"v")])
    with pytest.raises(ValueError):
        serialize_request_head(b"GET", b"/a" + bad, ok)
    with pytest.raises(ValueError):
        serialize_request_head(b"G" + bad, b"/", ok)


@pytest.mark.parametrize("name", [b"", b"X A", b"X:A", b"Host ", b"X\tA", b"\xff"])
def test_serializers_refuse_non_token_names(name):
    with pytest.raises(ValueError):
        serialize_response_head(200, b"OK", [(name, b"v")])


@pytest.mark.parametrize("target", [b"", b"/a b", b"/a\tb", b"/\x7f", b"/\xc3\xa9"])
def test_serialize_request_refuses_bad_targets(target):
    with pytest.raises(ValueError):
        serialize_request_head(b"GET", target, [(b"Host", b"x")])


@pytest.mark.parametrize("status", [0, 99, 1000, -200])
def test_serialize_response_refuses_bad_status(status):
    with pytest.raises(ValueError):
        serialize_response_head(status, b"", [])

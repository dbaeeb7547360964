"""The generator's native response framing, fed whole, byte by byte and with a following
response: Content-Length, chunked (with extensions and trailers), HEAD, 204, close-delimited;
the problem+json `code` of error bodies."""

from __future__ import annotations

import pytest

from fastgate._native import loadgen

ResponseFramer = loadgen.ResponseFramer

CL = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;ext=1\r\nhello\r\n1A\r\n" + b"x" * 26 + b"\r\n0\r\nX-Trailer: 1\r\n\r\n")
PROBLEM = (b'{"type":"about:blank","title":"Unauthorized","status":401,"code":"unauthenticated",'
           b'"request_id":"r1"}')
ERROR = (b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/problem+json\r\nContent-Length: "
         + str(len(PROBLEM)).encode() + b"\r\n\r\n" + PROBLEM)


def feed_all(f: ResponseFramer, data: bytes, one_by_one: bool) -> tuple[int, int]:
    """(status, bytes consumed up to the end of the response)."""
    if not one_by_one:
        return f.feed(data)
    for i in range(len(data)):
        status, used = f.feed(data[i:i + 1])
        if status:
            return status, i + used
    return 0, len(data)


@pytest.mark.parametrize("one_by_one", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize("raw", [CL, CHUNKED, ERROR], ids=["content-length", "chunked", "problem"])
def test_complete_responses(raw: bytes, one_by_one: bool) -> None:
    f = ResponseFramer()
    status, used = feed_all(f, raw + b"HTTP/1.1 200 OK\r\n", one_by_one)
    assert status == int(raw[9:12])
    assert used == len(raw)  # stops exactly at the end: the next response is not eaten


def test_problem_code() -> None:
    f = ResponseFramer()
    assert f.feed(ERROR)[0] == 401
    assert f.problem_code() == "unauthenticated"
    f.reset()
    assert f.feed(CL)[0] == 200 and f.problem_code() == ""


def test_head_and_204_have_no_body() -> None:
    f = ResponseFramer(head_only=True)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
    assert f.feed(head) == (200, len(head))
    f = ResponseFramer()
    assert f.feed(b"HTTP/1.1 204 No Content\r\n\r\n")[0] == 204


def test_interim_response_is_skipped() -> None:
    f = ResponseFramer()
    status, _ = f.feed(b"HTTP/1.1 100 Continue\r\n\r\n" + CL)
    assert status == 200


def test_close_delimited_body_never_completes_by_itself() -> None:
    f = ResponseFramer()
    raw = b"HTTP/1.0 200 OK\r\n\r\nsome body"
    assert f.feed(raw) == (0, len(raw))


@pytest.mark.parametrize("raw", [
    b"HTTX/1.1 200 OK\r\n\r\n",
    b"HTTP/1.1 2x0 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
def test_bad_framing_is_an_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        ResponseFramer().feed(raw)

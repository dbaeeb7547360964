"""check_head's one-pass screen for rare heads against the plain substring version it replaced
(the oracle below): same verdict on every head, including folds and framing headers in any case."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from fastgate.config.model import Limits
from fastgate.errors import GatewayError
from fastgate.http.headlimits import check_head

_FRAMING = re.compile(rb"\n(content-length|transfer-encoding)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)
LIMITS = Limits()


def oracle(head: bytes) -> str | None:
    """The previous implementation's decisions after the size checks (kept verbatim)."""
    nl = head.find(b"\n")
    if b"\n " in head or b"\n\t" in head:
        return "obsolete line folding"
    if b"ength" in head or b"ENGTH" in head or b"ncoding" in head or b"NCODING" in head:
        matches = list(_FRAMING.finditer(head, nl))
        found = [m.group(1).lower() for m in matches]
        for m in matches:
            if m.group(1).lower() == b"content-length" and not m.group(2).rstrip(b" \t").isdigit():
                return "invalid Content-Length"
        if len(found) > 1:
            if b"transfer-encoding" in found and b"content-length" in found:
                return "both Content-Length and Transfer-Encoding"
            if found.count(b"content-length") > 1:
                return "more than one Content-Length"
    return None


def verdict(head: bytes) -> str | None:
    try:
        check_head(head, LIMITS)
    except GatewayError as e:
        return e.detail
    return None


NAMES = st.sampled_from([b"Host", b"Content-Length", b"content-length", b"CONTENT-LENGTH", b"Transfer-Encoding",
                         b"transfer-encoding", b"TrAnSfEr-EnCoDiNg", b"X-Length", b"Accept-Encoding", b"Authorization",
                         b" Content-Length", b"\tX", b"Content-Lengthx", b"Content-Length "])
VALUES = st.sampled_from([b"3", b"3, 3", b"chunked", b"gzip", b" 12 ", b"", b"Bearer " + b"a" * 400, b"abc"])


@settings(max_examples=600, deadline=None)
@given(st.lists(st.tuples(NAMES, VALUES), max_size=6), st.sampled_from([b"\r\n", b"\n"]))
def test_same_verdict_as_the_substring_version(fields, eol) -> None:
    head = b"GET / HTTP/1.1" + eol + b"".join(n + b": " + v + eol for n, v in fields) + eol
    assert verdict(head) == oracle(head)


def test_examples() -> None:
    assert verdict(b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n") == "obsolete line folding"
    assert verdict(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n") == \
        "both Content-Length and Transfer-Encoding"
    assert verdict(b"GET / HTTP/1.1\r\nAuthorization: Bearer " + b"x" * 500 + b"\r\n\r\n") is None

"""Raw-head checks made before any parser sees a request: size limits and framing ambiguity.

Invariant: both codecs (native fast path and h11) get only heads that passed these checks, so a
limit or a smuggling shape is decided the same way whichever parser then reads the head.
"""

from __future__ import annotations

import re

from ..config.model import Limits
from ..errors import BadRequest, HeadersTooLarge, UriTooLong

_FRAMING = re.compile(rb"\n(content-length|transfer-encoding)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)
# One pass for what is rare: a line that starts with a space or tab (obs-fold), or a framing header
# name (every _FRAMING match starts with one). Substring tests cost ~4x as much on a 500 B token.
_RARE = re.compile(rb"\n(?:[ \t]|(?i:content-length|transfer-encoding))")


def check_partial(buf: bytes | bytearray, limits: Limits) -> None:
    """Head not complete yet: refuse as soon as it can no longer fit (slow drip of a huge head)."""
    nl = buf.find(b"\n", 0, limits.max_request_line + 2)
    if nl < 0:
        if len(buf) > limits.max_request_line + 1:
            raise UriTooLong("request line too long")
        return
    if nl - (1 if buf[nl - 1 : nl] == b"\r" else 0) > limits.max_request_line:
        raise UriTooLong("request line too long")
    if len(buf) - nl > limits.max_header_bytes + limits.max_headers * 2 + 4:
        raise HeadersTooLarge("request headers too large")


def check_head(head: bytes, limits: Limits) -> None:
    """A complete head (through its blank line)."""
    nl = head.find(b"\n")
    line_len = nl - (1 if nl > 0 and head[nl - 1] == 0x0D else 0)
    if line_len > limits.max_request_line:
        raise UriTooLong("request line too long")
    header_bytes = len(head) - nl - 1
    if header_bytes > limits.max_header_bytes + limits.max_headers * 2 + 2:
        raise HeadersTooLarge("request headers too large")
    lines = head.count(b"\n", nl + 1) - 1
    if lines > limits.max_headers:
        raise HeadersTooLarge("too many request headers")
    if _RARE.search(head, nl) is None:
        return  # the common head: no folded line, no framing header
    if b"\n " in head or b"\n\t" in head:
        # RFC 9112 §5.2: obs-fold is rejected, not unfolded (h11 would unfold it).
        raise BadRequest("obsolete line folding")
    matches = list(_FRAMING.finditer(head, nl))
    found = [m.group(1).lower() for m in matches]
    for m in matches:
        # RFC 9110 §8.6 lets a recipient merge "3, 3"; we refuse every list form instead.
        if m.group(1).lower() == b"content-length" and not m.group(2).rstrip(b" \t").isdigit():
            raise BadRequest("invalid Content-Length")
    if len(found) > 1:
        # RFC 9112 §6.3: CL with TE, or several CL, is how requests are smuggled.
        if b"transfer-encoding" in found and b"content-length" in found:
            raise BadRequest("both Content-Length and Transfer-Encoding")
        if found.count(b"content-length") > 1:
            raise BadRequest("more than one Content-Length")


def check_parsed(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], limits: Limits) -> None:
    """Exact limits on the parsed head: line = METHOD SP target SP HTTP/1.x; a header = name: value CRLF."""
    if len(method) + len(target) + 10 > limits.max_request_line:
        raise UriTooLong("request line too long")
    if len(headers) > limits.max_headers:
        raise HeadersTooLarge("too many request headers")
    total = 0
    for name, value in headers:
        total += len(name) + len(value) + 4
    if total > limits.max_header_bytes:
        raise HeadersTooLarge("request headers too large")

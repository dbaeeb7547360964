"""Native fast path for HTTP/1.1 heads (stub for fastgate/_native/httpfast.pyx).

Invariant: a parse returns a result only for a strict subset of what h11 0.16 accepts, and then
exactly what h11 would produce; None means "give these bytes to h11", which stays the authority.
"""

from collections.abc import Iterable

MAX_HEADERS: int  # 128: more header lines than this -> None
MAX_CONTENT_LENGTH_DIGITS: int  # 18: a longer Content-Length -> None (h11 allows 20)

class RequestHead:
    """A request head the fast path fully understood; fields have h11's meaning and form."""

    @property
    def method(self) -> bytes: ...
    @property
    def target(self) -> bytes: ...  # origin-form only, byte-exact
    @property
    def http_version(self) -> bytes: ...  # b"1.1" or b"1.0"
    @property
    def headers(self) -> list[tuple[bytes, bytes]]: ...  # (lowercased name, OWS-trimmed value)
    @property
    def content_length(self) -> int: ...  # -1: no Content-Length (and never TE) -> no body
    @property
    def keep_alive(self) -> bool: ...  # h11's rule: False for HTTP/1.0 or a "close" token
    @property
    def expect_continue(self) -> bool: ...  # "100-continue" token, HTTP/1.1 only
    @property
    def host(self) -> bytes | None: ...  # the single Host value (None only for HTTP/1.0)
    def __init__(
        self,
        method: bytes,
        target: bytes,
        http_version: bytes,
        headers: list[tuple[bytes, bytes]],
        content_length: int = -1,
        keep_alive: bool = True,
        expect_continue: bool = False,
        host: bytes | None = None,
    ) -> None: ...

class ResponseHead:
    """A response head the fast path fully understood: status 200-599, no Transfer-Encoding."""

    @property
    def status(self) -> int: ...
    @property
    def reason(self) -> bytes: ...  # byte-exact, may be b""
    @property
    def http_version(self) -> bytes: ...  # b"1.1" or b"1.0"
    @property
    def headers(self) -> list[tuple[bytes, bytes]]: ...
    @property
    def content_length(self) -> int: ...  # -1: none (read to close; HEAD/204/304: caller decides)
    @property
    def keep_alive(self) -> bool: ...
    def __init__(
        self,
        status: int,
        reason: bytes,
        http_version: bytes,
        headers: list[tuple[bytes, bytes]],
        content_length: int = -1,
        keep_alive: bool = True,
    ) -> None: ...

def find_head_end(buf: bytes | bytearray, start: int = 0) -> int:
    """Index just past the blank line (h11: b"\\n\\r?\\n") ending the head at `start`, or -1.

    A head starting with b"\\n" or b"\\r\\n" ends right there (h11 rejects it: "no request
    line received"). `start` is where the head begins, not a resume offset.
    """

def parse_request_head(head: bytes | bytearray | memoryview) -> RequestHead | None:
    """The complete head including its blank line and nothing after it; None -> use h11."""

def parse_response_head(head: bytes | bytearray | memoryview) -> ResponseHead | None:
    """The complete head including its blank line and nothing after it; None -> use h11."""

def serialize_request_head(
    method: bytes, target: bytes, headers: Iterable[tuple[bytes, bytes]]
) -> bytes:
    """b"METHOD target HTTP/1.1\\r\\n" + header lines + b"\\r\\n"; ValueError on injection."""

def serialize_response_head(
    status: int, reason: bytes, headers: Iterable[tuple[bytes, bytes]]
) -> bytes:
    """b"HTTP/1.1 status reason\\r\\n" + header lines + b"\\r\\n"; ValueError on injection."""

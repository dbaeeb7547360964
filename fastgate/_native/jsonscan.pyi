"""Streaming JSON threat scanner (stub for fastgate/_native/jsonscan.pyx).

Invariant: any split of the input into feed() calls gives the same verdict, limit and offset as
one whole feed; memory is O(max_depth) plus the decoded keys of the objects still open.
"""

from typing import Final, final

_Bytes = bytes | bytearray | memoryview

__all__ = [
    "DEFAULT_MAX_ARRAY_ELEMENTS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_KEY_LENGTH",
    "DEFAULT_MAX_OBJECT_ENTRIES",
    "DEFAULT_MAX_STRING_LENGTH",
    "LIMIT_NAMES",
    "JsonLimits",
    "JsonScanner",
    "scan_json",
]

DEFAULT_MAX_DEPTH: Final = 20
DEFAULT_MAX_STRING_LENGTH: Final = 10_000
DEFAULT_MAX_KEY_LENGTH: Final = 256
DEFAULT_MAX_ARRAY_ELEMENTS: Final = 1000
DEFAULT_MAX_OBJECT_ENTRIES: Final = 1000
DEFAULT_MAX_BYTES: Final = 1 << 20
# Every PayloadRejected.limit the scanner raises: "malformed", the six config keys, "duplicate_key".
LIMIT_NAMES: tuple[str, ...]

@final
class JsonLimits:
    """Per-document limits; each an int >= 0 or None (unlimited); 0 is a real limit. Immutable.

    max_depth: open arrays + objects (`[]` is depth 1). max_string_length / max_key_length: code
    points after decoding escapes. max_array_elements / max_object_entries: per container.
    max_bytes: the whole stream.
    """

    @property
    def max_depth(self) -> int | None: ...
    @property
    def max_string_length(self) -> int | None: ...
    @property
    def max_key_length(self) -> int | None: ...
    @property
    def max_array_elements(self) -> int | None: ...
    @property
    def max_object_entries(self) -> int | None: ...
    @property
    def max_bytes(self) -> int | None: ...
    def __init__(
        self,
        max_depth: int | None = 20,
        max_string_length: int | None = 10_000,
        max_key_length: int | None = 256,
        max_array_elements: int | None = 1000,
        max_object_entries: int | None = 1000,
        max_bytes: int | None = 1 << 20,
    ) -> None: ...
    @staticmethod
    def unlimited() -> JsonLimits:
        """Every limit None: only grammar, UTF-8 and duplicate keys decide (trusted input only)."""
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

@final
class JsonScanner:
    """Sans-IO scanner of one JSON document: feed() chunks, then finish().

    Both raise fastgate.errors.PayloadRejected(limit, offset) as soon as a violation is certain;
    limit is in LIMIT_NAMES, offset the byte offset in the whole stream. After a rejection every
    call raises it again; feed() after finish() raises RuntimeError.
    """

    def __init__(self, limits: JsonLimits | None = None) -> None: ...  # None: JsonLimits()
    @property
    def limits(self) -> JsonLimits: ...
    @property
    def bytes_seen(self) -> int:
        """Bytes given to feed() so far, including a rejected chunk."""
    @property
    def max_depth_seen(self) -> int:
        """Deepest nesting reached so far."""
    def feed(self, data: _Bytes) -> None: ...  # bytes, bytearray, contiguous memoryview
    def finish(self) -> None: ...
    def reset(self) -> None:
        """Start a new document with the same limits (keeps allocated memory)."""

def scan_json(data: _Bytes, limits: JsonLimits | None = None) -> None:
    """feed(data) + finish() on a new scanner; raises PayloadRejected."""

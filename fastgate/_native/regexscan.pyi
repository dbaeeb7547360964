"""Regex scanning (stub for fastgate/_native/regexscan.pyx): a native normaliser that undoes
common evasions, in front of a hyperscan database compiled once from (rule_id, pattern) pairs.

Invariant: normalise() is linear and never lengthens its input; a Normaliser/ScanStream yields
exactly the bytes of the block normaliser for every split of the input; hyperscan matches in
linear time and refuses, at construction, any pattern it cannot run that way.
"""

from collections.abc import Iterable
from typing import Literal

Kind = Literal["path", "query", "header", "body", "json"]

KINDS: tuple[str, ...]  # ("path", "query", "header", "body", "json")
COMMENT_MAX: int  # 32: longest /*...*/ content the normaliser strips
MAX_CARRY: int  # bytes a streaming normaliser may hold back between feeds (all stages)
ENTITIES: dict[bytes, bytes]  # HTML named references decoded (lowercase name -> one byte)

def normalise(data: bytes | bytearray | memoryview, kind: Kind = "body") -> bytes:
    """The normalised bytes the scanner matches (rules: the module docstring of the .pyx)."""

def _is_identity(data: bytes | bytearray | memoryview, kind: Kind = "body") -> bool:
    """True when normalise(data, kind) == data.lower(): nothing to decode, squeeze or strip."""

class Normaliser:
    """Streaming normaliser: "".join(feed(...)) + finish() == normalise(whole, kind)."""

    kind: str
    def __init__(self, kind: Kind = "body") -> None: ...
    def feed(self, data: bytes | bytearray | memoryview) -> bytes: ...
    def finish(self) -> bytes: ...  # b"" when called again

class PatternError(ValueError):
    """str(e) == "rule <id>: <why>" ("rule set: <why>" when rule_id is None)."""

    rule_id: str | None
    reason: str
    def __init__(self, rule_id: str | None, reason: str) -> None: ...

class Match:
    """The first match hyperscan reported."""

    @property
    def rule_id(self) -> str: ...
    @property
    def offset(self) -> int: ...  # end offset in the normalised data (stream: in the stream)
    def __init__(self, rule_id: str, offset: int) -> None: ...

class PatternSet:
    """Compiled once (block + stream databases); caseless, single match per rule, DOTALL."""

    rule_ids: tuple[str, ...]
    caseless: bool
    def __init__(self, rules: Iterable[tuple[str, str]], *, caseless: bool = True) -> None: ...
    def __len__(self) -> int: ...
    def scan(self, data: bytes | bytearray | memoryview, *, kind: Kind = "body") -> Match | None:
        """Block mode over normalise(data, kind) (bytes that normalising would only lowercase
        are matched in place by a caseless set: same verdict and offsets)."""
    def stream(self, *, kind: Kind = "body") -> ScanStream: ...

class ScanStream:
    """Stream mode: feed() each chunk, then close(); the verdict is sticky once found."""

    kind: str
    @property
    def closed(self) -> bool: ...
    @property
    def match(self) -> Match | None: ...
    def __init__(self, ps: PatternSet, kind: Kind = "body") -> None: ...
    def feed(self, chunk: bytes | bytearray | memoryview) -> Match | None: ...
    def close(self) -> Match | None: ...  # idempotent

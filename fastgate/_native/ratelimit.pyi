"""Type stub for fastgate._native.ratelimit: GCRA and sliding-window limiters over a bounded key table.

Invariant: same interface and the same numbers as the pure-Python oracle fastgate.ratelimit_model.
"""

from collections.abc import Callable, Hashable
from typing import final

__all__ = ["Decision", "GcraLimiter", "SlidingWindow"]

@final
class Decision:
    """Outcome of one check; retry_after is math.inf when the request can never be admitted."""

    @property
    def allowed(self) -> bool: ...
    @property
    def limit(self) -> int: ...
    @property
    def remaining(self) -> int: ...
    @property
    def reset_after(self) -> float: ...
    @property
    def retry_after(self) -> float: ...
    def __init__(
        self, allowed: bool, limit: int, remaining: int, reset_after: float, retry_after: float
    ) -> None: ...

class _KeyTable:
    @property
    def requests(self) -> int: ...
    @property
    def per(self) -> float: ...
    @property
    def max_keys(self) -> int: ...
    @property
    def evictions(self) -> int:
        """Keys evicted while their bucket was not full (state lost: more permissive)."""
    @property
    def reclaimed(self) -> int:
        """Expired (idle again) keys dropped; nothing lost."""
    @property
    def clock(self) -> Callable[[], float]: ...
    def __len__(self) -> int: ...
    def __contains__(self, key: object) -> bool: ...
    def sweep(self, now: float | None = None) -> int: ...
    def check(self, key: str | Hashable, cost: int = 1, now: float | None = None) -> Decision: ...
    def peek(self, key: str | Hashable, now: float | None = None) -> Decision: ...

class GcraLimiter(_KeyTable):
    def __init__(
        self,
        requests: int,
        per: float,
        max_keys: int = 100_000,
        clock: Callable[[], float] = ...,
        *,
        burst: int | None = None,
    ) -> None: ...
    @property
    def burst(self) -> int: ...
    def backlog_ns(self, key: str | Hashable, now: float | None = None) -> int: ...
    def set_backlog_ns(self, key: str | Hashable, backlog_ns: int, now: float | None = None) -> None: ...

class SlidingWindow(_KeyTable):
    def __init__(
        self,
        requests: int,
        per: float,
        max_keys: int = 100_000,
        clock: Callable[[], float] = ...,
    ) -> None: ...

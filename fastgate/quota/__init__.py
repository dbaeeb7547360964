"""Cluster quotas: one interface (`QuotaBackend.take`) over interchangeable stores -- `LocalQuota`
(this node only, native GCRA) and `RedisQuota` (shared GCRA in Redis / Redis Cluster, with leases,
a circuit breaker and an explicit on_unavailable policy: local | allow | deny).

Invariant: every backend answers `take` with a QuotaDecision and never blocks the event loop; a
Redis-backed decision never admits more than the shared GCRA allows (see redis_backend, leases).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LocalQuota", "QuotaBackend", "QuotaDecision", "RedisQuota", "whole_seconds"]

SOURCES = ("redis", "lease", "local", "allow", "deny")


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~1 µs, paid per level per request
class QuotaDecision:
    """Outcome of one take; the numbers RateLimit-* / Retry-After are made from.

    source: "redis" (decided by the script this call), "lease" (decided locally from tokens or a
    denial Redis gave this node), "local" (Redis unavailable: this node's share, native GCRA),
    "allow" / "deny" (Redis unavailable, fail-open / fail-closed: the caller maps deny to 503).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float
    source: str


NEVER = 86400 * 365  # seconds: what "never" reads as in Retry-After / RateLimit-Reset


def whole_seconds(x: float) -> int:
    """Seconds rounded up, for Retry-After and RateLimit-Reset; nan/inf (a cost no bucket can
    ever hold) and anything past a year read as a year."""
    if x != x or x > NEVER:
        return NEVER
    n = int(x)
    return n if n >= x else n + 1


class QuotaBackend:
    """The storage interface a traffic-control policy talks to."""

    async def take(
        self, key: str, requests: int, per: float, cost: int = 1, *, burst: int | None = None
    ) -> QuotaDecision:
        raise NotImplementedError

    def take_now(
        self, key: str, requests: int, per: float, cost: int = 1, *, burst: int | None = None
    ) -> QuotaDecision | None:
        """The decision when it needs no I/O (local state, a lease, a cached denial), else None:
        the hot path then skips a coroutine per level, and only a refill awaits `take`."""
        return None

    async def close(self) -> None:
        return None


class LocalQuota(QuotaBackend):
    """This node only: the native GcraLimiter per (requests, per, burst); source "local"."""

    def __init__(self, clock: Callable[[], float] = time.time, max_keys: int = 100_000) -> None:
        from fastgate.quota.redis_backend import LocalLimiters

        self._limiters = LocalLimiters(clock, max_keys)

    async def take(
        self, key: str, requests: int, per: float, cost: int = 1, *, burst: int | None = None
    ) -> QuotaDecision:
        return self._limiters.check(key, requests, per, burst or requests, cost, requests)

    def take_now(
        self, key: str, requests: int, per: float, cost: int = 1, *, burst: int | None = None
    ) -> QuotaDecision:
        return self._limiters.check(key, requests, per, burst or requests, cost, requests)

    def __len__(self) -> int:
        return self._limiters.key_count()


def __getattr__(name: str):  # lazy: importing the package does not import redis
    if name == "RedisQuota":
        from fastgate.quota.redis_backend import RedisQuota

        return RedisQuota
    raise AttributeError(name)

"""Revoked token ids (`jti`): a bounded, expiring set that every oauth2 request consults.

Invariant: a revocation is kept until the token it names can no longer pass the `exp` check
(its `exp` plus RETENTION_MARGIN, which covers any issuer's leeway), so dropping it then never
re-enables a token. When the set is full, expired entries go first; only if none has expired is
the entry closest to its end dropped (counted in `evicted_live`, logged) — the least harmful
choice once memory is the limit. One instance per process lives in SharedState, so a later Redis
sync (issue 4: "list synced via Redis when configured") feeds it through `revoke()`.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Iterable

log = logging.getLogger("fastgate")

DEFAULT_MAX_ENTRIES = 100_000
RETENTION_MARGIN = 300.0  # seconds past `exp`: longer than any sane leeway
DEFAULT_RETENTION = 86_400.0  # a revocation without a known `exp` is kept this long
SHARED_KEY = ("oauth2", "revocations")


class RevocationList:
    """`revoke(jti, exp)` / `is_revoked(jti)`; O(1) lookups, O(log n) inserts."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES,
                 clock: Callable[[], float] = time.time) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.max_entries = max_entries
        self.clock = clock
        self._until: dict[str, float] = {}  # jti -> epoch seconds after which it is forgotten
        self._heap: list[tuple[float, str]] = []  # (until, jti); stale pairs skipped lazily
        self.evicted_live = 0

    def revoke(self, jti: str, exp: float | None = None) -> None:
        """Deny `jti` until its token's `exp` (epoch seconds; None = DEFAULT_RETENTION from now).
        Revoking again only ever extends the retention."""
        now = self.clock()
        until = (now + DEFAULT_RETENTION) if exp is None else float(exp) + RETENTION_MARGIN
        if until <= now:
            return  # the token is already dead for every verifier
        old = self._until.get(jti)
        if old is not None and old >= until:
            return
        if old is None and len(self._until) >= self.max_entries:
            self._make_room(now)
        self._until[jti] = until
        heapq.heappush(self._heap, (until, jti))
        if len(self._heap) > 2 * self.max_entries + 16:
            self._compact()

    def revoke_many(self, items: Iterable[tuple[str, float | None]]) -> None:
        """Bulk form for a sync source: (jti, exp) pairs."""
        for jti, exp in items:
            self.revoke(jti, exp)

    def is_revoked(self, jti: str) -> bool:
        until = self._until.get(jti)
        if until is None:
            return False
        if until <= self.clock():
            del self._until[jti]  # its token has expired anyway; the heap pair goes lazily
            return False
        return True

    def __len__(self) -> int:
        return len(self._until)

    def _make_room(self, now: float) -> None:
        heap, until = self._heap, self._until
        while heap:
            t, jti = heap[0]
            if until.get(jti) != t:  # stale pair: re-revoked later or already dropped
                heapq.heappop(heap)
                continue
            if t <= now or len(until) >= self.max_entries:
                heapq.heappop(heap)
                del until[jti]
                if t > now:
                    self.evicted_live += 1
                    log.warning("oauth2 revocation list full (%d): dropped the revocation "
                                "closest to expiry", self.max_entries)
                continue
            break

    def _compact(self) -> None:
        self._heap = [(t, j) for j, t in self._until.items()]
        heapq.heapify(self._heap)


def for_shared(shared) -> RevocationList:
    """The process-wide list (what the policy checks and what a Redis sync feeds)."""
    return shared.get(SHARED_KEY, RevocationList)

"""Local leases of cluster-quota tokens: a node takes N tokens from Redis at once and spends them
without a round trip; a denial from Redis is remembered until its retry_after.

Invariant: a node admits a request from a lease only with a token Redis granted it (the script
debited the shared GCRA when it granted), so the cluster never admits more than the GCRA allows;
the only error is under-admission by tokens still unspent in leases (bounded below) or that expire.

Sizing (`Lease.want`): N = max(cost, min(share, demand, max_lease)) where
    share  = floor(remaining_after_last_grant / (4 * live_nodes))   -- shrinks to 1 near exhaustion
    demand = ceil(rate * horizon)     -- what this node spends in `horizon` s at its measured rate
So all nodes together hold at most about a quarter of what is left, and a lease is normally spent
long before its `ttl` (it grows only when requests are plentiful AND the quota is far from
exhausted). Tokens left when a lease expires are dropped (under-admission, never over-admission).
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["Lease", "LeaseTable"]


class Lease:
    """This node's state for one quota (key + its requests/per/burst)."""

    __slots__ = (
        "tokens",
        "expires",
        "deny_until",
        "remaining",
        "reset_at",
        "rate",
        "count",
        "since",
        "inflight",
        "deny_cost",
        "granted",
    )

    def __init__(self, now: float) -> None:
        self.tokens = 0  # granted by Redis, not yet spent
        self.expires = 0.0  # tokens are dropped at this clock reading
        self.deny_until = 0.0  # Redis said "no" until then for costs >= deny_cost (cached)
        self.deny_cost = 1
        self.remaining = -1  # bucket remaining after the last grant (-1: never asked)
        self.reset_at = now  # when the shared bucket is full again (from the last reply)
        self.rate = 0.0  # EWMA of requests/s at this node for this quota
        self.count = 0  # requests since `since`
        self.since = now
        self.inflight: asyncio.Future | None = None  # single-flight refill
        self.granted = 0  # size of the last grant: below a quarter of it, refill ahead of need

    def spend(self, cost: int, now: float) -> bool:
        if self.tokens >= cost and now < self.expires:
            self.tokens -= cost
            return True
        return False

    def observe(self, now: float) -> None:
        """Fold the request count since the last refill into the rate estimate."""
        sample = self.count / max(now - self.since, 0.001)  # 1 ms floor: a burst reads as fast
        self.rate = sample if self.rate == 0.0 else 0.5 * self.rate + 0.5 * sample
        self.count = 0
        self.since = now

    def want(self, cost: int, live_nodes: int, horizon: float, max_lease: int) -> int:
        """Tokens to ask for (the script grants `cost`..want, or nothing)."""
        if self.remaining < 0:
            return cost  # first contact: learn `remaining` before holding anything
        share = self.remaining // (4 * max(1, live_nodes))
        demand = math.ceil(self.rate * horizon)
        return max(cost, min(share, demand, max_lease), 1)


class LeaseTable:
    """Bounded map quota -> Lease in LRU order; evicting a lease only drops unspent tokens."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._leases: OrderedDict[Hashable, Lease] = OrderedDict()
        self.dropped = 0  # tokens lost to expiry/eviction (under-admission, for metrics)

    def get(self, key: Hashable, now: float) -> Lease:
        lease = self._leases.get(key)
        if lease is None:
            if len(self._leases) >= self.max_keys:
                _, old = self._leases.popitem(last=False)
                self.dropped += old.tokens
            lease = self._leases[key] = Lease(now)
        else:
            self._leases.move_to_end(key)
        return lease

    def peek(self, key: Hashable) -> Lease | None:
        """The lease for key if there is one (LRU order touched), never a new one."""
        lease = self._leases.get(key)
        if lease is not None:
            self._leases.move_to_end(key)
        return lease

    def expire(self, lease: Lease, now: float) -> None:
        if lease.tokens and now >= lease.expires:
            self.dropped += lease.tokens
            lease.tokens = 0

    def __len__(self) -> int:
        return len(self._leases)

    def outstanding(self) -> int:
        return sum(le.tokens for le in self._leases.values())

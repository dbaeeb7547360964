"""Bandwidth quotas: request + response body bytes per window, charged when known.

A request's size is unknown until its response ends, so this is a debt meter, not a gate: each key
holds a TAT (the time its bytes so far drain at `bandwidth` per `per`); a request may start while
the backlog is under one window's worth, and its bytes are charged afterwards whatever they come
to. So one large response can push a key over, and the *next* request is denied until the backlog
drains below a window again (Retry-After says when).

Invariant: `over` never waits for the network. In a cluster the node charges Redis in the
background (single flight per key, one script call that adds the bytes and returns the shared
TAT); the local view is max(shared TAT as last seen, this node's own charges) plus bytes not yet
flushed, so a node denies as soon as it alone is over and learns the others' bytes one flush later.
Tables are LRU-bounded by `max_keys`; a flood of distinct keys evicts, never grows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

log = logging.getLogger("fastgate")

__all__ = ["BW_LUA", "BandwidthMeter"]

#: KEYS[1] meter key. ARGV: microseconds one byte drains in x 1e6 (per_us / bandwidth, exact
#: enough as a double), bytes. tat' = max(tat, now) + bytes * us_per_byte, kept while it drains.
#: Returns the backlog max(tat', now) - now in microseconds (an integer).
BW_LUA = r"""
local us_per_byte = tonumber(ARGV[1])
local bytes = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
tat = tat + math.floor(bytes * us_per_byte + 0.5)
local backlog = tat - now
if backlog > 0 then
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil(backlog / 1000) + 1)
end
return backlog
"""
MAX_KEYS = 100_000


class _Meter:
    __slots__ = ("tat", "pending", "flushing")

    def __init__(self) -> None:
        self.tat = 0.0  # local clock time when this key's known bytes have drained
        self.pending = 0  # bytes charged here, not yet sent to Redis
        self.flushing = False


class BandwidthMeter:
    """Per-key byte debt. `redis` (a RedisQuota) shares it across nodes; None = this node only."""

    def __init__(self, redis=None, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = MAX_KEYS) -> None:
        self.redis = redis
        self.clock = clock
        self.max_keys = max_keys
        self._meters: OrderedDict[str, _Meter] = OrderedDict()

    def __len__(self) -> int:
        return len(self._meters)

    def retry_after(self, key: str, bandwidth: int, per: float) -> float:
        """0.0 when a request may start now, else seconds until the backlog is under a window."""
        m = self._meters.get(key)
        if m is None:
            return 0.0
        backlog = m.tat - self.clock()
        return backlog - per if backlog > per else 0.0

    def remaining(self, key: str, bandwidth: int, per: float) -> int:
        m = self._meters.get(key)
        backlog = 0.0 if m is None else max(0.0, m.tat - self.clock())
        return max(0, int(bandwidth - backlog * bandwidth / per))

    def charge(self, key: str, nbytes: int, bandwidth: int, per: float) -> None:
        if nbytes <= 0:
            return
        m = self._meters.get(key)
        if m is None:
            if len(self._meters) >= self.max_keys:
                self._meters.popitem(last=False)
            m = self._meters[key] = _Meter()
        else:
            self._meters.move_to_end(key)
        now = self.clock()
        m.tat = max(m.tat, now) + nbytes * per / bandwidth
        if self.redis is not None:
            m.pending += nbytes
            if not m.flushing:
                m.flushing = True
                asyncio.get_running_loop().create_task(self._flush(key, m, bandwidth, per))

    async def _flush(self, key: str, m: _Meter, bandwidth: int, per: float) -> None:
        """Send this node's bytes; adopt the shared backlog (which now includes them)."""
        from .redis_backend import _Unavailable, quota_key

        r = self.redis
        us_per_byte = per * 1e6 / bandwidth
        try:
            while m.pending:
                sent, m.pending = m.pending, 0
                try:
                    backlog_us = await r._call(lambda s=sent: r._script(
                        BW_LUA, quota_key("bw:" + key, r.prefix), repr(us_per_byte), s))
                except _Unavailable:
                    return  # the bytes stay in the local view; Redis misses them
                # everything sent so far is in the shared backlog; later local charges are not
                m.tat = max(m.tat - m.pending * per / bandwidth,
                            self.clock() + int(backlog_us) / 1e6) + m.pending * per / bandwidth
        except Exception:  # a bug must not leave the key flushing forever
            log.exception("bandwidth flush failed")
        finally:
            m.flushing = False

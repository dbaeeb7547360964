"""Cluster quota in Redis: an atomic GCRA Lua script (one key per quota, value = TAT), leases of
several tokens per round trip, node heartbeats, a circuit breaker and an on_unavailable policy.

Invariant: the script is the only writer of a quota key and does read-modify-write in one atomic
step, with the arithmetic of fastgate.ratelimit_model.GcraLimiter (exact integers, see GCRA_LUA);
a node admits only tokens the script granted it (source "redis"/"lease"), so the cluster never
admits more than one GCRA would. When Redis is unavailable no call waits longer than `timeout`
and the decision comes from `on_unavailable` (local share / allow / deny); recovery is automatic.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError
from redis.retry import Retry

from fastgate._native.ratelimit import GcraLimiter
from fastgate.quota import QuotaBackend, QuotaDecision
from fastgate.quota.breaker import CircuitBreaker
from fastgate.quota.leases import Lease, LeaseTable

__all__ = ["GCRA_LUA", "HEARTBEAT_LUA", "LocalLimiters", "RedisQuota", "quota_key"]

#: GCRA, exactly as GcraLimiter but on a line of microseconds (Redis TIME's resolution) and with
#: Lua's doubles kept exact: every integer stays <= 2**52 (checked by the caller).
#:   unit = g/R us with g = gcd(R, per_us): then T = per_us/g units and one us = R' = R/g units.
#:   TAT is stored as "q r R' T": tat = q*R' + r units (q in us since the epoch, 0 <= r < R'), so
#:   no absolute time is ever multiplied by R'; the script only works with base = max(tat, now) - now.
#:   R' and T are those the TAT was written with: when a reload changed the quota's numbers, the
#:   base is rescaled to the same count of spent requests (base/T_old*T, rounded up), so counters
#:   survive a changed tier and the new numbers apply to the very next request.
#:   dvt = burst*T. fit = floor((dvt - base)/T) = how many cost-1 requests fit now.
#:   granted = min(want, fit) if fit >= need else 0  (need = this request's cost; want >= need
#:   asks for a lease; want == need is exactly GcraLimiter.check: new_tat - dvt <= now).
#:   Only a grant writes: tat' = now + base + granted*T, SET ... PX = TAT horizon (ms, rounded up).
#: KEYS[1] quota key. ARGV: R', T, burst, want, need, now_us ("" = Redis TIME, shared by all nodes).
#: Returns {granted, remaining, used, wait}: remaining = floor((dvt - used)/T) after the grant,
#: used = max(tat', now) - now in units (reset_after), wait = units until `need` fits (-1: never).
GCRA_LUA = r"""
local function fdiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end
local R, T, B = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local want, need = tonumber(ARGV[4]), tonumber(ARGV[5])
local now
if ARGV[6] ~= nil and ARGV[6] ~= '' then
  now = tonumber(ARGV[6])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local dvt = B * T
local base = 0
local s = redis.call('GET', KEYS[1])
if s then
  local f = {}
  for w in string.gmatch(s, '%S+') do f[#f + 1] = tonumber(w) end
  local q, r, R0, T0 = f[1], f[2], f[3] or R, f[4] or T
  if q and r and R0 and T0 and q >= now then
    base = (q - now) * R0 + r
    if R0 ~= R or T0 ~= T then
      -- the quota's numbers changed (a reload): keep the count of requests spent, not the time
      base = math.ceil(base / T0 * T)
    end
  end
end
local fit = 0
if dvt > base then fit = fdiv(dvt - base, T) end
local granted = 0
if fit >= need then granted = math.min(want, fit) end
local used = base + granted * T
if granted > 0 then
  local dq = fdiv(used, R)
  local ms = math.ceil(used / R / 1000) + 1
  redis.call('SET', KEYS[1], string.format('%.0f %.0f %.0f %.0f', now + dq, used - dq * R, R, T), 'PX', ms)
end
local remaining = 0
if dvt > used then remaining = fdiv(dvt - used, T) end
local wait = 0
if granted == 0 then
  if need > B then wait = -1 else wait = need * T - (dvt - base) end
end
return {granted, remaining, used, wait}
"""

#: Live nodes: one sorted set (hash tag {nodes}: one shard on a cluster), member = node id,
#: score = expiry in Redis-TIME ms. Heartbeat = add/refresh self, drop expired, count.
#: KEYS[1] = <prefix>:{nodes}; ARGV: node_id, ttl_ms. Returns the live count.
HEARTBEAT_LUA = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ttl)
return redis.call('ZCARD', KEYS[1])
"""

_SHA = {src: hashlib.sha1(src.encode()).hexdigest() for src in (GCRA_LUA, HEARTBEAT_LUA)}
MAX_UNITS = 2**52  # dvt = burst * T must stay exact in Lua's doubles
MAX_REQUESTS = 2**32
MODES = ("local", "allow", "deny")


def quota_key(key: str, prefix: str = "fastgate") -> str:
    """Redis key of a quota: the hash tag {q:<key>} puts it (and its script) on one shard."""
    return f"{prefix}:{{q:{key}}}"


@dataclass(frozen=True, slots=True)
class _Quota:
    requests: int
    per: float
    burst: int
    r: int  # R' = requests / g: units per microsecond
    t: int  # T = per_us / g: units per request
    scale: float  # units per second
    ident: tuple


@functools.lru_cache(maxsize=4096)
def _quota(requests: int, per: float, burst: int) -> _Quota:
    for name, v in (("requests", requests), ("burst", burst)):
        if not isinstance(v, int) or not 1 <= v <= MAX_REQUESTS:
            raise ValueError(f"{name} must be an integer in [1, {MAX_REQUESTS}], got {v!r}")
    per = float(per)
    if not (math.isfinite(per) and per > 0):
        raise ValueError(f"per must be a positive number of seconds, got {per!r}")
    per_us = math.floor(per * 1e6 + 0.5)
    if per_us < 1:
        raise ValueError(f"per must be at least 1 microsecond, got {per!r}")
    g = math.gcd(requests, per_us)
    r, t = requests // g, per_us // g
    if burst * t > MAX_UNITS:
        raise ValueError(
            f"quota too fine for the Redis script: burst * per_us / gcd = {burst * t} > 2**52"
        )
    return _Quota(requests, per, burst, r, t, r * 1e6, (requests, per_us, burst))


class LocalLimiters:
    """Native GcraLimiter per (requests, per, burst): the `local` store and the outage fallback."""

    def __init__(self, clock: Callable[[], float], max_keys: int = 100_000) -> None:
        self.clock = clock
        self.max_keys = max_keys
        self._limiters: dict[tuple, GcraLimiter] = {}
        self._owner: dict[str, tuple] = {}  # key -> the (requests, per, burst) it last used

    def check(
        self,
        key: str,
        requests: int,
        per: float,
        burst: int,
        cost: int,
        limit: int,
        source: str = "local",
    ) -> QuotaDecision:
        ident = (requests, float(per), burst)
        lim = self._limiters.get(ident)
        if lim is None:
            lim = self._limiters[ident] = GcraLimiter(
                requests, per, self.max_keys, self.clock, burst=burst
            )
        owner = self._owner.get(key)
        if owner is not ident and owner != ident:
            if owner is not None:
                self._carry(key, owner, lim, requests, per)
            if len(self._owner) >= 2 * self.max_keys:
                self._owner.clear()  # only costs the carry-over of keys whose numbers change
            self._owner[key] = ident
        d = lim.check(key, cost)
        return QuotaDecision(d.allowed, limit, d.remaining, d.reset_after, d.retry_after, source)

    def _carry(self, key: str, owner: tuple, lim: GcraLimiter, requests: int, per: float) -> None:
        """The key's quota changed numbers (a reload): move its count of spent requests, not its
        time, into the new limiter (as the Redis script does), so a raised tier admits what is
        left of it and a lowered one what is left of that."""
        old = self._limiters.get(owner)
        if old is None:
            return
        backlog = old.backlog_ns(key)
        if backlog:
            spent = backlog * owner[0] / (owner[1] * 1e9)  # requests = backlog / T_old
            lim.set_backlog_ns(key, math.ceil(spent * per * 1e9 / requests))
            old.set_backlog_ns(key, 0)

    def key_count(self) -> int:
        """Keys held across every limiter (bounded by max_keys each)."""
        return sum(len(lim) for lim in self._limiters.values())


class _Unavailable(Exception):
    """Redis did not answer (breaker open, timeout, connection or server error)."""


def _make_client(urls: tuple[str, ...], timeout: float, cluster: bool | None, pool: int):
    # No client-side retries: `timeout` bounds the whole call and the breaker decides what next.
    common = dict(
        socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )
    if cluster is None:
        cluster = len(urls) > 1
    if not cluster:
        # Blocking pool: past `pool` connections a call waits (within `timeout`) for a free one
        # instead of failing with MaxConnectionsError (which would open the breaker).
        return Redis(
            connection_pool=BlockingConnectionPool.from_url(
                urls[0], max_connections=pool, timeout=timeout, **common
            )
        )
    nodes = []
    for u in urls:
        p = urlsplit(u)
        nodes.append(ClusterNode(p.hostname or "127.0.0.1", p.port or 6379))
    first = urlsplit(urls[0])
    return RedisCluster(
        max_connections=pool,
        startup_nodes=nodes,
        password=first.password,
        username=first.username,
        **common,
    )


class RedisQuota(QuotaBackend):
    """Shared GCRA quotas in Redis or Redis Cluster (several urls, or cluster=True).

    take() path: spend a local lease token (no I/O) -> a cached denial (no I/O) -> one EVALSHA
    (single-flight per quota: concurrent takes on this node wait for the same refill) -> on
    failure / open breaker: on_unavailable. `leases=False` sends every take to the script with
    want = need = cost (exact GCRA; for tests and very low rates).
    """

    def __init__(
        self,
        urls: tuple[str, ...],
        timeout: float,
        on_unavailable: str,
        node_id: str,
        clock: Callable[[], float] = time.time,
        *,
        leases: bool = True,
        cluster: bool | None = None,
        prefix: str = "fastgate",
        failures_to_open: int = 3,
        base_backoff: float = 0.5,
        max_backoff: float = 10.0,
        heartbeat_interval: float = 1.0,
        heartbeat_ttl: float = 3.0,
        lease_ttl: float = 2.0,
        lease_horizon: float = 0.5,
        max_lease: int = 10_000,
        max_keys: int = 100_000,
        max_connections: int = 64,
        client=None,
    ) -> None:
        if on_unavailable not in MODES:
            raise ValueError(f"on_unavailable must be one of {MODES}, got {on_unavailable!r}")
        if not urls and client is None:
            raise ValueError("at least one redis url is needed")
        if not timeout > 0:
            raise ValueError("timeout must be > 0")
        self.urls = tuple(urls)
        self.timeout = float(timeout)
        self.on_unavailable = on_unavailable
        self.node_id = node_id
        self.clock = clock
        self.use_leases = leases
        self.prefix = prefix
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_ttl_ms = int(heartbeat_ttl * 1000)
        self.lease_ttl = lease_ttl
        self.lease_horizon = lease_horizon
        self.max_lease = max_lease
        self.breaker = CircuitBreaker(failures_to_open, base_backoff, max_backoff)
        self.leases = LeaseTable(max_keys)
        self.local = LocalLimiters(clock, max_keys)
        self.live_nodes = 1  # last count seen while Redis was up
        self.round_trips = 0  # Redis commands sent (evalsha, eval, heartbeats)
        self.script_loads = 0  # NOSCRIPT fallbacks
        self.failures = 0  # calls that failed or timed out
        self._nodes_key = f"{prefix}:{{nodes}}"
        self._r = (
            client
            if client is not None
            else _make_client(self.urls, self.timeout, cluster, max_connections)
        )
        self._hb_task: asyncio.Task | None = None
        self._closed = False
        self.on_call: Callable[[], None] | None = None  # e.g. a metrics counter's inc
        self._background: set[asyncio.Task] = set()  # lease prefetches in flight

    # -- Redis plumbing ---------------------------------------------------------------------------
    async def _script(self, src: str, key: str, *args) -> object:
        self.round_trips += 1
        if self.on_call is not None:
            self.on_call()
        try:
            sha = _SHA.get(src)
            if sha is None:  # a script of another module (quota.bandwidth)
                sha = _SHA[src] = hashlib.sha1(src.encode()).hexdigest()
            return await self._r.evalsha(sha, 1, key, *args)
        except NoScriptError:  # first use on this server/shard, or after a restart/SCRIPT FLUSH
            self.script_loads += 1
            self.round_trips += 1
            return await self._r.eval(src, 1, key, *args)

    async def _call(self, make: Callable[[], Awaitable[object]]) -> object:
        if not self.breaker.allow():
            raise _Unavailable("circuit open")
        try:
            async with asyncio.timeout(self.timeout):
                res = await make()
        except asyncio.CancelledError:
            self.breaker.abandon()
            raise
        except (RedisError, OSError, TimeoutError) as e:
            self.failures += 1
            self.breaker.failure()
            raise _Unavailable(str(e)) from e
        self.breaker.success()
        return res

    # -- heartbeats -------------------------------------------------------------------------------
    async def heartbeat(self) -> int:
        """Refresh this node's entry and return the live-node count (also kept in live_nodes)."""
        n = await self._call(
            lambda: self._script(
                HEARTBEAT_LUA, self._nodes_key, self.node_id, self.heartbeat_ttl_ms
            )
        )
        self.live_nodes = max(1, int(n))
        return self.live_nodes

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                await self.heartbeat()
            except _Unavailable:
                pass
            await asyncio.sleep(self.heartbeat_interval)

    async def start(self) -> None:
        """Optional: first heartbeat now (so live_nodes is known) and start the heartbeat task."""
        try:
            await self.heartbeat()
        except _Unavailable:
            pass
        self._ensure_heartbeat(delay=True)

    @property
    def heartbeating(self) -> bool:
        return self._hb_task is not None

    def _ensure_heartbeat(self, delay: bool = False) -> None:
        if self._hb_task is None and not self._closed:

            async def run() -> None:
                if delay:
                    await asyncio.sleep(self.heartbeat_interval)
                await self._heartbeat_loop()

            self._hb_task = asyncio.get_running_loop().create_task(run())

    async def close(self) -> None:
        self._closed = True
        if self._hb_task is not None:
            self._hb_task.cancel()
            try:
                await self._hb_task
            except asyncio.CancelledError:
                pass
            self._hb_task = None
        if not self.breaker.is_open:
            try:
                await self._call(lambda: self._r.zrem(self._nodes_key, self.node_id))
            except _Unavailable:
                pass
        try:
            await self._r.aclose()
        except (RedisError, OSError):
            pass

    # -- decisions --------------------------------------------------------------------------------
    def _fallback(self, key: str, q: _Quota, cost: int) -> QuotaDecision:
        mode = self.on_unavailable
        if mode == "allow":
            return QuotaDecision(True, q.requests, q.requests, 0.0, 0.0, "allow")
        if mode == "deny":
            wait = max(0.0, self.breaker.open_until - self.breaker.clock())
            return QuotaDecision(False, q.requests, 0, 0.0, wait or self.timeout, "deny")
        live = max(1, self.live_nodes)
        share = max(1, q.requests // live)
        return self.local.check(key, share, q.per, max(1, q.burst // live), cost, share)

    def take_now(
        self, key: str, requests: int, per: float, cost: int = 1, *, burst: int | None = None
    ) -> QuotaDecision | None:
        """A lease token or a cached denial, without I/O; None when only Redis can answer."""
        if not self.use_leases:
            return None
        q = _quota(requests, per, requests if burst is None else burst)
        lease = self.leases.peek((key, q.ident))
        if lease is None:
            return None
        now = self.clock()
        self.leases.expire(lease, now)
        if lease.spend(cost, now):
            lease.count += 1
            if lease.inflight is None and lease.granted > 4 and lease.tokens * 4 < lease.granted:
                self._prefetch(key, q, lease)  # the next refill before anyone has to wait for it
            return QuotaDecision(True, q.requests, max(0, lease.remaining) + lease.tokens,
                                 max(0.0, lease.reset_at - now), 0.0, "lease")
        if lease.inflight is not None:
            return None  # a refill is on its way: take() waits for it
        if now < lease.deny_until and cost >= lease.deny_cost:
            lease.count += 1
            return QuotaDecision(False, q.requests, 0, max(0.0, lease.reset_at - now),
                                 lease.deny_until - now, "lease")
        return None

    def _prefetch(self, key: str, q: _Quota, lease: Lease) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called outside the event loop (a benchmark): no prefetch
            return
        lease.inflight = loop.create_future()
        task = loop.create_task(self._refill(key, q, lease))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refill(self, key: str, q: _Quota, lease: Lease) -> None:
        """A lease refill nobody waits for (yet): every token granted is spare (need 1, none
        spent here). Takers that run dry meanwhile wait for it (lease.inflight); a failure
        leaves the lease as it was and the next take decides (and meets the breaker)."""
        fut = lease.inflight
        try:
            lease.observe(self.clock())
            want = min(q.burst, lease.want(1, self.live_nodes, self.lease_horizon, self.max_lease))
            try:
                res = await self._call(
                    lambda: self._script(
                        GCRA_LUA, quota_key(key, self.prefix), q.r, q.t, q.burst, want, 1, ""
                    )
                )
            except _Unavailable:
                return
            granted, remaining, used, wait = (int(x) for x in res)
            self._record(lease, q, granted, remaining, used, wait, need=1, spent=0)
        finally:
            lease.inflight = None
            if fut is not None and not fut.done():
                fut.set_result(None)

    async def take(
        self, key: str, requests: int, per: float, cost: int = 1, *, burst: int | None = None
    ) -> QuotaDecision:
        q = _quota(requests, per, requests if burst is None else burst)
        if not isinstance(cost, int) or cost < 1:
            raise ValueError(f"cost must be an integer >= 1, got {cost!r}")
        self._ensure_heartbeat()
        if not self.use_leases:
            return await self._ask(key, q, cost, cost, None)
        lease = self.leases.get((key, q.ident), self.clock())
        lease.count += 1
        for _ in range(4):
            now = self.clock()
            self.leases.expire(lease, now)
            if lease.spend(cost, now):
                return QuotaDecision(
                    True,
                    q.requests,
                    max(0, lease.remaining) + lease.tokens,
                    max(0.0, lease.reset_at - now),
                    0.0,
                    "lease",
                )
            if now < lease.deny_until and cost >= lease.deny_cost:
                return QuotaDecision(
                    False,
                    q.requests,
                    0,
                    max(0.0, lease.reset_at - now),
                    lease.deny_until - now,
                    "lease",
                )
            if lease.inflight is None:
                break
            await asyncio.shield(lease.inflight)  # single flight: reuse the refill in progress
        lease.observe(self.clock())
        want = min(q.burst, lease.want(cost, self.live_nodes, self.lease_horizon, self.max_lease))
        return await self._ask(key, q, cost, max(cost, want), lease)

    def _record(self, lease: Lease, q: _Quota, granted: int, remaining: int, used: int, wait: int,
                *, need: int, spent: int) -> None:
        """One script reply into the lease (from a take's refill or a prefetch): the tokens
        granted beyond the `spent` this call used are kept; a denial is cached until it lifts."""
        now = self.clock()
        lease.remaining = remaining
        lease.reset_at = now + used / q.scale
        if granted:
            lease.tokens += granted - spent
            lease.granted = granted
            lease.expires = now + min(self.lease_ttl, q.per)
            lease.deny_until = 0.0
        else:
            lease.deny_until = now + (math.inf if wait < 0 else wait / q.scale)
            lease.deny_cost = need

    async def _ask(
        self, key: str, q: _Quota, need: int, want: int, lease: Lease | None
    ) -> QuotaDecision:
        fut = None
        if lease is not None:
            fut = lease.inflight = asyncio.get_running_loop().create_future()
        try:
            try:
                res = await self._call(
                    lambda: self._script(
                        GCRA_LUA, quota_key(key, self.prefix), q.r, q.t, q.burst, want, need, ""
                    )
                )
            except _Unavailable:
                return self._fallback(key, q, need)
            granted, remaining, used, wait = (int(x) for x in res)
            reset = used / q.scale
            if lease is not None:
                self._record(lease, q, granted, remaining, used, wait, need=need, spent=need)
            if granted:
                if lease is not None:
                    remaining += lease.tokens
                return QuotaDecision(True, q.requests, remaining, reset, 0.0, "redis")
            retry = math.inf if wait < 0 else wait / q.scale
            return QuotaDecision(False, q.requests, remaining, reset, retry, "redis")
        finally:
            if lease is not None:
                lease.inflight = None
                fut.set_result(None)

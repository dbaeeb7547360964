"""Revocations shared through Redis: a per-process task that mirrors the revoked API-key ids and
token ids (`jti`) from Redis into the in-process sets, and the writers `fastgate revoke` uses.

Invariant: requests never wait for Redis. They read only the in-process sets (KeyRevocations,
RevocationList); this task refreshes them every REVOCATION_POLL seconds (one MGET of a version
counter and the store's epoch; the sets are re-read only when either moved), so a revocation
written to Redis is enforced by every gateway process within REVOCATION_POLL plus a round trip.
While Redis is unreachable the last known sets stay in force (a revoked key never comes back
because Redis is down), the outage is logged once, and reconnecting triggers a full re-read.
Keys are hash-tagged (`{revoked}`) so every write is one same-slot MULTI, on one node or a cluster.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from .config.model import RedisSettings
from .policies.api_key.policy import REVOCATIONS_KEY, KeyRevocations
from .policies.oauth2 import revocation
from .policies.oauth2.revocation import DEFAULT_RETENTION, RETENTION_MARGIN

log = logging.getLogger("fastgate")

KEY_API_KEYS = "fastgate:{revoked}:api_keys"  # SET of revoked `applications[].api_keys[].id`
KEY_JTI = "fastgate:{revoked}:jti"  # ZSET jti -> the token's `exp` (epoch seconds)
KEY_VERSION = "fastgate:{revoked}:version"  # INCRed by every write; readers poll it
KEY_EPOCH = "fastgate:{revoked}:epoch"  # random, set once (NX): a new value = the store was reset

# Half a second, not one: a revocation must be enforced "within one second everywhere", and a
# poll interval of P gives a worst case of P + one round trip + scheduling delay.
REVOCATION_POLL = 0.5
MAX_BACKOFF = 5.0  # retry interval ceiling while Redis is unreachable
FIRST_SYNC_WAIT = 1.0  # Gateway.start waits at most this long for the first read
CLI_TIMEOUT = 2.0  # `fastgate revoke` is not on a request path: it may wait longer than redis.timeout
APPLY_CHUNK = 5_000  # jti entries applied between yields to the event loop
_NEVER = object()  # "no snapshot applied since (re)connecting": forces a full read


def make_client(settings: RedisSettings, timeout: float | None = None):
    """A `redis.asyncio` client: one URL = one server; several = Redis Cluster seed nodes (auth and
    TLS from the first URL). Every call is bounded by `timeout` (default `redis.timeout`); one
    immediate retry covers a pooled connection that died with a restarted server."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    t = settings.timeout if timeout is None else timeout
    common = {"socket_timeout": t, "socket_connect_timeout": t, "decode_responses": True,
              "retry": Retry(NoBackoff(), 1)}
    if len(settings.urls) == 1:
        return Redis.from_url(settings.urls[0], **common)
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    nodes = [ClusterNode(u.hostname, u.port or 6379) for u in map(urlsplit, settings.urls)]
    return RedisCluster.from_url(settings.urls[0], startup_nodes=nodes, **common)


def describe(settings: RedisSettings) -> str:
    """host:port of the first URL, for messages (never the password a URL may carry)."""
    u = urlsplit(settings.urls[0])
    return f"{u.hostname}:{u.port or 6379}"


def redis_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import RedisClusterException, RedisError

    return (RedisError, RedisClusterException, OSError)


# ---------------------------------------------------------------- writers
async def _write(settings: RedisSettings, fill: Callable[[object], None],
                 timeout: float | None) -> None:
    """One MULTI: the change, the trim of dead jti entries, the version bump (so readers see it)."""
    client = make_client(settings, timeout)
    try:
        async with client.pipeline(transaction=True) as p:
            p.set(KEY_EPOCH, os.urandom(8).hex(), nx=True)
            fill(p)
            p.zremrangebyscore(KEY_JTI, "-inf", f"({time.time() - RETENTION_MARGIN}")
            p.incr(KEY_VERSION)
            await p.execute()
    finally:
        await client.aclose()


async def revoke_api_key(settings: RedisSettings, key_id: str, timeout: float | None = None) -> None:
    await _write(settings, lambda p: p.sadd(KEY_API_KEYS, key_id), timeout)


async def unrevoke_api_key(settings: RedisSettings, key_id: str, timeout: float | None = None) -> None:
    await _write(settings, lambda p: p.srem(KEY_API_KEYS, key_id), timeout)


async def revoke_jti(settings: RedisSettings, jti: str, exp: float | None = None,
                     timeout: float | None = None) -> None:
    """Deny `jti` until its token's `exp` (unknown: DEFAULT_RETENTION from now). Revoking again
    only ever extends it (ZADD GT, Redis >= 6.2)."""
    until = time.time() + DEFAULT_RETENTION if exp is None else float(exp)
    await _write(settings, lambda p: p.zadd(KEY_JTI, {jti: until}, gt=True), timeout)


# ---------------------------------------------------------------- reader
@dataclass(frozen=True, slots=True)
class Snapshot:
    epoch: str | None
    version: str | None
    ids: frozenset[str]
    jti: dict[str, float]


async def read_snapshot(client, now: float) -> Snapshot:
    """Everything, in one pipeline. Not a MULTI (redis-py's cluster transactions cannot parse
    SMEMBERS), and it need not be: the version is read before the sets, in order on one
    connection, so a write landing in between only makes the next poll read again."""
    async with client.pipeline(transaction=False) as p:
        p.get(KEY_EPOCH)
        p.get(KEY_VERSION)
        p.smembers(KEY_API_KEYS)
        p.zrangebyscore(KEY_JTI, now - RETENTION_MARGIN, "+inf", withscores=True)
        epoch, version, ids, pairs = await p.execute()
    return Snapshot(epoch, version, frozenset(ids), {j: float(e) for j, e in pairs})


class RevocationSync:
    """The sync task of one gateway process. `healthy`: the last Redis round trip succeeded."""

    def __init__(self, settings: RedisSettings, shared, poll: float = REVOCATION_POLL,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.poll = poll
        self.clock = clock
        self.keys: KeyRevocations = shared.get(REVOCATIONS_KEY, KeyRevocations)
        self.jtis = revocation.for_shared(shared)
        self.healthy = False
        self.synced_once = asyncio.Event()  # set after the first attempt, successful or not
        self._down = False
        self._version: object = _NEVER
        self._epoch: str | None = None
        self._ids: frozenset[str] | None = None  # what Redis held at the last read (None: not read)
        self._jti: dict[str, float] = {}
        self._client = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._client = make_client(self.settings)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="fastgate-revocations")

    async def wait_first(self, timeout: float = FIRST_SYNC_WAIT) -> None:
        try:
            await asyncio.wait_for(self.synced_once.wait(), timeout)
        except TimeoutError:
            pass

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._client is not None:
            try:
                await self._client.aclose()
            except redis_errors():
                pass
            self._client = None

    async def _run(self) -> None:
        delay = self.poll
        while True:
            try:
                await self.sync_once()
            except Exception as e:  # Redis errors, or data it cannot decode: never end the task
                self._version = _NEVER  # whatever happened meanwhile: read everything on reconnect
                self.healthy = False
                if not self._down:
                    self._down = True
                    log.warning("redis %s unavailable or unreadable (%s: %s): serving the last "
                                "known revocations (%d api keys, %d jti); retrying",
                                describe(self.settings), type(e).__name__, e, len(self.keys),
                                len(self.jtis))
                self.synced_once.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            if self._down:
                self._down = False
                log.warning("redis %s reachable again: revocations in sync", describe(self.settings))
            self.healthy = True
            self.synced_once.set()
            delay = self.poll
            await asyncio.sleep(self.poll)

    async def sync_once(self) -> bool:
        """One poll: True when a new snapshot was applied."""
        client = self._client
        if self._version is not _NEVER:
            # the epoch too: a restarted, emptied Redis may reach the same version number again
            if await client.mget(KEY_EPOCH, KEY_VERSION) == [self._epoch, self._version]:
                return False
        snap = await read_snapshot(client, self.clock())
        if self._epoch is not None and snap.epoch != self._epoch and (self._ids or self._jti):
            # Redis lost its data (restarted without persistence, failover to an empty replica):
            # put back what this process knew, so a revoked key does not come back to life.
            log.warning("redis %s: the revocation store was reset; restoring the %d api key and "
                        "%d jti revocations this gateway knew", describe(self.settings),
                        len(self._ids), len(self._jti))
            await self._reseed(client)
            snap = await read_snapshot(client, self.clock())
        await self._apply(snap)
        return True

    async def _reseed(self, client) -> None:
        async with client.pipeline(transaction=True) as p:
            p.set(KEY_EPOCH, os.urandom(8).hex(), nx=True)
            if self._ids:
                p.sadd(KEY_API_KEYS, *self._ids)
            if self._jti:
                p.zadd(KEY_JTI, self._jti, gt=True)
            p.incr(KEY_VERSION)
            await p.execute()

    async def _apply(self, snap: Snapshot) -> None:
        if snap.ids != self._ids:
            self.keys.replace(snap.ids)
        new = [(j, e) for j, e in snap.jti.items() if self._jti.get(j) != e]
        for i in range(0, len(new), APPLY_CHUNK):
            self.jtis.revoke_many(new[i:i + APPLY_CHUNK])  # only ever adds or extends
            if i + APPLY_CHUNK < len(new):
                await asyncio.sleep(0)
        self._ids, self._jti = snap.ids, snap.jti
        self._epoch, self._version = snap.epoch, snap.version


# ---------------------------------------------------------------- lifecycle (server.py)
async def start(settings: RedisSettings | None, shared) -> RevocationSync | None:
    """Start the sync when Redis is configured; waits (bounded) for the first read, so a fresh
    process does not accept a key that Redis already says is revoked."""
    if settings is None or not settings.urls:
        return None
    sync = RevocationSync(settings, shared)
    sync.start()
    await sync.wait_first()
    return sync


async def restart(current: RevocationSync | None, settings: RedisSettings | None,
                  shared) -> RevocationSync | None:
    """After a reload: keep the running sync when `redis:` is unchanged, else replace it."""
    if current is not None and current.settings == settings:
        return current
    if current is not None:
        await current.stop()
    return await start(settings, shared)


def known_key_ids(config) -> set[str]:
    return {k.id for app in config.applications for k in app.api_keys}


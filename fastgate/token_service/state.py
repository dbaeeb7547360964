"""The long-lived part of the token service, kept in SharedState so it survives reloads: the
store, the opened key ring, key rotation, and the caches and throttles of credential checks.

Invariants: the store and ring are opened once, lazily, on the event loop (`ready()`); the ring
is re-read from the store at most every RING_REFRESH seconds and whenever a token names an
unknown kid (at most once per UNKNOWN_KID_INTERVAL), so a key another node rotated in verifies
here too. Rotation adds the next key `publish_ahead` seconds before it signs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from jwt import PyJWK

from ..config.model import Config, TokenService
from ..policies.oauth2 import revocation
from ..policies.oauth2.jwks import UnknownKey
from . import keys as K
from .store import Store

log = logging.getLogger("fastgate")

RING_REFRESH = 5.0  # seconds between re-reads of the key ring (rotation by another node)
UNKNOWN_KID_INTERVAL = 1.0
REVOCATION_POLL = 0.5  # SQLite mode: new revocations by other workers of this node
MAX_PUBLISH_AHEAD = 600.0  # a new key is in the JWK Set this long before it signs (at most)
SQLITE_NAME = "token-service.db"


def publish_ahead(ts: TokenService) -> float:
    """Long enough for verifiers that cache the JWK Set to see a new key before it signs."""
    if ts.key_rotation is None:
        return MAX_PUBLISH_AHEAD
    return min(MAX_PUBLISH_AHEAD, ts.key_rotation / 4)


def make_store(config: Config) -> Store:
    if config.redis is not None and config.redis.urls:
        from .redis_store import RedisStore

        return RedisStore(config.redis)
    from .sqlite_store import SqliteStore

    return SqliteStore(Path(config.token_service.signing_key).parent / SQLITE_NAME)


class ServiceState:
    def __init__(self, config: Config, shared, clock=time.time) -> None:
        ts = config.token_service
        self.ts = ts
        self.master = K.master_key(config.secrets.master_key_env)  # checked at load: fail fast
        self.store: Store = make_store(config)
        self.shared = shared
        self.clock = clock
        self.ring: K.KeyRing | None = None
        self.revoked = revocation.for_shared(shared)
        self._ready: asyncio.Task | None = None
        self._loaded_at = 0.0
        self._unknown_at = 0.0
        self._task: asyncio.Task | None = None
        self._cursor = None
        self._down = False

    # ---------------------------------------------------------------- lifecycle
    async def ready(self) -> K.KeyRing:
        """The opened ring; the first call opens the store (a failed start is retried by the
        next call, so a Redis outage at startup does not stick)."""
        task = self._ready
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = self._ready = asyncio.get_running_loop().create_task(self._start())
        await asyncio.shield(task)
        return self.ring

    async def _start(self) -> None:
        await self.store.start()
        recs = await self.store.keys()
        if not recs:
            private = await asyncio.to_thread(K.seed_key, self.ts.signing_key, self.master)
            now = self.clock()
            key = K.SigningKey.make(private, active_from=now, created=now)
            await self.store.add_key(K.record(key, self.master, ""), "")
        await self.reload_ring()
        self._task = asyncio.get_running_loop().create_task(self._background())

    async def reload_ring(self) -> None:
        recs = await self.store.keys()
        if not recs and self.ring is not None and self.ring.keys:
            # the store lost its data (Redis restarted empty): put back the keys we know, so
            # tokens already out keep verifying and every node converges on them again
            log.warning("token service: the key store is empty; restoring %d known keys",
                        len(self.ring.keys))
            parent = ""
            for key in self.ring.keys:
                await self.store.add_key(K.record(key, self.master, parent), parent)
                parent = key.kid
            recs = await self.store.keys()
        opened = [K.from_record(r, self.master) for r in recs]
        self.ring = K.KeyRing(opened, self.ts.access_token_ttl)
        self._loaded_at = self.clock()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.store.close()

    async def _background(self) -> None:
        """Ring refresh, rotation, and (SQLite) the revocation poll; never ends on an error."""
        while True:
            try:
                await asyncio.sleep(REVOCATION_POLL)
                items, self._cursor = await self.store.revoked_since(self._cursor)
                if items:
                    self.revoked.revoke_many(items)
                if self.clock() - self._loaded_at >= RING_REFRESH:
                    await self.reload_ring()
                await self.maybe_rotate()
                if self._down:
                    self._down = False
                    log.warning("token service: store reachable again")
            except asyncio.CancelledError:
                raise
            except Exception as e:  # store down: keep the ring we have, try again later
                if not self._down:  # logged once per outage
                    self._down = True
                    log.warning("token service: store unavailable (%s); keeping the key ring",
                                type(e).__name__)
                await asyncio.sleep(1.0)

    async def maybe_rotate(self, force: bool = False) -> bool:
        """Add the next key when the newest one is `key_rotation` old (or `force`)."""
        ring = self.ring
        newest = ring.newest() if ring else None
        if newest is None:
            return False
        now = self.clock()
        due = self.ts.key_rotation is not None and now - newest.active_from >= self.ts.key_rotation
        if not (due or force):
            return False
        private = await asyncio.to_thread(K.generate, newest.alg)
        key = K.SigningKey.make(private, active_from=now + publish_ahead(self.ts), created=now)
        added = await self.store.add_key(K.record(key, self.master, newest.kid), newest.kid)
        if added:
            log.info("token service: new signing key %s published, signs from %.0f", key.kid,
                     key.active_from)
        await self.reload_ring()
        return added

    # ---------------------------------------------------------------- verification keys
    async def key(self, kid: str | None, alg: str) -> PyJWK:
        """The oauth2 policy's key source for our own issuer (jwks.StaticJwks's interface)."""
        ring = await self.ready()
        k = ring.by_kid.get(kid) if kid is not None else None
        now = self.clock()
        if k is None and kid is not None and now - self._unknown_at >= UNKNOWN_KID_INTERVAL:
            self._unknown_at = now
            await self.reload_ring()
            k = self.ring.by_kid.get(kid)
        if k is None or k not in self.ring.published(now):
            raise UnknownKey(f"unknown kid {kid!r}")
        if k.alg != alg:
            raise UnknownKey(f"key kid={kid!r} is not usable with {alg}")
        return k.verifier

    async def warm(self) -> None:
        await self.ready()


def for_shared(config: Config, shared) -> ServiceState:
    """One ServiceState per storage (signing key file, Redis, master key) across reloads; the
    rest of `token_service` (TTLs, rotation) is taken from the newest config."""
    key = ("token_service", config.token_service.signing_key, config.redis, config.secrets)
    state = shared.get(key, lambda: ServiceState(config, shared))
    state.ts = config.token_service
    if state.ring is not None:
        state.ring.ttl = config.token_service.access_token_ttl
    return state

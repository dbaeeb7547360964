"""The token service's store in Redis (`redis:` configured), so every node agrees on codes,
refresh tokens, families, replay markers, signing keys and revocations.

Invariant: each single-use check is one MULTI on one key (HINCRBY of the use counter, then
HGET of the record), so exactly one of any number of concurrent uses sees the counter at 1.
Revoked jti go through revocations.py, whose per-process sync already feeds every node.
"""

from __future__ import annotations

import json
from typing import Any

from .. import revocations
from ..config.model import RedisSettings

PREFIX = "fastgate:ts:"
KEYS = "fastgate:{tskeys}:keys"  # HASH kid -> record
SUCCESSORS = "fastgate:{tskeys}:successor"  # HASH parent kid -> kid (one successor per parent)
TIMEOUT = 1.0  # the token endpoint may wait a little longer than the per-request redis.timeout


class RedisStore:
    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self._client = None

    async def start(self) -> None:
        if self._client is None:  # a client reconnects by itself: one is enough
            self._client = revocations.make_client(self.settings, max(TIMEOUT, self.settings.timeout))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def keys(self) -> list[dict[str, Any]]:
        values = await self._client.hvals(KEYS)
        return [json.loads(v) for v in values]

    async def add_key(self, rec: dict[str, Any], parent: str) -> bool:
        if not await self._client.hsetnx(SUCCESSORS, parent or "-", rec["kid"]):
            return False
        await self._client.hset(KEYS, rec["kid"], json.dumps(rec))
        return True

    async def put(self, kind: str, key: str, data: dict[str, Any], ttl: float) -> None:
        name = f"{PREFIX}{kind}:{key}"
        async with self._client.pipeline(transaction=True) as p:
            p.hset(name, mapping={"data": json.dumps(data), "used": 0})
            p.pexpire(name, max(1, int(ttl * 1000)))
            await p.execute()

    async def take(self, kind: str, key: str) -> tuple[dict[str, Any] | None, bool]:
        name = f"{PREFIX}{kind}:{key}"
        async with self._client.pipeline(transaction=True) as p:
            p.exists(name)
            p.hincrby(name, "used", 1)
            p.hget(name, "data")
            exists, used, data = await p.execute()
        if not exists:
            await self._client.delete(name)  # HINCRBY made an empty hash: drop it
            return None, False
        return (json.loads(data) if data else None), used == 1

    async def peek(self, kind: str, key: str) -> tuple[dict[str, Any] | None, bool]:
        data, used = await self._client.hmget(f"{PREFIX}{kind}:{key}", "data", "used")
        return (json.loads(data) if data else None), bool(used and int(used) > 0)

    async def add_to_family(self, family: str, jti: str, exp: float, ttl: float) -> None:
        name = f"{PREFIX}family:{family}:jti"
        async with self._client.pipeline(transaction=True) as p:
            p.zadd(name, {jti: exp})
            p.pexpire(name, max(1, int(ttl * 1000)))
            await p.execute()

    async def revoke_family(self, family: str, ttl: float) -> list[tuple[str, float]]:
        await self._client.set(f"{PREFIX}family:{family}:revoked", 1, px=max(1, int(ttl * 1000)))
        pairs = await self._client.zrange(f"{PREFIX}family:{family}:jti", 0, -1, withscores=True)
        return [(j, float(e)) for j, e in pairs]

    async def family_revoked(self, family: str) -> bool:
        return bool(await self._client.exists(f"{PREFIX}family:{family}:revoked"))

    async def once(self, key: str, ttl: float) -> bool:
        return bool(await self._client.set(f"{PREFIX}once:{key}", 1, nx=True,
                                           px=max(1, int(ttl * 1000))))

    async def revoke_jti(self, jti: str, exp: float) -> None:
        await revocations.revoke_jti(self.settings, jti, exp, timeout=max(TIMEOUT, self.settings.timeout))

    async def revoked_since(self, cursor: Any) -> tuple[list[tuple[str, float]], Any]:
        return [], cursor

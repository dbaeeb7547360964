"""The store contract, on both backends: SQLite (a file) and a real redis-server."""

from __future__ import annotations

import asyncio
import os

import pytest

from fastgate.config.model import RedisSettings
from fastgate.token_service.redis_store import RedisStore
from fastgate.token_service.sqlite_store import SqliteStore
from fastgate.token_service.store import digest


@pytest.fixture(params=["sqlite", "redis"])
def make_store(request, tmp_path):
    def make():
        if request.param == "sqlite":
            return SqliteStore(tmp_path / "ts.db")
        url = request.getfixturevalue("redis_url")
        return RedisStore(RedisSettings(urls=(url,), timeout=0.5))

    return make


def run(make_store, body):
    async def main():
        store = make_store()
        await store.start()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def test_take_is_single_use_even_when_concurrent(make_store):
    async def body(store):
        key = digest(os.urandom(8).hex())
        await store.put("code", key, {"x": 1}, 30)
        results = await asyncio.gather(*(store.take("code", key) for _ in range(8)))
        assert sum(first for _, first in results) == 1
        assert all(rec == {"x": 1} for rec, _ in results)
        assert await store.peek("code", key) == ({"x": 1}, True)
        assert await store.take("code", digest("absent")) == (None, False)

    run(make_store, body)


def test_records_expire(make_store):
    async def body(store):
        key = digest(os.urandom(8).hex())
        await store.put("refresh", key, {"x": 1}, 0.2)
        await asyncio.sleep(0.4)
        assert await store.take("refresh", key) == (None, False)

    run(make_store, body)


def test_family_and_once_and_keys(make_store):
    async def body(store):
        fam = os.urandom(6).hex()
        await store.add_to_family(fam, "j1", 100.0, 30)
        await store.add_to_family(fam, "j2", 200.0, 30)
        assert not await store.family_revoked(fam)
        assert sorted(await store.revoke_family(fam, 30)) == [("j1", 100.0), ("j2", 200.0)]
        assert await store.family_revoked(fam)
        marker = os.urandom(6).hex()
        assert await store.once(marker, 30) is True
        assert await store.once(marker, 30) is False
        parent = os.urandom(4).hex()
        assert await store.add_key({"kid": parent + "a"}, parent) is True
        assert await store.add_key({"kid": parent + "b"}, parent) is False  # one successor per parent
        assert {"kid": parent + "a"} in await store.keys()

    run(make_store, body)


def test_sqlite_revocations_are_read_incrementally(tmp_path):
    async def body(store):
        await store.revoke_jti("a", 1e10)
        items, cursor = await store.revoked_since(None)
        assert items == [("a", 1e10)]
        await store.revoke_jti("b", 1e10)
        items, cursor = await store.revoked_since(cursor)
        assert items == [("b", 1e10)]
        assert (await store.revoked_since(cursor))[0] == []

    run(lambda: SqliteStore(tmp_path / "r.db"), body)

"""The GCRA script against the Python oracle, atomicity under concurrent nodes, NOSCRIPT reload,
key layout, and the Redis Cluster (hash tags)."""

from __future__ import annotations

import asyncio
import math
import random

import pytest
from redis.asyncio import Redis

from fastgate.quota import QuotaDecision
from fastgate.quota.redis_backend import GCRA_LUA, RedisQuota, _quota, quota_key
from fastgate.ratelimit_model import GcraLimiter


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize(
    "requests,per,burst", [(10, 1.0, 10), (7, 3.0, 7), (60, 7.0, 5), (1000, 60.0, 25), (3, 0.5, 1)]
)
def test_script_matches_model(redis_proc, requests, per, burst):
    """Same inputs (explicit now in us) -> same allowed/remaining/reset/retry as the oracle."""
    q = _quota(requests, per, burst)
    model = GcraLimiter(requests, per, burst=burst)
    rnd = random.Random(requests * 31 + burst)

    async def go():
        r = Redis(port=redis_proc.port)
        key = quota_key(f"model-{requests}-{burst}-{per}")
        now_us = 1_700_000_000_000_000
        step = max(1, int(per * 1e6 / requests))
        for _ in range(400):
            now_us += rnd.choice([0, 0, 1, step // 3, step, 2 * step, 5 * step])
            cost = rnd.choice([1, 1, 1, 2, 3, burst + 1])
            # the model on a shifted time line (GCRA is shift-invariant): exact in doubles
            m = model.check("k", cost, now=(now_us - 1_699_999_000_000_000) / 1e6)
            g, rem, used, wait = await r.eval(
                GCRA_LUA, 1, key, q.r, q.t, q.burst, cost, cost, now_us
            )
            assert bool(g) == m.allowed and (g == cost or g == 0)
            assert rem == m.remaining
            assert math.isclose(used / q.scale, m.reset_after, rel_tol=1e-9, abs_tol=1e-12)
            retry = math.inf if wait < 0 else wait / q.scale
            assert retry == m.retry_after or math.isclose(retry, m.retry_after, rel_tol=1e-9)
            if g:  # the key expires at the TAT horizon (+1 ms slack), not later (-2: gone)
                pttl = await r.pttl(key)
                assert pttl == -2 or 0 < pttl <= math.ceil(m.reset_after * 1000) + 1
        await r.aclose()

    run(go())


def test_lease_grant_is_partial_and_exact(redis_proc):
    async def go():
        r = Redis(port=redis_proc.port)
        q = _quota(100, 10.0, 100)
        key = quota_key("partial")
        t = 1_700_000_000_000_000
        g, rem, *_ = await r.eval(GCRA_LUA, 1, key, q.r, q.t, q.burst, 70, 1, t)
        assert (g, rem) == (70, 30)
        g, rem, *_ = await r.eval(GCRA_LUA, 1, key, q.r, q.t, q.burst, 70, 1, t)
        assert (g, rem) == (30, 0)  # as many as fit
        g, rem, _, wait = await r.eval(GCRA_LUA, 1, key, q.r, q.t, q.burst, 70, 1, t)
        assert g == 0 and wait / q.scale == pytest.approx(0.1)  # one token every 100 ms
        g, *_ = await r.eval(GCRA_LUA, 1, key, q.r, q.t, q.burst, 70, 5, t + 400_000)
        assert g == 0  # need 5, only 4 fit: nothing granted, nothing written
        g, *_ = await r.eval(GCRA_LUA, 1, key, q.r, q.t, q.burst, 70, 4, t + 400_000)
        assert g == 4
        await r.aclose()

    run(go())


def test_atomic_under_concurrent_nodes(redis_proc):
    """8 nodes (own connection + node_id), 1600 concurrent takes on one key with a quota that does
    not refill during the test: exactly `requests` admitted (a GET-then-SET race would admit more)."""

    async def go():
        nodes = [
            RedisQuota((redis_proc.url,), 2.0, "deny", f"n{i}", leases=False) for i in range(8)
        ]
        requests, per = 300, 3600.0  # one token per 12 s: no refill within the test

        async def hammer(b: RedisQuota) -> list[QuotaDecision]:
            return await asyncio.gather(*(b.take("atomic", requests, per) for _ in range(200)))

        results = await asyncio.gather(*(hammer(b) for b in nodes))
        flat = [d for rs in results for d in rs]
        assert {d.source for d in flat} == {"redis"}
        assert sum(d.allowed for d in flat) == requests
        denied = [d for d in flat if not d.allowed]
        assert all(d.remaining == 0 and d.retry_after > 0 for d in denied)
        assert sorted(d.remaining for d in flat if d.allowed) == list(range(requests))
        for b in nodes:
            await b.close()

    run(go())


def test_noscript_fallback_and_key_layout(redis_proc):
    async def go():
        b = RedisQuota((redis_proc.url,), 1.0, "deny", "solo", leases=False)
        await b.start()  # first heartbeat now (loads the heartbeat script), the next in 1 s
        assert b.script_loads == 1
        d = await b.take("tenant:42", 5, 60)
        assert d.allowed and d.source == "redis" and d.remaining == 4 and b.script_loads == 2
        assert redis_proc.cli("SCRIPT", "FLUSH").strip() == "OK"
        d = await b.take("tenant:42", 5, 60)
        assert d.allowed and d.remaining == 3 and b.script_loads == 3
        d = await b.take("tenant:42", 5, 60)
        assert b.script_loads == 3  # cached again: EVALSHA only
        keys = redis_proc.cli("KEYS", "fastgate:*").split()
        assert "fastgate:{q:tenant:42}" in keys
        await b.heartbeat()
        assert redis_proc.cli("ZRANGE", "fastgate:{nodes}", "0", "-1").split() == ["solo"]
        await b.close()
        assert redis_proc.cli("ZCARD", "fastgate:{nodes}").strip() == "0"

    run(go())


def test_heartbeats_count_live_nodes(redis_proc):
    async def go():
        nodes = [
            RedisQuota((redis_proc.url,), 1.0, "local", f"hb{i}", heartbeat_ttl=0.3)
            for i in range(3)
        ]
        assert [await b.heartbeat() for b in nodes] == [1, 2, 3]
        await asyncio.sleep(0.4)
        assert await nodes[0].heartbeat() == 1  # the others' entries expired
        for b in nodes:
            await b.close()

    run(go())


def test_redis_cluster_hash_tags(redis_cluster):
    keys = [f"k{i}" for i in range(12)]
    slots = {k: int(redis_cluster[0].cli("CLUSTER", "KEYSLOT", quota_key(k))) for k in keys}
    # the slot is the hash tag's: {q:<key>}
    assert slots["k1"] == int(redis_cluster[0].cli("CLUSTER", "KEYSLOT", "{q:k1}:other"))
    owners = set()
    for k in keys:
        out = redis_cluster[0].cli("CLUSTER", "COUNTKEYSINSLOT", str(slots[k]))
        assert out.strip() == "0"
        for p in redis_cluster:
            if p.cli("CLUSTER", "KEYSLOT", quota_key(k)) and _owns(p, slots[k]):
                owners.add(p.port)
    assert len(owners) >= 2, "keys should spread over several shards"

    async def go():
        urls = tuple(p.url for p in redis_cluster)
        b = RedisQuota(urls, 2.0, "deny", "c1", leases=False)
        for k in keys:
            d = await b.take(k, 3, 60)
            assert d.allowed and d.source == "redis" and d.remaining == 2, (k, d)
        for _ in range(2):
            assert (await b.take("k0", 3, 60)).allowed
        d = await b.take("k0", 3, 60)
        assert not d.allowed and d.source == "redis" and d.retry_after == pytest.approx(20, 0.01)
        assert await b.heartbeat() == 1
        await b.close()

    run(go())
    for k in keys:  # each key lives on the shard that owns its slot
        owner = next(p for p in redis_cluster if _owns(p, slots[k]))
        assert owner.cli("EXISTS", quota_key(k)).strip() == "1"


def _owns(p, slot: int) -> bool:
    for line in p.cli("CLUSTER", "NODES").splitlines():
        parts = line.split()
        if "myself" in parts[2]:
            for rng in parts[8:]:
                lo, _, hi = rng.partition("-")
                if int(lo) <= slot <= int(hi or lo):
                    return True
    return False

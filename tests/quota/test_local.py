"""LocalQuota (this node only) and lease bookkeeping on one node."""

from __future__ import annotations

import asyncio

from fastgate.quota import LocalQuota
from fastgate.quota.redis_backend import RedisQuota


def test_local_quota_is_native_gcra():
    t = [1000.0]
    q = LocalQuota(clock=lambda: t[0])

    async def go():
        ds = [await q.take("k", 3, 3.0) for _ in range(4)]
        assert [d.allowed for d in ds] == [True, True, True, False]
        assert {d.source for d in ds} == {"local"} and ds[-1].retry_after == 1.0
        t[0] += 1.0
        assert (await q.take("k", 3, 3.0)).allowed

    asyncio.run(go())


def test_lease_and_cached_denial_are_local(redis_proc):
    async def go():
        b = RedisQuota((redis_proc.url,), 1.0, "deny", "one", lease_horizon=100.0)
        await b.start()
        ds = [await b.take("ld", 40, 3600) for _ in range(45)]
        assert sum(d.allowed for d in ds) == 40  # exact: the quota does not refill in the test
        assert {d.source for d in ds} == {"redis", "lease"}
        rt = b.round_trips
        assert rt < 40  # leases: fewer round trips than admitted requests
        more = [await b.take("ld", 40, 3600) for _ in range(100)]
        assert not any(d.allowed for d in more) and {d.source for d in more} == {"lease"}
        assert b.round_trips == rt  # cached denial: no round trip until retry_after
        assert 0 < more[-1].retry_after <= 90
        await b.close()

    asyncio.run(go())


def test_lease_is_refilled_before_it_runs_dry(redis_proc):
    """A busy quota's lease is topped up in the background once it is below a quarter of its
    last grant, so at steady state no request waits for Redis (take_now always answers)."""

    async def go():
        b = RedisQuota((redis_proc.url,), 1.0, "deny", "one", lease_horizon=0.01)
        await b.start()
        waited = 0
        for i in range(5000):
            d = b.take_now("pf", 1_000_000, 60.0)
            if d is None:
                waited += 1
                d = await b.take("pf", 1_000_000, 60.0)
            assert d.allowed
            if i % 50 == 0:
                await asyncio.sleep(0.002)  # ~20k/s: the refill round trips get to run
        # small leases (10 ms of demand): dozens of refills, yet only the first contacts waited
        # (without the prefetch about one take in 200 waits here: ~26)
        assert b.round_trips >= 15, b.round_trips
        assert waited <= 5, waited
        await b.close()

    asyncio.run(go())

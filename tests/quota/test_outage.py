"""Redis outage: every take returns within `timeout`, on_unavailable decides (local share / allow /
deny), the breaker stops connection attempts during its back-off, and recovery is automatic."""

from __future__ import annotations

import asyncio
import time

import pytest

from fastgate.quota.breaker import CircuitBreaker
from fastgate.quota.redis_backend import RedisQuota


class BlackHole:
    """Listens on the dead Redis's port: accepts (and counts) connections, never answers."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.accepted = 0
        self._writers: list = []
        self.server = None

    async def __aenter__(self) -> BlackHole:
        async def handle(reader, writer):
            self.accepted += 1
            self._writers.append(writer)

        for _ in range(100):  # the old server's socket may linger for a moment
            try:
                self.server = await asyncio.start_server(
                    handle, "127.0.0.1", self.port, reuse_address=True
                )
                return self
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError("cannot bind the black hole")

    async def __aexit__(self, *exc) -> None:
        for w in self._writers:
            w.close()
        self.server.close()
        await self.server.wait_closed()


def test_breaker_state_machine():
    t = [0.0]
    b = CircuitBreaker(failures_to_open=2, base_backoff=1.0, max_backoff=3.0, clock=lambda: t[0])
    assert b.allow()
    b.failure()
    assert b.allow()  # 1 < K
    b.failure()
    assert not b.allow() and b.state == "open"
    t[0] = 1.0
    assert b.allow() and b.state == "half_open"
    assert not b.allow()  # one probe only
    b.failure()  # probe failed: back-off doubles
    t[0] = 2.9
    assert not b.allow()
    t[0] = 3.0
    assert b.allow()
    b.failure()
    assert b.backoff == 3.0  # capped
    t[0] = 6.0
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.backoff == 1.0 and b.allow()


@pytest.mark.parametrize("mode", ["local", "allow", "deny"])
def test_outage_breaker_and_recovery(redis_proc, mode):
    timeout = 0.2

    async def go():
        b = RedisQuota(
            (redis_proc.url,),
            timeout,
            mode,
            "a",
            leases=False,
            failures_to_open=3,
            base_backoff=1.0,
            max_backoff=4.0,
        )
        other = RedisQuota((redis_proc.url,), timeout, mode, "b", leases=False)
        await other.heartbeat()
        await b.start()
        assert b.live_nodes == 2
        d = await b.take("out", 10, 60)
        assert d.allowed and d.source == "redis"

        redis_proc.stop()
        async with BlackHole(redis_proc.port) as hole:
            durations, decisions = [], []
            for _ in range(8):
                t0 = time.monotonic()
                decisions.append(await b.take("out", 10, 60))
                durations.append(time.monotonic() - t0)
            assert max(durations) <= timeout + 0.1, durations
            assert b.breaker.state == "open"
            assert sum(x > timeout / 2 for x in durations) <= 3  # only K calls waited
            if mode == "allow":
                assert all(x.allowed and x.source == "allow" for x in decisions)
            elif mode == "deny":
                assert all(not x.allowed and x.source == "deny" for x in decisions)
            else:  # this node's share: 10 / 2 live nodes = 5
                assert [x.allowed for x in decisions] == [True] * 5 + [False] * 3
                assert all(x.source == "local" and x.limit == 5 for x in decisions)
            # open: no connection attempt during the back-off, however many takes
            seen = hole.accepted
            for _ in range(200):
                await b.take("out", 10, 60)
            await asyncio.sleep(0.5)
            for _ in range(200):
                await b.take("out", 10, 60)
            assert hole.accepted == seen
            assert b.breaker.rejected >= 400
            # after the back-off: one probe (one connection attempt), fails, back-off doubles
            await asyncio.sleep(0.6)
            t0 = time.monotonic()
            await asyncio.gather(*(b.take("out", 10, 60) for _ in range(50)))
            assert time.monotonic() - t0 <= timeout + 0.1
            assert hole.accepted - seen <= 1
            assert b.breaker.state == "open" and b.breaker.backoff == 2.0

        redis_proc.start()  # same port, empty data
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            d = await b.take("out", 10, 60)
            if d.source == "redis":
                break
            await asyncio.sleep(0.1)
        assert d.source == "redis" and d.allowed and b.breaker.state == "closed"
        await b.close()
        await other.close()

    asyncio.run(go())


def test_outage_spends_existing_lease_then_falls_back(redis_proc):
    async def go():
        b = RedisQuota((redis_proc.url,), 0.2, "deny", "l", lease_horizon=10.0)
        await b.start()
        for _ in range(20):  # ramp the lease up
            await b.take("lz", 1000, 60)
            await asyncio.sleep(0.02)
        held = b.leases.outstanding()
        assert held > 0
        redis_proc.stop()
        ds = [await b.take("lz", 1000, 60) for _ in range(held + 3)]
        assert all(d.allowed and d.source == "lease" for d in ds[:held])
        assert all(d.source == "deny" for d in ds[held:])
        await b.close()

    asyncio.run(go())

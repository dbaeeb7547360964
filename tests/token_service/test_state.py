"""ServiceState: opening the store and the ring, a failed start retried, rotation scheduling."""

from __future__ import annotations

import asyncio
import base64
import os

import pytest

from fastgate.config.model import Config, RedisSettings, Secrets, TokenService
from fastgate.policies.oauth2.jwks import UnknownKey
from fastgate.policies.shared import SharedState
from fastgate.token_service.state import ServiceState
from tests.integration.conftest import RedisServer, need_redis_server

ENV = "FG_STATE_TEST_MASTER"
os.environ.setdefault(ENV, base64.b64encode(os.urandom(32)).decode())


def _config(tmp_path, redis=None, **ts) -> Config:
    return Config(source=tmp_path / "g.yaml", listeners=(), secrets=Secrets(ENV), redis=redis,
                  token_service=TokenService(issuer="https://gw.test/", signing_key=tmp_path / "k.pem", **ts))


def test_rotation_publishes_before_signing(tmp_path):
    now = [1000.0]
    state = ServiceState(_config(tmp_path, key_rotation=40.0), SharedState(), clock=lambda: now[0])

    async def main():
        ring = await state.ready()
        state._task.cancel()  # rotation driven by hand here, not by the background loop
        first = ring.signer(now[0])
        assert (await state.key(first.kid, "ES256")) is first.verifier
        assert not await state.maybe_rotate()  # not due yet
        now[0] += 40
        assert await state.maybe_rotate()
        ring = state.ring
        new = ring.newest()
        assert new.kid != first.kid and new.active_from == now[0] + 10  # key_rotation / 4 ahead
        assert ring.signer(now[0]).kid == first.kid  # published, not signing yet
        assert await state.key(new.kid, "ES256")
        assert ring.signer(now[0] + 10).kid == new.kid
        with pytest.raises(UnknownKey):
            await state.key("nope", "ES256")
        await state.close()

    asyncio.run(main())


def test_a_failed_start_is_retried(tmp_path):
    need_redis_server()
    server = RedisServer()
    server.stop()
    state = ServiceState(_config(tmp_path, redis=RedisSettings(urls=(server.url,), timeout=0.2)), SharedState())

    async def main():
        with pytest.raises(Exception):  # noqa: B017 - whatever redis-py raises for a refused connection
            await state.ready()
        server.start()
        try:
            ring = await state.ready()
            assert ring.signer() is not None
        finally:
            await state.close()
            server.stop()

    asyncio.run(main())

"""A private redis-server for the store contract tests (the integration suite's helper)."""

from __future__ import annotations

import pytest

from tests.integration.conftest import RedisServer, need_redis_server


@pytest.fixture(scope="module")
def redis_url():
    need_redis_server()
    server = RedisServer()
    yield server.url
    server.stop()

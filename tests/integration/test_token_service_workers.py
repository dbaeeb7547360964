"""`workers: 2` on the SQLite store: workers of one node share codes, refresh tokens, keys and
revocations through the file (each connection may land on either worker)."""

from __future__ import annotations

import time

import pytest

from tests.helpers import Gateway, free_port, get
from tests.integration.ts_helpers import (
    PASSWORDS,
    SECRETS,
    basic,
    bearer,
    post_form,
    token,
    ts_config,
)


@pytest.fixture(scope="module")
def ts(pki, echo, tmp_path_factory):
    d = tmp_path_factory.mktemp("tsw")
    port = free_port()
    g = Gateway("workers: 2\n" + ts_config(pki, echo.port, port, d).replace("version: 1\n", "", 1), d)
    g.port = port
    g.wait_line("worker 1 ready", stream="err")
    yield g
    g.stop()


def test_workers_share_one_key_ring_and_revocations(ts, tls_client):
    kids = {tuple(k["kid"] for k in get(ts.port, "/oauth2/jwks", tls_client).json()["keys"]) for _ in range(10)}
    assert len(kids) == 1  # one ring, whichever worker answers
    at = token(ts.port, tls_client, {"grant_type": "client_credentials", "scope": "orders:read"}).json()["access_token"]
    for _ in range(10):  # new connections: both workers verify it
        assert get(ts.port, "/orders/v1/orders/1", tls_client, headers=bearer(at)).status == 200
    assert post_form(ts.port, "/oauth2/revoke", tls_client, {"token": at}, basic("svc", SECRETS["svc"])).status == 200
    time.sleep(1.2)  # the other worker reads the SQLite revocations every 0.5 s
    for _ in range(10):
        assert get(ts.port, "/orders/v1/orders/1", tls_client, headers=bearer(at)).status == 401


def test_workers_refresh_token_single_use(ts, tls_client):
    doc = token(ts.port, tls_client, {"grant_type": "password", "username": "alice",
                                      "password": PASSWORDS["alice"]}).json()
    statuses = [token(ts.port, tls_client, {"grant_type": "refresh_token",
                                            "refresh_token": doc["refresh_token"]}).status for _ in range(4)]
    assert statuses.count(200) == 1 and statuses[0] == 200

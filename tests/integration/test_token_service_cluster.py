"""Two gateway processes sharing a real redis-server: tokens one node issues work on the other,
a revocation on one is enforced by the other, single-use records are single-use across nodes,
and key rotation publishes the next key before it signs, without a failed request."""

from __future__ import annotations

import time

import jwt
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
    until,
)


@pytest.fixture(scope="module")
def pair(pki, echo, redis_server, tmp_path_factory):
    d1, d2 = tmp_path_factory.mktemp("node1"), tmp_path_factory.mktemp("node2")
    p1, p2 = free_port(), free_port()
    text = ts_config(pki, echo.port, p1, d1, redis_url=redis_server)
    g1 = Gateway(text, d1)
    # the second node: same issuer and Redis, its own listener port and key file folder
    g2 = Gateway(text.replace(f"address: 127.0.0.1:{p1}", f"address: 127.0.0.1:{p2}")
                 .replace(f"signing_key: {d1}/", f"signing_key: {d2}/"), d2)
    g1.port, g2.port = p1, p2
    yield g1, g2
    g1.stop()
    g2.stop()



def test_token_from_one_node_accepted_by_the_other_then_revoked_everywhere(pair, tls_client):
    g1, g2 = pair
    r = token(g1.port, tls_client, {"grant_type": "client_credentials", "scope": "orders:read"})
    assert r.status == 200, r.body
    at = r.json()["access_token"]
    assert get(g2.port, "/orders/v1/orders/1", tls_client, headers=bearer(at)).status == 200
    assert get(g1.port, "/orders/v1/orders/1", tls_client, headers=bearer(at)).status == 200
    rv = post_form(g1.port, "/oauth2/revoke", tls_client, {"token": at}, basic("svc", SECRETS["svc"]))
    assert rv.status == 200
    assert get(g1.port, "/orders/v1/orders/1", tls_client, headers=bearer(at)).status == 401
    start = time.monotonic()
    assert until(lambda: get(g2.port, "/orders/v1/orders/1", tls_client, headers=bearer(at)).status == 401)
    assert time.monotonic() - start < 1.5  # revocations.py polls every 0.5 s


def test_refresh_token_single_use_across_nodes(pair, tls_client):
    g1, g2 = pair
    r = token(g1.port, tls_client, {"grant_type": "password", "username": "alice",
                                    "password": PASSWORDS["alice"], "scope": "orders:read"})
    assert r.status == 200, r.body
    rt = r.json()["refresh_token"]
    r2 = token(g2.port, tls_client, {"grant_type": "refresh_token", "refresh_token": rt})
    assert r2.status == 200, r2.body
    reuse = token(g1.port, tls_client, {"grant_type": "refresh_token", "refresh_token": rt})
    assert reuse.status == 400 and reuse.json()["error"] == "invalid_grant"
    # the family is dead on both nodes: the rotated refresh token and its access token
    r3 = token(g2.port, tls_client, {"grant_type": "refresh_token", "refresh_token": r2.json()["refresh_token"]})
    assert r3.status == 400
    at = r2.json()["access_token"]
    assert until(lambda: get(g2.port, "/orders/v1/orders/1", tls_client, headers=bearer(at)).status == 401)
    assert until(lambda: get(g1.port, "/orders/v1/orders/1", tls_client, headers=bearer(at)).status == 401)


def test_both_nodes_publish_the_same_keys(pair, tls_client):
    g1, g2 = pair
    k1 = {k["kid"] for k in get(g1.port, "/oauth2/jwks", tls_client).json()["keys"]}
    k2 = {k["kid"] for k in get(g2.port, "/oauth2/jwks", tls_client).json()["keys"]}
    assert k1 and k1 == k2


def test_key_rotation_without_a_failed_request(pki, echo, redis_server, tmp_path_factory, tls_client):
    """key_rotation: 3s -> a new key every 3 s, published 0.75 s before it signs; tokens of every
    key keep working on both nodes, and no token is signed by a key the JWK Set did not show."""
    import redis as redis_lib

    url = redis_server.rsplit("/", 1)[0] + "/3"  # a database of its own: a fresh key ring
    redis_lib.Redis.from_url(url).flushdb()
    d1, d2 = tmp_path_factory.mktemp("rot1"), tmp_path_factory.mktemp("rot2")
    p1, p2 = free_port(), free_port()
    text = ts_config(pki, echo.port, p1, d1, extra_ts="  key_rotation: 3s\n", redis_url=url)
    g1 = Gateway(text, d1)
    g2 = Gateway(text.replace(f"address: 127.0.0.1:{p1}", f"address: 127.0.0.1:{p2}")
                 .replace(f"signing_key: {d1}/", f"signing_key: {d2}/"), d2)
    try:
        published: set[str] = set()
        signed: list[str] = []
        tokens = []
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            published |= {k["kid"] for k in get(p1, "/oauth2/jwks", tls_client).json()["keys"]}
            r = token(p1, tls_client, {"grant_type": "client_credentials", "scope": "orders:read"})
            assert r.status == 200, r.body
            at = r.json()["access_token"]
            kid = jwt.get_unverified_header(at)["kid"]
            assert kid in published, "a key signed before it was published"
            if not signed or signed[-1] != kid:
                signed.append(kid)
                tokens.append(at)
            for port in (p1, p2):
                api = get(port, "/orders/v1/orders/1", tls_client, headers=bearer(at))
                assert api.status == 200, (port, api.body)
            time.sleep(0.1)
        assert len(signed) >= 2, signed
        for at in tokens:  # tokens of retired keys still verify until they expire
            assert get(p2, "/orders/v1/orders/1", tls_client, headers=bearer(at)).status == 200
    finally:
        g1.stop()
        g2.stop()


def test_redis_outage_is_503_and_a_restarted_empty_redis_gets_the_keys_back(pki, echo, tmp_path, tls_client):
    from tests.integration.conftest import RedisServer

    server = RedisServer()
    port = free_port()
    g = Gateway(ts_config(pki, echo.port, port, tmp_path, redis_url=server.url), tmp_path)
    try:
        first = token(port, tls_client, {"grant_type": "client_credentials"}).json()["access_token"]
        kid = jwt.get_unverified_header(first)["kid"]
        server.stop()
        r = token(port, tls_client, {"grant_type": "password", "username": "alice",
                                     "password": PASSWORDS["alice"]})
        assert r.status == 503 and r.json()["error"] == "temporarily_unavailable"
        assert r.header("cache-control") == "no-store" and r.header("retry-after") == "1"
        server.start()  # same port, no data
        assert until(lambda: token(port, tls_client, {"grant_type": "password", "username": "alice",
                                                        "password": PASSWORDS["alice"]}).status == 200, 8)
        import redis as redis_lib

        ring = redis_lib.Redis.from_url(server.url).hkeys("fastgate:{tskeys}:keys")
        assert until(lambda: kid.encode() in redis_lib.Redis.from_url(server.url).hkeys("fastgate:{tskeys}:keys"), 8), ring
        assert get(port, "/orders/v1/orders/1", tls_client, headers=bearer(first)).status == 200
    finally:
        g.stop()
        server.stop()

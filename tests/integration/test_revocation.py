"""Revocations shared through Redis, end to end: `fastgate revoke` (the real CLI) writes, every
gateway process enforces it within a second (API keys and JWT `jti`, cached tokens included),
a Redis outage keeps the last known revocations in force, and recovery is automatic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fastgate.credentials import api_key_hash
from tests.helpers import ROOT, Gateway, get
from tests.integration.conftest import RedisServer, need_redis_server

ISSUER = "https://idp.test/"
KEY1 = "fg_revocation_test_key_one_0123456789abcdefghijkl"
KEY2 = "fg_revocation_test_key_two_0123456789abcdefghijkl"
DEADLINE = 1.5  # "within one second" plus the test's own request latency


@pytest.fixture(scope="module")
def signing_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def jwks_file(tmp_path_factory, signing_key) -> Path:
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(signing_key.public_key()))
    jwk.update({"kid": "k1", "use": "sig", "alg": "ES256"})
    path = tmp_path_factory.mktemp("revocation-jwks") / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    return path


def _config(pki, echo, jwks: Path, redis_url: str | None) -> str:
    redis = f"redis:\n  url: {redis_url}\n  timeout: 50ms\n" if redis_url else ""
    return f"""version: 1
listeners:
  - name: public
    address: 127.0.0.1:0
    tls:
      certificate: {pki['server.crt']}
      private_key: {pki['server.key']}
admin:
  address: 127.0.0.1:0
{redis}applications:
  - name: mobile-app
    scopes: [course:view]
    api_keys:
      - id: k1
        hash: "{api_key_hash(KEY1)}"
      - id: k2
        hash: "{api_key_hash(KEY2)}"
issuers:
  - name: corp-idp
    issuer: {ISSUER}
    jwks_file: {jwks}
    audiences: [courses-api]
    algorithms: [ES256]
apis:
  - name: courses
    base_path: /courses/v1
    upstream:
      urls: [http://127.0.0.1:{echo.port}]
    authentication: [oauth2, api_key]
"""


def _db(url: str, db: int) -> str:
    """The session's Redis, one database per test: each test starts from an empty store."""
    return url.rsplit("/", 1)[0] + f"/{db}"


def _revoke(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastgate.cli", "revoke", "-c", str(config), *args],
                          capture_output=True, text=True, timeout=30, cwd=ROOT)


def _status(g: Gateway, tls_client, headers: dict) -> tuple[int, str | None]:
    r = get(g.ports["public"], "/courses/v1/courses/1", tls_client, headers=headers)
    return r.status, (r.json().get("code") if r.status >= 400 else None)


def _with_key(key: str) -> dict:
    return {"X-API-Key": key}


def _until(g: Gateway, tls_client, headers: dict, want: tuple[int, str | None],
           limit: float = DEADLINE) -> float:
    """Seconds until a request with `headers` gets `want`; fails after `limit`."""
    start = time.monotonic()
    while True:
        got = _status(g, tls_client, headers)
        elapsed = time.monotonic() - start
        if got == want:
            return elapsed
        assert elapsed < limit, f"still {got} after {elapsed:.2f}s, want {want}; stderr={g.err[-10:]}"
        time.sleep(0.02)


def _token(key, **claims) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": "courses-api", "sub": "bob", "iat": now, "exp": now + 300,
               "scope": "course:view", "jti": os.urandom(8).hex()}
    payload.update(claims)
    return jwt.encode(payload, key, algorithm="ES256", headers={"kid": "k1"})


def _readyz(g: Gateway) -> tuple[int, str]:
    r = get(g.admin_port, "/readyz")
    return r.status, r.body.decode().strip()


OK = (200, None)
DENIED = (401, "invalid_credentials")


def test_revoked_api_key_is_denied_within_a_second_and_undo_restores_it(
        pki, echo, jwks_file, redis_server, start_gateway, tls_client):
    g = start_gateway(_config(pki, echo, jwks_file, _db(redis_server, 1)))
    assert _status(g, tls_client, _with_key(KEY1)) == OK
    assert _readyz(g) == (200, "ok")
    done = _revoke(g.path, "--api-key", "k1")
    assert done.returncode == 0, done.stderr
    assert "api key k1 revoked" in done.stdout
    assert _until(g, tls_client, _with_key(KEY1), DENIED) < DEADLINE
    assert _status(g, tls_client, _with_key(KEY2)) == OK  # other keys still work
    undo = _revoke(g.path, "--api-key", "k1", "--undo")
    assert undo.returncode == 0, undo.stderr
    assert _until(g, tls_client, _with_key(KEY1), OK) < DEADLINE
    # an id the config does not know yet: a warning, and written anyway
    future = _revoke(g.path, "--api-key", "k-later")
    assert future.returncode == 0, future.stderr
    assert "warning: no api key 'k-later'" in future.stderr
    # the key never reaches the CLI's or the gateway's output
    assert not any(KEY1 in line for line in g.out + g.err + [done.stdout, done.stderr])


def test_revoked_jti_is_denied_within_a_second_even_when_cached(
        pki, echo, jwks_file, redis_server, start_gateway, tls_client, signing_key):
    g = start_gateway(_config(pki, echo, jwks_file, _db(redis_server, 2)))
    jti = os.urandom(8).hex()
    exp = int(time.time()) + 300
    bearer = {"Authorization": f"Bearer {_token(signing_key, jti=jti, exp=exp)}"}
    other = {"Authorization": f"Bearer {_token(signing_key)}"}
    assert _status(g, tls_client, bearer) == OK
    assert _status(g, tls_client, bearer) == OK  # now served from the verified-token cache
    done = _revoke(g.path, "--jti", jti, "--exp", str(exp))
    assert done.returncode == 0, done.stderr
    assert _until(g, tls_client, bearer, DENIED) < DEADLINE
    assert _status(g, tls_client, other) == OK
    refused = _revoke(g.path, "--jti", jti, "--undo")
    assert refused.returncode == 2 and "--undo works for --api-key only" in refused.stderr


def test_two_gateways_sharing_redis_both_enforce(pki, echo, jwks_file, redis_server, tmp_path,
                                                 tls_client):
    text = _config(pki, echo, jwks_file, _db(redis_server, 3))
    a = Gateway(text, tmp_path, "a.yaml")
    b = Gateway(text, tmp_path, "b.yaml")
    try:
        for g in (a, b):
            assert _status(g, tls_client, _with_key(KEY2)) == OK
        done = _revoke(a.path, "--api-key", "k2")
        assert done.returncode == 0, done.stderr
        start = time.monotonic()
        for g in (a, b):
            _until(g, tls_client, _with_key(KEY2), DENIED, limit=DEADLINE - (time.monotonic() - start))
            assert _status(g, tls_client, _with_key(KEY1)) == OK
        # a process started afterwards reads the list before it accepts a request
        c = Gateway(text, tmp_path, "c.yaml")
        try:
            assert _status(c, tls_client, _with_key(KEY2)) == DENIED
        finally:
            c.stop()
    finally:
        a.stop()
        b.stop()


def test_reload_that_changes_redis_restarts_the_sync(pki, echo, jwks_file, redis_server,
                                                     start_gateway, tls_client):
    g = start_gateway(_config(pki, echo, jwks_file, None))
    assert _status(g, tls_client, _with_key(KEY1)) == OK
    g.path.write_text(_config(pki, echo, jwks_file, _db(redis_server, 4)))
    g.sighup()
    g.wait_line("config reloaded", stream="err")
    done = _revoke(g.path, "--api-key", "k1")
    assert done.returncode == 0, done.stderr
    assert _until(g, tls_client, _with_key(KEY1), DENIED) < DEADLINE


def test_redis_outage_keeps_last_known_revocations_and_recovers(pki, echo, jwks_file,
                                                                start_gateway, tls_client):
    need_redis_server()
    server = RedisServer()  # private: this test stops and restarts it
    try:
        g = start_gateway(_config(pki, echo, jwks_file, server.url))
        assert _revoke(g.path, "--api-key", "k1").returncode == 0
        _until(g, tls_client, _with_key(KEY1), DENIED)
        server.stop()
        deadline = time.monotonic() + 5
        while "redis unavailable" not in _readyz(g)[1]:
            assert time.monotonic() < deadline, g.err[-10:]
            time.sleep(0.05)
        assert _readyz(g) == (200, "ok (redis unavailable: serving last known revocations)")
        for _ in range(5):
            assert _status(g, tls_client, _with_key(KEY1)) == DENIED
            assert _status(g, tls_client, _with_key(KEY2)) == OK
        down = _revoke(g.path, "--api-key", "k2")
        assert down.returncode == 1
        assert "unreachable" in down.stderr and "not confirmed" in down.stderr
        time.sleep(2.0)  # several retries: still one log line for the whole outage
        assert sum("unavailable" in line for line in g.err) == 1, g.err
        # Redis comes back empty (no persistence): the gateway restores what it knew, and a new
        # revocation is picked up within the retry backoff (at most 5 s) plus one poll.
        server.start()
        assert _revoke(g.path, "--api-key", "k2").returncode == 0
        _until(g, tls_client, _with_key(KEY2), DENIED, limit=7.0)
        assert _status(g, tls_client, _with_key(KEY1)) == DENIED
        assert _readyz(g) == (200, "ok")
        assert sum("reachable again" in line for line in g.err) == 1, g.err
    finally:
        server.stop()


def test_revoke_without_redis_in_config_is_exit_2(pki, echo, jwks_file, tmp_path):
    path = tmp_path / "no-redis.yaml"
    path.write_text(_config(pki, echo, jwks_file, None))
    done = _revoke(path, "--api-key", "k1")
    assert done.returncode == 2
    assert "has no `redis:` section" in done.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nlisteners: []\nbogus: 1\n")
    assert _revoke(bad, "--api-key", "k1").returncode == 2

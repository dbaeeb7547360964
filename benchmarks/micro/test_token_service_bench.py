"""Micro-benchmark: `client_credentials` token issuance by the token service — client secret
check on a warm verified-credentials cache (one HMAC), scope intersection, RFC 9068 claims and an
ES256 signature — against raw `jwt.encode` of the same claims with the same key (the floor).

Invariant: every timed call yields a token that verifies with the published key (asserted before
timing); on these paths nothing suspends (the store is not touched by client_credentials and the
key ring is already open), so coroutines are driven with `send(None)`: pure CPU, no event loop.
Timings are reported, never asserted.
Run: .venv/bin/pytest benchmarks/micro/test_token_service_bench.py --benchmark-only -s
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from pathlib import Path

import jwt
import pytest

from fastgate.config.model import Application, Config, Secrets, TokenService
from fastgate.credentials import hash_password
from fastgate.policies.shared import SharedState
from fastgate.token_service.grants import Grants
from fastgate.token_service.state import ServiceState

SECRET = "bench-secret"
ENV = "FG_BENCH_MASTER"


def _drive(coro):
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the coroutine suspended: not a pure-CPU path")


@pytest.fixture(scope="module")
def grants(tmp_path_factory):
    os.environ.setdefault(ENV, base64.b64encode(os.urandom(32)).decode())
    d: Path = tmp_path_factory.mktemp("tsbench")
    app = Application("svc", client_id="svc", client_secret_hash=hash_password(SECRET, n=2**12),
                      grant_types=("client_credentials",), scopes=("orders:read", "orders:write"))
    config = Config(source=d / "g.yaml", listeners=(), applications=(app,), secrets=Secrets(ENV),
                    token_service=TokenService(issuer="https://gw.bench/", signing_key=d / "k.pem"))
    state = ServiceState(config, SharedState())
    g = Grants(config, state)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(state.ready())
    assert loop.run_until_complete(g.check_secret("client", "svc", SECRET, app.client_secret_hash, "127.0.0.1"))
    yield g, app
    loop.run_until_complete(state.close())
    loop.close()


def _issue(g: Grants, app: Application) -> str:
    ok = _drive(g.check_secret("client", "svc", SECRET, app.client_secret_hash, "127.0.0.1"))
    assert ok
    return _drive(g.client_credentials({"scope": "orders:read"}, app))["access_token"]


def test_client_credentials_issuance(benchmark, grants):
    g, app = grants
    tok = _issue(g, app)
    key = g.state.ring.signer().verifier
    assert jwt.decode(tok, key, algorithms=["ES256"], audience="https://gw.bench/")["scope"] == "orders:read"
    benchmark(_issue, g, app)


def test_reference_raw_es256_encode(benchmark, grants):
    g, _ = grants
    key = g.state.ring.signer()
    now = int(time.time())
    claims = {"iss": "https://gw.bench/", "sub": "svc", "aud": "https://gw.bench/", "client_id": "svc",
              "iat": now, "nbf": now, "exp": now + 900, "jti": "x" * 22, "scope": "orders:read"}
    benchmark(jwt.encode, claims, key.private, algorithm="ES256", headers={"kid": key.kid, "typ": "at+jwt"})

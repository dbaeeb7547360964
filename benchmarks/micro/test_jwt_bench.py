"""Micro-benchmarks: the oauth2 method's per-request cost — an uncached JWT verification
(RS256, ES256) against a cache hit (SHA-256 of the token + LRU lookup + revocation check + a
fresh Identity), with raw `jwt.decode` (same key, same aud/iss/exp checks) as the reference.

Invariant: every timed call returns the same verified Identity (asserted before timing); the
coroutine never suspends on these paths (keys come from a jwks_file), so it is driven with
`send(None)` and the numbers are pure CPU, no event loop. Timings are reported, never asserted.
Run: .venv/bin/pytest benchmarks/micro/test_jwt_bench.py --benchmark-only -s
"""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from fastgate.config.model import Api, Config, Issuer, Upstream, UpstreamUrl
from fastgate.policies.oauth2 import build
from fastgate.policies.shared import SharedState

ISS, AUD = "https://idp.bench/", "orders-api"
KEYS = {
    "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ES256": ec.generate_private_key(ec.SECP256R1()),
}
JWKS = {"keys": [
    {**RSAAlgorithm.to_jwk(KEYS["RS256"].public_key(), as_dict=True), "kid": "rs", "use": "sig"},
    {**ECAlgorithm.to_jwk(KEYS["ES256"].public_key(), as_dict=True), "kid": "es", "use": "sig"},
]}
KID = {"RS256": "rs", "ES256": "es"}


class Req:
    def __init__(self, tok: str) -> None:
        self.method, self.target = b"GET", b"/orders/v1/items"
        self.headers = [(b"host", b"gw"), (b"accept", b"application/json"),
                        (b"authorization", b"Bearer " + tok.encode())]


def make_token(alg: str) -> str:
    now = int(time.time())
    claims = {"iss": ISS, "aud": AUD, "sub": "alice", "exp": now + 3600, "iat": now, "nbf": now,
              "jti": "bench-" + alg, "scope": "orders:read orders:write", "roles": ["teacher"],
              "azp": "shop"}
    return jwt.encode(claims, KEYS[alg], algorithm=alg, headers={"kid": KID[alg]})


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    path: Path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_bytes(orjson.dumps(JWKS))
    issuer = Issuer(name="idp", issuer=ISS, algorithms=("RS256", "ES256"), audiences=(AUD,),
                    jwks_file=path)
    config = Config(source=path, listeners=(), issuers=(issuer,))
    api = Api(name="orders", base_path="/orders/v1",
              upstream=Upstream(urls=(UpstreamUrl("http", "127.0.0.1", 9),)), authentication=("oauth2",))
    shared = SharedState()
    auth = build(api, config, shared)
    yield auth
    shared.close()


def drive(coro):
    """Run a coroutine that must not suspend (true on these paths) without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("verify suspended: a key fetch on the benchmark path")


def cached_call(auth, req):
    def call():
        return drive(auth.verify(None, req, auth.find(None, req)))
    return call


def uncached_call(auth, req):
    clear = auth.cache._d.clear

    def call():
        clear()  # ~50 ns: every call is a miss
        return drive(auth.verify(None, req, auth.find(None, req)))
    return call


def raw_decode_call(alg: str, tok: str):
    key = jwt.PyJWK(JWKS["keys"][0 if alg == "RS256" else 1], alg)

    def call():
        return jwt.decode(tok, key, algorithms=[alg], audience=[AUD], issuer=ISS, leeway=30,
                          options={"require": ["exp", "iss"]})
    return call


def calls(auth, alg: str):
    tok = make_token(alg)
    req = Req(tok)
    c, u, r = cached_call(auth, req), uncached_call(auth, req), raw_decode_call(alg, tok)
    ident = u()
    assert ident.subject == "alice" and ident.scopes == {"orders:read", "orders:write"}
    assert c() == ident and r()["sub"] == "alice"
    return {"cached": c, "uncached": u, "jwt.decode": r}


@pytest.mark.parametrize("path", ["cached", "uncached", "jwt.decode"])
@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_verify(benchmark, env, alg, path):
    fn = calls(env, alg)[path]
    benchmark(fn)


def per_call_us(fn, n: int, repeat: int = 7) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter_ns() - t0)
    return best / n / 1e3


def test_print_cached_vs_uncached(env, capsys):
    """Best of 7 batches per path; prints µs/call and the ratios."""
    rows = []
    for alg in ("RS256", "ES256"):
        fns = calls(env, alg)
        c = per_call_us(fns["cached"], 20_000)
        u = per_call_us(fns["uncached"], 2_000)
        r = per_call_us(fns["jwt.decode"], 2_000)
        rows.append(f"{alg}: cache hit {c:6.2f} us | uncached verify {u:7.1f} us | "
                    f"raw jwt.decode {r:7.1f} us | uncached/cached x{u / c:5.1f} | "
                    f"uncached/jwt.decode x{u / r:4.2f}")
    with capsys.disabled():
        print("\noauth2 find+verify per call (pure CPU, no event loop):")
        print("\n".join(rows))

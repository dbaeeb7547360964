"""Micro-benchmarks: per-request cost of API-key, Basic (cached vs scrypt) and Digest checks.

Invariant: each timed call is what the pipeline does per request, `find` + `await verify`, on
a request built before timing, and every call is asserted to succeed (or, for the throttled
row, to be refused) before it is timed; timings are reported, never asserted. The reference a
cached Basic check must beat is the scrypt it replaces (default cost, N=2^15, r=8, p=1).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time

import pytest

from fastgate import errors
from fastgate.config.model import ApiKey, Application, User
from fastgate.context import RequestContext
from fastgate.credentials import hash_password, new_api_key
from fastgate.policies.api_key.policy import ApiKeyAuthenticator
from fastgate.policies.basic.policy import BasicAuthenticator, ScryptRunner, VerifiedCache
from fastgate.policies.digest.policy import DigestAuthenticator, NonceCounts, parse_auth_params
from fastgate.policies.throttle import LoginThrottle

BATCH = 2_000
KEY, KEY_HASH = new_api_key()
PASSWORD = "correct horse battery staple"
HASH = hash_password(PASSWORD)  # the default (production) scrypt cost
USER = User(name="alice", password_hash=HASH, digest_ha1="sha256:" + hashlib.sha256(
    f"alice:fastgate:{PASSWORD}".encode()).hexdigest(), roles=("teacher",))
APPS = [Application(name="app", scopes=("orders:read",), api_keys=(
    ApiKey(id="k1", hash=KEY_HASH, allowed_ips=("10.0.0.0/8", "203.0.113.0/24"),
           allowed_referers=("https://*.example.com/*",)),
    ApiKey(id="k2", hash=new_api_key()[1]),
))]


class Req:
    __slots__ = ("method", "target", "headers")

    def __init__(self, headers, target: bytes = b"/orders/v1/items?a=1", method: bytes = b"GET"):
        self.method = method
        self.target = target
        self.headers = headers


COMMON = [(b"host", b"api.example.com"), (b"user-agent", b"curl/8.5.0"), (b"accept", b"*/*")]
CTX = RequestContext("req-1", "203.0.113.7", "public", "https", None)


def basic_req(user: str = "alice", password: str = PASSWORD) -> Req:
    token = base64.b64encode(f"{user}:{password}".encode())
    return Req(COMMON + [(b"authorization", b"Basic " + token)])


async def run_batch(auth, reqs) -> int:
    """find + verify for every request; returns ns for the whole batch."""
    find, verify = auth.find, auth.verify
    t0 = time.perf_counter_ns()
    for req in reqs:
        await verify(CTX, req, find(CTX, req))
    return time.perf_counter_ns() - t0


async def run_refused(auth, reqs) -> int:
    find, verify = auth.find, auth.verify
    t0 = time.perf_counter_ns()
    for req in reqs:
        try:
            await verify(CTX, req, find(CTX, req))
        except errors.RateLimited:
            pass
    return time.perf_counter_ns() - t0


def best_ns_per_call(loop, make_coro, n: int, repeat: int = 15) -> float:
    return min(loop.run_until_complete(make_coro()) for _ in range(repeat)) / n


@pytest.fixture
def loop():
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


def api_key_auth() -> ApiKeyAuthenticator:
    return ApiKeyAuthenticator(APPS)


def api_key_reqs(n: int = BATCH) -> list[Req]:
    return [Req(COMMON + [(b"x-api-key", KEY.encode()),
                          (b"referer", b"https://shop.example.com/cart")])] * n


def basic_cached(loop) -> tuple[BasicAuthenticator, ScryptRunner]:
    runner = ScryptRunner()
    auth = BasicAuthenticator([USER], cache=VerifiedCache(), throttle=LoginThrottle(), runner=runner)
    loop.run_until_complete(run_batch(auth, [basic_req()]))  # the one scrypt, untimed
    return auth, runner


def digest_setup(n: int) -> tuple[DigestAuthenticator, list[Req]]:
    auth = DigestAuthenticator([USER], nonce_key=b"k" * 32, nonces=NonceCounts())
    c = parse_auth_params(auth.challenge()[len("Digest "):])
    uri = "/orders/v1/items?a=1"
    ha1 = USER.digest_ha1[7:]
    ha2 = hashlib.sha256(f"GET:{uri}".encode()).hexdigest()
    reqs = []
    for nc in range(1, n + 1):
        nc_text = f"{nc:08x}"
        resp = hashlib.sha256(f"{ha1}:{c['nonce']}:{nc_text}:abc:auth:{ha2}".encode()).hexdigest()
        value = (f'Digest username="alice", realm="fastgate", nonce="{c["nonce"]}", uri="{uri}", '
                 f'algorithm=SHA-256, qop=auth, nc={nc_text}, cnonce="abc", response="{resp}", '
                 f'opaque="{c["opaque"]}"')
        reqs.append(Req(COMMON + [(b"authorization", value.encode())]))
    return auth, reqs


def test_api_key_verify(benchmark, loop):
    auth, reqs = api_key_auth(), api_key_reqs()
    benchmark(lambda: loop.run_until_complete(run_batch(auth, reqs)))


def test_basic_cached_verify(benchmark, loop):
    auth, runner = basic_cached(loop)
    reqs = [basic_req()] * BATCH
    benchmark(lambda: loop.run_until_complete(run_batch(auth, reqs)))
    runner.close()


def test_basic_uncached_scrypt_verify(benchmark, loop):
    runner = ScryptRunner()
    auth = BasicAuthenticator([USER], cache=VerifiedCache(ttl=0.0), runner=runner)
    benchmark.pedantic(lambda: loop.run_until_complete(run_batch(auth, [basic_req()])),
                       rounds=5, iterations=1)
    runner.close()


def test_print_auth_costs(capsys, loop):
    """Prints µs/call (best of 15 batches) and the ratios; not pass/fail on timing."""
    rows = []

    async def baseline() -> int:  # the pipeline's floor: an `await` of a no-op coroutine
        async def noop(ctx, req, found):
            return None

        t0 = time.perf_counter_ns()
        for req in reqs:
            await noop(CTX, req, None)
        return time.perf_counter_ns() - t0

    reqs = api_key_reqs()
    floor = best_ns_per_call(loop, baseline, BATCH)
    rows.append(("await of a no-op coroutine (floor)", floor))

    auth = api_key_auth()
    assert loop.run_until_complete(auth.verify(CTX, reqs[0], auth.find(CTX, reqs[0]))).application
    key_ns = best_ns_per_call(loop, lambda: run_batch(auth, reqs), BATCH)
    rows.append(("api_key (header, CIDR + Referer checks)", key_ns))
    plain_auth = ApiKeyAuthenticator([Application(name="a", api_keys=(
        ApiKey(id="p", hash=KEY_HASH),))])
    plain = [Req(COMMON + [(b"x-api-key", KEY.encode())])] * BATCH
    rows.append(("api_key (header, no restrictions)",
                 best_ns_per_call(loop, lambda: run_batch(plain_auth, plain), BATCH)))

    basic, runner = basic_cached(loop)
    breqs = [basic_req()] * BATCH
    cached_ns = best_ns_per_call(loop, lambda: run_batch(basic, breqs), BATCH)
    rows.append(("basic, verified-cache hit", cached_ns))

    throttle = LoginThrottle(user_threshold=1)
    throttled = BasicAuthenticator([USER], cache=VerifiedCache(), throttle=throttle, runner=runner)
    bad = [basic_req(password="wrong")]
    with pytest.raises(errors.InvalidCredentials):
        loop.run_until_complete(run_batch(throttled, bad))
    with pytest.raises(errors.RateLimited):
        loop.run_until_complete(run_batch(throttled, bad))
    rows.append(("basic, throttled (429, no scrypt)",
                 best_ns_per_call(loop, lambda: run_refused(throttled, bad * BATCH), BATCH)))

    uncached = BasicAuthenticator([USER], cache=VerifiedCache(ttl=0.0), runner=runner)
    scrypt_ns = best_ns_per_call(loop, lambda: run_batch(uncached, [basic_req()]), 1, repeat=5)
    rows.append(("basic, uncached (scrypt N=2^15 on the pool)", scrypt_ns))
    runner.close()

    dauth, dreqs = digest_setup(BATCH * 15)
    chunks = iter([dreqs[i:i + BATCH] for i in range(0, len(dreqs), BATCH)])
    digest_ns = best_ns_per_call(loop, lambda: run_batch(dauth, next(chunks)), BATCH)
    rows.append(("digest SHA-256 (parse, nonce HMAC, nc table)", digest_ns))

    with capsys.disabled():
        print(f"\nauthentication cost per request, find + await verify (batches of {BATCH}):")
        for label, ns in rows:
            print(f"  {label:<46} {ns / 1000:12.2f} µs")
        print(f"  uncached scrypt / cached Basic:  x{scrypt_ns / cached_ns:,.0f}")
        print(f"  cached Basic / api_key:          x{cached_ns / key_ns:.2f}")
        print(f"  digest / api_key:                x{digest_ns / key_ns:.2f}")

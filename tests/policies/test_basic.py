"""HTTP Basic (fastgate/policies/basic/policy.py): real scrypt (cheap parameters), fake clocks,
a counting verify_password to prove when scrypt runs and when it does not."""

from __future__ import annotations

import asyncio
import base64
import threading
from pathlib import Path

import pytest

from fastgate import errors
from fastgate.config.model import Api, Config, Upstream, User
from fastgate.context import RequestContext
from fastgate.credentials import hash_password, verify_password
from fastgate.policies.basic import policy as basic
from fastgate.policies.basic.policy import (
    BasicAuthenticator,
    ScryptRunner,
    VerifiedCache,
    dummy_hash,
    parse_basic,
)
from fastgate.policies.shared import SharedState
from fastgate.policies.throttle import LoginThrottle

ALICE_HASH = hash_password("s3cret:with colon", n=2**10)
BOB_HASH = hash_password("hunter2", n=2**11)  # other parameters: read from the hash
ALICE = User(name="alice", password_hash=ALICE_HASH, roles=("teacher",), claims={"email": "a@x"})
BOB = User(name="bob", password_hash=BOB_HASH)


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Counting:
    """verify_password that counts its calls and the threads it ran on."""

    def __init__(self) -> None:
        self.calls = 0
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, password: str, encoded: str) -> bool:
        with self._lock:
            self.calls += 1
            self.threads.add(threading.current_thread().name)
        return verify_password(password, encoded)


class Req:
    def __init__(self, headers=(), target: bytes = b"/", method: bytes = b"GET") -> None:
        self.method = method
        self.target = target
        self.headers = list(headers)


def ctx(ip: str = "203.0.113.7") -> RequestContext:
    return RequestContext("req-1", ip, "public", "https", None)


def basic_header(user: str, password: str, scheme: bytes = b"Basic") -> tuple[bytes, bytes]:
    token = base64.b64encode(f"{user}:{password}".encode())
    return (b"authorization", scheme + b" " + token)


class Setup:
    def __init__(self, users=(ALICE, BOB), **throttle_kw) -> None:
        self.clock = Clock()
        self.scrypt = Counting()
        self.cache = VerifiedCache(clock=self.clock)
        self.throttle = LoginThrottle(clock=self.clock, **throttle_kw)
        self.runner = ScryptRunner(workers=2)
        self.auth = self.make(users)

    def make(self, users) -> BasicAuthenticator:
        return BasicAuthenticator(users, cache=self.cache, throttle=self.throttle,
                                  runner=self.runner, verify_password=self.scrypt)

    async def averify(self, header, ip: str = "203.0.113.7", auth=None):
        a = auth or self.auth
        req = Req([header])
        found = a.find(ctx(ip), req)
        assert found is not None
        return await a.verify(ctx(ip), req, found)

    def verify(self, header, ip: str = "203.0.113.7", auth=None):
        return asyncio.run(self.averify(header, ip, auth))


@pytest.fixture
def s():
    setup = Setup()
    yield setup
    setup.runner.close()


def test_good_path(s):
    req = Req([basic_header("alice", "s3cret:with colon")])
    found = s.auth.find(ctx(), req)
    assert found.strip_headers == (b"authorization",)
    ident = asyncio.run(s.auth.verify(ctx(), req, found))
    assert ident.method == "basic" and ident.subject == "alice"
    assert ident.roles == frozenset({"teacher"}) and ident.claims == {"email": "a@x"}
    assert ident.application is None and ident.scopes == frozenset()
    assert s.scrypt.calls == 1
    assert all(t.startswith("fastgate-scrypt") for t in s.scrypt.threads)  # never on the loop
    assert s.auth.challenge() == 'Basic realm="fastgate", charset="UTF-8"'


def test_params_come_from_each_hash(s):
    assert s.verify(basic_header("bob", "hunter2")).subject == "bob"


def test_scheme_is_case_insensitive(s):
    assert s.verify(basic_header("alice", "s3cret:with colon", b"bAsIc")).subject == "alice"


def test_utf8_credentials(s):
    s2 = Setup(users=[User(name="zoë", password_hash=hash_password("pässwörd", n=2**10))])
    try:
        assert s2.verify(basic_header("zoë", "pässwörd")).subject == "zoë"
    finally:
        s2.runner.close()


@pytest.mark.parametrize("headers", [
    [],
    [(b"authorization", b"Bearer abc.def.ghi")],
    [(b"authorization", b"Digest username=\"alice\"")],
    [(b"proxy-authorization", b"Basic YWxpY2U6cHc=")],
])
def test_missing(s, headers):
    assert s.auth.find(ctx(), Req(headers)) is None


@pytest.mark.parametrize("value", [
    b"Basic",
    b"Basic ",
    b"Basic !!!notbase64",
    b"Basic " + base64.b64encode(b"no-colon"),
    b"Basic " + base64.b64encode(b":nouser"),
    b"Basic " + base64.b64encode(b"alice:\xff\xfe"),  # not UTF-8
    b"Basic " + base64.b64encode(b"alice:pw\x00x"),  # control character
    b"Basic " + base64.b64encode(b"a" * 300 + b":pw"),  # over-long user id
])
def test_malformed_never_runs_scrypt(s, value):
    with pytest.raises(errors.InvalidCredentials) as e:
        s.verify((b"authorization", value))
    assert e.value.code == "invalid_credentials"
    assert ("www-authenticate", basic.CHALLENGE) in e.value.headers
    assert s.scrypt.calls == 0


def test_two_basic_headers_are_refused(s):
    h = basic_header("alice", "s3cret:with colon")
    req = Req([h, h])
    found = s.auth.find(ctx(), req)
    with pytest.raises(errors.InvalidCredentials):
        asyncio.run(s.auth.verify(ctx(), req, found))


def test_unpadded_base64_is_accepted(s):
    token = base64.b64encode(b"bob:hunter2").rstrip(b"=")
    assert s.verify((b"authorization", b"Basic " + token)).subject == "bob"


def test_wrong_password(s):
    with pytest.raises(errors.InvalidCredentials) as e:
        s.verify(basic_header("alice", "wrong"))
    assert e.value.detail == "invalid user or password"
    assert "wrong" not in (e.value.log_detail or "")
    assert s.scrypt.calls == 1


def test_unknown_user_costs_a_scrypt_too(s):
    with pytest.raises(errors.InvalidCredentials) as e:
        s.verify(basic_header("mallory", "whatever"))
    assert e.value.detail == "invalid user or password"  # same answer as a wrong password
    assert s.scrypt.calls == 1


def test_dummy_hash_uses_the_most_common_cost():
    users = [ALICE, User(name="c", password_hash=hash_password("x", n=2**10)), BOB]
    assert dummy_hash(users).split("$")[1:4] == ["1024", "8", "1"]
    assert dummy_hash([]).split("$")[1:4] == ["32768", "8", "1"]
    assert not verify_password("", dummy_hash(users))


def test_cache_hit_avoids_scrypt_until_ttl(s):
    h = basic_header("alice", "s3cret:with colon")
    for _ in range(5):
        assert s.verify(h).subject == "alice"
    assert s.scrypt.calls == 1
    assert len(s.cache) == 1
    s.clock.t += basic.CACHE_TTL + 1
    assert s.verify(h).subject == "alice"
    assert s.scrypt.calls == 2


def test_failures_are_not_cached(s):
    h = basic_header("alice", "wrong")
    for _ in range(3):
        with pytest.raises(errors.InvalidCredentials):
            s.verify(h)
    assert s.scrypt.calls == 3 and len(s.cache) == 0


def test_password_change_invalidates_the_cache(s):
    old = basic_header("alice", "s3cret:with colon")
    assert s.verify(old).subject == "alice"
    changed = User(name="alice", password_hash=hash_password("new pw", n=2**10), roles=("admin",))
    reloaded = s.make([changed, BOB])  # a config reload; the cache object is shared
    with pytest.raises(errors.InvalidCredentials):
        s.verify(old, auth=reloaded)
    assert s.scrypt.calls == 2
    ident = s.verify(basic_header("alice", "new pw"), auth=reloaded)
    assert ident.roles == frozenset({"admin"})


def test_removed_user_cannot_use_the_cache(s):
    h = basic_header("alice", "s3cret:with colon")
    assert s.verify(h).subject == "alice"
    with pytest.raises(errors.InvalidCredentials):
        s.verify(h, auth=s.make([BOB]))


def test_cache_is_bounded():
    cache = VerifiedCache(max_entries=3, clock=Clock())
    for i in range(10):
        cache.add(bytes([i]) * 32)
    assert len(cache) == 3
    assert cache.hit(bytes([9]) * 32) and not cache.hit(bytes([0]) * 32)


def test_throttled_user_gets_429_without_scrypt(s):
    for _ in range(5):
        with pytest.raises(errors.InvalidCredentials):
            s.verify(basic_header("alice", "wrong"), ip=f"198.51.100.{_}")
    assert s.scrypt.calls == 5
    for _ in range(10):  # even the right password: no scrypt while blocked
        with pytest.raises(errors.RateLimited) as e:
            s.verify(basic_header("alice", "s3cret:with colon"), ip="192.0.2.1")
    assert e.value.status == 429 and e.value.code == "rate_limited"
    assert ("retry-after", "30") in e.value.headers
    assert s.scrypt.calls == 5
    assert s.verify(basic_header("bob", "hunter2"), ip="192.0.2.1").subject == "bob"
    s.clock.t += 31
    assert s.verify(basic_header("alice", "s3cret:with colon")).subject == "alice"


def test_unknown_users_are_throttled_like_known_ones(s):
    for _ in range(5):
        with pytest.raises(errors.InvalidCredentials):
            s.verify(basic_header("nobody", "x"), ip=f"198.51.100.{_}")
    with pytest.raises(errors.RateLimited):
        s.verify(basic_header("nobody", "x"))


def test_throttled_ip_gets_429_without_scrypt(s):
    for i in range(20):  # spraying different user names from one address
        with pytest.raises(errors.InvalidCredentials):
            s.verify(basic_header(f"user{i}", "x"), ip="198.51.100.9")
    with pytest.raises(errors.RateLimited):
        s.verify(basic_header("alice", "s3cret:with colon"), ip="198.51.100.9")
    assert s.scrypt.calls == 20
    assert s.verify(basic_header("alice", "s3cret:with colon"), ip="198.51.100.10").subject == "alice"


def test_cached_client_keeps_working_while_its_user_is_throttled(s):
    good = basic_header("alice", "s3cret:with colon")
    assert s.verify(good).subject == "alice"
    for i in range(5):
        with pytest.raises(errors.InvalidCredentials):
            s.verify(basic_header("alice", "guess"), ip=f"198.51.100.{i}")
    calls = s.scrypt.calls
    assert s.verify(good).subject == "alice"  # cache hit: proven recently, not throttled
    assert s.scrypt.calls == calls


def test_concurrent_guesses_cannot_pass_the_threshold(s):
    async def burst():
        return await asyncio.gather(
            *(s.averify(basic_header("alice", f"guess{i}"), ip=f"198.51.100.{i}") for i in range(30)),
            return_exceptions=True)

    results = asyncio.run(burst())
    assert s.scrypt.calls == 5
    assert sum(isinstance(r, errors.InvalidCredentials) for r in results) == 5
    assert sum(isinstance(r, errors.RateLimited) for r in results) == 25


def test_full_scrypt_queue_answers_429_and_counts_no_failure(s):
    s.runner.max_pending = 0
    for _ in range(10):
        with pytest.raises(errors.RateLimited, match="password checks"):
            s.verify(basic_header("alice", "s3cret:with colon"))
    assert s.scrypt.calls == 0
    s.runner.max_pending = 64
    assert s.verify(basic_header("alice", "s3cret:with colon")).subject == "alice"


def test_runner_pending_returns_to_zero(s):
    async def many():
        await asyncio.gather(*(s.averify(basic_header("bob", "hunter2"), ip=f"10.0.0.{i}")
                               for i in range(3)))
        await asyncio.sleep(0)
        return s.runner.pending

    assert asyncio.run(many()) == 0


def test_parse_basic():
    assert parse_basic(base64.b64encode(b"a:b:c")) == ("a", "b:c")
    assert parse_basic(base64.b64encode(b"a:")) == ("a", "")
    assert parse_basic(b"") is None
    assert parse_basic(b"YQ==" * 2000) is None


def test_build_shares_cache_throttle_and_runner_across_reloads():
    shared = SharedState()
    api = Api(name="orders", base_path="/orders", upstream=Upstream(urls=()), authentication=("basic",))
    config = Config(source=Path("gw.yaml"), listeners=(), apis=(api,), users=(ALICE,))
    a, b = basic.build(api, config, shared), basic.build(api, config, shared)
    assert a._cache is b._cache and a._throttle is b._throttle and a._runner is b._runner
    from fastgate.policies.digest import policy as digest

    assert digest.build(api, config, shared)._throttle is a._throttle  # one budget for both
    h = basic_header("alice", "s3cret:with colon")

    async def twice():
        for auth in (a, b):
            req = Req([h])
            assert (await auth.verify(ctx(), req, auth.find(ctx(), req))).subject == "alice"

    asyncio.run(twice())
    assert len(a._cache) == 1


def test_hmac_sha256_matches_the_standard_library():
    import hmac
    import os

    for n in (0, 16, 32, 64, 65, 200):
        key, msg = os.urandom(n), os.urandom(n * 3)
        assert basic.HmacSha256(key).digest(msg) == hmac.digest(key, msg, "sha256")


def test_parallel_identical_requests_share_one_scrypt(s):
    async def burst(header):
        return await asyncio.gather(*(s.averify(header) for _ in range(12)), return_exceptions=True)

    good = asyncio.run(burst(basic_header("alice", "s3cret:with colon")))
    assert all(r.subject == "alice" for r in good)  # none throttled as a "guess"
    assert s.scrypt.calls == 1
    bad = asyncio.run(burst(basic_header("bob", "wrong")))
    assert all(isinstance(r, errors.InvalidCredentials) for r in bad)
    assert s.scrypt.calls == 2
    assert s.throttle.users.retry_after("bob") == 0  # one failure counted, not twelve
    assert s.cache.pending == {}


def test_followers_try_themselves_when_the_leader_gets_no_verdict(s):
    async def scenario():
        h = basic_header("alice", "s3cret:with colon")
        leader = asyncio.ensure_future(s.averify(h))
        await asyncio.sleep(0)  # the leader is now waiting on scrypt
        follower = asyncio.ensure_future(s.averify(h))
        await asyncio.sleep(0)
        leader.cancel()
        ident = await follower
        with pytest.raises(asyncio.CancelledError):
            await leader
        return ident

    assert asyncio.run(scenario()).subject == "alice"
    assert s.cache.pending == {}
    assert s.throttle.users.retry_after("alice") == 0

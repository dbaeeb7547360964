"""HTTP Basic authentication (RFC 7617) against `users[].password_hash` (scrypt).

Invariant: scrypt (tens of ms, ~32 MiB each, by design) never runs on the event loop and never
for a throttled user or IP: it runs on a small dedicated thread pool with a bounded queue
(ScryptRunner), behind the failed-attempt throttle (throttle.py, 429 `rate_limited` +
Retry-After while blocked). A verified-credentials cache makes a hot client cost one HMAC,
not one scrypt: its key is HMAC-SHA256(per-process key, user's password_hash || header token),
so a changed password (config reload) can never hit an old entry, the table holds no
brute-forcible password hash, and entries expire after CACHE_TTL. The cache is consulted
before the throttle: only a client that recently proved the password can hit it, so a locked
user's already-verified clients keep working. An unknown user costs a scrypt too (against a
dummy hash with the configured cost), so timing does not reveal which user names exist.

Concurrent requests carrying the same header share one check (single flight), so a client's
parallel connections on a cold cache cost one scrypt and are not mistaken for guesses.

Passwords are compared as given (UTF-8, `charset="UTF-8"` in the challenge, RFC 7617 §2.1);
no Unicode normalisation is applied, as `fastgate hash-password` applies none either.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import math
import os
import re
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from ... import errors
from ...config.model import Api, Config, User
from ...credentials import SCRYPT_N, SCRYPT_P, SCRYPT_R, verify_password
from ...identity import Found, Identity
from ..shared import SharedState
from ..throttle import LoginThrottle

CHALLENGE = 'Basic realm="fastgate", charset="UTF-8"'
CACHE_TTL = 60.0  # seconds a verified Authorization value is trusted without scrypt
CACHE_MAX_ENTRIES = 10_000  # LRU bound of the verified-credentials cache
MAX_USER_LENGTH = 256  # longer user ids are refused without scrypt (and never become throttle keys)
MAX_TOKEN_LENGTH = 4096  # longer Basic tokens are refused without decoding
SCRYPT_WORKERS = max(2, min(4, os.cpu_count() or 1))  # concurrent scrypt runs (~32 MiB each)
SCRYPT_MAX_PENDING = 64  # queued + running checks; beyond it -> 429 rate_limited

CACHE_KEY = ("basic_verified_cache",)
THROTTLE_KEY = ("login_throttle",)  # shared with digest: one failure budget for both
RUNNER_KEY = ("scrypt_runner",)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class HmacSha256:
    """HMAC-SHA256 (RFC 2104) under one fixed key, with the padded key blocks hashed once:
    bit-identical to hmac.digest(key, msg, "sha256") at about a third of its per-call cost
    (OpenSSL 3 looks the digest up again on every hmac.digest call)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def digest(self, msg: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(msg)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class VerifiedCache:
    """HMAC(header) -> expiry; bounded LRU. Holds no secret and no brute-forcible hash."""

    def __init__(self, *, ttl: float = CACHE_TTL, max_entries: int = CACHE_MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self.mac = HmacSha256(os.urandom(32))  # build() uses a key derived from nonce_key
        self._entries: OrderedDict[bytes, float] = OrderedDict()
        # checks in flight, by the same HMAC: True / False / None (no verdict) when done
        self.pending: dict[bytes, asyncio.Future[bool | None]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def hit(self, digest: bytes) -> bool:
        expires = self._entries.get(digest)
        if expires is None:
            return False
        if self.clock() >= expires:
            del self._entries[digest]
            return False
        self._entries.move_to_end(digest)
        return True

    def add(self, digest: bytes) -> None:
        entries = self._entries
        entries[digest] = self.clock() + self.ttl
        entries.move_to_end(digest)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


class ScryptRunner:
    """Runs password checks on a dedicated, small thread pool with a bounded queue.

    hashlib.scrypt releases the GIL, so the loop keeps serving while checks run; the worker
    count bounds memory (N=2^15, r=8 is 32 MiB per run) and the pending bound keeps a flood
    of distinct guesses from queueing unbounded work (429 instead).
    """

    def __init__(self, *, workers: int = SCRYPT_WORKERS, max_pending: int = SCRYPT_MAX_PENDING) -> None:
        self.max_pending = max_pending
        self.pending = 0  # submitted and not finished (a cancelled request's run still counts)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fastgate-scrypt")

    async def run(self, fn: Callable[[str, str], bool], password: str, encoded: str) -> bool:
        if self.pending >= self.max_pending:
            raise errors.RateLimited("too many password checks in progress",
                                     headers=[("retry-after", "1")])
        loop = asyncio.get_running_loop()
        self.pending += 1
        fut = self._pool.submit(fn, password, encoded)
        fut.add_done_callback(lambda _f: self._finished(loop))
        return await asyncio.wrap_future(fut, loop=loop)

    def _finished(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            loop.call_soon_threadsafe(self._done)
        except RuntimeError:  # the loop closed meanwhile (shutdown)
            pass

    def _done(self) -> None:
        self.pending -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def dummy_hash(users: Iterable[User]) -> str:
    """An scrypt hash nobody's password matches, at the cost most configured users have."""
    params = Counter()
    for u in users:
        parts = u.password_hash.split("$")
        if len(parts) == 6 and parts[0] == "scrypt":
            params[(parts[1], parts[2], parts[3])] += 1
    n, r, p = params.most_common(1)[0][0] if params else (SCRYPT_N, SCRYPT_R, SCRYPT_P)
    salt = base64.b64encode(os.urandom(16)).decode().rstrip("=")
    want = base64.b64encode(os.urandom(32)).decode().rstrip("=")
    return f"scrypt${n}${r}${p}${salt}${want}"


def parse_basic(token: bytes) -> tuple[str, str] | None:
    """user-id and password from a Basic token68 (RFC 7617 §2); None when malformed."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    if len(token) % 4 and b"=" not in token:
        token += b"=" * (-len(token) % 4)  # tolerate unpadded base64
    try:
        raw = base64.b64decode(token, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    user, colon, password = raw.partition(":")
    if not colon or not user or len(user) > MAX_USER_LENGTH:
        return None
    if _CONTROL.search(raw):  # RFC 7617 §2: no control characters
        return None
    return user, password


class BasicAuthenticator:
    """The `basic` method of one API."""

    name = "basic"

    def __init__(
        self,
        users: Iterable[User],
        *,
        cache: VerifiedCache | None = None,
        throttle: LoginThrottle | None = None,
        runner: ScryptRunner | None = None,
        verify_password: Callable[[str, str], bool] = verify_password,
    ) -> None:
        users = tuple(users)
        self._users = {u.name: u for u in users}
        self._roles = {u.name: frozenset(u.roles) for u in users}
        self._dummy = dummy_hash(users)
        self._cache = cache if cache is not None else VerifiedCache()
        self._throttle = throttle if throttle is not None else LoginThrottle()
        self._runner = runner if runner is not None else ScryptRunner()
        self._verify_password = verify_password

    def challenge(self) -> str:
        return CHALLENGE

    def find(self, ctx, req) -> Found | None:
        token = None
        count = 0
        for name, value in req.headers:
            if name == b"authorization":
                scheme, _, rest = value.strip(b" \t").partition(b" ")
                if scheme.lower() == b"basic":
                    count += 1
                    token = rest.strip(b" \t")
        if not count:
            return None
        return Found(token if count == 1 else None, strip_headers=(b"authorization",))

    async def verify(self, ctx, req, found: Found) -> Identity:
        token: bytes | None = found.value
        parsed = parse_basic(token) if token is not None else None
        if parsed is None:
            self._throttle.ip_failure(ctx.client_ip)
            raise self._invalid("malformed Basic credentials")
        name, password = parsed
        user = self._users.get(name)
        if user is None:  # unknown: the same throttle and the same scrypt cost, never a hit
            await self._check(name, password, self._dummy, ctx.client_ip)
            raise self._invalid("bad user or password")
        cache = self._cache
        digest = cache.mac.digest(user.password_hash.encode() + b"\0" + token)
        if cache.hit(digest):
            return self._identity(user)
        # Single flight: concurrent requests with the same header share one check (a client's
        # parallel connections on a cold cache cost one scrypt, and are not throttled as guesses).
        waiting = cache.pending.get(digest)
        if waiting is not None:
            verdict = await asyncio.shield(waiting)
            if verdict is True:
                return self._identity(user)
            if verdict is False:
                raise self._invalid("bad user or password")
            # None: that check reached no verdict (throttled, queue full, cancelled): try ourselves
        fut: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        cache.pending[digest] = fut
        verdict = None
        try:
            verdict = await self._check(name, password, user.password_hash, ctx.client_ip)
        finally:
            if cache.pending.get(digest) is fut:
                del cache.pending[digest]
            fut.set_result(verdict)
        if not verdict:
            raise self._invalid("bad user or password")
        cache.add(digest)
        return self._identity(user)

    async def _check(self, name: str, password: str, encoded: str, client_ip: str) -> bool:
        """Throttle, then scrypt on the pool; RateLimited when blocked or the queue is full."""
        wait = self._throttle.begin(name, client_ip)
        if wait > 0:
            raise errors.RateLimited("too many failed attempts",
                                     headers=[("retry-after", str(max(1, math.ceil(wait))))],
                                     log_detail="basic: user or client IP throttled")
        try:
            ok = await self._runner.run(self._verify_password, password, encoded)
        except BaseException:  # queue full or request cancelled: no verdict, not a failure
            self._throttle.abandon(name, client_ip)
            raise
        ok = ok and encoded is not self._dummy
        self._throttle.end(name, client_ip, ok)
        return ok

    def _identity(self, user: User) -> Identity:
        return Identity(method="basic", subject=user.name, roles=self._roles[user.name],
                        claims=dict(user.claims))

    def _invalid(self, log_detail: str) -> errors.InvalidCredentials:
        # RFC 9110 §11.6.1: a 401 carries a challenge (a fresh list: errors may be amended)
        return errors.InvalidCredentials("invalid user or password",
                                         headers=[("www-authenticate", CHALLENGE)],
                                         log_detail=log_detail)


def cache_key(nonce_key: bytes) -> bytes:
    """The verified-cache HMAC key, derived from SharedState.nonce_key (domain-separated)."""
    return hmac.digest(nonce_key, b"fastgate basic verified-cache v1", hashlib.sha256)


def _shared_cache(shared: SharedState) -> VerifiedCache:
    def make() -> VerifiedCache:
        cache = VerifiedCache()
        cache.mac = HmacSha256(cache_key(shared.nonce_key))
        return cache

    return shared.get(CACHE_KEY, make)


def build(api: Api, config: Config, shared: SharedState) -> BasicAuthenticator:
    return BasicAuthenticator(
        config.users,
        cache=_shared_cache(shared),
        throttle=shared.get(THROTTLE_KEY, LoginThrottle),
        runner=shared.get(RUNNER_KEY, ScryptRunner),
    )

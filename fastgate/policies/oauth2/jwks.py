"""An issuer's signing keys: a parsed JWK Set (`KeySet`) and where it comes from (`StaticJwks`
for `jwks_file`, `RemoteJwks` for `jwks_uri`).

Invariants: a key is only ever usable for the algorithms the issuer's config lists *and* its key
type allows (RFC 8725 §3.1: the algorithm comes from config and key, never from the token alone);
symmetric (`oct`) and private key material in a JWK Set is ignored. `RemoteJwks` fetches only
through the async client, one fetch at a time (single-flight), at most once per
UNKNOWN_KID_INTERVAL for unknown `kid`s, and keeps the last good set when the IdP is down.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import orjson
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from ... import errors
from ...config.model import Issuer

log = logging.getLogger("fastgate")

FETCH_TIMEOUT = 2.0  # seconds for one JWKS GET -> stale keys (or 503 when there are none)
DEFAULT_MAX_AGE = 600.0  # no Cache-Control max-age from the IdP
MIN_MAX_AGE = 60.0  # an IdP asking for less (or no-cache) is refetched at most this often
MAX_MAX_AGE = 86_400.0
UNKNOWN_KID_INTERVAL = 30.0  # issue 4: refresh on an unknown kid at most once per 30 s per issuer
RETRY_AFTER_FAILURE = 5.0  # an expired/absent set is refetched at most this often while failing

# alg -> (kty, allowed crv values or None). HS* is absent on purpose: HMAC secrets come only from
# `secret_env`, never from a JWK Set, so "HS256 with the RSA public key" cannot happen.
ALG_KEY_TYPES: dict[str, tuple[str, frozenset[str] | None]] = {
    "RS256": ("RSA", None), "RS384": ("RSA", None), "RS512": ("RSA", None),
    "PS256": ("RSA", None), "PS384": ("RSA", None), "PS512": ("RSA", None),
    "ES256": ("EC", frozenset({"P-256"})), "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})), "ES256K": ("EC", frozenset({"secp256k1"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}
HMAC_ALGS = frozenset({"HS256", "HS384", "HS512"})
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")  # RFC 7518 §6.2.2, §6.3.2, §6.4
_MAX_AGE_RE = re.compile(rb"(?:^|[,\s])max-age\s*=\s*\"?(\d{1,10})\"?", re.IGNORECASE)


class UnknownKey(Exception):
    """No usable key for this token (a credential failure, not an outage)."""


class KeySet:
    """Usable verification keys by kid, each bound to one algorithm (pyjwt's PyJWK refuses a
    token whose `alg` differs from the key's bound algorithm)."""

    __slots__ = ("_by_kid", "count", "skipped")

    def __init__(self, by_kid: dict[str | None, dict[str, PyJWK]], skipped: list[str]) -> None:
        self._by_kid = by_kid
        self.count = len(by_kid)
        self.skipped = skipped  # why keys were ignored, for logs

    @classmethod
    def from_jwks(cls, doc: Any, algorithms: tuple[str, ...]) -> KeySet:
        """Parse a JWK Set (RFC 7517 §5) for an issuer allowing `algorithms`; unusable keys are
        skipped with a reason. Raises ValueError when the document is not a JWK Set."""
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise ValueError("not a JWK Set (no \"keys\" list)")
        wanted = [a for a in algorithms if a in ALG_KEY_TYPES]
        by_kid: dict[str | None, dict[str, PyJWK]] = {}
        skipped: list[str] = []
        for i, jwk in enumerate(doc["keys"]):
            if not isinstance(jwk, dict):
                skipped.append(f"keys[{i}]: not an object")
                continue
            kid = jwk.get("kid")
            where = f"keys[{i}] kid={kid!r}"
            if kid is not None and not isinstance(kid, str):
                skipped.append(f"{where}: kid is not a string")
                continue
            use = jwk.get("use")
            if use is not None and use != "sig":  # RFC 7517 §4.2
                skipped.append(f"{where}: use={use!r}")
                continue
            ops = jwk.get("key_ops")
            if ops is not None and (not isinstance(ops, list) or "verify" not in ops):  # §4.3
                skipped.append(f"{where}: key_ops without verify")
                continue
            if any(m in jwk for m in PRIVATE_MEMBERS):
                skipped.append(f"{where}: private or symmetric key material")
                continue
            kty, crv, key_alg = jwk.get("kty"), jwk.get("crv"), jwk.get("alg")
            bound: dict[str, PyJWK] = {}
            for alg in wanted:
                if key_alg is not None and key_alg != alg:
                    continue  # a key that names its alg is usable for that one only (§4.4)
                want_kty, curves = ALG_KEY_TYPES[alg]
                if kty != want_kty or (curves is not None and crv not in curves):
                    continue
                try:
                    key = PyJWK(jwk, alg)
                except PyJWTError as e:
                    skipped.append(f"{where}: {alg}: {e}")
                    continue
                too_short = key.Algorithm.check_key_length(key.key)
                if too_short:
                    skipped.append(f"{where}: {too_short}")
                    continue
                bound[alg] = key
            if not bound:
                skipped.append(f"{where}: kty={kty!r} alg={key_alg!r} fits none of {list(wanted)}")
                continue
            if kid in by_kid:
                skipped.append(f"{where}: duplicate kid, first one kept")
                continue
            by_kid[kid] = bound
        return cls(by_kid, skipped)

    def select(self, kid: str | None, alg: str) -> PyJWK | None:
        """The key for (kid, alg); None when the kid is unknown (worth a refresh); UnknownKey
        when no refresh can help (kid missing among several keys, key unfit for alg)."""
        if kid is None:
            if self.count != 1:
                raise UnknownKey(f"token has no kid and the JWK Set has {self.count} usable keys")
            bound = next(iter(self._by_kid.values()))
        else:
            bound = self._by_kid.get(kid)
            if bound is None:
                return None
        key = bound.get(alg)
        if key is None:
            raise UnknownKey(f"key kid={kid!r} is not usable with {alg}")
        return key

    def __contains__(self, kid: object) -> bool:
        return kid in self._by_kid


def parse_max_age(cache_control: bytes | None) -> float:
    """Seconds to keep a fetched set: Cache-Control max-age clamped to [MIN, MAX], default
    DEFAULT_MAX_AGE; no-store / no-cache mean "as short as we allow"."""
    if not cache_control:
        return DEFAULT_MAX_AGE
    m = _MAX_AGE_RE.search(cache_control)
    if m is not None:
        return min(MAX_MAX_AGE, max(MIN_MAX_AGE, float(int(m.group(1)))))
    lowered = cache_control.lower()
    if b"no-store" in lowered or b"no-cache" in lowered:
        return MIN_MAX_AGE
    return DEFAULT_MAX_AGE


def load_jwks_file(issuer: Issuer) -> KeySet:
    """Read `jwks_file` at config load; ValueError (with the issuer's name) when unusable."""
    try:
        doc = orjson.loads(issuer.jwks_file.read_bytes())
        ks = KeySet.from_jwks(doc, issuer.algorithms)
    except (OSError, orjson.JSONDecodeError, ValueError) as e:
        raise ValueError(f"issuers[{issuer.name}].jwks_file: {e}") from None
    if ks.count == 0:
        raise ValueError(f"issuers[{issuer.name}].jwks_file: no key usable with "
                         f"{list(issuer.algorithms)} ({'; '.join(ks.skipped)})")
    return ks


class StaticJwks:
    """Keys from `jwks_file`, fixed until the next config load."""

    def __init__(self, keyset: KeySet) -> None:
        self.keyset = keyset

    async def key(self, kid: str | None, alg: str) -> PyJWK:
        key = self.keyset.select(kid, alg)
        if key is None:
            raise UnknownKey(f"unknown kid {kid!r}")
        return key

    async def warm(self) -> None:
        return None


class RemoteJwks:
    """Keys from `jwks_uri`, one instance per Issuer in SharedState (survives reloads).

    Outage policy (decided for issue 4): a known kid keeps verifying with the last good set for
    as long as the IdP is unreachable; an *unknown* kid while the last fetch failed is answered
    with 503 `unavailable` — the token may well be signed by a key the IdP rotated in and we
    cannot tell, so "invalid credentials" would be a lie that makes clients drop good tokens.
    An unknown kid while the IdP answers is `invalid_credentials`.
    """

    def __init__(self, issuer: Issuer, http, clock: Callable[[], float] = time.monotonic) -> None:
        self.issuer = issuer
        self.http = http
        self.clock = clock
        self.keyset: KeySet | None = None
        self.expires = 0.0  # monotonic time the current set goes stale
        self.last_attempt = float("-inf")
        self.last_failed = False
        self.fetches = 0  # attempts, for tests and metrics
        self._flight: asyncio.Task | None = None

    async def key(self, kid: str | None, alg: str) -> PyJWK:
        now = self.clock()
        if (self.keyset is None or now >= self.expires) and self._may_retry(now):
            await self.refresh()
        ks = self.keyset
        if ks is None:
            raise errors.Unavailable("identity provider unavailable",
                                     log_detail=f"issuer {self.issuer.name}: no JWK Set fetched yet")
        key = ks.select(kid, alg)
        if key is not None:
            return key
        now = self.clock()
        if self._flight is not None or (now - self.last_attempt >= UNKNOWN_KID_INTERVAL
                                        and self._may_retry(now)):
            await self.refresh()
            ks = self.keyset
            key = ks.select(kid, alg)
            if key is not None:
                return key
        if self.last_failed:
            raise errors.Unavailable("identity provider unavailable",
                                     log_detail=f"issuer {self.issuer.name}: unknown kid {kid!r} "
                                                "and the JWKS endpoint is failing")
        raise UnknownKey(f"unknown kid {kid!r}")

    def _may_retry(self, now: float) -> bool:
        return not self.last_failed or now - self.last_attempt >= RETRY_AFTER_FAILURE

    async def warm(self) -> None:
        """Optional prefetch at startup; failures are only logged (requests retry later)."""
        if self.keyset is None:
            await self.refresh()

    async def refresh(self) -> None:
        """Fetch now, or join the fetch in flight (single-flight). Never raises: a failure
        keeps the previous set and marks `last_failed`."""
        flight = self._flight
        if flight is None:
            flight = self._flight = asyncio.get_running_loop().create_task(self._fetch())
            flight.add_done_callback(self._landed)
        await asyncio.shield(flight)  # a cancelled waiter does not cancel the others' fetch

    def _landed(self, task: asyncio.Task) -> None:
        self._flight = None
        if not task.cancelled() and task.exception() is not None:  # _fetch catches; belt and braces
            log.error("oauth2 issuer %s: JWKS fetch crashed: %r", self.issuer.name, task.exception())

    async def _fetch(self) -> None:
        self.last_attempt = self.clock()
        self.fetches += 1
        uri = self.issuer.jwks_uri
        try:
            resp = await self.http.request("GET", uri, headers=[(b"accept", b"application/json")],
                                           timeout=FETCH_TIMEOUT)
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}")
            ks = KeySet.from_jwks(orjson.loads(resp.body), self.issuer.algorithms)
            if ks.count == 0:  # an IdP never legitimately publishes no key: keep the last good
                raise ValueError("no usable key (" + "; ".join(ks.skipped) + ")")
        except (errors.GatewayError, ValueError) as e:  # orjson.JSONDecodeError is a ValueError
            self.last_failed = True
            detail = e.log_detail if isinstance(e, errors.GatewayError) and e.log_detail else e
            log.warning("oauth2 issuer %s: JWKS fetch from %s failed (%s); %s", self.issuer.name,
                        uri, detail, "serving the last good keys" if self.keyset else "no keys yet")
            return
        if ks.skipped:
            log.info("oauth2 issuer %s: ignored JWKS keys: %s", self.issuer.name, "; ".join(ks.skipped))
        self.keyset = ks
        self.last_failed = False
        self.expires = self.clock() + parse_max_age(resp.header(b"cache-control"))

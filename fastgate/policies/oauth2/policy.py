"""The `oauth2` authentication method: `Authorization: Bearer <token>` → Identity, for JWTs from
configured issuers (jwt_verifier), the gateway's own token service (an implicit issuer whose keys
come from its key ring), and opaque tokens (introspection).

Invariants: a request costs one signature check or one introspection call per token per cache
period, not per request — verified tokens are cached by SHA-256 of the token (bounded LRU, until
min(exp, now + 5 min) for JWTs, min(exp, now + cache_ttl) for introspection); a cache hit still
re-checks revocation, expiry and that the issuer/endpoint config that vouched for it is still
configured unchanged. Each request gets its own Identity object. The bearer token is forwarded
unchanged (CONTRACT.md), so nothing is stripped.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable

from ...config.model import Api, Config
from ...identity import Found, Identity
from ..shared import SharedState
from . import revocation
from .introspection import Introspector
from .jwks import RemoteJwks, StaticJwks, load_jwks_file
from .jwt_verifier import CHALLENGE, JwtVerifier, Verified, invalid_token, read_hmac_secret

MAX_TOKEN_BYTES = 8192  # longer bearer values are refused before any parsing
TOKEN_CACHE_ENTRIES = 10_000
# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN_CHARS = (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/")
_SP_HTAB = (0x20, 0x09)
MALFORMED = object()  # Found.value when a Bearer credential is present but unusable


HOT_ENTRIES = 10_000  # per authenticator: recently verified tokens kept as ready identities


class TokenCache:
    """Bounded LRU of Verified by token digest; an entry dies at its `cache_until`."""

    def __init__(self, max_entries: int = TOKEN_CACHE_ENTRIES) -> None:
        self.max_entries = max_entries
        self._d: OrderedDict[bytes, Verified] = OrderedDict()

    def get(self, digest: bytes, now: float) -> Verified | None:
        v = self._d.get(digest)
        if v is None:
            return None
        if v.cache_until <= now:
            del self._d[digest]
            return None
        self._d.move_to_end(digest)
        return v

    def put(self, digest: bytes, v: Verified) -> None:
        d = self._d
        d[digest] = v
        d.move_to_end(digest)
        if len(d) > self.max_entries:
            d.popitem(last=False)

    def __len__(self) -> int:
        return len(self._d)


class OAuth2Authenticator:
    """One API's oauth2 method; the caches and key sets behind it are process-wide (shared)."""

    name = "oauth2"

    def __init__(self, jwt_verifier: JwtVerifier, introspector: Introspector | None,
                 cache: TokenCache, revoked: revocation.RevocationList,
                 sources: frozenset, applications: dict[str, str],
                 key_sources: list, clock: Callable[[], float]) -> None:
        self.jwt = jwt_verifier
        self.introspector = introspector
        self.cache = cache
        self.revocations = revoked
        self._sources = sources  # Issuer/Introspection configs of this load
        self._applications = applications  # client_id -> applications[].name
        self._key_sources = key_sources
        self.clock = clock
        self.verifications = 0  # cache misses that reached a verifier (tests, metrics)
        # Per load (the identity depends on this config's applications): header value -> Found,
        # token -> (Verified, Identity). A hit skips the digest, the LRU and building objects;
        # expiry and revocation are still checked on every request.
        self._found: dict[bytes, Found] = {}
        self._hot: dict[str, tuple[Verified, Identity]] = {}
        self.hot_entries = HOT_ENTRIES

    def challenge(self) -> str:
        return CHALLENGE

    def find(self, ctx, req) -> Found | None:
        """RFC 6750 §2.1. Several Authorization headers with a Bearer among them are malformed
        (which one would the upstream read?), as is a Bearer value that is not one b64token."""
        count = 0
        value = b""
        for n, v in req.headers:
            if n == b"authorization":
                count += 1
                value = v
        if count == 1:
            found = self._found.get(value)  # a hot client sends the same header every time
            if found is not None:
                return found
        bearer = False
        for n, v in req.headers:
            if n == b"authorization" and v[:6].lower() == b"bearer" and (len(v) == 6 or v[6] in _SP_HTAB):
                bearer = True
        if not bearer:
            return None
        if count != 1 or value[6:7] != b" ":  # RFC 9110 §11.4: scheme 1*SP token68
            return Found(MALFORMED)
        tok = value[7:].lstrip(b" ")
        body = tok.rstrip(b"=")
        if not body or len(tok) > MAX_TOKEN_BYTES or body.translate(None, _B64TOKEN_CHARS):
            return Found(MALFORMED)  # translate(None, allowed) leaves only disallowed bytes
        found = Found(tok.decode("ascii"))
        if len(self._found) >= HOT_ENTRIES:
            self._found.clear()
        self._found[value] = found
        return found

    async def verify(self, ctx, req, found: Found) -> Identity:
        token = found.value
        hot = self._hot.get(token)
        if hot is not None:  # verified before, by this load's config: re-check what can change
            v, identity = hot
            if v.cache_until > self.clock() and (v.jti is None or not self.revocations.is_revoked(v.jti)):
                return identity
            del self._hot[token]  # expired or revoked: the full path decides (and explains)
        if token is MALFORMED:
            raise invalid_token(log_detail="malformed Bearer authorization header")
        digest = hashlib.sha256(token.encode()).digest()
        now = self.clock()
        v = self.cache.get(digest, now)
        if v is None or v.source not in self._sources:
            v = await self._verify_uncached(token, digest, now)
            if v.cache_until > now:  # (a JWT accepted inside its exp leeway is not cached)
                self.cache.put(digest, v)
        if v.jti is not None and self.revocations.is_revoked(v.jti):
            raise invalid_token("token revoked", f"jti {v.jti[:64]!r} is revoked")
        app = None
        for cid in v.client_ids:
            app = self._applications.get(cid)
            if app is not None:
                break
        identity = Identity(method="oauth2", subject=v.subject, application=app, scopes=v.scopes,
                            roles=v.roles, claims=dict(v.claims), token=token,
                            expires_at=v.expires_at, credential_id=v.jti)
        if v.cache_until > now:
            if len(self._hot) >= self.hot_entries:
                self._hot.clear()
            self._hot[token] = (v, identity)  # policies read an Identity, never write it
        return identity

    async def _verify_uncached(self, token: str, digest: bytes, now: float) -> Verified:
        self.verifications += 1
        if token.count(".") == 2:
            return await self.jwt.verify(token, now)
        if self.introspector is None:
            raise invalid_token(log_detail="opaque token and no introspection endpoint configured")
        return await self.introspector.verify(token, digest)

    async def warm(self) -> None:
        """Optional: fetch every remote JWK Set now instead of on the first request."""
        for src in self._key_sources:
            await src.warm()


def build(api: Api, config: Config, shared: SharedState, *, clock: Callable[[], float] = time.time,
          monotonic: Callable[[], float] = time.monotonic) -> OAuth2Authenticator:
    """Compile the oauth2 method for `api` from `config.issuers` and `config.introspection`.

    Raises ValueError (message starts with the config key) for what only shows at load: an
    unreadable or keyless `jwks_file`, an issuer with neither keys nor an HS secret, a missing
    secret environment variable, an HS secret shorter than the hash, two issuers with one `iss`. `clock`/`monotonic` are for
    tests (fixed clocks); JWK Set caches and the introspector are created once per unchanged
    config object and survive reloads.
    """
    del api  # the method is the same for every API; kept for the Authenticator build signature
    entries = []
    key_sources = []
    seen: set[str] = set()
    for issuer in config.issuers:
        if issuer.issuer in seen:  # tokens are routed by `iss`: two configs for one would be a guess
            raise ValueError(f"issuers[{issuer.name}].issuer: {issuer.issuer!r} is configured twice")
        seen.add(issuer.issuer)
        bad = [a for a in issuer.algorithms if a.lower() == "none"]
        if bad:
            raise ValueError(f"issuers[{issuer.name}].algorithms: \"none\" is never accepted")
        secret = read_hmac_secret(issuer)
        keys = None
        if issuer.jwks_file is not None:
            keys = StaticJwks(load_jwks_file(issuer))
        elif issuer.jwks_uri is not None:
            keys = shared.get(("oauth2", "jwks", issuer),
                              lambda i=issuer: RemoteJwks(i, shared.http, monotonic))
            key_sources.append(keys)
        if keys is None and secret is None:
            raise ValueError(f"issuers[{issuer.name}]: needs jwks_uri, jwks_file or secret_env")
        entries.append(JwtVerifier.entry(issuer, keys, secret))
    own = ()
    if config.token_service is not None:  # issue 7: our own tokens, keys from the token service
        from ...token_service.endpoints import own_issuer
        from ...token_service.state import for_shared as token_service_state

        issuer = own_issuer(config)
        if issuer.issuer in seen:
            raise ValueError(f"token_service.issuer: {issuer.issuer!r} is also in issuers")
        state = token_service_state(config, shared)
        entries.append(JwtVerifier.entry(issuer, state, None))
        key_sources.append(state)
        own = (issuer,)
    introspector = None
    if config.introspection:
        introspector = shared.get(("oauth2", "introspection", config.introspection),
                                  lambda: Introspector(config.introspection, shared.http, clock))
    applications = {a.client_id: a.name for a in config.applications if a.client_id}
    return OAuth2Authenticator(
        JwtVerifier(entries), introspector,
        shared.get(("oauth2", "tokens"), TokenCache),
        revocation.for_shared(shared),
        frozenset(config.issuers) | frozenset(config.introspection) | frozenset(own),
        applications, key_sources, clock)


__all__ = ["build", "OAuth2Authenticator", "TokenCache"]

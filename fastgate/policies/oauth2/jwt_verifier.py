"""JWT access tokens from configured issuers: route by the unverified `iss`, verify with pyjwt
using only that issuer's algorithms and a key chosen by config (RFC 8725 §3.1), check the
registered claims, and return a `Verified` record.

Invariants: the unverified header/payload only *select* the issuer and key; everything that is
returned comes from pyjwt's verified decode and is re-checked against the same rules (so the
two JSON parsers cannot disagree in the attacker's favour). `alg: none`, HS* with anything but
the issuer's `secret_env` secret, and tokens carrying their own key (`jwk`, `jku`, `x5u`, `x5c`)
never verify. Every refusal is errors.InvalidCredentials with a generic `detail`; the token
itself never appears in an error or a log line.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from typing import Any

import jwt
import orjson
from jwt import exceptions as jwt_errors

from ... import errors
from ...config.model import Introspection, Issuer
from .jwks import ALG_KEY_TYPES, HMAC_ALGS, UnknownKey

CHALLENGE = 'Bearer realm="fastgate"'
INVALID_TOKEN_CHALLENGE = [("WWW-Authenticate", 'Bearer realm="fastgate", error="invalid_token"')]
# RFC 7515 §4.1.2-4.1.6, RFC 8725 §3.10: a token must not choose the key that verifies it.
FORBIDDEN_HEADERS = ("jwk", "jku", "x5u", "x5c")
MAX_CACHE_SECONDS = 300.0  # a verified token is re-verified at least this often
_HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}  # RFC 7518 §3.2: key >= hash size


def invalid_token(detail: str = "invalid token", log_detail: str | None = None) -> errors.InvalidCredentials:
    """The one shape of an oauth2 credential failure (CONTRACT.md: 401 invalid_credentials)."""
    return errors.InvalidCredentials(detail, headers=list(INVALID_TOKEN_CHALLENGE),
                                     log_detail=log_detail or detail)


@dataclass(slots=True)
class Verified:
    """What a verified token says, independent of which API asked (so it can be cached once)."""

    source: Issuer | Introspection  # the config that vouched for it; a cache hit re-checks it
    claims: dict[str, Any]
    subject: str | None
    scopes: frozenset[str]
    roles: frozenset[str]
    client_ids: tuple[str, ...]  # client_id, then azp: candidates for applications[].client_id
    expires_at: float | None
    jti: str | None
    cache_until: float  # epoch seconds


def _claim(claims: dict, name: str) -> Any:
    """`name`, or a dotted path into nested objects (e.g. Keycloak's `realm_access.roles`) when
    no top-level claim has that exact name."""
    if name in claims or "." not in name:
        return claims.get(name)
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def string_set(value: Any) -> frozenset[str]:
    """A space-separated string (RFC 6749 §3.3, RFC 8693 §4.2) or a list of strings; anything
    else contributes nothing (it can only lose permissions, never gain them)."""
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str) and v)
    return frozenset()


def client_ids(claims: dict) -> tuple[str, ...]:
    return tuple(v for v in (claims.get("client_id"), claims.get("azp")) if isinstance(v, str))


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _b64json(segment: str) -> Any:
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    return orjson.loads(raw)


def _check_header(header: dict, allowed: frozenset[str]) -> str:
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise invalid_token(log_detail="no alg in header")
    if alg.lower() == "none":
        raise invalid_token(log_detail="alg none refused")
    present = [h for h in FORBIDDEN_HEADERS if h in header]
    if present:
        raise invalid_token(log_detail=f"token carries its own key material: {present}")
    if alg not in allowed:
        raise invalid_token(log_detail=f"alg {alg} not allowed for this issuer")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise invalid_token(log_detail="kid is not a string")
    return alg


class _IssuerEntry:
    __slots__ = ("issuer", "keys", "secret", "algorithms", "audience")

    def __init__(self, issuer: Issuer, keys, secret: bytes | None) -> None:
        self.issuer = issuer
        self.keys = keys  # StaticJwks | RemoteJwks | None (HS-only issuer)
        self.secret = secret
        self.algorithms = frozenset(a for a in issuer.algorithms
                                    if a in ALG_KEY_TYPES or (a in HMAC_ALGS and secret))
        self.audience = list(issuer.audiences) or None


def read_hmac_secret(issuer: Issuer) -> bytes | None:
    """The issuer's HS* secret from its environment variable, checked at config load: an HS*
    algorithm without `secret_env`, an unset variable or a short secret is a config error."""
    hs = [a for a in issuer.algorithms if a in HMAC_ALGS]
    if not hs:
        return None
    if not issuer.secret_env:
        raise ValueError(f"issuers[{issuer.name}].secret_env: required for {hs}")
    value = os.environ.get(issuer.secret_env)
    if not value:
        raise ValueError(f"issuers[{issuer.name}].secret_env: environment variable "
                         f"{issuer.secret_env} is not set")
    secret = value.encode("utf-8", "surrogateescape")  # as the config loader measures it
    need = max(_HMAC_MIN_BYTES[a] for a in hs)
    if len(secret) < need:
        raise ValueError(f"issuers[{issuer.name}].secret_env: {issuer.secret_env} must hold at "
                         f"least {need} bytes for {hs}")
    return secret


class JwtVerifier:
    """Verifies JWTs for a fixed set of issuers (one config load)."""

    def __init__(self, entries: list[_IssuerEntry]) -> None:
        self._by_iss = {e.issuer.issuer: e for e in entries}
        # One PyJWT object with the safe options; `require` makes exp and iss mandatory.
        self._pyjwt = jwt.PyJWT({"require": ["exp", "iss"], "enforce_minimum_key_length": True})

    @staticmethod
    def entry(issuer: Issuer, keys, secret: bytes | None) -> _IssuerEntry:
        return _IssuerEntry(issuer, keys, secret)

    async def verify(self, token: str, now: float) -> Verified:
        parts = token.split(".")
        if len(parts) != 3:
            raise invalid_token(log_detail="not a compact JWS")
        try:
            header, unverified = _b64json(parts[0]), _b64json(parts[1])
        except (ValueError, binascii.Error):
            raise invalid_token(log_detail="malformed JWT header or payload") from None
        if not isinstance(header, dict) or not isinstance(unverified, dict):
            raise invalid_token(log_detail="JWT header or payload is not an object")
        iss = unverified.get("iss")
        entry = self._by_iss.get(iss) if isinstance(iss, str) else None
        if entry is None:
            raise invalid_token(log_detail=f"unknown issuer {str(iss)[:200]!r}")
        issuer = entry.issuer
        alg = _check_header(header, entry.algorithms)
        if alg in HMAC_ALGS:
            key: Any = entry.secret  # raw bytes; pyjwt's HMAC prepare_key refuses PEM/SSH keys too
        else:
            if entry.keys is None:
                raise invalid_token(log_detail=f"issuer {issuer.name} has no keys for {alg}")
            try:
                key = await entry.keys.key(header.get("kid"), alg)  # PyJWK bound to `alg`
            except UnknownKey as e:
                raise invalid_token(log_detail=f"issuer {issuer.name}: {e}") from None
        try:
            decoded = self._pyjwt.decode_complete(
                token, key, algorithms=[alg], audience=entry.audience, issuer=issuer.issuer,
                leeway=issuer.leeway)
        except jwt_errors.ExpiredSignatureError:
            raise invalid_token("token expired", f"issuer {issuer.name}: token expired") from None
        except jwt_errors.ImmatureSignatureError as e:
            raise invalid_token("token not yet valid", f"issuer {issuer.name}: {e}") from None
        except (jwt_errors.InvalidAudienceError, jwt_errors.MissingRequiredClaimError) as e:
            aud = isinstance(e, jwt_errors.InvalidAudienceError) or getattr(e, "claim", "") == "aud"
            raise invalid_token("invalid audience" if aud else "invalid token",
                                f"issuer {issuer.name}: {e}") from None
        except jwt_errors.PyJWTError as e:
            raise invalid_token(log_detail=f"issuer {issuer.name}: {type(e).__name__}: {e}") from None
        # Re-check on what pyjwt itself parsed and verified.
        if _check_header(decoded["header"], entry.algorithms) != alg:
            raise invalid_token(log_detail="header changed between parses")
        claims = decoded["payload"]
        if not isinstance(claims, dict) or claims.get("iss") != issuer.issuer:
            raise invalid_token(log_detail="iss mismatch after verification")
        exp = claims.get("exp")
        if not _is_number(exp):  # pyjwt would int() a string; RFC 7519 §2 NumericDate is a number
            raise invalid_token(log_detail="exp is not a NumericDate")
        for name in ("nbf", "iat"):
            if name in claims and not _is_number(claims[name]):
                raise invalid_token(log_detail=f"{name} is not a NumericDate")
        sub = claims.get("sub")
        jti = claims.get("jti")
        return Verified(
            source=issuer, claims=claims, subject=sub if isinstance(sub, str) else None,
            scopes=string_set(_claim(claims, issuer.scope_claim)),
            roles=string_set(_claim(claims, issuer.roles_claim)),
            client_ids=client_ids(claims), expires_at=float(exp),
            jti=jti if isinstance(jti, str) else None,
            cache_until=min(float(exp), now + MAX_CACHE_SECONDS))

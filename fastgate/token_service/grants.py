"""The grants (RFC 6749 §4, RFC 7636, RFC 7523, RFC 6749 §6) and what they issue: RFC 9068
access tokens, rotating refresh tokens, OIDC id_tokens.

Invariants: a grant answers with tokens or raises OAuthError (RFC 6749 §5.2 `error` codes, a safe
`error_description`, the reason for logs apart). Granted scopes are never more than requested ∩
the client's `scopes` ∩ what the user's roles allow. A spent refresh token or code presented
again revokes every token of its family (OAuth 2.0 Security BCP §4.14, RFC 6749 §4.1.2).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
import secrets
import time
from dataclasses import replace
from typing import Any

import jwt

from .. import errors
from ..config.model import Application, Config, User
from ..credentials import verify_password
from ..policies.basic.policy import (
    RUNNER_KEY,
    THROTTLE_KEY,
    HmacSha256,
    ScryptRunner,
    VerifiedCache,
    dummy_hash,
)
from ..policies.oauth2.jwks import RemoteJwks, StaticJwks, load_jwks_file
from ..policies.oauth2.jwt_verifier import JwtVerifier, read_hmac_secret
from ..policies.throttle import LoginThrottle
from .state import ServiceState
from .store import digest

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GRANT_NAMES = {  # grant_type parameter -> config name
    "client_credentials": "client_credentials",
    "password": "password",
    "authorization_code": "authorization_code",
    "refresh_token": "refresh_token",
    JWT_BEARER: "jwt_bearer",
}
MAX_ASSERTION_LIFETIME = 3600.0  # RFC 7523 §3: an assertion valid longer than this is refused
CLIENT_CACHE_KEY = ("token_service", "client_cache")
CLIENT_THROTTLE_KEY = ("token_service", "client_throttle")
_PKCE_VERIFIER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class OAuthError(Exception):
    """RFC 6749 §5.2: rendered as {"error", "error_description"} with Cache-Control: no-store."""

    def __init__(self, error: str, description: str, status: int = 400, *,
                 log_detail: str | None = None, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.log_detail = log_detail or description
        self.headers = headers or []


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier)))."""
    return _b64u(hashlib.sha256(verifier.encode("ascii")).digest())


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class Grants:
    """One config load's view of the token service (apps, users, scopes) over the shared state."""

    def __init__(self, config: Config, state: ServiceState) -> None:
        self.config = config
        self.ts = config.token_service
        self.state = state
        shared = state.shared
        self.clients = {a.client_id: a for a in config.applications if a.client_id}
        self.users = {u.name: u for u in config.users}
        self.dummy = dummy_hash(config.users)
        governed: set[str] = set()
        self.role_scopes: dict[str, set[str]] = {}
        for api in config.apis:
            if api.authorization is None:
                continue
            for role, scopes in api.authorization.roles_to_scopes.items():
                governed.update(scopes)
                self.role_scopes.setdefault(role, set()).update(scopes)
        self.governed = frozenset(governed)
        self.runner: ScryptRunner = shared.get(RUNNER_KEY, ScryptRunner)
        self.user_throttle: LoginThrottle = shared.get(THROTTLE_KEY, LoginThrottle)  # with Basic
        self.client_throttle: LoginThrottle = shared.get(CLIENT_THROTTLE_KEY, LoginThrottle)

        def cache() -> VerifiedCache:
            c = VerifiedCache()
            c.mac = HmacSha256(hmac.digest(shared.nonce_key, b"fastgate token-service cache v1", "sha256"))
            return c

        self.cache: VerifiedCache = shared.get(CLIENT_CACHE_KEY, cache)
        self.page_key = hmac.digest(shared.nonce_key, b"fastgate authorize page v1", "sha256")
        self.bearer = self._bearer_verifier(config, shared)

    def _bearer_verifier(self, config: Config, shared) -> JwtVerifier | None:
        """RFC 7523 §3: assertions from `jwt_bearer_issuers`, whose `aud` must name us."""
        if "jwt_bearer" not in self.ts.grants:
            return None
        audiences = (self.ts.issuer, self.ts.issuer.rstrip("/") + "/oauth2/token")
        entries = []
        for issuer in config.issuers:
            if issuer.name not in self.ts.jwt_bearer_issuers:
                continue
            keys = None
            if issuer.jwks_file is not None:
                keys = StaticJwks(load_jwks_file(issuer))
            elif issuer.jwks_uri is not None:
                keys = shared.get(("oauth2", "jwks", issuer),
                                  lambda i=issuer: RemoteJwks(i, shared.http, time.monotonic))
            entries.append(JwtVerifier.entry(replace(issuer, audiences=audiences), keys,
                                             read_hmac_secret(issuer)))
        return JwtVerifier(entries)

    # ---------------------------------------------------------------- credentials
    async def check_secret(self, kind: str, name: str, secret: str, encoded: str | None,
                           client_ip: str) -> bool:
        """scrypt behind the failure throttle, with the verified-credentials cache (Basic's)."""
        cache = self.cache
        known = encoded is not None
        encoded = encoded or self.dummy
        mac = cache.mac.digest(b"%b\0%b\0%b\0%b" % (kind.encode(), encoded.encode(), name.encode(),
                                                     secret.encode()))
        if known and cache.hit(mac):
            return True
        throttle = self.user_throttle if kind == "user" else self.client_throttle
        wait = throttle.begin(name, client_ip)
        if wait > 0:
            raise OAuthError("invalid_client" if kind == "client" else "invalid_grant",
                             "too many failed attempts; try again later", 429,
                             headers=[("retry-after", str(max(1, math.ceil(wait))))],
                             log_detail=f"{kind} or client IP throttled")
        try:
            ok = await self.runner.run(verify_password, secret, encoded)
        except errors.RateLimited:
            throttle.abandon(name, client_ip)
            raise OAuthError("temporarily_unavailable", "too many checks in progress", 503,
                             headers=[("retry-after", "1")]) from None
        except BaseException:
            throttle.abandon(name, client_ip)
            raise
        ok = ok and known
        throttle.end(name, client_ip, ok)
        if ok:
            cache.add(mac)
        return ok

    # ---------------------------------------------------------------- scopes
    def allowed_for_user(self, user: User | None) -> frozenset[str] | None:
        """None = no user restriction; else the governed scopes the user's roles grant."""
        if user is None:
            return None
        out: set[str] = set()
        for role in user.roles:
            out |= self.role_scopes.get(role, set())
        return frozenset(out)

    def grant_scopes(self, requested: str | None, client: Application, user: User | None,
                     ceiling: frozenset[str] | None = None) -> frozenset[str]:
        """requested ∩ client scopes ∩ the user's role scopes (for governed scopes)."""
        base = frozenset(client.scopes)
        if ceiling is not None:
            base &= ceiling
        user_ok = self.allowed_for_user(user)
        if user_ok is not None:
            base = frozenset(s for s in base if s not in self.governed or s in user_ok)
        if requested is None:
            return base
        want = frozenset(requested.split())
        if ceiling is not None and not want <= ceiling:  # RFC 6749 §6: never beyond the original
            raise OAuthError("invalid_scope", "scope exceeds the originally granted scope")
        granted = want & base
        if want and not granted:
            raise OAuthError("invalid_scope", "none of the requested scopes may be granted",
                             log_detail=f"client {client.client_id}: requested {sorted(want)[:10]}")
        return granted

    # ---------------------------------------------------------------- issuing
    async def issue(self, client: Application, sub: str, scopes: frozenset[str], *,
                    family: str | None = None, refresh: bool = False, nonce: str | None = None,
                    auth_time: float | None = None, user: User | None = None) -> dict[str, Any]:
        ring = await self.state.ready()
        key = ring.signer(self.state.clock())
        now = int(self.state.clock())
        ttl = int(self.ts.access_token_ttl)
        jti = _b64u(os.urandom(16))
        claims: dict[str, Any] = {
            "iss": self.ts.issuer, "sub": sub, "aud": self.ts.issuer, "client_id": client.client_id,
            "iat": now, "nbf": now, "exp": now + ttl, "jti": jti,
        }
        if scopes:
            claims["scope"] = " ".join(sorted(scopes))
        if auth_time is not None:
            claims["auth_time"] = int(auth_time)
        token = jwt.encode(claims, key.private, algorithm=key.alg,
                           headers={"kid": key.kid, "typ": "at+jwt"})  # RFC 9068 §2.1
        out: dict[str, Any] = {"access_token": token, "token_type": "Bearer", "expires_in": ttl}
        if scopes:
            out["scope"] = claims["scope"]
        if refresh and "refresh_token" in self.ts.grants and "refresh_token" in client.grant_types:
            family = family or _b64u(os.urandom(12))
            out["refresh_token"] = await self.new_refresh(client, sub, scopes, family, auth_time)
        if family is not None:  # so a reused code or refresh token can revoke this token too
            await self.state.store.add_to_family(family, jti, now + ttl, self.ts.refresh_token_ttl)
        if "openid" in scopes and user is not None:
            id_claims: dict[str, Any] = {
                "iss": self.ts.issuer, "sub": sub, "aud": client.client_id, "azp": client.client_id,
                "iat": now, "exp": now + ttl,
                "at_hash": _b64u(hashlib.sha256(token.encode()).digest()[:16]),  # OIDC §3.1.3.6
            }
            if auth_time is not None:
                id_claims["auth_time"] = int(auth_time)
            if nonce:
                id_claims["nonce"] = nonce
            out["id_token"] = jwt.encode(id_claims, key.private, algorithm=key.alg,
                                         headers={"kid": key.kid})
        return out

    async def new_refresh(self, client: Application, sub: str, scopes: frozenset[str], family: str,
                          auth_time: float | None) -> str:
        token = new_secret()
        now = self.state.clock()
        rec = {"client_id": client.client_id, "sub": sub, "scope": sorted(scopes), "family": family,
               "exp": now + self.ts.refresh_token_ttl, "auth_time": auth_time}
        await self.state.store.put("refresh", digest(token), rec, self.ts.refresh_token_ttl)
        return token

    async def revoke_family(self, family: str) -> None:
        """Every access token of the family denied on every node; its refresh tokens dead."""
        pairs = await self.state.store.revoke_family(family, self.ts.refresh_token_ttl)
        for jti, exp in pairs:
            self.state.revoked.revoke(jti, exp)
            await self.state.store.revoke_jti(jti, exp)

    # ---------------------------------------------------------------- the grants
    async def client_credentials(self, form: dict[str, str], client: Application) -> dict[str, Any]:
        if client.client_secret_hash is None:
            raise OAuthError("unauthorized_client", "a public client cannot use client_credentials")
        scopes = self.grant_scopes(form.get("scope"), client, None)
        return await self.issue(client, client.client_id, scopes)

    async def password(self, form: dict[str, str], client: Application, client_ip: str) -> dict[str, Any]:
        username, password = form.get("username"), form.get("password")
        if not username or password is None:
            raise OAuthError("invalid_request", "username and password are required")
        user = self.users.get(username)
        ok = await self.check_secret("user", username, password,
                                     user.password_hash if user else None, client_ip)
        if not ok or user is None:
            raise OAuthError("invalid_grant", "invalid user or password",
                             log_detail="password grant: bad user or password")
        scopes = self.grant_scopes(form.get("scope"), client, user)
        return await self.issue(client, user.name, scopes, refresh=True, user=user,
                                auth_time=self.state.clock())

    async def refresh_token(self, form: dict[str, str], client: Application) -> dict[str, Any]:
        token = form.get("refresh_token")
        if not token:
            raise OAuthError("invalid_request", "refresh_token is required")
        rec, first = await self.state.store.take("refresh", digest(token))
        if rec is None:
            raise OAuthError("invalid_grant", "invalid refresh token", log_detail="unknown refresh token")
        if rec["client_id"] != client.client_id:
            raise OAuthError("invalid_grant", "invalid refresh token",
                             log_detail="refresh token of another client")
        if not first:  # reuse of a spent token: someone else holds a copy; kill the family
            await self.revoke_family(rec["family"])
            raise OAuthError("invalid_grant", "refresh token already used; its grant is revoked",
                             log_detail=f"refresh token reuse, family {rec['family'][:8]} revoked")
        if await self.state.store.family_revoked(rec["family"]):
            raise OAuthError("invalid_grant", "invalid refresh token", log_detail="family revoked")
        if rec["exp"] < self.state.clock():
            raise OAuthError("invalid_grant", "refresh token expired")
        user = self.users.get(rec["sub"])
        scopes = self.grant_scopes(form.get("scope"), client, user, ceiling=frozenset(rec["scope"]))
        out = await self.issue(client, rec["sub"], scopes, family=rec["family"], user=user,
                               auth_time=rec.get("auth_time"))
        out["refresh_token"] = await self.new_refresh(client, rec["sub"], scopes, rec["family"],
                                                      rec.get("auth_time"))
        return out

    async def authorization_code(self, form: dict[str, str], client: Application) -> dict[str, Any]:
        code, redirect_uri = form.get("code"), form.get("redirect_uri")
        if not code:
            raise OAuthError("invalid_request", "code is required")
        rec, first = await self.state.store.take("code", digest(code))
        if rec is None:
            raise OAuthError("invalid_grant", "invalid authorization code", log_detail="unknown code")
        if rec["client_id"] != client.client_id:
            raise OAuthError("invalid_grant", "invalid authorization code",
                             log_detail="code of another client")
        if not first:  # RFC 6749 §4.1.2: SHOULD revoke all tokens issued from that code
            await self.revoke_family(rec["family"])
            raise OAuthError("invalid_grant", "authorization code already used; its tokens are revoked",
                             log_detail=f"code reuse, family {rec['family'][:8]} revoked")
        if rec["exp"] < self.state.clock():
            raise OAuthError("invalid_grant", "authorization code expired")
        if redirect_uri != rec["redirect_uri"]:  # RFC 6749 §4.1.3: identical to the request's
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
        verifier = form.get("code_verifier")
        if rec.get("code_challenge"):
            # RFC 7636 §4.1: 43-128 unreserved characters; §4.6: compare S256(verifier)
            if not verifier or not 43 <= len(verifier) <= 128 or not set(verifier) <= _PKCE_VERIFIER:
                raise OAuthError("invalid_grant", "code_verifier missing or malformed")
            if not hmac.compare_digest(s256(verifier), rec["code_challenge"]):
                raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        elif verifier:
            raise OAuthError("invalid_grant", "code_verifier sent but the request had no code_challenge")
        user = self.users.get(rec["sub"])
        if user is None:
            raise OAuthError("invalid_grant", "the user no longer exists")
        return await self.issue(client, user.name, frozenset(rec["scope"]), family=rec["family"],
                                refresh=True, nonce=rec.get("nonce"), auth_time=rec["auth_time"],
                                user=user)

    async def new_code(self, client: Application, user: User, redirect_uri: str, scopes: frozenset[str],
                       challenge: str | None, nonce: str | None) -> str:
        code = new_secret()
        now = self.state.clock()
        rec = {"client_id": client.client_id, "sub": user.name, "redirect_uri": redirect_uri,
               "scope": sorted(scopes), "code_challenge": challenge, "nonce": nonce,
               "auth_time": now, "exp": now + self.ts.authorization_code_ttl,
               "family": _b64u(os.urandom(12))}
        # kept past its exp (marked used on every try) so a late reuse still revokes its tokens
        await self.state.store.put("code", digest(code), rec,
                                   self.ts.authorization_code_ttl + self.ts.access_token_ttl)
        return code

    async def jwt_bearer(self, form: dict[str, str], client: Application) -> dict[str, Any]:
        assertion = form.get("assertion")
        if not assertion or self.bearer is None:
            raise OAuthError("invalid_request", "assertion is required")
        try:
            v = await self.bearer.verify(assertion, self.state.clock())
        except errors.GatewayError as e:
            raise OAuthError("invalid_grant", "invalid assertion",
                             log_detail=f"jwt-bearer: {e.log_detail or e.detail}") from None
        claims = v.claims
        now = self.state.clock()
        jti, sub = claims.get("jti"), claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise OAuthError("invalid_grant", "assertion has no sub")  # RFC 7523 §3 item 2
        if not isinstance(jti, str) or not jti:
            raise OAuthError("invalid_grant", "assertion has no jti")
        if v.expires_at - now > MAX_ASSERTION_LIFETIME:
            raise OAuthError("invalid_grant", "assertion lives too long")
        ttl = max(1.0, v.expires_at - now + 300)
        if not await self.state.store.once(f"jwtb:{digest(v.source.issuer + chr(0) + jti)}", ttl):
            raise OAuthError("invalid_grant", "assertion already used",
                             log_detail="jwt-bearer: replayed jti")  # RFC 7523 §3 item 7
        user = self.users.get(sub)
        scopes = self.grant_scopes(form.get("scope"), client, user)
        return await self.issue(client, sub, scopes)

"""HTTP side of the token service: the endpoints of CONTRACT.md, client authentication
(RFC 6749 §2.3.1), form parsing, and the authorization page flow.

Invariants: every JSON answer carries `Cache-Control: no-store` (RFC 6749 §5.1); errors are
RFC 6749 §5.2 JSON (`error`, `error_description`), never a credential or a stack trace; the
authorization endpoint never redirects to a `redirect_uri` that is not registered for the
client, byte for byte (RFC 6749 §3.1.2.4, §4.1.2.1); form parameters appear at most once.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import os
import re
import time
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode

import orjson

from .. import errors
from ..config.model import Application, Config, Issuer
from ..identity import Identity
from ..policies.oauth2.jwt_verifier import JwtVerifier, string_set
from . import ENDPOINTS, pages
from .grants import GRANT_NAMES, JWT_BEARER, Grants, OAuthError
from .state import ServiceState, for_shared
from .store import digest

log = logging.getLogger("fastgate")

MAX_FORM_BYTES = 64 * 1024  # a token request is small; larger bodies -> 413
REQUEST_BLOB_TTL = 600.0  # seconds the login page may stay open before the POST
CSRF_COOKIE = "__Host-fg_csrf"  # RFC 6265bis §4.1.3.2: Secure, Path=/, no Domain
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # RFC 7636 §4.2: BASE64URL(SHA-256), no padding
JSON_HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store"),
                (b"pragma", b"no-cache")]


def own_issuer(config: Config) -> Issuer:
    """The token service as an issuer for the oauth2 policy (never listed in `issuers`)."""
    ts = config.token_service
    return Issuer(name="token_service", issuer=ts.issuer, algorithms=("ES256", "RS256"),
                  audiences=(ts.issuer,), leeway=30.0, scope_claim="scope", roles_claim="roles")


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class _Redirect(Exception):
    """An authorization error sent back to the (verified) redirect_uri (RFC 6749 §4.1.2.1)."""

    def __init__(self, uri: str, params: dict[str, str]) -> None:
        super().__init__(params.get("error", ""))
        self.uri = uri
        self.params = params


class TokenServiceEndpoints:
    """One config load's endpoints; `handle` answers a request for one of ENDPOINTS."""

    paths = ENDPOINTS

    def __init__(self, config: Config, state: ServiceState) -> None:
        self.config = config
        self.ts = config.token_service
        self.state = state
        self.grants = Grants(config, state)
        issuer = own_issuer(config)
        self.verifier = JwtVerifier([JwtVerifier.entry(issuer, state, None)])
        base = self.ts.issuer.rstrip("/")
        scopes = sorted({s for a in config.applications for s in a.scopes} | {"openid"})
        self.discovery = orjson.dumps({
            "issuer": self.ts.issuer,
            "authorization_endpoint": base + "/oauth2/authorize",
            "token_endpoint": base + "/oauth2/token",
            "jwks_uri": base + "/oauth2/jwks",
            "userinfo_endpoint": base + "/oauth2/userinfo",
            "introspection_endpoint": base + "/oauth2/introspect",
            "revocation_endpoint": base + "/oauth2/revoke",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": [JWT_BEARER if g == "jwt_bearer" else g for g in self.ts.grants],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256", "RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": scopes,
            "claims_supported": sorted({"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce"}
                                       | {k for u in config.users for k in u.claims}),
            "authorization_response_iss_parameter_supported": True,  # RFC 9207
        })

    # ---------------------------------------------------------------- plumbing
    async def handle(self, conn, req, ctx, path: str, query: str) -> bool:
        ctx.decision = "token_service"
        try:
            if path in ("/oauth2/jwks", "/.well-known/openid-configuration") \
                    and req.method not in (b"GET", b"HEAD"):
                raise OAuthError("invalid_request", "use GET", 405, headers=[("allow", "GET, HEAD")])
            if path == "/oauth2/jwks":
                return await self._jwks(conn, req, ctx)
            if path == "/.well-known/openid-configuration":
                return self._send(conn, req, ctx, 200, self.discovery, JSON_HEADERS[:1]
                                  + [(b"cache-control", b"max-age=300")])
            if path == "/oauth2/authorize":
                return await self._authorize(conn, req, ctx, query)
            if path == "/oauth2/userinfo":
                return await self._userinfo(conn, req, ctx)
            if req.method != b"POST":
                raise OAuthError("invalid_request", "use POST", 405, headers=[("allow", "POST")])
            form = await self._form(req, ctx)
            if path == "/oauth2/token":
                return self._json(conn, req, ctx, 200, await self._token(req, ctx, form))
            if path == "/oauth2/introspect":
                return self._json(conn, req, ctx, 200, await self._introspect(req, ctx, form))
            if path == "/oauth2/revoke":
                await self._revoke(req, ctx, form)
                return self._send(conn, req, ctx, 200, b"", [(b"cache-control", b"no-store")])
            raise OAuthError("invalid_request", "unknown endpoint", 404)
        except OAuthError as e:
            ctx.code = e.error
            log.info("%s token service: %s: %s", ctx.request_id, e.error, e.log_detail)
            extra = [(n.encode(), v.encode()) for n, v in e.headers]
            body = orjson.dumps({"error": e.error, "error_description": e.description})
            return self._send(conn, req, ctx, e.status, body, JSON_HEADERS + extra)
        except _Redirect as r:
            ctx.code = r.params.get("error")
            return self._redirect(conn, req, ctx, r.uri, r.params)
        except store_errors() as e:  # Redis or SQLite unreachable: RFC 6749 temporarily_unavailable
            ctx.code = "temporarily_unavailable"
            log.warning("%s token service: store unavailable (%s)", ctx.request_id, type(e).__name__)
            body = orjson.dumps({"error": "temporarily_unavailable",
                                 "error_description": "the token service cannot reach its store"})
            return self._send(conn, req, ctx, 503, body, JSON_HEADERS + [(b"retry-after", b"1")])

    def _send(self, conn, req, ctx, status: int, body: bytes, headers: list) -> bool:
        from ..pipeline import _reason

        ctx.status = status
        ctx.bytes_out += len(body)
        hdrs = list(headers) + [(b"x-request-id", ctx.request_id.encode())]
        conn.start_response(req, status, _reason(status), hdrs, len(body), close=not req.body_done)
        conn.send_data(body)
        return conn.end_response() and req.body_done

    def _json(self, conn, req, ctx, status: int, doc: Any) -> bool:
        return self._send(conn, req, ctx, status, orjson.dumps(doc), JSON_HEADERS)

    def _redirect(self, conn, req, ctx, uri: str, params: dict[str, str], cookies=()) -> bool:
        params = {k: v for k, v in params.items() if v is not None}
        params["iss"] = self.ts.issuer  # RFC 9207
        location = uri + ("&" if "?" in uri else "?") + urlencode(params)
        headers = [(b"location", location.encode()), (b"cache-control", b"no-store"),
                   (b"referrer-policy", b"no-referrer"), *cookies]
        return self._send(conn, req, ctx, 302, b"", headers)

    async def _form(self, req, ctx) -> dict[str, str]:
        ctype = b""
        for n, v in req.headers:
            if n == b"content-type":
                ctype = v.split(b";")[0].strip().lower()
        if ctype != b"application/x-www-form-urlencoded":
            raise OAuthError("invalid_request", "expected application/x-www-form-urlencoded")
        if req.content_length > MAX_FORM_BYTES:
            raise errors.PayloadTooLarge(f"body larger than {MAX_FORM_BYTES} bytes")
        parts = []
        if req.has_body:
            async for chunk in req.body(MAX_FORM_BYTES):
                parts.append(chunk)
        body = b"".join(parts)
        ctx.bytes_in = len(body)
        return parse_form(body)

    # ---------------------------------------------------------------- client authentication
    async def _client(self, req, ctx, form: dict[str, str], *, public_ok: bool) -> Application:
        """RFC 6749 §2.3.1: Basic (ids form-urlencoded first) or client_secret_post, not both;
        a public client names itself with client_id only (where `public_ok`)."""
        basic = None
        for n, v in req.headers:
            if n == b"authorization":
                scheme, _, rest = v.strip().partition(b" ")
                if scheme.lower() == b"basic":
                    basic = rest.strip()
        challenge = [("www-authenticate", 'Basic realm="fastgate"')] if basic is not None else []

        def bad(why: str) -> OAuthError:
            return OAuthError("invalid_client", "client authentication failed", 401,
                              headers=challenge, log_detail=why)

        if basic is not None:
            if "client_secret" in form:
                raise OAuthError("invalid_request", "use one client authentication method")
            try:
                raw = base64.b64decode(basic, validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                raise bad("malformed Basic client credentials") from None
            cid, colon, secret = raw.partition(":")
            if not colon:
                raise bad("malformed Basic client credentials")
            cid, secret = unquote_plus(cid), unquote_plus(secret)
            if "client_id" in form and form["client_id"] != cid:
                raise OAuthError("invalid_request", "client_id differs from the authenticated client")
        else:
            cid, secret = form.get("client_id"), form.get("client_secret")
        if not cid:
            raise bad("no client credentials")
        client = self.grants.clients.get(cid)
        if secret is None:
            if client is None or client.client_secret_hash is not None or not public_ok:
                raise bad(f"client {cid[:64]!r}: no secret")
            return client
        ok = await self.grants.check_secret("client", cid, secret,
                                            client.client_secret_hash if client else None, ctx.client_ip)
        if not ok or client is None:
            raise bad(f"client {cid[:64]!r}: wrong secret or unknown client")
        return client

    # ---------------------------------------------------------------- /oauth2/token
    async def _token(self, req, ctx, form: dict[str, str]) -> dict[str, Any]:
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is required")
        name = GRANT_NAMES.get(grant_type)
        if name is None or name not in self.ts.grants:
            raise OAuthError("unsupported_grant_type", "grant type not supported")
        client = await self._client(req, ctx, form,
                                    public_ok=name in ("authorization_code", "refresh_token"))
        ctx.identity = Identity(method="token_service", application=client.name)  # access log
        if name not in client.grant_types:
            raise OAuthError("unauthorized_client", "this client may not use this grant type")
        g = self.grants
        if name == "client_credentials":
            return await g.client_credentials(form, client)
        if name == "password":
            return await g.password(form, client, ctx.client_ip)
        if name == "refresh_token":
            return await g.refresh_token(form, client)
        if name == "authorization_code":
            return await g.authorization_code(form, client)
        return await g.jwt_bearer(form, client)

    # ---------------------------------------------------------------- jwks, userinfo
    async def _jwks(self, conn, req, ctx) -> bool:
        ring = await self.state.ready()
        body = orjson.dumps(ring.jwks(self.state.clock()))
        return self._send(conn, req, ctx, 200, body, [(b"content-type", b"application/json"),
                                                      (b"cache-control", b"max-age=60")])

    async def verify_access_token(self, token: str) -> dict[str, Any]:
        """Our own access token, verified, unexpired and not revoked; its claims."""
        try:
            v = await self.verifier.verify(token, self.state.clock())
        except errors.GatewayError as e:
            raise OAuthError("invalid_token", "invalid token", 401,
                             log_detail=e.log_detail or str(e)) from None
        if v.jti is None or self.state.revoked.is_revoked(v.jti):
            raise OAuthError("invalid_token", "invalid token", 401, log_detail="revoked")
        return v.claims

    async def _userinfo(self, conn, req, ctx) -> bool:
        token = None
        for n, v in req.headers:
            if n == b"authorization" and v[:7].lower() == b"bearer ":
                token = v[7:].strip().decode("ascii", "replace")
        challenge = 'Bearer realm="fastgate"'
        if token is None:
            raise OAuthError("invalid_token", "a Bearer access token is required", 401,
                             headers=[("www-authenticate", challenge)])
        try:
            claims = await self.verify_access_token(token)
        except OAuthError as e:
            e.headers = [("www-authenticate", challenge + ', error="invalid_token"')]
            raise
        if "openid" not in string_set(claims.get("scope")):
            raise OAuthError("insufficient_scope", "the openid scope is required", 403,
                             headers=[("www-authenticate", challenge + ', error="insufficient_scope", scope="openid"')])
        user = self.grants.users.get(claims.get("sub"))
        if user is None:
            raise OAuthError("invalid_token", "unknown subject", 401,
                             headers=[("www-authenticate", challenge + ', error="invalid_token"')])
        granted = string_set(claims.get("scope"))
        doc = {name: value for name, value in user.claims.items() if _released(name, granted)}
        doc["sub"] = user.name
        return self._json(conn, req, ctx, 200, doc)

    # ---------------------------------------------------------------- introspect, revoke
    async def _introspect(self, req, ctx, form: dict[str, str]) -> dict[str, Any]:
        """RFC 7662: only confidential clients; an unknown or dead token is {"active": false}."""
        await self._client(req, ctx, form, public_ok=False)
        token = form.get("token")
        if not token:
            raise OAuthError("invalid_request", "token is required")
        if token.count(".") == 2:
            try:
                claims = await self.verify_access_token(token)
            except OAuthError:
                return {"active": False}
            out = {k: claims[k] for k in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat",
                                          "nbf", "jti") if k in claims}
            return {"active": True, "token_type": "Bearer", **out}
        rec, used = await self.state.store.peek("refresh", digest(token))
        if rec is None or used or rec["exp"] < self.state.clock() \
                or await self.state.store.family_revoked(rec["family"]):
            return {"active": False}
        return {"active": True, "token_type": "refresh_token", "client_id": rec["client_id"],
                "sub": rec["sub"], "scope": " ".join(rec["scope"]), "exp": int(rec["exp"]),
                "iss": self.ts.issuer}

    async def _revoke(self, req, ctx, form: dict[str, str]) -> None:
        """RFC 7009 §2.1: a token of another client is refused; unknown tokens are fine (200)."""
        client = await self._client(req, ctx, form, public_ok=True)
        token = form.get("token")
        if not token:
            raise OAuthError("invalid_request", "token is required")
        if token.count(".") == 2:
            try:
                v = await self.verifier.verify(token, self.state.clock())
            except errors.GatewayError:
                return  # RFC 7009 §2.2: invalid tokens do not cause an error
            if v.claims.get("client_id") != client.client_id:
                raise OAuthError("unauthorized_client", "the token was issued to another client")
            if v.jti:
                self.state.revoked.revoke(v.jti, v.expires_at)
                await self.state.store.revoke_jti(v.jti, v.expires_at)
            return
        rec, _ = await self.state.store.peek("refresh", digest(token))
        if rec is None:
            return
        if rec["client_id"] != client.client_id:
            raise OAuthError("unauthorized_client", "the token was issued to another client")
        await self.grants.revoke_family(rec["family"])  # §2.1: and the grant's access tokens

    # ---------------------------------------------------------------- /oauth2/authorize
    def _sign(self, doc: dict[str, Any]) -> str:
        raw = orjson.dumps(doc)
        mac = hmac.digest(self.grants.page_key, raw, "sha256")
        return _b64u(raw) + "." + _b64u(mac)

    def _unsign(self, blob: str) -> dict[str, Any] | None:
        try:
            a, _, b = blob.partition(".")
            raw, mac = _unb64u(a), _unb64u(b)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(hmac.digest(self.grants.page_key, raw, "sha256"), mac):
            return None
        doc = json.loads(raw)
        if doc.get("t", 0) + REQUEST_BLOB_TTL < time.time():
            return None
        return doc

    def _csrf_for(self, cookie: str) -> str:
        return _b64u(hmac.digest(self.grants.page_key, b"csrf\0" + cookie.encode(), "sha256"))

    def _check_request(self, params: dict[str, str]) -> dict[str, Any]:
        """Validate an authorization request: errors before the redirect_uri is trusted are
        shown on a page (never redirected), later ones go back to the client."""
        client = self.grants.clients.get(params.get("client_id") or "")
        if client is None:
            raise _PageError("unknown client_id")
        uri = params.get("redirect_uri")
        if uri is None and len(client.redirect_uris) == 1:
            uri = client.redirect_uris[0]
        if uri is None or uri not in client.redirect_uris:  # RFC 6749 §3.1.2.3: exact match
            raise _PageError("redirect_uri is not registered for this client")
        state = params.get("state")

        def back(error: str, description: str) -> _Redirect:
            return _Redirect(uri, {"error": error, "error_description": description, "state": state})

        if params.get("response_type") != "code":
            raise back("unsupported_response_type", "only response_type=code is supported")
        if "authorization_code" not in self.ts.grants or "authorization_code" not in client.grant_types:
            raise back("unauthorized_client", "this client may not use the authorization code grant")
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method")
        public = client.client_secret_hash is None
        if challenge is None:
            if self.ts.pkce == "required" or public:
                raise back("invalid_request", "PKCE code_challenge (S256) is required")
        elif method != "S256":  # RFC 7636 §4.3 defaults to plain: refused, S256 only
            raise back("invalid_request", "code_challenge_method must be S256 (plain is refused)")
        elif not _CHALLENGE.fullmatch(challenge):
            raise back("invalid_request", "malformed code_challenge")
        try:
            scopes = self.grants.grant_scopes(params.get("scope"), client, None)
        except OAuthError as e:
            raise back(e.error, e.description) from None
        return {"c": client.client_id, "r": uri, "s": state, "sc": sorted(scopes),
                "req": params.get("scope"), "cc": challenge, "n": params.get("nonce"),
                "t": time.time()}

    async def _authorize(self, conn, req, ctx, query: str) -> bool:
        try:
            if req.method in (b"GET", b"HEAD"):
                params = parse_form(query.encode("latin-1"))
                doc = self._check_request(params)
                cookie = _cookie(req, CSRF_COOKIE) or _b64u(os.urandom(24))
                return self._page(conn, req, ctx, doc, cookie)
            if req.method != b"POST":
                raise _PageError("use GET or POST", 405)
            form = await self._form(req, ctx)
            return await self._authorize_post(conn, req, ctx, form)
        except _PageError as e:
            ctx.code = "invalid_request"
            return self._send(conn, req, ctx, e.status, pages.error_page(e.message), pages.HEADERS)

    def _page(self, conn, req, ctx, doc, cookie: str, error: str | None = None, status: int = 200,
              username: str = "") -> bool:
        client = self.grants.clients[doc["c"]]
        body = pages.login_page(client_name=client.name, scopes=doc["sc"], request_blob=self._sign(doc),
                                csrf=self._csrf_for(cookie), error=error, username=username)
        set_cookie = (f"{CSRF_COOKIE}={cookie}; Path=/; Secure; HttpOnly; SameSite=Strict; "
                      f"Max-Age={int(REQUEST_BLOB_TTL)}")
        return self._send(conn, req, ctx, status, body, pages.HEADERS + [(b"set-cookie", set_cookie.encode())])

    async def _authorize_post(self, conn, req, ctx, form: dict[str, str]) -> bool:
        cookie = _cookie(req, CSRF_COOKIE)
        sent = form.get("csrf") or ""
        if not cookie or not hmac.compare_digest(self._csrf_for(cookie), sent):
            raise _PageError("the form expired or did not come from this site (CSRF check failed)", 403)
        doc = self._unsign(form.get("request") or "")
        if doc is None:
            raise _PageError("the authorization request expired or was altered; start again")
        client = self.grants.clients.get(doc["c"])
        if client is None or doc["r"] not in client.redirect_uris:
            raise _PageError("the client's configuration changed; start again")
        if form.get("decision") != "allow":
            raise _Redirect(doc["r"], {"error": "access_denied", "error_description": "the user denied access",
                                       "state": doc["s"]})
        username, password = form.get("username") or "", form.get("password") or ""
        user = self.grants.users.get(username)
        try:
            ok = await self.grants.check_secret("user", username, password,
                                                user.password_hash if user else None, ctx.client_ip)
        except OAuthError as e:  # throttled
            if e.status != 429:
                raise
            return self._page(conn, req, ctx, doc, cookie, error="too many failed attempts; try later",
                              status=429, username=username)
        if not ok or user is None:
            ctx.code = "access_denied"
            return self._page(conn, req, ctx, doc, cookie, error="invalid user or password",
                              username=username)
        try:
            scopes = self.grants.grant_scopes(doc["req"], client, user)
        except OAuthError as e:
            raise _Redirect(doc["r"], {"error": e.error, "error_description": e.description,
                                       "state": doc["s"]}) from None
        code = await self.grants.new_code(client, user, doc["r"], scopes, doc["cc"], doc["n"])
        return self._redirect(conn, req, ctx, doc["r"], {"code": code, "state": doc["s"]})


def store_errors() -> tuple[type[BaseException], ...]:
    import sqlite3

    from ..revocations import redis_errors

    return (*redis_errors(), sqlite3.Error, TimeoutError)


class _PageError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _cookie(req, name: str) -> str | None:
    for n, v in req.headers:
        if n == b"cookie":
            for part in v.decode("latin-1").split(";"):
                k, _, val = part.strip().partition("=")
                if k == name and val:
                    return val
    return None


def parse_form(body: bytes) -> dict[str, str]:
    """application/x-www-form-urlencoded; a repeated parameter is invalid_request (RFC 6749
    §3.1, §3.2), an empty one is as if absent."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                          errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "malformed form body") from None
    out: dict[str, str] = {}
    for k, v in pairs:
        if k in out:
            raise OAuthError("invalid_request", f"parameter {k[:40]} is repeated")
        if v != "":
            out[k] = v
    return out


def build(config: Config, shared, previous: TokenServiceEndpoints | None = None) -> TokenServiceEndpoints | None:
    """The endpoints for this config (None when the service is off); state kept in `shared`."""
    if config.token_service is None:
        return None
    return TokenServiceEndpoints(config, for_shared(config, shared))


# OpenID Connect Core §5.4: the standard claims each scope releases at userinfo. A claim of the
# user's that no scope names (an extension claim) is released with `profile`.
SCOPE_CLAIMS = {
    "profile": frozenset({"name", "family_name", "given_name", "middle_name", "nickname",
                          "preferred_username", "profile", "picture", "website", "gender",
                          "birthdate", "zoneinfo", "locale", "updated_at"}),
    "email": frozenset({"email", "email_verified"}),
    "address": frozenset({"address"}),
    "phone": frozenset({"phone_number", "phone_number_verified"}),
}


def _released(claim: str, granted: set[str] | frozenset[str]) -> bool:
    for scope, names in SCOPE_CLAIMS.items():
        if claim in names:
            return scope in granted
    return "profile" in granted

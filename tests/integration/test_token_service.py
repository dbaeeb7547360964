"""The token service through a real gateway process over TLS (SQLite storage): every grant's good
path and each failure issue 7 lists, tokens accepted by an API, the browser-driven
authorization-code flow, introspection, revocation, userinfo and the discovery documents."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest

from fastgate.devtools.idp import mint
from tests.helpers import Gateway, free_port, get
from tests.integration.ts_helpers import (
    PARTNER,
    PASSWORDS,
    REDIRECT,
    SECRETS,
    basic,
    bearer,
    partner_pem,
    post_form,
    token,
    ts_config,
    until,
)


@pytest.fixture(scope="module")
def ts(pki, echo, tmp_path_factory):
    d = tmp_path_factory.mktemp("ts")
    port = free_port()
    g = Gateway(ts_config(pki, echo.port, port, d), d)
    g.dir = d
    g.port = port
    g.issuer = f"https://localhost:{port}/"
    yield g
    g.stop()


def _claims(tok: str) -> dict:
    return jwt.decode(tok, options={"verify_signature": False})


# ---------------------------------------------------------------- client_credentials
def test_client_credentials_basic_and_post_and_api_accepts(ts, tls_client):
    r = token(ts.port, tls_client, {"grant_type": "client_credentials", "scope": "orders:read"})
    assert r.status == 200, r.body
    assert r.header("cache-control") == "no-store"
    doc = r.json()
    assert doc["token_type"] == "Bearer" and doc["expires_in"] == 300 and doc["scope"] == "orders:read"
    assert "refresh_token" not in doc  # RFC 6749 §4.4.3
    header = jwt.get_unverified_header(doc["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256" and header["kid"]
    c = _claims(doc["access_token"])
    assert c["iss"] == ts.issuer and c["sub"] == "svc" and c["client_id"] == "svc" and c["jti"]
    api = get(ts.port, "/orders/v1/orders/7", tls_client, headers=bearer(doc["access_token"]))
    assert api.status == 200, api.body
    seen = dict(api.json()["headers"])
    assert seen["x-fastgate-application"] == "svc-app"
    # the same token may not create orders (orders:write was not asked for)
    post = get(ts.port, "/orders/v1/orders", tls_client, headers=bearer(doc["access_token"]),
               method="POST", body=b"{}")
    assert post.status == 403 and post.json()["code"] == "insufficient_scope"
    # client_secret_post
    r2 = token(ts.port, tls_client, {"grant_type": "client_credentials", "client_id": "svc",
                                     "client_secret": SECRETS["svc"]}, client=None)
    assert r2.status == 200, r2.body
    assert set(r2.json()["scope"].split()) == {"orders:read", "orders:write", "openid", "profile", "email"}  # no scope asked: all the client may have


def test_client_credentials_wrong_secret_and_unknown_client(ts, tls_client):
    r = token(ts.port, tls_client, {"grant_type": "client_credentials"}, secret="wrong")
    assert r.status == 401
    assert r.json()["error"] == "invalid_client" and "error_description" in r.json()
    assert r.header("www-authenticate") == 'Basic realm="fastgate"'
    assert r.header("cache-control") == "no-store"
    r = token(ts.port, tls_client, {"grant_type": "client_credentials", "client_id": "nobody",
                                    "client_secret": "x"}, client=None)
    assert r.status == 401 and r.json()["error"] == "invalid_client"
    both = token(ts.port, tls_client, {"grant_type": "client_credentials", "client_secret": "x"})
    assert both.status == 400 and both.json()["error"] == "invalid_request"


def test_scope_escalation_is_refused(ts, tls_client):
    r = token(ts.port, tls_client, {"grant_type": "client_credentials", "scope": "admin:all"})
    assert r.status == 400 and r.json()["error"] == "invalid_scope"
    r = token(ts.port, tls_client, {"grant_type": "client_credentials", "scope": "orders:read admin:all"})
    assert r.status == 200 and r.json()["scope"] == "orders:read"
    # bob (viewer) may not get orders:write through the password grant, whatever he asks
    r = token(ts.port, tls_client, {"grant_type": "password", "username": "bob",
                                    "password": PASSWORDS["bob"], "scope": "orders:read orders:write"})
    assert r.status == 200, r.body
    assert r.json()["scope"] == "orders:read"
    r = token(ts.port, tls_client, {"grant_type": "password", "username": "bob",
                                    "password": PASSWORDS["bob"], "scope": "orders:write"})
    assert r.status == 400 and r.json()["error"] == "invalid_scope"


def test_grant_rules_and_form_rules(ts, tls_client):
    r = token(ts.port, tls_client, {"grant_type": "authorization_code", "code": "x"})
    assert r.status == 400 and r.json()["error"] == "unauthorized_client"  # svc lacks the grant
    r = token(ts.port, tls_client, {"grant_type": "implicit"})
    assert r.status == 400 and r.json()["error"] == "unsupported_grant_type"
    body = b"grant_type=client_credentials&grant_type=password"
    r = get(ts.port, "/oauth2/token", tls_client, method="POST", body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", **basic("svc", SECRETS["svc"])})
    assert r.status == 400 and r.json()["error"] == "invalid_request"
    r = get(ts.port, "/oauth2/token", tls_client, headers=basic("svc", SECRETS["svc"]))
    assert r.status == 405 and r.json()["error"] == "invalid_request"
    # a public client cannot use client_credentials (no secret)
    r = token(ts.port, tls_client, {"grant_type": "client_credentials", "client_id": "spa"}, client=None)
    assert r.status == 401 and r.json()["error"] == "invalid_client"


# ---------------------------------------------------------------- password + refresh
def test_password_grant_refresh_rotation_and_reuse_revokes_family(ts, tls_client):
    r = token(ts.port, tls_client, {"grant_type": "password", "username": "alice",
                                    "password": PASSWORDS["alice"], "scope": "orders:read orders:write"})
    assert r.status == 200, r.body
    first = r.json()
    assert first["refresh_token"] and _claims(first["access_token"])["sub"] == "alice"
    r = token(ts.port, tls_client, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
                                    "scope": "orders:read"})
    assert r.status == 200, r.body
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"] and second["scope"] == "orders:read"
    # asking for more than the original grant on refresh
    r = token(ts.port, tls_client, {"grant_type": "refresh_token", "refresh_token": second["refresh_token"],
                                    "scope": "orders:read openid"})
    assert r.status == 400 and r.json()["error"] == "invalid_scope"
    # reuse of the spent first token: invalid_grant, and the whole family dies
    api_ok = get(ts.port, "/orders/v1/orders/1", tls_client, headers=bearer(second["access_token"]))
    assert api_ok.status == 200
    r = token(ts.port, tls_client, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert r.status == 400 and r.json()["error"] == "invalid_grant"
    r = token(ts.port, tls_client, {"grant_type": "refresh_token", "refresh_token": second["refresh_token"]})
    assert r.status == 400 and r.json()["error"] == "invalid_grant"
    assert until(lambda: get(ts.port, "/orders/v1/orders/1", tls_client,
                              headers=bearer(second["access_token"])).status == 401)


def test_password_grant_wrong_password_then_throttled(ts, tls_client):
    statuses = []
    for _ in range(7):
        r = token(ts.port, tls_client, {"grant_type": "password", "username": "bob", "password": "guess"})
        statuses.append((r.status, r.json()["error"]))
    assert statuses[0] == (400, "invalid_grant")
    assert statuses[-1][0] == 429
    assert any(s == 429 for s, _ in statuses)



# ---------------------------------------------------------------- authorization code + PKCE
class Browser:
    """Drives /oauth2/authorize as a browser would: GET the form, keep the cookie, POST it."""

    def __init__(self, port: int, ctx) -> None:
        self.port = port
        self.ctx = ctx
        self.cookies: dict[str, str] = {}

    def _headers(self) -> dict:
        if not self.cookies:
            return {}
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}

    def _keep(self, resp) -> None:
        for v in resp.header_all("set-cookie"):
            k, _, rest = v.partition("=")
            self.cookies[k] = rest.split(";")[0]

    def open(self, params: dict):
        r = get(self.port, "/oauth2/authorize?" + urlencode(params), self.ctx, headers=self._headers())
        self._keep(r)
        return r

    def submit(self, page, fields: dict):
        html = page.body.decode()
        hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))
        form = {**{k: _unescape(v) for k, v in hidden.items()}, **fields}
        headers = {"Content-Type": "application/x-www-form-urlencoded", **self._headers()}
        r = get(self.port, "/oauth2/authorize", self.ctx, headers=headers, method="POST",
                body=urlencode(form).encode())
        self._keep(r)
        return r


def _unescape(v: str) -> str:
    import html

    return html.unescape(v)


def _pkce() -> tuple[str, str]:
    verifier = base64.urlsafe_b64encode(os.urandom(40)).decode().rstrip("=")
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def _auth_params(challenge: str | None, **over) -> dict:
    p = {"response_type": "code", "client_id": "web", "redirect_uri": REDIRECT,
         "scope": "openid email orders:read", "state": "st-123", "nonce": "n-456"}
    if challenge:
        p.update(code_challenge=challenge, code_challenge_method="S256")
    p.update(over)
    return {k: v for k, v in p.items() if v is not None}


def _login(ts, tls_client, challenge, user="alice", **over):
    b = Browser(ts.port, tls_client)
    page = b.open(_auth_params(challenge, **over))
    assert page.status == 200, page.body
    assert page.header("content-type").startswith("text/html")
    assert page.header("x-frame-options") == "DENY" and page.header("cache-control") == "no-store"
    assert "<script" not in page.body.decode()
    done = b.submit(page, {"username": user, "password": PASSWORDS[user], "decision": "allow"})
    assert done.status == 302, done.body
    loc = urlsplit(done.header("location"))
    q = {k: v[0] for k, v in parse_qs(loc.query).items()}
    assert f"{loc.scheme}://{loc.netloc}{loc.path}" == REDIRECT
    return q


def test_authorization_code_flow_as_a_browser(ts, tls_client):
    verifier, challenge = _pkce()
    q = _login(ts, tls_client, challenge)
    assert q["state"] == "st-123" and q["iss"] == ts.issuer and q["code"]
    r = token(ts.port, tls_client, {"grant_type": "authorization_code", "code": q["code"],
                                    "redirect_uri": REDIRECT, "code_verifier": verifier}, client="web")
    assert r.status == 200, r.body
    doc = r.json()
    assert set(doc["scope"].split()) == {"openid", "email", "orders:read"} and doc["refresh_token"]
    idt = _claims(doc["id_token"])
    assert idt["nonce"] == "n-456" and idt["aud"] == "web" and idt["sub"] == "alice"
    assert idt["iss"] == ts.issuer
    # the id_token is no access token for the API (aud is the client)
    assert get(ts.port, "/orders/v1/orders/1", tls_client, headers=bearer(doc["id_token"])).status == 401
    assert get(ts.port, "/orders/v1/orders/1", tls_client, headers=bearer(doc["access_token"])).status == 200
    info = get(ts.port, "/oauth2/userinfo", tls_client, headers=bearer(doc["access_token"]))
    # OIDC Core §5.4: `email` releases the email claim; `name` needs `profile`, not granted here
    assert info.status == 200 and info.json() == {"sub": "alice", "email": "alice@example.com"}
    # the reused code: refused, and the tokens issued from it are revoked
    again = token(ts.port, tls_client, {"grant_type": "authorization_code", "code": q["code"],
                                        "redirect_uri": REDIRECT, "code_verifier": verifier}, client="web")
    assert again.status == 400 and again.json()["error"] == "invalid_grant"
    assert until(lambda: get(ts.port, "/orders/v1/orders/1", tls_client,
                              headers=bearer(doc["access_token"])).status == 401)
    r = token(ts.port, tls_client, {"grant_type": "refresh_token", "refresh_token": doc["refresh_token"]},
              client="web")
    assert r.status == 400 and r.json()["error"] == "invalid_grant"


def test_public_client_with_pkce(ts, tls_client):
    verifier, challenge = _pkce()
    q = _login(ts, tls_client, challenge, client_id="spa", scope="orders:read")
    r = token(ts.port, tls_client, {"grant_type": "authorization_code", "code": q["code"], "client_id": "spa",
                                    "redirect_uri": REDIRECT, "code_verifier": verifier}, client=None)
    assert r.status == 200, r.body
    assert r.json()["scope"] == "orders:read"


def test_pkce_missing_plain_and_wrong_verifier(ts, tls_client):
    b = Browser(ts.port, tls_client)
    r = b.open(_auth_params(None))
    assert r.status == 302
    q = parse_qs(urlsplit(r.header("location")).query)
    assert q["error"] == ["invalid_request"] and q["state"] == ["st-123"]
    r = b.open(_auth_params(None, code_challenge="a" * 43, code_challenge_method="plain"))
    assert r.status == 302 and parse_qs(urlsplit(r.header("location")).query)["error"] == ["invalid_request"]
    r = b.open(_auth_params(None, code_challenge="a" * 43))  # method defaults to plain: refused
    assert r.status == 302 and parse_qs(urlsplit(r.header("location")).query)["error"] == ["invalid_request"]
    verifier, challenge = _pkce()
    q = _login(ts, tls_client, challenge)
    other, _ = _pkce()
    r = token(ts.port, tls_client, {"grant_type": "authorization_code", "code": q["code"],
                                    "redirect_uri": REDIRECT, "code_verifier": other}, client="web")
    assert r.status == 400 and r.json()["error"] == "invalid_grant"
    q = _login(ts, tls_client, challenge)
    r = token(ts.port, tls_client, {"grant_type": "authorization_code", "code": q["code"],
                                    "redirect_uri": REDIRECT}, client="web")
    assert r.status == 400 and r.json()["error"] == "invalid_grant"


def test_wrong_redirect_uri_never_redirects(ts, tls_client):
    _, challenge = _pkce()
    b = Browser(ts.port, tls_client)
    for uri in ("https://evil.example/cb", REDIRECT + "/", REDIRECT + "?x=1", "https://app.example.com/CB"):
        r = b.open(_auth_params(challenge, redirect_uri=uri))
        assert r.status == 400 and r.header("location") is None, uri
        assert "redirect_uri" in r.body.decode()
    r = b.open(_auth_params(challenge, client_id="nobody"))
    assert r.status == 400 and r.header("location") is None
    # at the token endpoint, a redirect_uri other than the request's is invalid_grant
    verifier, challenge = _pkce()
    q = _login(ts, tls_client, challenge)
    r = token(ts.port, tls_client, {"grant_type": "authorization_code", "code": q["code"],
                                    "redirect_uri": "https://app.example.com/other",
                                    "code_verifier": verifier}, client="web")
    assert r.status == 400 and r.json()["error"] == "invalid_grant"


def test_expired_code(ts, tls_client):
    verifier, challenge = _pkce()
    q = _login(ts, tls_client, challenge)
    time.sleep(2.3)  # authorization_code_ttl: 2s
    r = token(ts.port, tls_client, {"grant_type": "authorization_code", "code": q["code"],
                                    "redirect_uri": REDIRECT, "code_verifier": verifier}, client="web")
    assert r.status == 400 and r.json()["error"] == "invalid_grant"
    assert "expired" in r.json()["error_description"]


def test_code_of_another_client_and_csrf(ts, tls_client):
    verifier, challenge = _pkce()
    q = _login(ts, tls_client, challenge)
    r = token(ts.port, tls_client, {"grant_type": "authorization_code", "code": q["code"], "client_id": "spa",
                                    "redirect_uri": REDIRECT, "code_verifier": verifier}, client=None)
    assert r.status == 400 and r.json()["error"] == "invalid_grant"
    b = Browser(ts.port, tls_client)
    page = b.open(_auth_params(challenge))
    b.cookies.clear()  # a cross-site POST carries no SameSite=Strict cookie
    r = b.submit(page, {"username": "alice", "password": PASSWORDS["alice"], "decision": "allow"})
    assert r.status == 403 and r.header("location") is None
    b2 = Browser(ts.port, tls_client)
    page = b2.open(_auth_params(challenge))
    r = b2.submit(page, {"username": "alice", "password": "wrong", "decision": "allow"})
    assert r.status == 200 and "invalid user or password" in r.body.decode()
    r = b2.submit(page, {"decision": "deny"})
    assert r.status == 302
    q = parse_qs(urlsplit(r.header("location")).query)
    assert q["error"] == ["access_denied"] and q["state"] == ["st-123"]


# ---------------------------------------------------------------- jwt-bearer
def test_jwt_bearer_good_wrong_issuer_and_replay(ts, tls_client):
    pem = partner_pem(ts.dir)
    assertion = mint(pem, subject="partner-user", issuer=PARTNER, audience=ts.issuer, ttl=120, scope="")
    r = token(ts.port, tls_client, {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                    "assertion": assertion, "scope": "orders:read"})
    assert r.status == 200, r.body
    assert _claims(r.json()["access_token"])["sub"] == "partner-user"
    replay = token(ts.port, tls_client, {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                         "assertion": assertion})
    assert replay.status == 400 and replay.json()["error"] == "invalid_grant"
    wrong = mint(pem, subject="x", issuer="https://other.example/", audience=ts.issuer, ttl=120)
    r = token(ts.port, tls_client, {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                    "assertion": wrong})
    assert r.status == 400 and r.json()["error"] == "invalid_grant"
    wrong_aud = mint(pem, subject="x", issuer=PARTNER, audience="orders-api", ttl=120)
    r = token(ts.port, tls_client, {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                    "assertion": wrong_aud})
    assert r.status == 400 and r.json()["error"] == "invalid_grant"


# ---------------------------------------------------------------- introspect, revoke, metadata
def test_introspect_and_revoke_access_token(ts, tls_client):
    tok = token(ts.port, tls_client, {"grant_type": "client_credentials", "scope": "orders:read"}).json()
    at = tok["access_token"]
    r = post_form(ts.port, "/oauth2/introspect", tls_client, {"token": at}, basic("svc", SECRETS["svc"]))
    assert r.status == 200 and r.json()["active"] is True and r.json()["client_id"] == "svc"
    r = post_form(ts.port, "/oauth2/introspect", tls_client, {"token": at})
    assert r.status == 401 and r.json()["error"] == "invalid_client"
    # another client may not revoke it
    r = post_form(ts.port, "/oauth2/revoke", tls_client, {"token": at}, basic("web", SECRETS["web"]))
    assert r.status == 400 and r.json()["error"] == "unauthorized_client"
    r = post_form(ts.port, "/oauth2/revoke", tls_client, {"token": at}, basic("svc", SECRETS["svc"]))
    assert r.status == 200
    assert get(ts.port, "/orders/v1/orders/1", tls_client, headers=bearer(at)).status == 401
    r = post_form(ts.port, "/oauth2/introspect", tls_client, {"token": at}, basic("svc", SECRETS["svc"]))
    assert r.json() == {"active": False}
    r = post_form(ts.port, "/oauth2/revoke", tls_client, {"token": "not-a-token"}, basic("svc", SECRETS["svc"]))
    assert r.status == 200  # RFC 7009 §2.2


def test_revoke_refresh_token_and_introspect_it(ts, tls_client):
    r = token(ts.port, tls_client, {"grant_type": "password", "username": "alice",
                                    "password": PASSWORDS["alice"], "scope": "orders:read"})
    rt = r.json()["refresh_token"]
    i = post_form(ts.port, "/oauth2/introspect", tls_client, {"token": rt}, basic("svc", SECRETS["svc"]))
    assert i.json()["active"] is True and i.json()["token_type"] == "refresh_token"
    assert post_form(ts.port, "/oauth2/revoke", tls_client, {"token": rt}, basic("svc", SECRETS["svc"])).status == 200
    i = post_form(ts.port, "/oauth2/introspect", tls_client, {"token": rt}, basic("svc", SECRETS["svc"]))
    assert i.json() == {"active": False}
    assert until(lambda: get(ts.port, "/orders/v1/orders/1", tls_client,
                              headers=bearer(r.json()["access_token"])).status == 401)


def test_discovery_and_jwks(ts, tls_client):
    d = get(ts.port, "/.well-known/openid-configuration", tls_client)
    assert d.status == 200
    doc = d.json()
    assert doc["issuer"] == ts.issuer
    assert doc["token_endpoint"] == ts.issuer + "oauth2/token"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    keys = get(ts.port, "/oauth2/jwks", tls_client).json()["keys"]
    assert keys and all("d" not in k for k in keys)
    tok = token(ts.port, tls_client, {"grant_type": "client_credentials"}).json()["access_token"]
    kid = jwt.get_unverified_header(tok)["kid"]
    key = next(k for k in keys if k["kid"] == kid)
    claims = jwt.decode(tok, jwt.PyJWK(key).key, algorithms=["ES256"], audience=ts.issuer)
    assert claims["iss"] == ts.issuer


def test_userinfo_needs_openid_and_a_valid_token(ts, tls_client):
    r = get(ts.port, "/oauth2/userinfo", tls_client)
    assert r.status == 401 and r.header("www-authenticate").startswith("Bearer")
    tok = token(ts.port, tls_client, {"grant_type": "password", "username": "alice",
                                      "password": PASSWORDS["alice"], "scope": "orders:read"}).json()
    r = get(ts.port, "/oauth2/userinfo", tls_client, headers=bearer(tok["access_token"]))
    assert r.status == 403 and r.json()["error"] == "insufficient_scope"
    r = get(ts.port, "/oauth2/userinfo", tls_client, headers=bearer(tok["access_token"][:-4] + "AAAA"))
    assert r.status == 401 and r.json()["error"] == "invalid_token"
    # the claims released follow the granted scopes (OIDC Core §5.4)
    for scope, expected in (("openid", {"sub": "alice"}),
                            ("openid profile", {"sub": "alice", "name": "Alice"}),
                            ("openid profile email", {"sub": "alice", "name": "Alice", "email": "alice@example.com"})):
        tok = token(ts.port, tls_client, {"grant_type": "password", "username": "alice",
                                          "password": PASSWORDS["alice"], "scope": scope}).json()
        r = get(ts.port, "/oauth2/userinfo", tls_client, headers=bearer(tok["access_token"]))
        assert r.status == 200 and r.json() == expected, (scope, r.body)


def test_nothing_secret_in_logs_and_storage(ts, tls_client):
    r = token(ts.port, tls_client, {"grant_type": "password", "username": "alice",
                                    "password": PASSWORDS["alice"]})
    rt = r.json()["refresh_token"]
    token(ts.port, tls_client, {"grant_type": "client_credentials"}, secret="wrong-secret-xyz")
    time.sleep(0.3)
    everything = "\n".join(ts.out + ts.err)
    for secret in (PASSWORDS["alice"], SECRETS["svc"], "wrong-secret-xyz", rt, r.json()["access_token"]):
        assert secret not in everything
    db = (ts.dir / "token-service.db").read_bytes() + (ts.dir / "token-service.db-wal").read_bytes() \
        if (ts.dir / "token-service.db-wal").exists() else (ts.dir / "token-service.db").read_bytes()
    assert rt.encode() not in db
    assert b"BEGIN" not in (ts.dir / "signing.pem").read_bytes()  # sealed, not a plain PEM


# ---------------------------------------------------------------- reload keeps state
def test_sighup_keeps_keys_and_refresh_tokens(ts, tls_client):
    r = token(ts.port, tls_client, {"grant_type": "password", "username": "alice",
                                    "password": PASSWORDS["alice"], "scope": "orders:read"})
    doc = r.json()
    kids = get(ts.port, "/oauth2/jwks", tls_client).json()["keys"]
    before = sum("config reloaded" in line for line in ts.err)
    ts.sighup()
    assert until(lambda: sum("config reloaded" in line for line in ts.err) > before, 10)
    assert get(ts.port, "/oauth2/jwks", tls_client).json()["keys"] == kids
    assert get(ts.port, "/orders/v1/orders/1", tls_client, headers=bearer(doc["access_token"])).status == 200
    r2 = token(ts.port, tls_client, {"grant_type": "refresh_token", "refresh_token": doc["refresh_token"]})
    assert r2.status == 200, r2.body


def test_plain_http_listener_does_not_serve_the_token_service(pki, echo, tmp_path, tls_client):
    port = free_port()
    text = ts_config(pki, echo.port, port, tmp_path).replace(
        "listeners:\n", f"listeners:\n  - name: plain\n    address: 127.0.0.1:{free_port()}\n    tls: false\n", 1)
    g = Gateway(text, tmp_path)
    try:
        assert get(g.ports["plain"], "/oauth2/jwks").status == 404
        assert get(port, "/oauth2/jwks", tls_client).status == 200
    finally:
        g.stop()


def test_reload_that_moves_the_storage_closes_the_old_store(pki, echo, tmp_path, tls_client):
    # the old ServiceState (its task and its SQLite connection) is closed once shutdown_grace
    # has passed: closing the file's last connection checkpoints and removes its write-ahead log
    port = free_port()
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    grace = "limits:\n  shutdown_grace: 1s\n"
    g = Gateway(grace + ts_config(pki, echo.port, port, a), tmp_path)
    try:
        form = {"grant_type": "client_credentials", "scope": "orders:read"}
        first = token(port, tls_client, form).json()["access_token"]
        assert (a / "token-service.db-wal").exists()
        g.path.write_text(grace + ts_config(pki, echo.port, port, b))
        before = sum("config reloaded" in line for line in g.err)
        g.sighup()
        assert until(lambda: sum("config reloaded" in line for line in g.err) > before, 10)
        assert token(port, tls_client, form).status == 200  # the new storage (a new signing key)
        assert (b / "token-service.db").exists()
        assert until(lambda: not (a / "token-service.db-wal").exists(), 10), "old store still open"
        # a token signed by the old key is no longer known to the new storage's key ring
        assert get(port, "/orders/v1/orders/1", tls_client, headers=bearer(first)).status == 401
        assert g.p.poll() is None
    finally:
        assert g.stop() == 0

"""Interoperability: authlib's standard OAuth2 client (httpx) completes the flows against the
gateway's token service; only the login form is filled in by hand, as a user would."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urlencode

import pytest

from tests.helpers import Gateway, free_port, get
from tests.integration.ts_helpers import PASSWORDS, REDIRECT, SECRETS, bearer, ts_config

authlib_httpx = pytest.importorskip("authlib.integrations.httpx_client")


@pytest.fixture(scope="module")
def ts(pki, echo, tmp_path_factory):
    d = tmp_path_factory.mktemp("interop")
    port = free_port()
    g = Gateway(ts_config(pki, echo.port, port, d, code_ttl="30s"), d)
    g.port = port
    g.base = f"https://localhost:{port}"
    yield g
    g.stop()


def _client(ts, tls_client, **kw):
    return authlib_httpx.OAuth2Client(verify=tls_client, timeout=10, **kw)


def test_authlib_client_credentials_both_auth_methods(ts, tls_client):
    for method in ("client_secret_basic", "client_secret_post"):
        with _client(ts, tls_client, client_id="svc", client_secret=SECRETS["svc"],
                     token_endpoint_auth_method=method, scope="orders:read") as c:
            tok = c.fetch_token(ts.base + "/oauth2/token", grant_type="client_credentials")
            assert tok["token_type"] == "Bearer" and tok["scope"] == "orders:read"
            api = c.get(ts.base + "/orders/v1/orders/5")
            assert api.status_code == 200, api.text


def test_authlib_password_refresh_introspect_revoke(ts, tls_client):
    with _client(ts, tls_client, client_id="svc", client_secret=SECRETS["svc"], scope="orders:read") as c:
        tok = c.fetch_token(ts.base + "/oauth2/token", username="alice", password=PASSWORDS["alice"])
        assert tok["refresh_token"]
        new = c.refresh_token(ts.base + "/oauth2/token", refresh_token=tok["refresh_token"])
        assert new["refresh_token"] != tok["refresh_token"]
        info = c.introspect_token(ts.base + "/oauth2/introspect", token=new["access_token"]).json()
        assert info["active"] is True and info["sub"] == "alice"
        assert c.revoke_token(ts.base + "/oauth2/revoke", token=new["access_token"]).status_code == 200
        assert get(ts.port, "/orders/v1/orders/1", tls_client, headers=bearer(new["access_token"])).status == 401


def test_authlib_authorization_code_with_pkce_and_openid(ts, tls_client):
    from authlib.common.security import generate_token

    with _client(ts, tls_client, client_id="web", client_secret=SECRETS["web"], redirect_uri=REDIRECT,
                 scope="openid email orders:read", code_challenge_method="S256") as c:
        verifier = generate_token(48)
        url, state = c.create_authorization_url(ts.base + "/oauth2/authorize", code_verifier=verifier,
                                                nonce="nonce-1")
        page = c.request("GET", url, withhold_token=True)  # the browser's part
        assert page.status_code == 200
        hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page.text))
        form = {k: unescape(v) for k, v in hidden.items()}
        form.update(username="alice", password=PASSWORDS["alice"], decision="allow")
        done = c.request("POST", ts.base + "/oauth2/authorize", content=urlencode(form),
                      headers={"Content-Type": "application/x-www-form-urlencoded"}, withhold_token=True)
        assert done.status_code == 302, done.text
        tok = c.fetch_token(ts.base + "/oauth2/token", authorization_response=done.headers["location"],
                            code_verifier=verifier)
        assert tok["id_token"] and set(tok["scope"].split()) == {"openid", "email", "orders:read"}
        info = c.get(ts.base + "/oauth2/userinfo").json()
        assert info["sub"] == "alice" and info["email"] == "alice@example.com"


def test_authlib_reads_discovery_and_verifies_with_jwks(ts, tls_client):
    from joserfc import jwt
    from joserfc.jwk import KeySet

    with _client(ts, tls_client, client_id="svc", client_secret=SECRETS["svc"]) as c:
        meta = c.request("GET", ts.base + "/.well-known/openid-configuration", withhold_token=True).json()
        jwks = c.request("GET", meta["jwks_uri"], withhold_token=True).json()
        tok = c.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
        decoded = jwt.decode(tok["access_token"], KeySet.import_key_set(jwks), algorithms=["ES256"])
        assert decoded.header["typ"] == "at+jwt"
        assert decoded.claims["iss"] == meta["issuer"] and decoded.claims["client_id"] == "svc"


def test_authlib_jwt_bearer_grant(ts, tls_client):
    from fastgate.devtools.idp import mint
    from tests.integration.ts_helpers import PARTNER, partner_pem

    pem = partner_pem(ts.path.parent)
    assertion = mint(pem, subject="partner-user", issuer=PARTNER, audience=ts.base + "/", ttl=60, scope="")
    with _client(ts, tls_client, client_id="svc", client_secret=SECRETS["svc"], scope="orders:read") as c:
        tok = c.fetch_token(ts.base + "/oauth2/token",
                            grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer", assertion=assertion)
        assert tok["scope"] == "orders:read"
        assert c.get(ts.base + "/orders/v1/orders/9").status_code == 200

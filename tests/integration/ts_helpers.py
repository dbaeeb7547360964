"""Shared pieces of the token-service integration tests: a config with every grant, and small
HTTP helpers (form POSTs, Basic client credentials, cookies) over the real TLS listener."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from urllib.parse import quote, urlencode

from fastgate.credentials import hash_password
from fastgate.devtools.idp import make_idp
from tests.helpers import get

MASTER_ENV = "FG_TS_TEST_MASTER"
os.environ.setdefault(MASTER_ENV, base64.b64encode(os.urandom(32)).decode())
SECRETS = {"svc": "svc-secret-1", "web": "web-secret-1"}
PASSWORDS = {"alice": "alice-pass-1", "bob": "bob-pass-1"}
REDIRECT = "https://app.example.com/cb"
PARTNER = "https://partner.example/"
_HASHES: dict[str, str] = {}


def _h(secret: str) -> str:
    if secret not in _HASHES:
        _HASHES[secret] = hash_password(secret, n=2**12)
    return _HASHES[secret]


def ts_config(pki, echo_port: int, port: int, directory: Path, *, redis_url: str | None = None,
              extra_ts: str = "", code_ttl: str = "2s") -> str:
    idp_pem, idp_jwks = make_idp(directory / "partner")
    redis = f"redis:\n  url: {redis_url}\n  timeout: 500ms\n" if redis_url else ""
    return f"""version: 1
listeners:
  - name: public
    address: 127.0.0.1:{port}
    tls:
      certificate: {pki['server.crt']}
      private_key: {pki['server.key']}
admin:
  address: 127.0.0.1:0
{redis}secrets:
  master_key_env: {MASTER_ENV}
users:
  - name: alice
    password_hash: "{_h(PASSWORDS['alice'])}"
    roles: [clerk]
    claims: {{email: alice@example.com, name: Alice}}
  - name: bob
    password_hash: "{_h(PASSWORDS['bob'])}"
    roles: [viewer]
applications:
  - name: svc-app
    client_id: svc
    client_secret_hash: "{_h(SECRETS['svc'])}"
    grant_types: [client_credentials, password, refresh_token, jwt_bearer]
    scopes: [orders:read, orders:write, openid, profile, email]
  - name: web-app
    client_id: web
    client_secret_hash: "{_h(SECRETS['web'])}"
    redirect_uris: ["{REDIRECT}"]
    grant_types: [authorization_code, refresh_token]
    scopes: [orders:read, orders:write, openid, profile, email]
  - name: spa
    client_id: spa
    redirect_uris: ["{REDIRECT}"]
    grant_types: [authorization_code, refresh_token]
    scopes: [orders:read, openid, profile, email]
issuers:
  - name: partner-idp
    issuer: {PARTNER}
    jwks_file: {idp_jwks}
    audiences: [orders-api]
    algorithms: [ES256]
token_service:
  enabled: true
  issuer: https://localhost:{port}/
  signing_key: {directory}/signing.pem
  access_token_ttl: 5m
  refresh_token_ttl: 1h
  authorization_code_ttl: {code_ttl}
  grants: [client_credentials, password, refresh_token, authorization_code, jwt_bearer]
  jwt_bearer_issuers: [partner-idp]
{extra_ts}apis:
  - name: orders
    base_path: /orders/v1
    upstream: {{urls: ["http://127.0.0.1:{echo_port}"]}}
    authentication: [oauth2]
    authorization:
      roles_to_scopes: {{clerk: [orders:read, orders:write], viewer: [orders:read]}}
      resources:
        - {{path: /orders, methods: [POST], scopes: [orders:write]}}
        - {{path: "/orders/{{id}}", methods: [GET], scopes: [orders:read]}}
"""


def partner_pem(directory: Path) -> Path:
    return make_idp(directory / "partner")[0]


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def post_form(port: int, path: str, ctx, form: dict, headers: dict | None = None):
    hdrs = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    return get(port, path, ctx, headers=hdrs, method="POST", body=urlencode(form).encode())


def token(port: int, ctx, form: dict, client: str | None = "svc", secret: str | None = None):
    headers = basic(client, secret or SECRETS[client]) if client else {}
    return post_form(port, "/oauth2/token", ctx, form, headers)


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def until(check, timeout: float = 3.0) -> bool:
    """Poll check() until it holds or timeout seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()

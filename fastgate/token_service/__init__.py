"""The built-in OAuth2 / OpenID Connect authorization server (`token_service`, issue 7).

Invariant: everything it persists goes through one Store (store.py: Redis when `redis:` is
configured, else an embedded SQLite file); refresh tokens and authorization codes are stored only
as SHA-256 hashes, signing keys only encrypted with the master key (AES-256-GCM), and nothing
secret reaches a log line or an error.
"""

from __future__ import annotations

ENDPOINTS = frozenset({
    "/oauth2/token", "/oauth2/authorize", "/oauth2/introspect", "/oauth2/revoke",
    "/oauth2/jwks", "/oauth2/userinfo", "/.well-known/openid-configuration",
})

"""Run-local credentials for `fastgate bench`, so authentication costs what it costs in
production: a pool of API keys (their sha256 hashes go into the temp config), ES256 JWTs signed
by a run-local key (its JWKS becomes a `jwks_file` issuer), a Basic user.

Invariant: nothing here is reused across runs or written outside the run's private directory,
and no secret is printed; requests cycle through the pool so caches see `size` identities.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_APP = "fastgate-bench"
BENCH_ISSUER = "https://fastgate-bench.invalid/"
BENCH_AUDIENCE = "fastgate-bench"
BENCH_USER = "fastgate-bench"
SUPPORTED = ("api_key", "oauth2", "basic")


@dataclass
class CredentialPool:
    """Per-request header sets (cycled) and the config additions that make them valid."""

    method: str | None  # the authentication method exercised; None for a public API
    headers: list[list[tuple[str, str]]] = field(default_factory=lambda: [[]])
    applications: list[dict] = field(default_factory=list)
    issuers: list[dict] = field(default_factory=list)
    users: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.headers)


def api_key_pool(size: int, header: str, scopes: list[str]) -> CredentialPool:
    from fastgate.credentials import api_key_hash

    keys = ["fg_bench_" + secrets.token_urlsafe(30) for _ in range(size)]
    app = {"name": BENCH_APP, "client_id": BENCH_APP, "scopes": scopes,
           "api_keys": [{"id": f"bench-{i}", "hash": api_key_hash(k)} for i, k in enumerate(keys)]}
    return CredentialPool("api_key", [[(header, k)] for k in keys], applications=[app])


def jwt_pool(size: int, directory: Path, scopes: list[str], ttl: float = 3600.0) -> CredentialPool:
    """`size` ES256 tokens for distinct subjects, valid for `ttl` s, and the issuer accepting them."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "bench-1", "use": "sig", "alg": "ES256"})
    jwks = directory / "bench-jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    now = int(time.time())
    tokens = [jwt.encode({"iss": BENCH_ISSUER, "aud": BENCH_AUDIENCE, "sub": f"bench-user-{i}",
                          "client_id": BENCH_APP, "iat": now, "exp": now + int(ttl),
                          "scope": " ".join(scopes), "jti": os.urandom(8).hex()},
                         key, algorithm="ES256", headers={"kid": "bench-1"}) for i in range(size)]
    issuer = {"name": BENCH_APP, "issuer": BENCH_ISSUER, "jwks_file": str(jwks),
              "audiences": [BENCH_AUDIENCE], "algorithms": ["ES256"]}
    app = {"name": BENCH_APP, "client_id": BENCH_APP, "scopes": scopes}
    return CredentialPool("oauth2", [[("Authorization", f"Bearer {t}")] for t in tokens],
                          applications=[app], issuers=[issuer])


def basic_pool(roles: list[str]) -> CredentialPool:
    """One user (scrypt is deliberately slow to hash; the gateway caches verified credentials)."""
    from fastgate.credentials import hash_password

    password = secrets.token_urlsafe(18)
    user = {"name": BENCH_USER, "password_hash": hash_password(password), "roles": roles}
    value = base64.b64encode(f"{BENCH_USER}:{password}".encode()).decode()
    return CredentialPool("basic", [[("Authorization", f"Basic {value}")]], users=[user])


def choose_method(methods: tuple[str, ...], wanted: str | None) -> str | None:
    """The API's first method we can mint credentials for (the gateway's order), or `wanted`."""
    if not methods:
        return None
    if wanted:
        if wanted not in methods:
            raise ValueError(f"--auth {wanted}: the API accepts {', '.join(methods)}")
        if wanted not in SUPPORTED:
            raise ValueError(f"--auth {wanted}: bench mints {', '.join(SUPPORTED)} credentials only")
        return wanted
    for m in methods:
        if m in SUPPORTED:
            return m
    raise ValueError(f"the API accepts {', '.join(methods)}; bench mints {', '.join(SUPPORTED)} "
                     "credentials only (use --header to send your own)")


def make_pool(method: str | None, size: int, directory: Path, *, scopes: list[str], roles: list[str],
              api_key_header: str = "X-API-Key") -> CredentialPool:
    if method is None:
        return CredentialPool(None)
    if method == "api_key":
        return api_key_pool(size, api_key_header, scopes)
    if method == "oauth2":
        return jwt_pool(size, directory, scopes)
    if method == "basic":
        return basic_pool(roles)
    raise ValueError(f"no credentials for {method}")

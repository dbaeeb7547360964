"""A stand-in identity provider for the demo and tests: an ES256 key, its JWKS, and tokens.

Invariant: development only; the private key lives under the directory the caller names
(.demo/keys for `make demo`), never in the repository.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

DEMO_ISSUER = "https://demo-idp.local/"
DEMO_AUDIENCE = "orders-api"
KID = "demo-1"


def make_idp(directory: Path) -> tuple[Path, Path]:
    """signing.pem and jwks.json in `directory` (made once, reused while present)."""
    directory.mkdir(parents=True, exist_ok=True)
    pem, jwks = directory / "signing.pem", directory / "jwks.json"
    if not pem.exists() or not jwks.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
        pem.chmod(0o600)
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        jwk.update({"kid": KID, "use": "sig", "alg": "ES256"})
        jwks.write_text(json.dumps({"keys": [jwk]}, indent=2))
    return pem, jwks


def mint(pem: Path, *, subject: str = "demo-user", scope: str = "orders:read", ttl: int = 3600,
         issuer: str = DEMO_ISSUER, audience: str = DEMO_AUDIENCE, **claims) -> str:
    key = serialization.load_pem_private_key(pem.read_bytes(), password=None)
    now = int(time.time())
    payload = {"iss": issuer, "aud": audience, "sub": subject, "iat": now, "exp": now + ttl,
               "scope": scope, "jti": os.urandom(8).hex(), **claims}
    return jwt.encode(payload, key, algorithm="ES256", headers={"kid": KID})

"""Secrets at rest: scrypt password hashes and SHA-256 API-key hashes.

Invariant: plaintext secrets are never stored or logged; every comparison is constant-time.
Verifying an scrypt hash costs tens of milliseconds by design, so callers off the CLI must run
it in an executor and cache verified results (the identity issue does).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# RFC 7914 parameters: N=2^15, r=8, p=1 (~32 MiB, the OWASP-recommended floor for scrypt).
SCRYPT_N = 1 << 15
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_MAXMEM = 64 * 1024 * 1024
API_KEY_PREFIX = "fg_"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """`scrypt$N$r$p$salt$hash` with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    dk = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(dk)}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        kind, n, r, p, salt, want = encoded.split("$")
        if kind != "scrypt":
            return False
        expected = _unb64(want)
        dk = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                            maxmem=SCRYPT_MAXMEM, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(dk, expected)


def new_api_key() -> tuple[str, str]:
    """A new random key (shown once) and its `sha256:` hash for the config."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, api_key_hash(key)


def api_key_hash(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def verify_api_key(key: str, encoded: str) -> bool:
    return hmac.compare_digest(api_key_hash(key).encode(), encoded.encode())

"""Signing keys of the token service: the master key, sealing (AES-256-GCM), generation, and the
key ring that decides which key signs and which keys `/oauth2/jwks` publishes.

Invariants: a private key exists outside process memory only sealed with the master key (the
`signing_key` file may instead hold an operator's plain PEM, which is then only read). A new key
is published (in the ring, hence in the JWK Set) `publish_ahead` seconds before it signs, and a
retired key stays published until every token it signed has expired. `kid` is the RFC 7638
thumbprint, so the same key always has the same kid on every node.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from jwt import PyJWK
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ALGORITHMS = ("ES256", "RS256")
RSA_BITS = 3072
ENVELOPE = "fastgate-sealed-key-v1"
_AAD = b"fastgate signing key v1|"
RETIRE_MARGIN = 300.0  # seconds a superseded key outlives its last token's exp (verifier leeway)


class KeyProblem(ValueError):
    """A key or master-key problem, with a message naming the config key (never key bytes)."""


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def master_key(env_name: str) -> bytes:
    """The 32-byte master key from the environment variable `secrets.master_key_env` (base64)."""
    raw = os.environ.get(env_name)
    if not raw:
        raise KeyProblem(f"token_service: environment variable {env_name} (secrets.master_key_env) "
                        "is not set; it must hold a base64 32-byte key")
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise KeyProblem(f"token_service: {env_name} must hold a base64-encoded 32-byte key")
    return key


def seal(master: bytes, kid: str, secret: bytes) -> str:
    nonce = os.urandom(12)
    return _b64u(nonce + AESGCM(master).encrypt(nonce, secret, _AAD + kid.encode()))


def unseal(master: bytes, kid: str, sealed: str) -> bytes:
    raw = _unb64u(sealed)
    try:
        return AESGCM(master).decrypt(raw[:12], raw[12:], _AAD + kid.encode())
    except Exception:  # InvalidTag: another master key, or tampered data
        raise KeyProblem(f"token_service: signing key {kid} does not open with the master key "
                        "(secrets.master_key_env changed?)") from None


def generate(alg: str = "ES256"):
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    raise KeyProblem(f"token_service: unsupported algorithm {alg}")


def algorithm_of(private) -> str:
    if isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(private.curve, ec.SECP256R1):
        return "ES256"
    if isinstance(private, rsa.RSAPrivateKey) and private.key_size >= 2048:
        return "RS256"
    raise KeyProblem("token_service.signing_key: expected an EC P-256 (ES256) or RSA >= 2048 "
                    "(RS256) private key")


def public_jwk(private) -> dict[str, Any]:
    pub = private.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return json.loads(ECAlgorithm.to_jwk(pub))
    return json.loads(RSAAlgorithm.to_jwk(pub))


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 §3: SHA-256 of the required members, lexicographic, no whitespace."""
    members = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    canonical = json.dumps({k: jwk[k] for k in members}, separators=(",", ":"), sort_keys=True)
    return _b64u(hashlib.sha256(canonical.encode()).digest())


def der(private) -> bytes:
    return private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


@dataclass(slots=True)
class SigningKey:
    kid: str
    alg: str
    private: Any  # cryptography private key
    active_from: float  # epoch seconds this key starts signing
    created: float
    jwk: dict[str, Any] = field(default_factory=dict)  # public, with kid/alg/use
    verifier: PyJWK | None = None

    @classmethod
    def make(cls, private, active_from: float, created: float) -> SigningKey:
        alg = algorithm_of(private)
        jwk = public_jwk(private)
        kid = thumbprint(jwk)
        jwk.update({"kid": kid, "alg": alg, "use": "sig"})
        return cls(kid, alg, private, active_from, created, jwk, PyJWK(jwk, alg))


def record(key: SigningKey, master: bytes, parent: str) -> dict[str, Any]:
    """What the store keeps of a key: public facts plus the sealed private key."""
    return {"kid": key.kid, "alg": key.alg, "sealed": seal(master, key.kid, der(key.private)),
            "active_from": key.active_from, "created": key.created, "parent": parent}


def from_record(rec: dict[str, Any], master: bytes) -> SigningKey:
    private = serialization.load_der_private_key(unseal(master, rec["kid"], rec["sealed"]), None)
    key = SigningKey.make(private, float(rec["active_from"]), float(rec["created"]))
    if key.kid != rec["kid"]:
        raise KeyProblem(f"token_service: stored key {rec['kid']} has a different thumbprint")
    return key


def seed_key(path: Path, master: bytes) -> Any:
    """The private key in `signing_key`: an operator's PEM, or our sealed envelope; made (sealed,
    mode 0600, created exclusively so concurrent workers agree) when the file is absent."""
    if not path.exists():
        private = generate("ES256")
        jwk = public_jwk(private)
        kid = thumbprint(jwk)
        doc = {"format": ENVELOPE, "kid": kid, "alg": "ES256", "sealed": seal(master, kid, der(private))}
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return seed_key(path, master)  # another worker made it first: use theirs
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
        return private
    data = path.read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise KeyProblem("token_service.signing_key: not an unencrypted PEM private key") from None
        algorithm_of(private)
        return private
    try:
        doc = json.loads(data)
        if doc.get("format") != ENVELOPE:
            raise ValueError
        return serialization.load_der_private_key(unseal(master, doc["kid"], doc["sealed"]), None)
    except (ValueError, KeyError, TypeError):
        raise KeyProblem("token_service.signing_key: neither a PEM private key nor a key sealed "
                        "by fastgate") from None


class KeyRing:
    """The keys the store holds, opened; `signer(now)` and `published(now)` read it."""

    def __init__(self, keys: list[SigningKey], access_token_ttl: float) -> None:
        self.keys = sorted(keys, key=lambda k: (k.active_from, k.created))
        self.ttl = access_token_ttl
        self.by_kid = {k.kid: k for k in self.keys}

    def signer(self, now: float | None = None) -> SigningKey | None:
        now = time.time() if now is None else now
        active = [k for k in self.keys if k.active_from <= now]
        return active[-1] if active else (self.keys[0] if self.keys else None)

    def newest(self) -> SigningKey | None:
        return self.keys[-1] if self.keys else None

    def published(self, now: float | None = None) -> list[SigningKey]:
        """Pending keys, the signer, and superseded keys whose tokens may still be alive."""
        now = time.time() if now is None else now
        out = []
        for i, k in enumerate(self.keys):
            successor = next((n for n in self.keys[i + 1:] if n.active_from <= now), None)
            if successor is None or now < successor.active_from + self.ttl + RETIRE_MARGIN:
                out.append(k)
        return out

    def jwks(self, now: float | None = None) -> dict[str, Any]:
        return {"keys": [k.jwk for k in self.published(now)]}

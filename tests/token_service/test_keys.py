"""Signing keys: master key, sealing, RFC 7638 kids, the seed file, and the ring's schedule."""

from __future__ import annotations

import base64
import json
import os

import pytest
from cryptography.hazmat.primitives import serialization

from fastgate.token_service import keys as K

MASTER = os.urandom(32)


def test_master_key_from_environment(monkeypatch):
    monkeypatch.setenv("FG_TEST_MK", base64.b64encode(MASTER).decode())
    assert K.master_key("FG_TEST_MK") == MASTER
    monkeypatch.setenv("FG_TEST_MK", base64.b64encode(b"short").decode())
    with pytest.raises(K.KeyProblem, match="32-byte"):
        K.master_key("FG_TEST_MK")
    monkeypatch.delenv("FG_TEST_MK")
    with pytest.raises(K.KeyProblem, match="is not set"):
        K.master_key("FG_TEST_MK")


def test_seal_is_aes_gcm_bound_to_the_kid():
    sealed = K.seal(MASTER, "kid-1", b"secret bytes")
    assert b"secret bytes" not in base64.urlsafe_b64decode(sealed + "==")
    assert K.unseal(MASTER, "kid-1", sealed) == b"secret bytes"
    with pytest.raises(K.KeyProblem):
        K.unseal(MASTER, "kid-2", sealed)  # the kid is associated data
    with pytest.raises(K.KeyProblem):
        K.unseal(os.urandom(32), "kid-1", sealed)
    assert K.seal(MASTER, "kid-1", b"x") != K.seal(MASTER, "kid-1", b"x")  # fresh nonce


def test_rfc7638_thumbprint_example():
    # RFC 7638 §3.1
    jwk = {"kty": "RSA", "e": "AQAB", "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
        "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
        "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f"
        "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")}
    assert K.thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_seed_file_made_sealed_then_reused(tmp_path):
    path = tmp_path / "signing.pem"
    first = K.seed_key(path, MASTER)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    doc = json.loads(path.read_text())
    assert doc["format"] == K.ENVELOPE and "BEGIN" not in path.read_text()
    again = K.seed_key(path, MASTER)
    assert K.der(first) == K.der(again)
    with pytest.raises(K.KeyProblem):
        K.seed_key(path, os.urandom(32))


def test_seed_file_may_be_an_operator_pem(tmp_path):
    private = K.generate("RS256")
    path = tmp_path / "rsa.pem"
    path.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key = K.SigningKey.make(K.seed_key(path, MASTER), 0, 0)
    assert key.alg == "RS256" and key.jwk["kid"] == key.kid and "d" not in key.jwk
    path.write_text("garbage")
    with pytest.raises(K.KeyProblem):
        K.seed_key(path, MASTER)


def test_record_round_trip():
    key = K.SigningKey.make(K.generate(), 10.0, 5.0)
    rec = K.record(key, MASTER, "")
    assert set(rec) == {"kid", "alg", "sealed", "active_from", "created", "parent"}  # no plain key
    assert base64.b64encode(K.der(key.private)).decode()[:40] not in json.dumps(rec)
    back = K.from_record(rec, MASTER)
    assert back.kid == key.kid and back.active_from == 10.0


def test_ring_publishes_ahead_and_retires_after_the_last_token():
    a = K.SigningKey.make(K.generate(), active_from=0, created=0)
    b = K.SigningKey.make(K.generate(), active_from=100, created=90)
    ring = K.KeyRing([b, a], access_token_ttl=60)
    assert ring.signer(95).kid == a.kid  # b is published, not yet signing
    assert {k.kid for k in ring.published(95)} == {a.kid, b.kid}
    assert ring.signer(100).kid == b.kid
    assert a in ring.published(100 + 60 + K.RETIRE_MARGIN - 1)  # a's tokens may still be alive
    assert ring.published(100 + 60 + K.RETIRE_MARGIN + 1) == [b]
    assert [k["kid"] for k in ring.jwks(95)["keys"]] == [a.kid, b.kid]

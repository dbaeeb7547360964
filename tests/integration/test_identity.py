"""Identity end to end through the real gateway: API keys, Basic, Digest, JWT (JWKS file),
mTLS, scopes and rules; credentials stripped before the upstream and never logged."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fastgate.credentials import api_key_hash, hash_password
from tests.helpers import Gateway, client_context, connect, get, read_response

ISSUER = "https://idp.test/"
KEY = "fg_integration_test_key_0123456789abcdefghijklmnop"
QKEY = "fg_query_test_key_0123456789abcdefghijklmnopqrstu"


@pytest.fixture(scope="module")
def signing_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def gw(pki, echo, tmp_path_factory, signing_key):
    d = tmp_path_factory.mktemp("identity")
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(signing_key.public_key()))
    jwk.update({"kid": "k1", "use": "sig", "alg": "ES256"})
    (d / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    pw_hash = hash_password("s3cret-pass", n=2**12)
    ha1 = "sha256:" + hashlib.sha256(b"alice:fastgate:s3cret-pass").hexdigest()
    text = f"""version: 1
listeners:
  - name: public
    address: 127.0.0.1:0
    tls:
      certificate: {pki['server.crt']}
      private_key: {pki['server.key']}
      client_certificates: optional
      client_ca: {pki['client-ca.crt']}
admin:
  address: 127.0.0.1:0
users:
  - name: alice
    password_hash: "{pw_hash}"
    digest_ha1: "{ha1}"
    roles: [teacher]
applications:
  - name: mobile-app
    client_id: mobile-app
    scopes: [course:view]
    api_keys:
      - id: k1
        hash: "{api_key_hash(KEY)}"
        allowed_ips: [127.0.0.1/32, "::1"]
      - id: k2
        hash: "{api_key_hash(QKEY)}"
        allowed_ips: [10.0.0.0/8]
  - name: partner
    certificates:
      - subject: "CN=partner-app,O=Example"
issuers:
  - name: corp-idp
    issuer: {ISSUER}
    jwks_file: {d / 'jwks.json'}
    audiences: [courses-api]
    algorithms: [ES256]
apis:
  - name: courses
    base_path: /courses/v1
    upstream:
      urls: [http://127.0.0.1:{echo.port}]
    authentication: [oauth2, api_key, basic, digest, mtls]
    authorization:
      roles_to_scopes: {{teacher: [course:create, course:view], student: [course:view]}}
      resources:
        - {{path: /courses, methods: [POST], scopes: [course:create]}}
        - {{path: "/courses/{{id}}", methods: [GET], scopes: [course:view]}}
"""
    g = Gateway(text, d)
    yield g
    g.stop()


def _token(key, **claims) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": "courses-api", "sub": "bob", "iat": now, "exp": now + 300,
               "scope": "course:view", "jti": os.urandom(8).hex()}
    payload.update(claims)
    return jwt.encode(payload, key, algorithm="ES256", headers={"kid": "k1"})


def _forwarded(r) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in r.json()["headers"]:
        out.setdefault(name, []).append(value)
    return out


def test_no_credentials_is_401_with_one_challenge_per_scheme(gw, tls_client):
    r = get(gw.ports["public"], "/courses/v1/courses/1", tls_client)
    assert r.status == 401
    assert r.json()["code"] == "unauthenticated"
    challenges = r.header_all("www-authenticate")
    schemes = sorted(c.split()[0] for c in challenges)
    assert schemes == ["ApiKey", "Basic", "Bearer", "Digest"]
    assert 'Bearer realm="fastgate"' in challenges


def test_api_key_header_passes_and_is_stripped(gw, tls_client, echo):
    r = get(gw.ports["public"], "/courses/v1/courses/7", tls_client, headers={"X-API-Key": KEY})
    assert r.status == 200, r.body
    fwd = _forwarded(r)
    assert "x-api-key" not in fwd
    assert fwd["x-fastgate-application"] == ["mobile-app"]


def test_api_key_from_disallowed_ip_is_403(gw, tls_client):
    r = get(gw.ports["public"], f"/courses/v1/courses/7?api_key={QKEY}", tls_client)
    assert r.status == 403
    assert r.json()["code"] == "forbidden"


def test_bad_api_key_is_401_invalid_credentials(gw, tls_client):
    r = get(gw.ports["public"], "/courses/v1/courses/7", tls_client, headers={"X-API-Key": KEY + "x"})
    assert r.status == 401
    assert r.json()["code"] == "invalid_credentials"


def test_basic_passes_with_roles_and_is_stripped(gw, tls_client):
    cred = base64.b64encode(b"alice:s3cret-pass").decode()
    r = get(gw.ports["public"], "/courses/v1/courses", tls_client, method="POST", body=b"{}",
            headers={"Authorization": f"Basic {cred}"})
    assert r.status == 200, r.body
    fwd = _forwarded(r)
    assert "authorization" not in fwd
    assert fwd["x-fastgate-subject"] == ["alice"]


def test_basic_wrong_password_is_401(gw, tls_client):
    cred = base64.b64encode(b"alice:wrong").decode()
    r = get(gw.ports["public"], "/courses/v1/courses/1", tls_client, headers={"Authorization": f"Basic {cred}"})
    assert r.status == 401 and r.json()["code"] == "invalid_credentials"


def test_jwt_passes_and_token_is_forwarded_unchanged(gw, tls_client, signing_key):
    token = _token(signing_key)
    r = get(gw.ports["public"], "/courses/v1/courses/3", tls_client, headers={"Authorization": f"Bearer {token}"})
    assert r.status == 200, r.body
    fwd = _forwarded(r)
    assert fwd["authorization"] == [f"Bearer {token}"]
    assert fwd["x-fastgate-subject"] == ["bob"]
    assert fwd["x-fastgate-scopes"] == ["course:view"]


def test_jwt_lacking_scope_is_403_insufficient_scope(gw, tls_client, signing_key):
    token = _token(signing_key)
    r = get(gw.ports["public"], "/courses/v1/courses", tls_client, method="POST", body=b"{}",
            headers={"Authorization": f"Bearer {token}"})
    assert r.status == 403
    assert r.json()["code"] == "insufficient_scope"
    www = r.header("www-authenticate")
    assert 'error="insufficient_scope"' in www and "course:create" in www


@pytest.mark.parametrize("claims", [
    {"exp": int(time.time()) - 3600},
    {"aud": "other-api"},
    {"iss": "https://evil.test/"},
])
def test_bad_jwt_is_401_invalid_token(gw, tls_client, signing_key, claims):
    token = _token(signing_key, **claims)
    r = get(gw.ports["public"], "/courses/v1/courses/3", tls_client, headers={"Authorization": f"Bearer {token}"})
    assert r.status == 401
    assert r.json()["code"] == "invalid_credentials"
    assert 'error="invalid_token"' in r.header("www-authenticate")


def test_jwt_signed_by_another_key_is_refused(gw, tls_client):
    token = _token(ec.generate_private_key(ec.SECP256R1()))
    r = get(gw.ports["public"], "/courses/v1/courses/3", tls_client, headers={"Authorization": f"Bearer {token}"})
    assert r.status == 401


def test_alg_none_is_refused(gw, tls_client):
    now = int(time.time())
    token = jwt.encode({"iss": ISSUER, "aud": "courses-api", "sub": "x", "exp": now + 60, "scope": "course:view"},
                       None, algorithm="none")
    r = get(gw.ports["public"], "/courses/v1/courses/3", tls_client, headers={"Authorization": f"Bearer {token}"})
    assert r.status == 401


def test_mtls_certificate_identifies_the_application(gw, pki, tls_client):
    ctx = client_context(pki["ca.crt"], pki["client.crt"], pki["client.key"])
    with connect(gw.ports["public"], ctx) as s:
        s.sendall(b"GET /courses/v1/anything HTTP/1.1\r\nHost: x\r\n\r\n")
        r = read_response(s)
    assert r.status == 200, r.body
    assert _forwarded(r)["x-fastgate-application"] == ["partner"]


def test_credentials_never_logged(gw, tls_client, signing_key):
    token = _token(signing_key)
    get(gw.ports["public"], "/courses/v1/courses/3", tls_client, headers={"Authorization": f"Bearer {token}"})
    get(gw.ports["public"], f"/courses/v1/x?api_key={QKEY}", tls_client)
    time.sleep(0.3)
    everything = "\n".join(gw.out + gw.err)
    assert token not in everything and token.split(".")[2] not in everything
    assert QKEY not in everything and KEY not in everything
    recs = [r for r in gw.access_log() if r.get("subject") == "bob"]
    assert recs and recs[-1]["api"] == "courses"

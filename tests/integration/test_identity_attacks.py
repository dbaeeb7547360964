"""Attacks on identity, end to end through the real gateway process (real TLS, real echo
upstream, real keys). Every refusal is checked for its status and `code`, for never reaching the
upstream (a unique path marker the echo must not log), and for the credential never showing up
in the gateway's stdout/stderr (access log and warnings) or in the problem body.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fastgate.credentials import api_key_hash, hash_password
from tests.helpers import Gateway, client_context, connect, get, read_response
from tests.policies.oauth2.servers import IdpServer

ES_ISS = "https://es.idp.test/"
RS_ISS = "https://rs.idp.test/"
AUD = "attacks-api"
PASSWORD = "correct horse battery"

KEY_GOOD = "fg_attack_good_key_0123456789abcdefghijklmnopqrst"
KEY_ELSEWHERE = "fg_attack_ip_key_0123456789abcdefghijklmnopqrstuv"
KEY_EXPIRED = "fg_attack_expired_0123456789abcdefghijklmnopqrstu"
KEY_REFERER = "fg_attack_referer_0123456789abcdefghijklmnopqrstu"
KEY_REVOKED = "fg_attack_revoke_me_0123456789abcdefghijklmnopqrs"
REVOCABLE = f'      - {{id: doomed, hash: "{api_key_hash(KEY_REVOKED)}"}}\n'

ES_KEY = ec.generate_private_key(ec.SECP256R1())
RS_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER_KEY = ec.generate_private_key(ec.SECP256R1())


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def trap():
    """A JWKS server the attacker controls (serving the attacker's key): the gateway must never
    fetch it, whatever a token's `jku` / `x5u` say."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = IdpServer()
    server.jwks = {"keys": [_jwk(ATTACKER_KEY, "attacker")]}
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(5)
    yield server
    asyncio.run_coroutine_threadsafe(server.down(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def _jwk(key, kid: str) -> dict:
    if isinstance(key, rsa.RSAPrivateKey):
        d = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        d.update({"kid": kid, "use": "sig", "alg": "RS256"})
    else:
        d = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        d.update({"kid": kid, "use": "sig", "alg": "ES256"})
    return d


def _config(pki, echo_port: int, d, revocable: str = REVOCABLE) -> str:
    up = f"{{urls: [\"http://127.0.0.1:{echo_port}\"]}}"
    return f"""version: 1
listeners:
  - name: public
    address: 127.0.0.1:0
    tls:
      certificate: {pki['server.crt']}
      private_key: {pki['server.key']}
      client_certificates: optional
      client_ca: {pki['client-ca.crt']}
limits:
  max_header_bytes: 64KiB
admin:
  address: 127.0.0.1:0
users:
  - name: alice
    password_hash: "{hash_password(PASSWORD, n=2**12)}"
applications:
  - name: spa-app
    client_id: spa
    scopes: [reports:read]
    api_keys:
      - {{id: good, hash: "{api_key_hash(KEY_GOOD)}", allowed_ips: [127.0.0.1/32, "::1"]}}
{revocable}  - name: branch-office
    api_keys:
      - {{id: branch, hash: "{api_key_hash(KEY_ELSEWHERE)}", allowed_ips: [10.0.0.0/8]}}
      - {{id: old, hash: "{api_key_hash(KEY_EXPIRED)}", expires: "2020-01-01T00:00:00Z"}}
      - {{id: web, hash: "{api_key_hash(KEY_REFERER)}", allowed_referers: ["https://app.example.com/*"]}}
issuers:
  - name: es-idp
    issuer: {ES_ISS}
    jwks_file: {d / 'es-jwks.json'}
    audiences: [{AUD}]
    algorithms: [ES256]
  - name: rs-idp
    issuer: {RS_ISS}
    jwks_file: {d / 'rs-jwks.json'}
    audiences: [{AUD}]
    algorithms: [RS256]
apis:
  - name: jwt
    base_path: /jwt
    upstream: {up}
    authentication: [oauth2]
  - name: key
    base_path: /key
    upstream: {up}
    authentication: [api_key]
  - name: basic
    base_path: /basic
    upstream: {up}
    authentication: [basic]
  - name: mtls-key
    base_path: /mk
    upstream: {up}
    authentication: [api_key]
    mtls: required
  - name: any
    base_path: /any
    upstream: {up}
    authentication: [oauth2, api_key, basic]
  - name: key-first
    base_path: /kf
    upstream: {up}
    authentication: [api_key, oauth2, basic]
"""


@pytest.fixture(scope="module")
def gw(pki, echo, tmp_path_factory):
    d = tmp_path_factory.mktemp("attacks")
    (d / "es-jwks.json").write_text(json.dumps({"keys": [_jwk(ES_KEY, "es1")]}))
    (d / "rs-jwks.json").write_text(json.dumps({"keys": [_jwk(RS_KEY, "rs1")]}))
    g = Gateway(_config(pki, echo.port, d), d)
    g.dir = d
    yield g
    g.stop()


@pytest.fixture
def port(gw):
    return gw.ports["public"]


# ---------------------------------------------------------------- helpers
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(iss: str = ES_ISS, **over) -> dict:
    now = int(time.time())
    c = {"iss": iss, "aud": AUD, "sub": "mallory", "iat": now, "nbf": now - 1, "exp": now + 300,
         "scope": "reports:read", "jti": secrets.token_hex(8)}
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def _es(headers: dict | None = None, key=ES_KEY, **over) -> str:
    return jwt.encode(_claims(**over), key, algorithm="ES256", headers={"kid": "es1", **(headers or {})})


def _rs(**over) -> str:
    return jwt.encode(_claims(RS_ISS, **over), RS_KEY, algorithm="RS256", headers={"kid": "rs1"})


def _raw(header: dict, payload: dict, sign=None) -> str:
    """A hand-made compact JWS, for what pyjwt refuses to produce."""
    si = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())
    return si + "." + (_b64(sign(si.encode())) if sign else "")


def _hs256_with(secret: bytes):
    return lambda msg: hmac.new(secret, msg, hashlib.sha256).digest()


def _pem(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _basic(raw: bytes) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def _marker(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(6)}"


def _forwarded(r) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in r.json()["headers"]:
        out.setdefault(name, []).append(value)
    return out


def _raw_request(port: int, ctx, lines: list[str]):
    data = ("\r\n".join([*lines, "Connection: close"]) + "\r\n\r\n").encode()
    with connect(port, ctx) as s:
        s.sendall(data)
        return read_response(s)


def _sync(port: int, ctx, echo) -> None:
    """Send a request that does reach the echo and wait until the echo logged it: whatever the
    gateway forwarded earlier has been logged by then, so `echo.seen` is conclusive."""
    marker = _marker("sync")
    r = get(port, f"/key/{marker}", ctx, headers={"X-API-Key": KEY_GOOD})
    assert r.status == 200, r.body
    deadline = time.monotonic() + 5
    while not echo.seen(marker):
        assert time.monotonic() < deadline, "echo never logged the sync request"
        time.sleep(0.02)


class Refusals:
    """Collects refused attempts; `check()` proves none reached the upstream and no credential
    leaked into the gateway's output."""

    def __init__(self, gw, port: int, ctx, echo) -> None:
        self.gw, self.port, self.ctx, self.echo = gw, port, ctx, echo
        self.markers: list[str] = []
        self.secrets: list[str] = []

    def expect(self, r, status: int, code: str, marker: str, secret: str | None = None,
               bearer_challenge: bool = False) -> None:
        assert r.status == status, (marker, r.status, r.body)
        assert r.header("content-type") == "application/problem+json", marker
        assert r.json()["code"] == code, (marker, r.body)
        if bearer_challenge:
            www = r.header_all("www-authenticate")
            assert any(w.startswith("Bearer ") and 'error="invalid_token"' in w for w in www), (marker, www)
        self.markers.append(marker)
        if secret:
            assert secret not in r.body.decode("latin-1"), marker
            self.secrets.append(secret)

    def check(self) -> None:
        _sync(self.port, self.ctx, self.echo)
        reached = [m for m in self.markers if self.echo.seen(m)]
        assert not reached, f"refused requests reached the upstream: {reached}"
        out = "\n".join(list(self.gw.out) + list(self.gw.err))
        for s in self.secrets:
            assert s not in out, "a credential leaked into the gateway output"
            if s.count(".") == 2 and len(s.rsplit(".", 1)[1]) > 16:  # a JWT's signature alone
                assert s.rsplit(".", 1)[1] not in out


@pytest.fixture
def refusals(gw, port, tls_client, echo):
    return Refusals(gw, port, tls_client, echo)


# ---------------------------------------------------------------- JWT
def test_jwt_controls_pass(port, tls_client):
    """The attacks below fail for the reason under test, not because good tokens fail too."""
    for tok in (_es(), _rs()):
        r = get(port, f"/jwt/{_marker('control')}", tls_client, headers=_bearer(tok))
        assert r.status == 200, r.body
        assert _forwarded(r)["x-fastgate-subject"] == ["mallory"]


def _attack_tokens(trap) -> dict[str, str]:
    now = int(time.time())
    good = _es()
    h, p, s = good.split(".")
    payload = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    payload["scope"] = "reports:read admin"
    tampered = f"{h}.{_b64(json.dumps(payload).encode())}.{s}"
    attacker_jwk = _jwk(ATTACKER_KEY, "attacker")
    return {
        "alg-none": _raw({"alg": "none", "typ": "JWT", "kid": "es1"}, _claims()),
        "alg-None": _raw({"alg": "None", "kid": "es1"}, _claims()),
        "alg-none-with-sig": _raw({"alg": "none", "kid": "es1"}, _claims(), lambda m: b"sig"),
        "hs256-es-pem": _raw({"alg": "HS256", "kid": "es1"}, _claims(), _hs256_with(_pem(ES_KEY))),
        "hs256-rs-pem": _raw({"alg": "HS256", "kid": "rs1"}, _claims(RS_ISS), _hs256_with(_pem(RS_KEY))),
        "hs256-rs-pem-nokid": _raw({"alg": "HS256"}, _claims(RS_ISS), _hs256_with(_pem(RS_KEY))),
        "header-jwk": _es({"kid": "attacker", "jwk": attacker_jwk}, key=ATTACKER_KEY),
        "header-jwk-es1": _es({"jwk": attacker_jwk}, key=ATTACKER_KEY),
        "header-jku": _es({"kid": "attacker", "jku": trap.url("/jwks")}, key=ATTACKER_KEY),
        "header-x5u": _es({"kid": "attacker", "x5u": trap.url("/jwks")}, key=ATTACKER_KEY),
        "header-x5c": _es({"kid": "attacker", "x5c": ["MIIBattacker"]}, key=ATTACKER_KEY),
        "real-key-with-jku": _es({"jku": trap.url("/jwks")}),
        "crit-unknown": _es({"crit": ["urn:example:must-understand"], "urn:example:must-understand": 1}),
        "kid-traversal": _es({"kid": "../../../../etc/passwd"}),
        "kid-traversal-attacker": _es({"kid": "../../../../dev/null"}, key=ATTACKER_KEY),
        "kid-sql": _es({"kid": "' OR '1'='1' --"}),
        "other-key": _es(key=ATTACKER_KEY),
        "expired": _es(exp=now - 3600, iat=now - 7200, nbf=now - 7200),
        "nbf-future": _es(nbf=now + 3600),
        "iat-future": _es(iat=now + 3600),
        "wrong-aud": _es(aud="another-api"),
        "no-aud": _es(aud=None),
        "no-exp": _es(exp=None),
        "wrong-iss": _es(iss="https://evil.idp.test/"),
        "iss-of-rs-signed-by-es": jwt.encode(_claims(RS_ISS), ES_KEY, algorithm="ES256", headers={"kid": "rs1"}),
        "tampered-payload": tampered,
        "truncated-signature": good[:-12],
        "dropped-signature": good.rsplit(".", 1)[0] + ".",
        "two-segments": good.rsplit(".", 1)[0],
        "oversized-20kb": _es(padding="A" * 20_000),
    }


def test_jwt_attacks_are_401_invalid_token(port, tls_client, refusals, trap):
    tokens = _attack_tokens(trap)
    for name, tok in tokens.items():
        marker = _marker(name)
        r = get(port, f"/jwt/{marker}", tls_client, headers=_bearer(tok))
        refusals.expect(r, 401, "invalid_credentials", marker, tok, bearer_challenge=True)
    assert trap.hits == {}, "the gateway fetched a URL a token named"
    refusals.check()


def test_jwt_two_authorization_headers_are_refused(port, tls_client, refusals):
    marker = _marker("two-auth")
    tok = _es()
    r = _raw_request(port, tls_client, [f"GET /jwt/{marker} HTTP/1.1", "Host: localhost",
                                        f"Authorization: Bearer {tok}", f"Authorization: Bearer {_es()}"])
    refusals.expect(r, 401, "invalid_credentials", marker, tok, bearer_challenge=True)
    marker = _marker("bearer-and-basic")
    r = _raw_request(port, tls_client, [f"GET /any/{marker} HTTP/1.1", "Host: localhost",
                                        "Authorization: " + _basic(f"alice:{PASSWORD}".encode())["Authorization"],
                                        f"Authorization: Bearer {tok}"])
    refusals.expect(r, 401, "invalid_credentials", marker, tok, bearer_challenge=True)
    refusals.check()


@pytest.mark.parametrize("value", ["bearer {t}", "BEARER {t}", "Bearer  {t}"])
def test_bearer_scheme_is_case_insensitive_and_tolerates_extra_spaces(port, tls_client, value):
    """RFC 6750 / RFC 9110 §11.1: the scheme is case-insensitive. The unit also accepts more
    than one space before the token (tests/policies/oauth2/test_jwt.py::test_find_and_challenge)."""
    tok = _es()
    r = get(port, f"/jwt/{_marker('scheme')}", tls_client, headers={"Authorization": value.format(t=tok)})
    assert r.status == 200, r.body
    assert _forwarded(r)["x-fastgate-subject"] == ["mallory"]


# ---------------------------------------------------------------- API keys
def test_api_key_refusals(port, tls_client, refusals):
    cases = [
        ({"X-API-Key": KEY_GOOD + "x"}, 401, "invalid_credentials", "wrong", KEY_GOOD + "x"),
        ({"X-API-Key": KEY_GOOD[:-1]}, 401, "invalid_credentials", "truncated", KEY_GOOD[:-1]),
        ({"X-API-Key": KEY_ELSEWHERE}, 403, "forbidden", "other-ip", KEY_ELSEWHERE),
        ({"X-API-Key": KEY_EXPIRED}, 401, "invalid_credentials", "expired", KEY_EXPIRED),
        ({}, 401, "unauthenticated", "none", None),
    ]
    for headers, status, code, tag, secret in cases:
        marker = _marker(f"key-{tag}")
        r = get(port, f"/key/{marker}", tls_client, headers=headers)
        refusals.expect(r, status, code, marker, secret)
        if status == 401:
            assert r.header("www-authenticate") == 'ApiKey header="X-API-Key"'
    # an expired key in the query string
    marker = _marker("key-query-expired")
    r = get(port, f"/key/{marker}?api_key={KEY_EXPIRED}", tls_client)
    refusals.expect(r, 401, "invalid_credentials", marker, KEY_EXPIRED)
    # the client address is the TCP peer: forwarding headers cannot satisfy allowed_ips
    for tag, spoof in (("xff", "X-Forwarded-For: 10.1.2.3"), ("xri", "X-Real-IP: 10.1.2.3"),
                       ("fwd", "Forwarded: for=10.1.2.3")):
        marker = _marker(f"key-ip-spoof-{tag}")
        r = _raw_request(port, tls_client, [f"GET /key/{marker} HTTP/1.1", "Host: localhost",
                                            f"X-API-Key: {KEY_ELSEWHERE}", spoof])
        refusals.expect(r, 403, "forbidden", marker, KEY_ELSEWHERE)
    # no method or query trick skips authentication
    for method in ("OPTIONS", "TRACE", "DELETE", "get"):
        marker = _marker(f"key-method-{method}")
        r = _raw_request(port, tls_client, [f"{method} /key/{marker} HTTP/1.1", "Host: localhost"])
        refusals.expect(r, 401, "unauthenticated", marker)
    for tag, query in (("twice", f"api_key={KEY_GOOD}&api_key={KEY_GOOD}"),
                       ("semicolon", f"api_key={KEY_GOOD};x=1"), ("empty", "api_key=")):
        marker = _marker(f"key-query-{tag}")
        r = get(port, f"/key/{marker}?{query}", tls_client)
        refusals.expect(r, 401, "invalid_credentials", marker)
    # two keys: ambiguous
    marker = _marker("key-two-headers")
    r = _raw_request(port, tls_client, [f"GET /key/{marker} HTTP/1.1", "Host: localhost",
                                        f"X-API-Key: {KEY_ELSEWHERE}", f"X-API-Key: {KEY_GOOD}"])
    refusals.expect(r, 401, "invalid_credentials", marker, KEY_ELSEWHERE)
    refusals.check()


def test_api_key_in_query_is_stripped_and_other_params_kept(port, tls_client, gw):
    marker = _marker("key-query")
    r = get(port, f"/key/{marker}?a=1&api_key={KEY_GOOD}&b=two%20words&api_key_hint=x", tls_client)
    assert r.status == 200, r.body
    target = r.json()["target"]
    assert "api_key=" not in target and KEY_GOOD not in target
    assert target == f"/{marker}?a=1&b=two%20words&api_key_hint=x"
    assert _forwarded(r)["x-fastgate-application"] == ["spa-app"]
    time.sleep(0.2)
    assert KEY_GOOD not in "\n".join(list(gw.out) + list(gw.err))


def test_api_key_allowed_referers(port, tls_client, refusals):
    ok = get(port, f"/key/{_marker('ref-ok')}", tls_client,
             headers={"X-API-Key": KEY_REFERER, "Referer": "https://app.example.com/page?x=1"})
    assert ok.status == 200, ok.body
    for tag, referer in (("ref-other", "https://evil.example.net/page"),
                         ("ref-lookalike", "https://app.example.com.evil.net/page"),
                         ("ref-userinfo", "https://app.example.com@evil.net/page"),
                         ("ref-missing", None)):
        marker = _marker(tag)
        headers = {"X-API-Key": KEY_REFERER}
        if referer:
            headers["Referer"] = referer
        r = get(port, f"/key/{marker}", tls_client, headers=headers)
        refusals.expect(r, 403, "forbidden", marker, KEY_REFERER)
    marker = _marker("ref-two")  # one allowed and one other Referer: ambiguous, refused
    r = _raw_request(port, tls_client, [f"GET /key/{marker} HTTP/1.1", "Host: localhost",
                                        f"X-API-Key: {KEY_REFERER}", "Referer: https://app.example.com/a",
                                        "Referer: https://evil.example.net/"])
    refusals.expect(r, 403, "forbidden", marker, KEY_REFERER)
    refusals.check()


def test_api_key_revoked_by_config_reload(gw, pki, echo, port, tls_client, refusals):
    r = get(port, f"/key/{_marker('doomed-ok')}", tls_client, headers={"X-API-Key": KEY_REVOKED})
    assert r.status == 200, r.body
    start = len(gw.err)
    gw.path.write_text(_config(pki, echo.port, gw.dir, revocable=""))
    gw.sighup()
    gw.wait_line(r"fastgate: config reloaded", stream="err", start=start)
    try:
        marker = _marker("doomed-revoked")
        r = get(port, f"/key/{marker}", tls_client, headers={"X-API-Key": KEY_REVOKED})
        refusals.expect(r, 401, "invalid_credentials", marker, KEY_REVOKED)
        marker = _marker("doomed-revoked-query")
        r = get(port, f"/key/{marker}?api_key={KEY_REVOKED}", tls_client)
        refusals.expect(r, 401, "invalid_credentials", marker, KEY_REVOKED)
        refusals.check()  # (the sync request proves the other keys survived the reload)
    finally:
        start = len(gw.err)
        gw.path.write_text(_config(pki, echo.port, gw.dir))
        gw.sighup()
        gw.wait_line(r"fastgate: config reloaded", stream="err", start=start)


# ---------------------------------------------------------------- Basic
def test_basic_refusals_look_alike(port, tls_client, refusals):
    cases = {
        "wrong-password": _basic(b"alice:not-the-password"),
        "unknown-user": _basic(b"zed:not-the-password"),
        "malformed-b64": {"Authorization": "Basic !!not*base64!!"},
        "no-colon": _basic(b"alicecorrect horse battery"),
        "empty-user": _basic(f":{PASSWORD}".encode()),
        "control-char": _basic(f"alice:{PASSWORD}\n".encode()),
    }
    bodies = {}
    for tag, headers in cases.items():
        marker = _marker(f"basic-{tag}")
        r = get(port, f"/basic/{marker}", tls_client, headers=headers)
        refusals.expect(r, 401, "invalid_credentials", marker, headers["Authorization"].split(" ", 1)[1])
        assert r.header("www-authenticate").startswith("Basic ")
        doc = r.json()
        bodies[tag] = (doc["title"], doc.get("detail"), r.header("www-authenticate"))
    # an unknown user is indistinguishable from a wrong password
    assert bodies["unknown-user"] == bodies["wrong-password"]
    refusals.check()


def test_basic_success_never_forwards_authorization(port, tls_client, gw):
    header = _basic(f"alice:{PASSWORD}".encode())
    r = get(port, f"/basic/{_marker('basic-ok')}", tls_client, headers=header)
    assert r.status == 200, r.body
    fwd = _forwarded(r)
    assert "authorization" not in fwd
    assert fwd["x-fastgate-subject"] == ["alice"]
    time.sleep(0.2)
    assert header["Authorization"].split(" ", 1)[1] not in "\n".join(list(gw.out) + list(gw.err))


# ---------------------------------------------------------------- mTLS required on top of a key
def test_mtls_required_needs_key_and_certificate(port, pki, tls_client, refusals):
    with_cert = client_context(pki["ca.crt"], pki["client.crt"], pki["client.key"])
    marker = _marker("mk-no-cert")
    r = get(port, f"/mk/{marker}", tls_client, headers={"X-API-Key": KEY_GOOD})
    refusals.expect(r, 401, "unauthenticated", marker, KEY_GOOD)
    marker = _marker("mk-cert-no-key")
    r = get(port, f"/mk/{marker}", with_cert)
    refusals.expect(r, 401, "unauthenticated", marker)
    marker = _marker("mk-cert-bad-key")
    r = get(port, f"/mk/{marker}", with_cert, headers={"X-API-Key": KEY_GOOD + "x"})
    refusals.expect(r, 401, "invalid_credentials", marker, KEY_GOOD + "x")
    r = get(port, f"/mk/{_marker('mk-ok')}", with_cert, headers={"X-API-Key": KEY_GOOD})
    assert r.status == 200, r.body
    fwd = _forwarded(r)
    assert fwd["x-fastgate-application"] == ["spa-app"] and "x-api-key" not in fwd
    refusals.check()


# ---------------------------------------------------------------- spoofed identity headers
SPOOF = ["X-Fastgate-Subject: admin", "x-fastgate-application: evil-app", "X-FASTGATE-SCOPES: admin root",
         "X_Fastgate_Subject: underscore-admin", "X-Fastgate-Roles: superuser"]


def _spoofed(port, ctx, path: str, auth: str):
    r = _raw_request(port, ctx, [f"GET {path} HTTP/1.1", "Host: localhost", auth, *SPOOF])
    assert r.status == 200, r.body
    fwd = _forwarded(r)
    for name in fwd:
        assert not name.startswith("x_fastgate"), name
    assert "x-fastgate-roles" not in fwd
    assert not any("admin" in v or "evil" in v or "superuser" in v
                   for n, vals in fwd.items() if n.startswith("x-fastgate") for v in vals), fwd
    return fwd


def test_client_sent_identity_headers_are_replaced_not_appended(port, tls_client):
    tok = jwt.encode(_claims(client_id="spa"), ES_KEY, algorithm="ES256", headers={"kid": "es1"})
    fwd = _spoofed(port, tls_client, f"/jwt/{_marker('spoof-jwt')}", f"Authorization: Bearer {tok}")
    assert fwd["x-fastgate-subject"] == ["mallory"]
    assert fwd["x-fastgate-application"] == ["spa-app"]
    assert fwd["x-fastgate-scopes"] == ["reports:read"]
    # an API key authenticates an application only: no subject at all, never the client's
    fwd = _spoofed(port, tls_client, f"/key/{_marker('spoof-key')}", f"X-API-Key: {KEY_GOOD}")
    assert "x-fastgate-subject" not in fwd
    assert fwd["x-fastgate-application"] == ["spa-app"]
    assert fwd["x-fastgate-scopes"] == ["reports:read"]
    # Basic: a user, no application
    fwd = _spoofed(port, tls_client, f"/basic/{_marker('spoof-basic')}",
                   "Authorization: " + _basic(f"alice:{PASSWORD}".encode())["Authorization"])
    assert fwd["x-fastgate-subject"] == ["alice"]
    assert "x-fastgate-application" not in fwd and "x-fastgate-scopes" not in fwd


def test_access_log_names_the_refusal_without_the_credential(gw, port, tls_client):
    tok = _es(exp=int(time.time()) - 3600)
    marker = _marker("logged")
    r = get(port, f"/jwt/{marker}", tls_client, headers=_bearer(tok))
    assert r.status == 401
    rid = r.header("x-request-id")
    deadline = time.monotonic() + 5
    while True:
        recs = [x for x in gw.access_log() if x.get("request_id") == rid]
        if recs or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert recs, "no access-log record for the refused request"
    rec = recs[0]
    assert rec["status"] == 401 and rec["code"] == "invalid_credentials" and rec["api"] == "jwt"
    assert rec["decision"] == "authentication.oauth2"
    assert re.fullmatch(r"/jwt/logged-[0-9a-f]{12}", rec["path"])
    assert tok not in json.dumps(rec)


# ---------------------------------------------------------------- several credentials at once
# An API that accepts several methods is decided by the first method (in `authentication`
# order) that finds its credential. The other credentials of *this API's* methods are not
# verified, so they must not reach the upstream as if they had been: either the request is
# refused as ambiguous, or they are stripped (the gateway strips them).
def _not_forwarded(r, echo, marker: str, header: str | None = None, query: str | None = None) -> None:
    if r.status != 200:  # refusing ambiguous credentials is an acceptable fix too
        assert r.status in (400, 401), r.body
        assert not echo.seen(marker)
        return
    fwd = _forwarded(r)
    if header is not None:
        assert header not in fwd.get("authorization", []), "an unverified credential reached the upstream"
    if query is not None:
        assert query not in r.json()["target"], "an unverified API key reached the upstream"


def test_forged_bearer_beside_a_valid_key_never_reaches_the_upstream(port, tls_client, echo):
    forged = _raw({"alg": "none", "kid": "es1"}, _claims(sub="admin", scope="admin"))
    marker = _marker("kf-forged")
    r = get(port, f"/kf/{marker}", tls_client,
            headers={"X-API-Key": KEY_GOOD, "Authorization": f"Bearer {forged}"})
    _not_forwarded(r, echo, marker, header=f"Bearer {forged}")


def test_basic_password_beside_a_valid_key_never_reaches_the_upstream(port, tls_client, echo):
    basic = _basic(b"alice:a-password-guess")["Authorization"]
    marker = _marker("kf-basic")
    r = get(port, f"/kf/{marker}", tls_client, headers={"X-API-Key": KEY_GOOD, "Authorization": basic})
    _not_forwarded(r, echo, marker, header=basic)


def test_query_api_key_beside_a_valid_bearer_never_reaches_the_upstream(port, tls_client, echo):
    marker = _marker("any-bearer-qkey")
    r = get(port, f"/any/{marker}?api_key={KEY_GOOD}&a=1", tls_client, headers=_bearer(_es()))
    _not_forwarded(r, echo, marker, query=KEY_GOOD)

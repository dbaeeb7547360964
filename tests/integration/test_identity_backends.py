"""Identity backends end to end through the real gateway process (real TLS, real echo upstream,
real keys): a JWKS endpoint that rotates keys and goes down, an RFC 7662 introspection endpoint
(cache, negative cache, outage), and an OPA-Data-API server (allow, deny, down, slow, and what
the input document must never contain).

The IdP and OPA stand-ins are the unit tests' servers (tests/policies/...), run here on real
sockets in background threads. One deliberate liberty: the gateway runs with the JWKS
refresh intervals scaled down (UNKNOWN_KID_INTERVAL 30 s -> JWKS_INTERVAL, RETRY_AFTER_FAILURE
5 s -> 0.5 s) through a two-line boot wrapper, so rotation and outage fit in seconds; nothing
else in the process is patched.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import threading
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fastgate.credentials import api_key_hash
from tests.helpers import Gateway, Proc, get
from tests.policies.authorization.opa_server import OpaServer, closed_port_url
from tests.policies.oauth2.servers import IdpServer

ISSUER = "https://rotating.idp.test/"
AUD = "backends-api"
OPA_KEY = "fg_opa_backend_key_0123456789abcdefghijklmnopqrs"
SECRET_ENV = "FG_IT_BACKENDS_INTROSPECTION_SECRET"
SECRET = "s3cret"  # IdpServer's default client secret
JWKS_INTERVAL = 1.5  # the scaled-down UNKNOWN_KID_INTERVAL (30 s in production)

BOOT = (
    "import sys\n"
    "import fastgate.policies.oauth2.jwks as j\n"
    f"j.UNKNOWN_KID_INTERVAL = {JWKS_INTERVAL}\n"
    "j.RETRY_AFTER_FAILURE = 0.5\n"
    "from fastgate.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


class LoopThread:
    """An asyncio loop in a daemon thread, for the asyncio-based IdpServer."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class TunedGateway(Gateway):
    """`fastgate run -c FILE` through BOOT, with extra environment variables."""

    def __init__(self, config_text: str, directory, env: dict[str, str]) -> None:
        self.path = directory / "gateway.yaml"
        self.path.write_text(config_text)
        Proc.__init__(self, [sys.executable, "-c", BOOT, "run", "-c", str(self.path)], env=env)
        self.ports = {}
        self.admin_port = None
        self.wait_ready(config_text)


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def loop_thread():
    lt = LoopThread()
    yield lt
    lt.close()


@pytest.fixture(scope="module")
def idp(loop_thread):
    """The JWKS endpoint (GET /jwks)."""
    s = IdpServer()
    loop_thread.call(s.start())
    yield s
    try:
        loop_thread.call(s.down())
    except Exception:  # already down
        pass


@pytest.fixture(scope="module")
def as_server(loop_thread):
    """The introspection endpoint (POST /introspect), a separate server so it can go down alone."""
    s = IdpServer(client_id="gateway", client_secret=SECRET)
    loop_thread.call(s.start())
    yield s
    try:
        loop_thread.call(s.down())
    except Exception:
        pass


def _decide(path: str, inp: dict) -> bool:
    return not inp["rest_path"].startswith("/denied")


@pytest.fixture(scope="module")
def opa():
    with OpaServer(_decide) as s:
        yield s


@pytest.fixture(scope="module")
def slow_opa():
    with OpaServer(delay=2.0) as s:
        yield s


@pytest.fixture(scope="module")
def keys():
    return {kid: ec.generate_private_key(ec.SECP256R1()) for kid in ("k1", "k2", "k3", "stray")}


@pytest.fixture(scope="module")
def gw(pki, echo, tmp_path_factory, idp, as_server, opa, slow_opa):
    d = tmp_path_factory.mktemp("backends")
    up = f"{{urls: [\"http://127.0.0.1:{echo.port}\"]}}"
    opa_api = "authentication: [api_key]\n    upstream: " + up
    text = f"""version: 1
listeners:
  - name: public
    address: 127.0.0.1:0
    tls:
      certificate: {pki['server.crt']}
      private_key: {pki['server.key']}
admin:
  address: 127.0.0.1:0
applications:
  - name: opa-app
    api_keys:
      - {{id: opa1, hash: "{api_key_hash(OPA_KEY)}"}}
issuers:
  - name: rotating-idp
    issuer: {ISSUER}
    jwks_uri: {idp.url('/jwks')}
    audiences: [{AUD}]
    algorithms: [ES256]
introspection:
  - name: legacy-as
    url: {as_server.url('/introspect')}
    client_id: gateway
    client_secret_env: {SECRET_ENV}
    cache_ttl: 60s
    timeout: 1s
apis:
  - name: tokens
    base_path: /t
    upstream: {up}
    authentication: [oauth2]
  - name: opa-live
    base_path: /opa
    {opa_api}
    authorization:
      opa: {{url: "{opa.url()}", timeout: 1s, on_error: deny, cache_ttl: 0}}
  - name: opa-down-deny
    base_path: /opa-down-deny
    {opa_api}
    authorization:
      opa: {{url: "{closed_port_url()}", timeout: 500ms, on_error: deny}}
  - name: opa-down-allow
    base_path: /opa-down-allow
    {opa_api}
    authorization:
      opa: {{url: "{closed_port_url()}", timeout: 500ms, on_error: allow}}
  - name: opa-slow
    base_path: /opa-slow
    {opa_api}
    authorization:
      opa: {{url: "{slow_opa.url()}", timeout: 200ms, on_error: deny}}
"""
    g = TunedGateway(text, d, env={SECRET_ENV: SECRET})
    yield g
    g.stop()


# ---------------------------------------------------------------- helpers
def _jwk(key, kid: str) -> dict:
    d = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    d.update({"kid": kid, "use": "sig", "alg": "ES256"})
    return d


def _jwt(key, kid: str, **claims) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUD, "sub": "rotating-user", "iat": now, "exp": now + 300,
               "scope": "reports:read", "jti": secrets.token_hex(8)}
    payload.update(claims)
    return jwt.encode(payload, key, algorithm="ES256", headers={"kid": kid})


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _forwarded(r) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in r.json()["headers"]:
        out.setdefault(name, []).append(value)
    return out


def _problem(r, status: int, code: str) -> None:
    assert r.status == status, (r.status, r.body)
    assert r.header("content-type") == "application/problem+json"
    assert r.json()["code"] == code, r.body


def _wait_seen(echo, marker: str, timeout: float = 5.0) -> None:
    """Wait until the echo upstream logged `marker`: every request the gateway forwarded
    before it has been logged too, so a `not echo.seen(...)` after this is conclusive."""
    deadline = time.monotonic() + timeout
    while not echo.seen(marker):
        assert time.monotonic() < deadline, f"echo never saw {marker!r}"
        time.sleep(0.02)


def _output(gw) -> str:
    time.sleep(0.2)  # let the pump threads catch up with the last lines
    return "\n".join(list(gw.out) + list(gw.err))


# ---------------------------------------------------------------- JWKS: rotation and outage
def test_jwks_rotation_outage_and_recovery(gw, tls_client, idp, loop_thread, keys):
    port = gw.ports["public"]
    idp.jwks = {"keys": [_jwk(keys["k1"], "k1")]}

    # 1. first use fetches the JWK Set; a k1 token passes
    r = get(port, "/t/one", tls_client, headers=_bearer(_jwt(keys["k1"], "k1")))
    assert r.status == 200, r.body
    assert _forwarded(r)["x-fastgate-subject"] == ["rotating-user"]
    assert idp.hits["/jwks"] == 1
    fetched_at = time.monotonic()

    # 2. the IdP rotates to k2; within the unknown-kid interval a k2 token is refused without
    #    a fetch (refresh on unknown kid is rate-limited per issuer)
    idp.jwks = {"keys": [_jwk(keys["k2"], "k2")]}
    r = get(port, "/t/two-early", tls_client, headers=_bearer(_jwt(keys["k2"], "k2")))
    _problem(r, 401, "invalid_credentials")
    assert 'error="invalid_token"' in r.header("www-authenticate")
    assert idp.hits["/jwks"] == 1

    # 3. once the interval has passed, the unknown kid triggers one refresh and k2 verifies
    time.sleep(max(0.0, fetched_at + JWKS_INTERVAL + 0.2 - time.monotonic()))
    r = get(port, "/t/two", tls_client, headers=_bearer(_jwt(keys["k2"], "k2")))
    assert r.status == 200, r.body
    assert idp.hits["/jwks"] == 2
    fetched_at = time.monotonic()
    # k1 was retired by the rotation: a fresh k1 token is refused (and costs no fetch)
    r = get(port, "/t/retired", tls_client, headers=_bearer(_jwt(keys["k1"], "k1")))
    _problem(r, 401, "invalid_credentials")
    assert idp.hits["/jwks"] == 2

    # 4. the IdP goes down: a known kid keeps working on the last good keys
    loop_thread.call(idp.down())
    try:
        r = get(port, "/t/stale", tls_client, headers=_bearer(_jwt(keys["k2"], "k2")))
        assert r.status == 200, r.body
        # an unknown kid makes the gateway try the IdP, which fails: 503 unavailable (the
        # token may be signed by a key rotated in meanwhile; "invalid" would be a lie)
        time.sleep(max(0.0, fetched_at + JWKS_INTERVAL + 0.2 - time.monotonic()))
        r = get(port, "/t/unknown-while-down", tls_client, headers=_bearer(_jwt(keys["k3"], "k3")))
        _problem(r, 503, "unavailable")
        failed_at = time.monotonic()
        # known kids are still served from the stale set after the failed fetch
        r = get(port, "/t/stale-again", tls_client, headers=_bearer(_jwt(keys["k2"], "k2")))
        assert r.status == 200, r.body
    finally:
        # 5. the IdP comes back having rotated k3 in
        idp.jwks = {"keys": [_jwk(keys["k2"], "k2"), _jwk(keys["k3"], "k3")]}
        loop_thread.call(idp.up())
    time.sleep(max(0.0, failed_at + JWKS_INTERVAL + 0.2 - time.monotonic()))
    r = get(port, "/t/recovered", tls_client, headers=_bearer(_jwt(keys["k3"], "k3")))
    assert r.status == 200, r.body
    assert idp.hits["/jwks"] == 3
    r = get(port, "/t/recovered-k2", tls_client, headers=_bearer(_jwt(keys["k2"], "k2")))
    assert r.status == 200, r.body


def test_unknown_kid_spray_costs_the_idp_at_most_one_fetch(gw, tls_client, idp, keys):
    """An attacker sending random kids cannot turn the gateway into a JWKS-fetching amplifier."""
    idp.jwks = {"keys": [_jwk(keys["k2"], "k2"), _jwk(keys["k3"], "k3")]}
    port = gw.ports["public"]
    before = idp.hits["/jwks"]
    for i in range(15):
        r = get(port, f"/t/spray-{i}", tls_client,
                headers=_bearer(_jwt(keys["stray"], f"spray-{secrets.token_hex(4)}")))
        _problem(r, 401, "invalid_credentials")
    assert idp.hits["/jwks"] - before <= 1


# ---------------------------------------------------------------- introspection (opaque tokens)
def _opaque(as_server, active: bool = True, **answer) -> str:
    tok = "opaque-" + secrets.token_urlsafe(24)
    if active:
        a = {"active": True, "sub": "svc-user", "scope": "reports:read", "exp": int(time.time()) + 300}
        a.update(answer)
        as_server.tokens[tok] = a
    return tok


def test_introspection_active_cached_inactive_and_outage(gw, tls_client, as_server, loop_thread, echo):
    port = gw.ports["public"]
    good = _opaque(as_server)
    base = as_server.hits["/introspect"]
    r = get(port, "/t/opaque-1", tls_client, headers=_bearer(good))
    assert r.status == 200, r.body
    fwd = _forwarded(r)
    assert fwd["x-fastgate-subject"] == ["svc-user"]
    assert fwd["x-fastgate-scopes"] == ["reports:read"]
    assert fwd["authorization"] == [f"Bearer {good}"]  # the bearer token goes on unchanged
    assert as_server.hits["/introspect"] == base + 1
    assert as_server.seen_tokens[-1] == good
    # positive cache: the second request does not reach the endpoint
    r = get(port, "/t/opaque-2", tls_client, headers=_bearer(good))
    assert r.status == 200, r.body
    assert as_server.hits["/introspect"] == base + 1

    # inactive -> 401 with the RFC 6750 challenge; and negatively cached for a while
    bad = _opaque(as_server, active=False)
    r = get(port, "/t/opaque-inactive-x1", tls_client, headers=_bearer(bad))
    _problem(r, 401, "invalid_credentials")
    www = r.header("www-authenticate")
    assert www.startswith("Bearer ") and 'error="invalid_token"' in www
    assert as_server.hits["/introspect"] == base + 2
    r = get(port, "/t/opaque-inactive-x2", tls_client, headers=_bearer(bad))
    _problem(r, 401, "invalid_credentials")
    assert as_server.hits["/introspect"] == base + 2

    # endpoint down: an uncached token fails closed; a cached one keeps working
    unseen = _opaque(as_server)
    loop_thread.call(as_server.down())
    try:
        r = get(port, "/t/opaque-down-x3", tls_client, headers=_bearer(unseen))
        _problem(r, 503, "unavailable")
        r = get(port, "/t/opaque-cached", tls_client, headers=_bearer(good))
        assert r.status == 200, r.body
    finally:
        loop_thread.call(as_server.up())
    r = get(port, "/t/opaque-back", tls_client, headers=_bearer(unseen))
    assert r.status == 200, r.body  # errors are not cached: the endpoint is asked again

    # refused requests never reached the upstream; no token ever reached the gateway's output
    _wait_seen(echo, "/opaque-back")
    for marker in ("opaque-inactive-x1", "opaque-inactive-x2", "opaque-down-x3"):
        assert not echo.seen(marker)
    out = _output(gw)
    for tok in (good, bad, unseen):
        assert tok not in out


def test_introspection_client_authenticates_with_the_configured_secret(gw, tls_client, as_server):
    """The gateway's Basic client credentials come from client_secret_env (IdpServer answers
    401 to any other, which the gateway reports as unavailable, never as a pass)."""
    tok = _opaque(as_server)
    r = get(gw.ports["public"], "/t/opaque-auth", tls_client, headers=_bearer(tok))
    assert r.status == 200, r.body
    assert as_server.seen_tokens[-1] == tok  # only recorded after the client auth matched


# ---------------------------------------------------------------- OPA
def _key(**more) -> dict:
    return {"X-API-Key": OPA_KEY, **more}


def test_opa_allow_and_deny(gw, tls_client, opa, echo):
    port = gw.ports["public"]
    r = get(port, "/opa/allowed/x", tls_client, headers=_key())
    assert r.status == 200, r.body
    marker = "denied-" + secrets.token_hex(4)
    r = get(port, f"/opa/{marker}", tls_client, headers=_key())
    _problem(r, 403, "forbidden")
    assert opa.inputs[-1]["rest_path"] == f"/{marker}"
    get(port, "/opa/allowed/sync", tls_client, headers=_key())
    _wait_seen(echo, "/allowed/sync")
    assert not echo.seen(marker)


def test_opa_down_fails_closed_or_open_as_configured(gw, tls_client, echo):
    port = gw.ports["public"]
    r = get(port, "/opa-down-deny/closed-x1", tls_client, headers=_key())
    _problem(r, 503, "unavailable")
    r = get(port, "/opa-down-allow/open-x1", tls_client, headers=_key())
    assert r.status == 200, r.body
    _wait_seen(echo, "/open-x1")
    assert not echo.seen("/closed-x1")


def test_opa_slower_than_timeout_is_unavailable(gw, tls_client, echo):
    t0 = time.monotonic()
    r = get(gw.ports["public"], "/opa-slow/slow-x1", tls_client, headers=_key())
    _problem(r, 503, "unavailable")
    assert time.monotonic() - t0 < 1.5  # the 200 ms timeout, not OPA's 2 s answer
    get(gw.ports["public"], "/opa/allowed/after-slow", tls_client, headers=_key())
    _wait_seen(echo, "/allowed/after-slow")
    assert not echo.seen("/slow-x1")


def test_opa_input_document_carries_no_credentials(gw, tls_client, opa):
    port = gw.ports["public"]
    before = len(opa.bodies)
    r = get(port, "/opa/inspect/7?token=QUERYSECRET1&page=2", tls_client, headers=_key(**{
        "Authorization": "Custom AUTHSECRET2",
        "Cookie": "sid=COOKIESECRET3",
        "Proxy-Authorization": "Basic UFJPWFlTRUNSRVQ0",
        "Referer": "https://app.example.com/cb?code=REFSECRET5",
        "X-Fastgate-Subject": "spoofed-admin",
        "X-Tenant": "acme",
    }))
    assert r.status == 200, r.body
    assert len(opa.bodies) == before + 1
    raw = opa.bodies[-1].decode()
    for secret in (OPA_KEY, "QUERYSECRET1", "AUTHSECRET2", "COOKIESECRET3", "UFJPWFlTRUNSRVQ0",
                   "REFSECRET5", "spoofed-admin"):
        assert secret not in raw, secret
    inp = json.loads(raw)["input"]
    headers = inp["headers"]
    for name in ("authorization", "cookie", "x-api-key", "proxy-authorization", "x-fastgate-subject"):
        assert name not in headers
    assert headers["x-tenant"] == "acme"
    assert headers["referer"] == "https://app.example.com/cb"
    assert inp["query"] == ["token", "page"]
    assert inp["method"] == "GET" and inp["path"] == "/opa/inspect/7" and inp["rest_path"] == "/inspect/7"
    assert inp["identity"]["method"] == "api_key"
    assert inp["identity"]["application"] == "opa-app"
    assert inp["identity"]["credential_id"] == "opa1"
    assert inp["client_ip"] == "127.0.0.1"
    assert inp["request_id"] == r.header("x-request-id")

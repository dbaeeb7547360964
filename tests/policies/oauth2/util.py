"""Shared fixtures for the oauth2 unit tests: real keys, real signed tokens, a real IdP server,
and a harness that builds the Authenticator from config dataclasses inside a uvloop loop."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from pathlib import Path

import jwt
import orjson
import pytest
import uvloop
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from fastgate import errors
from fastgate.config.model import (
    Api,
    Application,
    Config,
    Introspection,
    Issuer,
    Upstream,
    UpstreamUrl,
)
from fastgate.identity import Found
from fastgate.policies.oauth2 import build
from fastgate.policies.shared import SharedState

from .servers import IdpServer

ISS = "https://idp.test/"
AUD = "orders-api"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_KEY_2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
HS_SECRET = "x" * 40


def jwk(private_key, kid: str | None, **extra) -> dict:
    pub = private_key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        d = RSAAlgorithm.to_jwk(pub, as_dict=True)
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        d = ECAlgorithm.to_jwk(pub, as_dict=True)
    else:
        d = OKPAlgorithm.to_jwk(pub, as_dict=True)
    if kid is not None:
        d["kid"] = kid
    d.update(extra)
    return d


def claims(**over) -> dict:
    now = int(time.time())
    c = {"iss": ISS, "aud": AUD, "sub": "alice", "exp": now + 600, "iat": now, "nbf": now - 1,
         "jti": "jti-" + base64.urlsafe_b64encode(hashlib.sha256(repr(over).encode()).digest()[:9]).decode(),
         "scope": "orders:read orders:write", "roles": ["teacher"]}
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def token(key=RSA_KEY, alg: str = "RS256", kid: str | None = "rsa1", headers: dict | None = None,
          **over) -> str:
    h = dict(headers or {})
    if kid is not None:
        h["kid"] = kid
    return jwt.encode(claims(**over), key, algorithm=alg, headers=h)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: dict, payload: dict, sign=None) -> str:
    """Hand-made compact JWS, for what pyjwt will not produce (alg none, HS with a PEM)."""
    si = b64(orjson.dumps(header)) + "." + b64(orjson.dumps(payload))
    return si + "." + (b64(sign(si.encode())) if sign else "")


def hs_sign(secret: bytes):
    return lambda msg: hmac.new(secret, msg, hashlib.sha256).digest()


class Req:
    def __init__(self, authorization: str | list[str] | None = None) -> None:
        self.method = b"GET"
        self.target = b"/orders/v1/items"
        vals = [] if authorization is None else (
            [authorization] if isinstance(authorization, str) else authorization)
        self.headers = [(b"host", b"gw.test")] + [(b"authorization", v.encode()) for v in vals]


def bearer(tok: str) -> Req:
    return Req("Bearer " + tok)


class Clock:
    """A settable clock (starts at the real time so pyjwt's own checks agree)."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def run(coro):
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


API = Api(name="orders", base_path="/orders/v1",
          upstream=Upstream(urls=(UpstreamUrl("http", "127.0.0.1", 9),)), authentication=("oauth2",))
APPS = (Application(name="shop-frontend", client_id="shop"), Application(name="reports", client_id="rep"))


class Harness:
    """An IdP server + SharedState + a built authenticator; `async with Harness() as h`."""

    def __init__(self, *, algorithms=("RS256", "ES256", "EdDSA"), audiences=(AUD,), leeway=30.0,
                 jwks: dict | None = None, introspection: bool = False, extra_issuers=(),
                 scope_claim: str = "scope", roles_claim: str = "roles", cache_ttl: float = 60.0,
                 timeout: float = 2.0, jwks_file: Path | None = None) -> None:
        self.server = IdpServer()
        self.clock = Clock()
        self.mono = Clock(1000.0)
        self.jwks = jwks if jwks is not None else {"keys": [jwk(RSA_KEY, "rsa1"), jwk(EC_KEY, "ec1"),
                                                             jwk(ED_KEY, "ed1")]}
        self.kw = dict(algorithms=algorithms, audiences=audiences, leeway=leeway,
                       scope_claim=scope_claim, roles_claim=roles_claim, jwks_file=jwks_file)
        self.introspection = introspection
        self.extra_issuers = extra_issuers
        self.cache_ttl, self.timeout = cache_ttl, timeout

    def config(self, issuers=None) -> Config:
        kw = dict(self.kw)
        jwks_file = kw.pop("jwks_file")
        iss = Issuer(name="idp", issuer=ISS, jwks_uri=None if jwks_file else self.server.url("/jwks"),
                     jwks_file=jwks_file, **kw)
        intro = ()
        if self.introspection:
            intro = (Introspection(name="as", url=self.server.url("/introspect"), client_id="gateway",
                                   client_secret_env="OAUTH2_TEST_INTROSPECTION_SECRET",
                                   cache_ttl=self.cache_ttl, timeout=self.timeout),)
        return Config(source=Path("/dev/null"), listeners=(), applications=APPS,
                      issuers=(iss, *self.extra_issuers) if issuers is None else issuers,
                      introspection=intro)

    def build(self, config: Config | None = None):
        return build(API, config or self.config(), self.shared, clock=self.clock, monotonic=self.mono)

    async def __aenter__(self) -> Harness:
        import os
        os.environ["OAUTH2_TEST_INTROSPECTION_SECRET"] = "s3cret"
        os.environ["OAUTH2_TEST_HS_SECRET"] = HS_SECRET
        self.server.jwks = self.jwks
        await self.server.start()
        self.shared = SharedState()
        self.auth = self.build()
        return self

    async def __aexit__(self, *exc) -> None:
        self.shared.close()
        await self.server.down()

    async def verify(self, tok_or_req):
        req = tok_or_req if isinstance(tok_or_req, Req) else bearer(tok_or_req)
        found = self.auth.find(None, req)
        assert isinstance(found, Found)
        return await self.auth.verify(None, req, found)

    def fetches(self) -> int:
        return self.server.hits["/jwks"]


CHALLENGE_HDR = [("WWW-Authenticate", 'Bearer realm="fastgate", error="invalid_token"')]


async def refused(h: Harness, tok_or_req, detail: str = "invalid token") -> errors.InvalidCredentials:
    """Assert the contract's 401 shape (CONTRACT.md) and that the token is not in the error."""
    with pytest.raises(errors.InvalidCredentials) as ei:
        await h.verify(tok_or_req)
    e = ei.value
    assert e.status == 401 and e.code == "invalid_credentials"
    assert e.headers == CHALLENGE_HDR
    assert e.detail == detail
    if isinstance(tok_or_req, str):
        assert tok_or_req not in str(e.log_detail) and tok_or_req not in str(e)
    return e

"""JWT bearer tokens through the oauth2 Authenticator: good tokens of every supported family,
and each way a token must fail (issue 4), with real keys and a real JWKS endpoint."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization

from fastgate.config.model import Issuer
from fastgate.policies.oauth2 import build
from fastgate.policies.oauth2.policy import MALFORMED
from fastgate.policies.shared import SharedState

from .util import (
    API,
    AUD,
    EC_KEY,
    ED_KEY,
    HS_SECRET,
    ISS,
    RSA_KEY,
    RSA_KEY_2,
    Harness,
    Req,
    b64,
    bearer,
    claims,
    hs_sign,
    jwk,
    raw_token,
    refused,
    run,
    token,
)


# ---------------------------------------------------------------- find / challenge
def test_find_and_challenge():
    async def body():
        async with Harness() as h:
            a = h.auth
            assert a.name == "oauth2"
            assert a.challenge() == 'Bearer realm="fastgate"'
            assert a.find(None, Req()) is None
            assert a.find(None, Req("Basic YWxpY2U6cHc=")) is None
            assert a.find(None, Req("Bearerabc")) is None
            f = a.find(None, Req("bEaReR  abc.def-_~+/=="))
            assert f.value == "abc.def-_~+/==" and f.strip_headers == () and f.strip_query is None
            for bad in ("Bearer", "Bearer ", "Bearer a b", "Bearer a,b", "Bearer\tabc",
                        "Bearer " + "a" * 9000, "Bearer é"):
                assert a.find(None, Req(bad)).value is MALFORMED, bad
            two = Req(["Bearer abc", "Bearer abc"])
            assert a.find(None, two).value is MALFORMED
            assert a.find(None, Req(["Basic eA==", "Bearer abc"])).value is MALFORMED
            assert a.find(None, Req(["Basic eA==", "Basic eQ=="])) is None  # not ours to judge
            await refused(h, two)
            await refused(h, Req("Bearer"))
    run(body())


# ---------------------------------------------------------------- good tokens
def test_good_rs256_identity():
    async def body():
        async with Harness() as h:
            tok = token(azp="shop", roles=["teacher", "admin"])
            ident = await h.verify(tok)
            assert ident.method == "oauth2"
            assert ident.subject == "alice"
            assert ident.application == "shop-frontend"
            assert ident.scopes == {"orders:read", "orders:write"}
            assert ident.roles == {"teacher", "admin"}
            assert ident.token == tok
            assert ident.claims["iss"] == ISS and ident.claims["aud"] == AUD
            assert ident.expires_at == float(ident.claims["exp"])
            assert ident.credential_id == ident.claims["jti"]
            assert h.fetches() == 1
    run(body())


@pytest.mark.parametrize("key,alg,kid", [(RSA_KEY, "RS256", "rsa1"), (EC_KEY, "ES256", "ec1"),
                                         (ED_KEY, "EdDSA", "ed1"), (RSA_KEY, "PS256", "rsa1")])
def test_good_asymmetric_families(key, alg, kid):
    async def body():
        async with Harness(algorithms=("RS256", "PS256", "ES256", "EdDSA")) as h:
            ident = await h.verify(token(key, alg, kid, sub=f"user-{alg}"))
            assert ident.subject == f"user-{alg}"
    run(body())


def hs_issuer(**kw) -> Issuer:
    return Issuer(name="hs", issuer="https://hs.test/", algorithms=kw.pop("algorithms", ("HS256",)),
                  audiences=(AUD,), secret_env="OAUTH2_TEST_HS_SECRET", **kw)


def test_good_hs256_from_secret_env():
    async def body():
        async with Harness(extra_issuers=(hs_issuer(),)) as h:
            tok = jwt.encode(claims(iss="https://hs.test/"), HS_SECRET, algorithm="HS256")
            assert (await h.verify(tok)).subject == "alice"
            wrong = jwt.encode(claims(iss="https://hs.test/"), "y" * 40, algorithm="HS256")
            await refused(h, wrong)
    run(body())


def test_token_without_kid_is_fine_with_a_single_key_only():
    async def body():
        async with Harness(jwks={"keys": [jwk(RSA_KEY, None)]}) as h:
            await h.verify(token(kid=None))
        async with Harness() as h:  # three keys: kid required
            e = await refused(h, token(kid=None))
            assert "no kid" in e.log_detail
    run(body())


# ---------------------------------------------------------------- claim failures
def test_expired_not_yet_valid_and_leeway():
    async def body():
        async with Harness(leeway=30) as h:
            now = int(time.time())
            await refused(h, token(exp=now - 31), "token expired")
            await h.verify(token(exp=now - 10))  # inside the leeway
            await refused(h, token(nbf=now + 120), "token not yet valid")
            await refused(h, token(iat=now + 120), "token not yet valid")
            await h.verify(token(nbf=now + 10, iat=now + 10))
            await refused(h, token(exp=None))  # exp is required
            await refused(h, token(exp=str(now + 600)))  # NumericDate must be a number
            await refused(h, token(iat="soon"))
    run(body())


def test_wrong_issuer_and_audience():
    async def body():
        async with Harness() as h:
            await refused(h, token(iss="https://evil.test/"))
            await refused(h, token(iss=None))
            await refused(h, token(iss=ISS.rstrip("/")))  # exact match only
            await refused(h, token(aud="other-api"), "invalid audience")
            await refused(h, token(aud=None), "invalid audience")
            await h.verify(token(aud=["other-api", AUD]))  # any configured audience
            assert h.fetches() == 1  # an unknown issuer never costs a JWKS fetch
    run(body())


def test_issuer_without_audiences_refuses_tokens_that_name_one():
    async def body():
        async with Harness(audiences=()) as h:
            await h.verify(token(aud=None))
            await refused(h, token(aud="orders-api"), "invalid audience")
    run(body())


def test_scopes_and_roles_shapes():
    async def body():
        async with Harness(scope_claim="scp", roles_claim="realm_access.roles") as h:
            ident = await h.verify(token(scp=["a", "b", 3], realm_access={"roles": "r1 r2"}))
            assert ident.scopes == {"a", "b"} and ident.roles == {"r1", "r2"}
            ident = await h.verify(token(scp="x y", realm_access=None))
            assert ident.scopes == {"x", "y"} and ident.roles == frozenset()
        async with Harness() as h:
            ident = await h.verify(token(roles="student", scope=None))
            assert ident.roles == {"student"} and ident.scopes == frozenset()
    run(body())


def test_application_from_client_id_or_azp():
    async def body():
        async with Harness() as h:
            assert (await h.verify(token(client_id="rep"))).application == "reports"
            assert (await h.verify(token(azp="shop"))).application == "shop-frontend"
            assert (await h.verify(token(client_id="nobody", azp="rep"))).application == "reports"
            assert (await h.verify(token(azp="unknown"))).application is None
            assert (await h.verify(token())).application is None
    run(body())


# ---------------------------------------------------------------- signature / header attacks
def test_tampered_signature_and_payload():
    async def body():
        async with Harness() as h:
            tok = token()
            head, payload, sig = tok.split(".")
            flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
            await refused(h, f"{head}.{payload}.{flipped}")
            evil = b64(jwt.utils.base64url_decode(payload).replace(b'"alice"', b'"admin"'))
            await refused(h, f"{head}.{evil}.{sig}")
            await refused(h, f"{head}.{payload}.")
            await refused(h, "not.a.jwt")
            await refused(h, f"{head}.{payload}")  # one dot: not a JWT, no introspection
            # right kid, signed by another RSA key
            await refused(h, token(RSA_KEY_2, "RS256", "rsa1"))
    run(body())


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_refused(alg):
    async def body():
        async with Harness() as h:
            e = await refused(h, raw_token({"alg": alg, "kid": "rsa1", "typ": "JWT"}, claims()))
            assert "none" in e.log_detail
    run(body())


def test_hs256_with_rsa_public_pem_is_refused():
    """Alg confusion (RFC 8725 §2.1): HMAC keyed with the issuer's public key."""
    pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    forged = raw_token({"alg": "HS256", "kid": "rsa1", "typ": "JWT"}, claims(), hs_sign(pem))

    async def body():
        async with Harness(algorithms=("RS256",)) as h:
            e = await refused(h, forged)
            assert "not allowed" in e.log_detail
        # Even an issuer that allows HS256 verifies HS* only with its secret_env secret.
        os.environ["OAUTH2_TEST_HS_SECRET"] = HS_SECRET
        both = Issuer(name="idp", issuer=ISS, algorithms=("RS256", "HS256"), audiences=(AUD,),
                      secret_env="OAUTH2_TEST_HS_SECRET", jwks_uri="http://127.0.0.1:9/jwks")
        async with Harness() as h:
            h.auth = h.build(h.config(issuers=(both,)))
            await refused(h, forged)
    run(body())


@pytest.mark.parametrize("hdr", ["jwk", "jku", "x5u", "x5c"])
def test_tokens_that_bring_their_own_key_are_refused(hdr):
    values = {"jwk": jwk(RSA_KEY, "rsa1"), "jku": "https://evil.test/jwks", "x5u": "https://evil.test/c",
              "x5c": ["MIIB"]}

    async def body():
        async with Harness() as h:
            e = await refused(h, token(headers={hdr: values[hdr]}))
            assert hdr in e.log_detail
            assert h.fetches() == 0  # refused before any key lookup
    run(body())


def test_alg_must_fit_key_family():
    async def body():
        # ES256 token whose kid names the RSA key; RS256 token whose kid names the EC key
        async with Harness() as h:
            await refused(h, token(EC_KEY, "ES256", "rsa1"))
            await refused(h, token(RSA_KEY, "RS256", "ec1"))
            await refused(h, token(RSA_KEY, "RS384", "rsa1"))  # not in the issuer's algorithms
    run(body())


# ---------------------------------------------------------------- cache and revocation
def test_cache_hit_skips_verification_and_bounds():
    async def body():
        async with Harness() as h:
            tok = token(exp=int(time.time()) + 3600)
            for _ in range(5):
                await h.verify(tok)
            assert h.auth.verifications == 1
            h.clock.advance(301)  # never cached longer than 5 minutes
            await h.verify(tok)
            assert h.auth.verifications == 2
            short = token(exp=int(h.clock.now) + 100, sub="bob")  # exp by the fake clock
            await h.verify(short)
            h.clock.advance(99)
            await h.verify(short)
            assert h.auth.verifications == 3
            h.clock.advance(2)  # past exp: not served from the cache
            await h.verify(short)  # (pyjwt's real clock still accepts it)
            assert h.auth.verifications == 4
            # a hot token is served as the same frozen Identity (policies only read it)
            a, b = await h.verify(tok), await h.verify(tok)
            assert a is b
            with pytest.raises(dataclasses.FrozenInstanceError):
                a.subject = "mallory"  # type: ignore[misc]
    run(body())


def test_cache_is_lru_bounded():
    async def body():
        async with Harness() as h:
            h.auth.cache.max_entries = 3
            h.auth.hot_entries = 3  # the per-load hot set is bounded the same way
            toks = [token(sub=f"u{i}") for i in range(4)]
            for t in toks:
                await h.verify(t)
            assert len(h.auth.cache) == 3
            await h.verify(toks[3])
            assert h.auth.verifications == 4
            await h.verify(toks[0])  # evicted: verified again
            assert h.auth.verifications == 5
    run(body())


def test_revoked_jti_refused_also_on_cache_hit():
    async def body():
        async with Harness() as h:
            tok = token(jti="t-123")
            await h.verify(tok)
            h.auth.revocations.revoke("t-123", time.time() + 600)
            await refused(h, tok, "token revoked")
            assert h.auth.verifications == 1  # the refusal came from the cached entry
            h.auth = h.build()  # another API (or a reload) on the same shared state sees it too
            await refused(h, tok, "token revoked")
    run(body())


def test_reload_keeps_cache_for_unchanged_issuer_and_drops_it_for_changed():
    async def body():
        async with Harness() as h:
            tok = token()
            await h.verify(tok)
            h.auth = h.build()  # reload, same issuer config
            await h.verify(tok)
            assert h.auth.verifications == 0  # new authenticator; the shared cache answered
            assert h.fetches() == 1  # and the shared JWKS cache too
            changed = Issuer(name="idp", issuer=ISS, algorithms=("RS256",), audiences=("other",),
                             jwks_uri=h.server.url("/jwks"))
            h.auth = h.build(h.config(issuers=(changed,)))
            await refused(h, tok, "invalid audience")  # re-verified under the new config
    run(body())


def test_concurrent_first_requests_share_one_jwks_fetch():
    async def body():
        async with Harness() as h:
            h.server.delay = 0.05
            toks = [token(sub=f"u{i}") for i in range(20)]
            idents = await asyncio.gather(*(h.verify(t) for t in toks))
            assert [i.subject for i in idents] == [f"u{i}" for i in range(20)]
            assert h.fetches() == 1
    run(body())


# ---------------------------------------------------------------- build-time errors
def test_build_refuses_bad_issuer_config(tmp_path):
    shared = SharedState()
    os.environ.pop("OAUTH2_TEST_MISSING", None)
    h = Harness()
    cases = [
        (Issuer(name="a", issuer="x", algorithms=("HS256",), secret_env="OAUTH2_TEST_MISSING"),
         "issuers[a].secret_env: environment variable OAUTH2_TEST_MISSING is not set"),
        (Issuer(name="b", issuer="x", algorithms=("HS256",)), "issuers[b].secret_env: required"),
        (Issuer(name="c", issuer="x", algorithms=("RS256",)), "issuers[c]: needs jwks_uri"),
        (Issuer(name="d", issuer="x", algorithms=("none",), jwks_uri="http://x/"), '"none" is never'),
        (Issuer(name="e", issuer="x", algorithms=("RS256",), jwks_file=tmp_path / "nope.json"),
         "issuers[e].jwks_file:"),
    ]
    os.environ["OAUTH2_TEST_SHORT"] = "short"
    cases.append((Issuer(name="f", issuer="x", algorithms=("HS256",), secret_env="OAUTH2_TEST_SHORT"),
                  "must hold at least 32 bytes"))
    (tmp_path / "enc.json").write_bytes(orjson.dumps({"keys": [jwk(RSA_KEY, "k", use="enc")]}))
    cases.append((Issuer(name="g", issuer="x", algorithms=("RS256",), jwks_file=tmp_path / "enc.json"),
                  "no key usable"))
    dup = Issuer(name="h2", issuer="x", algorithms=("RS256",), jwks_uri="http://x/")
    cases.append(((Issuer(name="h1", issuer="x", algorithms=("RS256",), jwks_uri="http://y/"), dup),
                  "issuers[h2].issuer: 'x' is configured twice"))
    for iss, msg in cases:
        with pytest.raises(ValueError) as ei:
            build(API, h.config(issuers=iss if isinstance(iss, tuple) else (iss,)), shared)
        assert msg in str(ei.value), (msg, str(ei.value))
    shared.close()


def test_jwks_file_issuer(tmp_path):
    path = tmp_path / "jwks.json"
    path.write_bytes(orjson.dumps({"keys": [jwk(EC_KEY, "ec1")]}))

    async def body():
        async with Harness(jwks_file=path, algorithms=("ES256",)) as h:
            await h.verify(token(EC_KEY, "ES256", "ec1"))
            await h.verify(token(EC_KEY, "ES256", None))  # the only key
            await refused(h, token(EC_KEY, "ES256", "other"))
            assert h.fetches() == 0
    run(body())


def test_bearer_helper_roundtrip():
    assert bearer("abc").headers[-1] == (b"authorization", b"Bearer abc")

"""JWK Sets: parsing rules (which keys are usable for which algorithms), Cache-Control, key
rotation through an unknown kid (at most one refresh per 30 s), and IdP outages (stale keys
keep working; what cannot be known answers 503)."""

from __future__ import annotations

import asyncio
import time

import pytest
from jwt import PyJWK

from fastgate import errors
from fastgate.policies.oauth2.jwks import (
    DEFAULT_MAX_AGE,
    MAX_MAX_AGE,
    MIN_MAX_AGE,
    KeySet,
    UnknownKey,
    parse_max_age,
)

from .util import EC_KEY, ED_KEY, RSA_KEY, RSA_KEY_2, Harness, jwk, refused, run, token


# ---------------------------------------------------------------- KeySet
def test_keyset_binds_keys_to_configured_algorithms_only():
    doc = {"keys": [
        jwk(RSA_KEY, "rsa"),                      # RSA: RS256 and PS256 (both configured)
        jwk(RSA_KEY_2, "rsa-rs384", alg="RS384"),  # names an alg the issuer does not allow
        jwk(EC_KEY, "ec"), jwk(ED_KEY, "ed"),
        jwk(RSA_KEY, "enc", use="enc"),
        jwk(RSA_KEY, "ops", key_ops=["encrypt"]),
        {"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "kid": "hmac"},
        {**jwk(EC_KEY, "priv"), "d": "AAAA"},
        "not-an-object", {"kty": "RSA", "kid": "broken", "n": "AQAB", "e": "AQAB"},
        {**jwk(EC_KEY, "ec"), "kid": "ec"},       # duplicate kid
    ]}
    ks = KeySet.from_jwks(doc, ("RS256", "PS256", "ES256"))
    assert ks.count == 2 and "rsa" in ks and "ec" in ks
    assert isinstance(ks.select("rsa", "RS256"), PyJWK)
    assert ks.select("rsa", "PS256").algorithm_name == "PS256"
    assert ks.select("ec", "ES256").algorithm_name == "ES256"
    with pytest.raises(UnknownKey):
        ks.select("ec", "RS256")  # key type does not fit the algorithm
    assert ks.select("ed", "ES256") is None  # EdDSA not configured: as if absent
    assert ks.select("hmac", "RS256") is None
    with pytest.raises(UnknownKey):
        ks.select(None, "RS256")  # two keys: kid required
    reasons = " | ".join(ks.skipped)
    for why in ("use='enc'", "key_ops", "private or symmetric", "not an object", "duplicate kid"):
        assert why in reasons, why


def test_keyset_rejects_weak_rsa_and_wrong_curves():
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    p384 = ec.generate_private_key(ec.SECP384R1())
    ks = KeySet.from_jwks({"keys": [jwk(weak, "weak"), jwk(p384, "p384")]}, ("RS256", "ES256", "ES384"))
    assert "weak" not in ks
    assert ks.select("p384", "ES384").algorithm_name == "ES384"
    with pytest.raises(UnknownKey):
        ks.select("p384", "ES256")  # ES256 needs P-256
    with pytest.raises(ValueError):
        KeySet.from_jwks({"nokeys": []}, ("RS256",))


def test_parse_max_age():
    assert parse_max_age(None) == DEFAULT_MAX_AGE
    assert parse_max_age(b"public, max-age=3600") == 3600
    assert parse_max_age(b"max-age=5") == MIN_MAX_AGE
    assert parse_max_age(b"max-age=99999999") == MAX_MAX_AGE
    assert parse_max_age(b"no-cache") == MIN_MAX_AGE
    assert parse_max_age(b"s-maxage=10") == DEFAULT_MAX_AGE
    assert parse_max_age(b"private") == DEFAULT_MAX_AGE


# ---------------------------------------------------------------- rotation
def test_unknown_kid_refreshes_once_then_is_rate_limited():
    async def body():
        async with Harness(jwks={"keys": [jwk(RSA_KEY, "k1")]}) as h:
            await h.verify(token(RSA_KEY, "RS256", "k1"))
            assert h.fetches() == 1
            h.mono.advance(31)
            h.server.jwks = {"keys": [jwk(RSA_KEY, "k1"), jwk(RSA_KEY_2, "k2")]}  # IdP rotates
            await h.verify(token(RSA_KEY_2, "RS256", "k2"))
            assert h.fetches() == 2
            # a second unknown kid within 30 s: refused without another fetch
            h.mono.advance(10)
            await refused(h, token(RSA_KEY_2, "RS256", "k3"))
            await refused(h, token(RSA_KEY_2, "RS256", "k4"))
            assert h.fetches() == 2
            h.mono.advance(21)  # 31 s after the last fetch: one more is allowed
            await refused(h, token(RSA_KEY_2, "RS256", "k5"))
            assert h.fetches() == 3
            await h.verify(token(RSA_KEY, "RS256", "k1", sub="again"))  # known kids need no fetch
            assert h.fetches() == 3
    run(body())


def test_unknown_kid_right_after_first_fetch_does_not_refetch():
    async def body():
        async with Harness() as h:
            await h.verify(token())
            await refused(h, token(kid="nope"))
            assert h.fetches() == 1
    run(body())


def test_removed_key_stops_verifying_after_refresh():
    async def body():
        async with Harness(jwks={"keys": [jwk(RSA_KEY, "k1"), jwk(RSA_KEY_2, "k2")]}) as h:
            await h.verify(token(RSA_KEY, "RS256", "k1"))
            h.server.jwks = {"keys": [jwk(RSA_KEY_2, "k2")]}
            h.mono.advance(DEFAULT_MAX_AGE + 1)  # cached set expires
            await refused(h, token(RSA_KEY, "RS256", "k1", sub="new"))
            assert h.fetches() == 2
    run(body())


def test_cache_control_max_age_is_honoured():
    async def body():
        async with Harness() as h:
            h.server.jwks_headers = [(b"cache-control", b"public, max-age=120")]
            await h.verify(token(sub="a"))
            h.mono.advance(119)
            await h.verify(token(sub="b"))
            assert h.fetches() == 1
            h.mono.advance(2)
            await h.verify(token(sub="c"))
            assert h.fetches() == 2
    run(body())


# ---------------------------------------------------------------- outages
def test_idp_down_stale_keys_keep_working():
    async def body():
        async with Harness() as h:
            await h.verify(token(sub="before"))
            await h.server.down()
            h.mono.advance(DEFAULT_MAX_AGE + 1)  # the set is stale; the refetch fails
            ident = await h.verify(token(EC_KEY, "ES256", "ec1", sub="during"))
            assert ident.subject == "during"
            attempts = h.auth.jwt._by_iss["https://idp.test/"].keys.fetches
            assert attempts == 2
            # requests during the outage do not hammer the IdP: retried after RETRY_AFTER_FAILURE
            await h.verify(token(sub="during-2"))
            assert h.auth.jwt._by_iss["https://idp.test/"].keys.fetches == 2
            # an unknown kid while the IdP is down cannot be judged: 503, not 401
            h.mono.advance(31)
            with pytest.raises(errors.Unavailable) as ei:
                await h.verify(token(RSA_KEY_2, "RS256", "rotated"))
            assert ei.value.status == 503 and ei.value.code == "unavailable"
            await h.server.up()
            h.server.jwks = {"keys": [jwk(RSA_KEY, "rsa1"), jwk(RSA_KEY_2, "rotated")]}
            h.mono.advance(31)
            assert (await h.verify(token(RSA_KEY_2, "RS256", "rotated"))).subject == "alice"
    run(body())


def test_idp_down_at_first_use_is_503_then_recovers():
    async def body():
        async with Harness() as h:
            await h.server.down()
            with pytest.raises(errors.Unavailable):
                await h.verify(token())
            await h.server.up()
            with pytest.raises(errors.Unavailable):  # retried only after RETRY_AFTER_FAILURE
                await h.verify(token())
            h.mono.advance(6)
            await h.verify(token())
    run(body())


@pytest.mark.parametrize("status", [500, 404])
def test_idp_error_status_and_garbage_keep_the_last_good_set(status):
    async def body():
        async with Harness() as h:
            await h.verify(token(sub="a"))
            h.server.status = status
            h.mono.advance(DEFAULT_MAX_AGE + 1)
            await h.verify(token(sub="b"))
            h.server.status = 200
            h.server.jwks = {"keys": []}  # an empty set is not believed either
            h.mono.advance(DEFAULT_MAX_AGE + 1)
            await h.verify(token(sub="c"))
            assert h.fetches() == 3
    run(body())


def test_slow_idp_times_out_and_stale_keys_serve():
    async def body():
        async with Harness() as h:
            await h.verify(token(sub="a"))
            h.server.delay = 3.0  # > FETCH_TIMEOUT (2 s)
            h.mono.advance(DEFAULT_MAX_AGE + 1)
            t0 = time.monotonic()
            results = await asyncio.gather(*(h.verify(token(sub=f"s{i}")) for i in range(5)))
            assert 1.5 < time.monotonic() - t0 < 2.9
            assert len(results) == 5 and h.fetches() == 2  # five waiters, one fetch
    run(body())


def test_warm_prefetches():
    async def body():
        async with Harness() as h:
            await h.auth.warm()
            assert h.fetches() == 1
            await h.verify(token())
            assert h.fetches() == 1
    run(body())

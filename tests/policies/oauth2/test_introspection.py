"""Opaque tokens through RFC 7662 introspection against a real endpoint: active/inactive/expired,
client authentication, positive and negative caches, single-flight, fail-closed outages."""

from __future__ import annotations

import asyncio
import time

import pytest

from fastgate import errors
from fastgate.policies.oauth2.introspection import NEGATIVE_TTL, basic_auth

from .util import Harness, refused, run

TOKEN = "opaque-AbC123_~+/tok"


def active(**over) -> dict:
    d = {"active": True, "sub": "carol", "client_id": "shop", "scope": "orders:read orders:write",
         "exp": int(time.time()) + 600, "token_type": "Bearer", "jti": "op-1"}
    d.update(over)
    return {k: v for k, v in d.items() if v is not None}


def test_active_token_identity_and_positive_cache():
    async def body():
        async with Harness(introspection=True) as h:
            h.server.tokens[TOKEN] = active()
            ident = await h.verify(TOKEN)
            assert ident.method == "oauth2" and ident.subject == "carol"
            assert ident.application == "shop-frontend"
            assert ident.scopes == {"orders:read", "orders:write"}
            assert ident.token == TOKEN and ident.credential_id == "op-1"
            assert ident.expires_at == float(h.server.tokens[TOKEN]["exp"])
            assert h.server.seen_tokens == [TOKEN]  # sent in the form body, with client auth
            for _ in range(3):
                await h.verify(TOKEN)
            assert h.server.hits["/introspect"] == 1
            h.clock.advance(61)  # cache_ttl 60 s
            await h.verify(TOKEN)
            assert h.server.hits["/introspect"] == 2
    run(body())


def test_positive_cache_never_outlives_exp():
    async def body():
        async with Harness(introspection=True, cache_ttl=300) as h:
            h.server.tokens[TOKEN] = active(exp=int(h.clock.now) + 20)
            await h.verify(TOKEN)
            h.clock.advance(21)
            await refused(h, TOKEN, "token expired")  # asked again; the AS still says active but exp passed
            assert h.server.hits["/introspect"] == 2
    run(body())


def test_username_when_no_sub_and_unknown_client():
    async def body():
        async with Harness(introspection=True) as h:
            h.server.tokens[TOKEN] = active(sub=None, username="dave", client_id="nobody", exp=None)
            ident = await h.verify(TOKEN)
            assert ident.subject == "dave" and ident.application is None and ident.expires_at is None
    run(body())


@pytest.mark.parametrize("answer,detail", [
    ({"active": False}, "invalid token"),
    ({"active": "true"}, "invalid token"),  # RFC 7662 §2.2: the boolean true, nothing else
    ({"sub": "x"}, "invalid token"),
    ("expired", "token expired"),
    ({"active": True, "token_type": "refresh_token"}, "invalid token"),
    ({"active": True, "exp": "tomorrow"}, "invalid token"),
])
def test_inactive_answers(answer, detail):
    async def body():
        async with Harness(introspection=True) as h:
            h.server.tokens[TOKEN] = active(exp=int(time.time()) - 1) if answer == "expired" else answer
            await refused(h, TOKEN, detail)
    run(body())


def test_negative_cache():
    async def body():
        async with Harness(introspection=True) as h:
            await refused(h, TOKEN)
            await refused(h, TOKEN)
            assert h.server.hits["/introspect"] == 1
            h.server.tokens[TOKEN] = active()
            h.clock.advance(NEGATIVE_TTL + 0.1)
            assert (await h.verify(TOKEN)).subject == "carol"
            assert h.server.hits["/introspect"] == 2
    run(body())


def test_single_flight():
    async def body():
        async with Harness(introspection=True) as h:
            h.server.tokens[TOKEN] = active()
            h.server.delay = 0.1
            idents = await asyncio.gather(*(h.verify(TOKEN) for _ in range(50)))
            assert {i.subject for i in idents} == {"carol"}
            assert h.server.hits["/introspect"] == 1
            # inactive answers are shared the same way
            other = "other-opaque-token"
            results = await asyncio.gather(*(h.verify(other) for _ in range(10)), return_exceptions=True)
            assert all(isinstance(r, errors.InvalidCredentials) for r in results)
            assert h.server.hits["/introspect"] == 2
    run(body())


def test_cancelled_waiter_does_not_cancel_the_shared_call():
    async def body():
        async with Harness(introspection=True) as h:
            h.server.tokens[TOKEN] = active()
            h.server.delay = 0.2
            first = asyncio.ensure_future(h.verify(TOKEN))
            await asyncio.sleep(0.05)
            second = asyncio.ensure_future(h.verify(TOKEN))
            await asyncio.sleep(0.01)
            first.cancel()
            assert (await second).subject == "carol"
            assert h.server.hits["/introspect"] == 1
    run(body())


def test_endpoint_down_is_503_fail_closed():
    async def body():
        async with Harness(introspection=True) as h:
            h.server.tokens[TOKEN] = active()
            await h.server.down()
            with pytest.raises(errors.Unavailable) as ei:
                await h.verify(TOKEN)
            assert ei.value.status == 503 and ei.value.code == "unavailable"
            assert TOKEN not in str(ei.value.log_detail)
            await h.server.up()
            assert (await h.verify(TOKEN)).subject == "carol"  # outages are not negatively cached
    run(body())


@pytest.mark.parametrize("status", [500, 503, 400])
def test_error_status_is_503(status):
    async def body():
        async with Harness(introspection=True) as h:
            h.server.status = status
            with pytest.raises(errors.Unavailable):
                await h.verify(TOKEN)
    run(body())


def test_wrong_client_secret_is_503_not_401():
    async def body():
        async with Harness(introspection=True) as h:
            h.server.expected_auth = basic_auth("gateway", "another")
            with pytest.raises(errors.Unavailable) as ei:
                await h.verify(TOKEN)
            assert "HTTP 401" in ei.value.log_detail
    run(body())


def test_slow_endpoint_times_out():
    async def body():
        async with Harness(introspection=True, timeout=0.3) as h:
            h.server.tokens[TOKEN] = active()
            h.server.delay = 2.0
            t0 = time.monotonic()
            results = await asyncio.gather(*(h.verify(TOKEN) for _ in range(5)), return_exceptions=True)
            assert time.monotonic() - t0 < 1.0
            assert all(isinstance(r, errors.Unavailable) for r in results)
            assert h.server.hits["/introspect"] == 1
    run(body())


def test_revoked_opaque_token_jti():
    async def body():
        async with Harness(introspection=True) as h:
            h.server.tokens[TOKEN] = active(jti="op-9")
            await h.verify(TOKEN)
            h.auth.revocations.revoke("op-9", time.time() + 60)
            await refused(h, TOKEN, "token revoked")
    run(body())


def test_opaque_token_without_introspection_is_invalid():
    async def body():
        async with Harness() as h:
            await refused(h, TOKEN)
    run(body())


def test_basic_auth_encoding():
    # RFC 6749 §2.3.1: form-urlencode, then Basic
    assert basic_auth("a b", "p:w%") == b"Basic " + __import__("base64").b64encode(b"a%20b:p%3Aw%25")

"""OPA over the Data API against a real OPA-compatible server (opa_server.py): allow, deny,
result forms, timeout and outage with on_error deny/allow, the input document (and the
credentials it must never carry), the decision cache and single-flight."""

from __future__ import annotations

import asyncio
import dataclasses
import re

import pytest

from fastgate import errors
from fastgate.config.model import ApiKeyLocation, Authorization, Opa, PolicyRule
from fastgate.policies.authorization import build, opa
from fastgate.policies.shared import SharedState

from .opa_server import UNDEFINED, OpaServer, closed_port_url
from .support import Clock, Req, make_api, make_config, make_ctx, user

SECRET_HEADERS = [
    (b"host", b"api.example.com"),
    (b"authorization", b"Bearer eyJ.secret-token.sig"),
    (b"cookie", b"session=s3cret-cookie"),
    (b"proxy-authorization", b"Basic cHJveHk6c2VjcmV0"),
    (b"x-api-key", b"k3y-in-default-header"),
    (b"x-partner-key", b"k3y-in-custom-header"),
    (b"x-session-token", b"redacted-by-config"),
    (b"x-fastgate-subject", b"forged-admin"),
    (b"traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    (b"x-csrf-token", b"csrf-s3cret"),
    (b"referer", b"https://app.example.com/cb?code=auth-code-s3cret#frag"),
    (b"accept", b"application/json"),
    (b"x-tenant", b"acme"),
    (b"x-tenant", b"globex"),
]


class Fixture:
    def __init__(self, server_url: str, *, on_error: str = "deny", timeout: float = 1.0,
                 cache_ttl: float = 1.0, rules=(), clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.mono = 1000.0
        authz = Authorization(rules=rules, opa=Opa(url=server_url, timeout=timeout, on_error=on_error,
                                                   cache_ttl=cache_ttl))
        self.api = make_api(authz, api_key=ApiKeyLocation(header="X-Partner-Key", query="partner_key"))
        config = make_config(self.api, redact_headers=("authorization", "cookie", "x-api-key",
                                                       "proxy-authorization", "x-session-token"))
        self.shared = SharedState()
        self.az = build(self.api, config, self.shared, self.clock, monotonic=lambda: self.mono)

    async def call(self, method: str = "GET", rest: str = "/courses/7", identity=None, *,
                   query: str = "", headers=None, client_ip: str = "192.0.2.10"):
        """(outcome, decision) like support.outcome, inside the running loop."""
        ctx = make_ctx(client_ip)
        target = f"/edu{rest}{'?' + query if query else ''}".encode()
        try:
            await self.az.authorize(ctx, Req(method.encode(), target, headers), identity, rest)
        except errors.GatewayError as e:
            return e.code, ctx.decision
        return "allow", ctx.decision

    def close(self) -> None:
        self.shared.close()


def run(coro):
    return asyncio.run(coro)


# ---------------------------------------------------------------- decisions
@pytest.mark.parametrize("result, expected", [
    (True, "allow"),
    (False, "forbidden"),
    ({"allow": True}, "allow"),
    ({"allow": False}, "forbidden"),
    ({"allow": "true"}, "forbidden"),
    ("true", "forbidden"),
    (1, "forbidden"),
    (None, "forbidden"),
    (UNDEFINED, "forbidden"),  # undefined document: deny, not an error
])
def test_result_forms(result, expected):
    async def main():
        with OpaServer(lambda path, inp: result) as srv:
            f = Fixture(srv.url())
            try:
                assert await f.call(identity=user("student")) == (expected, "authorization.opa")
            finally:
                f.close()
            assert len(srv.calls) == 1 and srv.calls[0][0] == "fastgate/allow"
    run(main())


def test_decision_uses_the_input():
    def decide(path, inp):
        return "student" in inp["roles"] and inp["method"] == "GET"

    async def main():
        with OpaServer(decide) as srv:
            f = Fixture(srv.url())
            try:
                assert (await f.call("GET", identity=user("student")))[0] == "allow"
                assert (await f.call("POST", identity=user("student")))[0] == "forbidden"
                assert (await f.call("GET", identity=user("teacher")))[0] == "forbidden"
                assert (await f.call("GET", identity=None))[0] == "forbidden"
            finally:
                f.close()
    run(main())


def test_forbidden_error_shape():
    async def main():
        with OpaServer(lambda p, i: False) as srv:
            f = Fixture(srv.url())
            ctx = make_ctx()
            try:
                with pytest.raises(errors.Forbidden) as ei:
                    await f.az.authorize(ctx, Req(b"GET", b"/edu/x"), None, "/x")
            finally:
                f.close()
            assert (ei.value.status, ei.value.detail) == (403, "denied by policy")
            assert ctx.decision == "authorization.opa"
    run(main())


# ---------------------------------------------------------------- failures
@pytest.mark.parametrize("on_error, expected", [
    ("deny", ("unavailable", "authorization.opa")),
    ("allow", ("allow", "authorization.opa:on_error_allow")),
])
def test_timeout(on_error, expected):
    async def main():
        with OpaServer(lambda p, i: False, delay=0.5) as srv:
            f = Fixture(srv.url(), on_error=on_error, timeout=0.05)
            try:
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                assert await f.call(identity=user("student")) == expected
                assert loop.time() - t0 < 0.4  # bounded by opa.timeout, not by the slow OPA
            finally:
                f.close()
    run(main())


@pytest.mark.parametrize("on_error, expected", [
    ("deny", ("unavailable", "authorization.opa")),
    ("allow", ("allow", "authorization.opa:on_error_allow")),
])
def test_down(on_error, expected):
    async def main():
        f = Fixture(closed_port_url(), on_error=on_error)
        try:
            assert await f.call(identity=user("student")) == expected
            assert await f.call(identity=user("student")) == expected  # errors are never cached
            assert f.az.opa.calls == 2
        finally:
            f.close()
    run(main())


def test_unavailable_error_shape():
    async def main():
        f = Fixture(closed_port_url())
        try:
            with pytest.raises(errors.Unavailable) as ei:
                await f.az.authorize(make_ctx(), Req(b"GET", b"/edu/x"), None, "/x")
        finally:
            f.close()
        assert (ei.value.status, ei.value.code) == (503, "unavailable")
        assert ei.value.log_detail.startswith("OPA: ")
    run(main())


@pytest.mark.parametrize("status, raw", [(500, None), (400, None), (200, b"not json"), (200, b"")])
def test_bad_answers_are_errors(status, raw):
    async def main():
        with OpaServer(lambda p, i: True, status=status) as srv:
            srv.raw_body = raw
            for on_error, expected in (("deny", "unavailable"), ("allow", "allow")):
                f = Fixture(srv.url(), on_error=on_error)
                try:
                    assert (await f.call())[0] == expected
                finally:
                    f.close()
    run(main())


def test_server_recovers_after_outage():
    async def main():
        srv = OpaServer(lambda p, i: True).start()
        f = Fixture(srv.url(), cache_ttl=0)
        try:
            assert (await f.call())[0] == "allow"
            srv.stop()
            await asyncio.sleep(0.05)
            assert (await f.call())[0] == "unavailable"
            srv = OpaServer(lambda p, i: True, port=srv.port).start()  # OPA is back
            await asyncio.sleep(0.05)
            assert (await f.call())[0] == "allow"
        finally:
            f.close()
            srv.stop()
    run(main())


# ---------------------------------------------------------------- rules + OPA
def test_rule_denial_skips_opa_and_rule_allow_still_asks_opa():
    rules = (PolicyRule("rules[0]", False, path="/admin/**"), PolicyRule("rules[1]", True, roles=("student",)))

    async def main():
        with OpaServer(lambda p, i: i["rest_path"] != "/courses/secret") as srv:
            f = Fixture(srv.url(), rules=rules)
            try:
                assert await f.call(rest="/admin/x", identity=user("student")) == (
                    "forbidden", "authorization.rules[0]")
                assert len(srv.calls) == 0
                assert await f.call(rest="/courses/1", identity=user("student")) == (
                    "allow", "authorization.rules[1]")
                assert await f.call(rest="/courses/secret", identity=user("student")) == (
                    "forbidden", "authorization.opa")
                assert await f.call(rest="/courses/1", identity=user("teacher")) == (
                    "forbidden", "authorization.default")
                assert len(srv.calls) == 2
            finally:
                f.close()
    run(main())


# ---------------------------------------------------------------- the input document
def test_input_document_has_no_credentials():
    async def main():
        with OpaServer(lambda p, i: True) as srv:
            f = Fixture(srv.url(), clock=Clock(1_767_225_600.25))  # 2026-01-01T00:00:00.250Z
            ident = user("student", scopes=("course:view",), subject="bob", application="web",
                         claims={"sub": "bob", "tenant": "acme", "groups": ["g1"]})
            ident = dataclasses.replace(ident, token="eyJ.secret-token.sig", credential_id="jti-123")
            try:
                res = await f.call("GET", "/courses/7", ident, headers=list(SECRET_HEADERS),
                                   query="partner_key=qs3cret&page=2&api_key=qs3cret2&page=3",
                                   client_ip="::ffff:10.0.0.9")
                assert res == ("allow", "authorization.opa")
            finally:
                f.close()
            raw = srv.bodies[0]
            for secret in (b"secret-token", b"s3cret", b"cHJveHk6c2VjcmV0", b"k3y-in", b"redacted-by-config",
                           b"qs3cret", b"forged-admin", b"csrf", b"auth-code", b"traceparent", b"4bf92f35"):
                assert secret not in raw, secret
            inp = srv.inputs[0]
            assert inp["headers"] == {"host": "api.example.com", "accept": "application/json",
                                      "x-tenant": "acme, globex", "referer": "https://app.example.com/cb"}
            assert inp["query"] == ["partner_key", "page", "api_key"]  # names only
            assert inp["method"] == "GET"
            assert inp["path"] == "/edu/courses/7" and inp["rest_path"] == "/courses/7"
            assert inp["api"] == "courses" and inp["scheme"] == "https"
            assert inp["client_ip"] == "::ffff:10.0.0.9"
            assert inp["identity"] == {"method": "oauth2", "subject": "bob", "application": "web",
                                       "scopes": ["course:view"], "roles": ["student"],
                                       "claims": {"sub": "bob", "tenant": "acme", "groups": ["g1"]},
                                       "credential_id": "jti-123"}
            assert inp["scopes"] == ["course:view"] and inp["roles"] == ["student"]
            assert inp["time"] == "2026-01-01T00:00:00.250Z"
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", inp["time"])
            assert inp["request_id"] == "req-1"
    run(main())


def test_input_document_effective_scopes_and_anonymous():
    async def main():
        with OpaServer(lambda p, i: True) as srv:
            f = Fixture(srv.url())
            f.az.role_scopes = {"student": frozenset({"course:view"})}
            try:
                await f.call(identity=user("student", scopes=("profile",)))
                await f.call("POST", "", None)
            finally:
                f.close()
            first, second = srv.inputs
            assert first["scopes"] == ["course:view", "profile"]  # token scopes + role scopes
            assert first["identity"]["scopes"] == ["profile"]  # the token's own
            assert second["identity"] is None and second["scopes"] == [] and second["roles"] == []
            assert second["path"] == "/edu" and second["rest_path"] == "/"
    run(main())


# ---------------------------------------------------------------- cache
def test_cache_identical_requests_one_call():
    async def main():
        with OpaServer(lambda p, i: True) as srv:
            f = Fixture(srv.url(), cache_ttl=5)
            try:
                bob = user("student", subject="bob")
                assert (await f.call(identity=bob))[0] == "allow"
                f.clock.t += 3  # `time` is not part of the cache key
                assert (await f.call(identity=bob))[0] == "allow"
                assert len(srv.calls) == 1
                assert (await f.call(identity=user("student", subject="carol")))[0] == "allow"
                assert len(srv.calls) == 2
                assert (await f.call(rest="/courses/8", identity=bob))[0] == "allow"
                assert len(srv.calls) == 3
            finally:
                f.close()
    run(main())


def test_cache_ttl_and_denials_cached():
    async def main():
        verdict = {"v": False}
        with OpaServer(lambda p, i: verdict["v"]) as srv:
            f = Fixture(srv.url(), cache_ttl=2)
            try:
                bob = user("student", subject="bob")
                assert (await f.call(identity=bob))[0] == "forbidden"
                verdict["v"] = True
                f.mono += 1.9
                assert (await f.call(identity=bob))[0] == "forbidden"  # cached denial
                assert len(srv.calls) == 1
                f.mono += 0.1
                assert (await f.call(identity=bob))[0] == "allow"  # expired: asked again
                assert len(srv.calls) == 2
            finally:
                f.close()
    run(main())


def test_cache_off_with_zero_ttl():
    async def main():
        with OpaServer(lambda p, i: True) as srv:
            f = Fixture(srv.url(), cache_ttl=0)
            try:
                for _ in range(3):
                    await f.call(identity=user("student"))
            finally:
                f.close()
            assert len(srv.calls) == 3
    run(main())


def test_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(opa, "CACHE_MAX_ENTRIES", 3)

    async def main():
        with OpaServer(lambda p, i: True) as srv:
            f = Fixture(srv.url(), cache_ttl=60)
            try:
                for n in range(6):
                    await f.call(rest=f"/c/{n}")
                assert len(f.az.opa.cache) == 3
                await f.call(rest="/c/5")  # still cached (most recent)
                assert len(srv.calls) == 6
                await f.call(rest="/c/0")  # evicted: asked again
                assert len(srv.calls) == 7
            finally:
                f.close()
    run(main())


def test_concurrent_identical_requests_share_one_call():
    async def main():
        with OpaServer(lambda p, i: True, delay=0.15) as srv:
            f = Fixture(srv.url(), cache_ttl=0)  # single-flight alone, no cache
            try:
                bob = user("student", subject="bob")
                results = await asyncio.gather(*(f.call(identity=bob) for _ in range(5)))
                assert all(r[0] == "allow" for r in results)
                assert len(srv.calls) == 1
                assert not f.az.opa.inflight
            finally:
                f.close()
    run(main())


def test_cancelled_waiter_does_not_break_others():
    async def main():
        with OpaServer(lambda p, i: True, delay=0.15) as srv:
            f = Fixture(srv.url())
            try:
                bob = user("student", subject="bob")
                first = asyncio.ensure_future(f.call(identity=bob))
                await asyncio.sleep(0.02)
                second = asyncio.ensure_future(f.call(identity=bob))
                await asyncio.sleep(0.02)
                first.cancel()  # the client went away
                assert (await second)[0] == "allow"
                assert len(srv.calls) == 1
                assert (await f.call(identity=bob))[0] == "allow"  # and it was cached
                assert len(srv.calls) == 1
            finally:
                f.close()
    run(main())

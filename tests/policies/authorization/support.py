"""Small builders for authorization tests: an Api/Config around an `authorization` block, a
minimal request, a RequestContext, a frozen clock, and a one-call `outcome` helper."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fastgate import errors
from fastgate.config.model import (
    Api,
    ApiKeyLocation,
    Authorization,
    Config,
    Logging,
    Upstream,
    UpstreamUrl,
)
from fastgate.context import RequestContext
from fastgate.identity import Identity
from fastgate.policies.authorization import build
from fastgate.policies.shared import SharedState


class Req:
    __slots__ = ("method", "target", "headers")

    def __init__(self, method: bytes = b"GET", target: bytes = b"/", headers=None) -> None:
        self.method = method
        self.target = target
        self.headers = headers or []


class Clock:
    """A frozen wall clock; set `t` (epoch seconds) or use `at(...)`."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def at(self, tz: str, y: int, mo: int, d: int, h: int, mi: int, s: int = 0) -> Clock:
        self.t = datetime(y, mo, d, h, mi, s, tzinfo=ZoneInfo(tz)).timestamp()
        return self


def utc(y: int, mo: int, d: int, h: int, mi: int, s: int = 0) -> float:
    return datetime(y, mo, d, h, mi, s, tzinfo=ZoneInfo("UTC")).timestamp()


def make_api(authz: Authorization | None, *, name: str = "courses", base_path: str = "/edu",
             api_key: ApiKeyLocation | None = None) -> Api:
    return Api(name=name, base_path=base_path,
               upstream=Upstream(urls=(UpstreamUrl("http", "127.0.0.1", 9),)),
               authentication=("oauth2", "api_key"), authorization=authz,
               api_key=api_key or ApiKeyLocation())


def make_config(api: Api, **logging) -> Config:
    return Config(source=Path("test.yaml"), listeners=(), apis=(api,), logging=Logging(**logging))


def make_ctx(client_ip: str = "192.0.2.10") -> RequestContext:
    return RequestContext("req-1", client_ip, "public", "https", None)


def authorizer(authz: Authorization, clock=None, shared: SharedState | None = None, **kw):
    api = make_api(authz, **kw)
    return build(api, make_config(api), shared or SharedState(), clock or Clock())


def user(*roles: str, scopes=(), subject: str = "alice", application: str | None = "web",
         claims: dict | None = None, method: str = "oauth2") -> Identity:
    return Identity(method=method, subject=subject, application=application, scopes=frozenset(scopes),
                    roles=frozenset(roles), claims=claims or {})


def outcome(az, method: str, path: str, identity: Identity | None, *, client_ip: str = "192.0.2.10",
            headers=None) -> tuple[str, str | None]:
    """("allow", decision) or (error code, decision), authorize() driven in an event loop."""
    ctx = make_ctx(client_ip)
    req = Req(method.encode(), path.encode(), headers)
    try:
        asyncio.run(az.authorize(ctx, req, identity, path))
    except errors.GatewayError as e:
        return e.code, ctx.decision
    return "allow", ctx.decision


def error_of(az, method: str, path: str, identity: Identity | None, **kw) -> errors.GatewayError:
    ctx = make_ctx(kw.pop("client_ip", "192.0.2.10"))
    req = Req(method.encode(), path.encode(), kw.pop("headers", None))
    try:
        asyncio.run(az.authorize(ctx, req, identity, path))
    except errors.GatewayError as e:
        return e
    raise AssertionError("expected a refusal")

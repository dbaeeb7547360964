"""Micro-benchmarks: Authorizer.authorize with 20 resources + 20 rules (no OPA), and the OPA
decision-cache hit path (input document + canonical JSON + SHA-256, no network).

Invariant: every scenario asserts its outcome before it is timed; timings are reported, never
asserted. The coroutine is driven with send(None), which is what `await` costs inside the
pipeline's own coroutine (no event-loop round trip: nothing here suspends).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from fastgate import errors
from fastgate.config.model import (
    Api,
    Authorization,
    Config,
    Opa,
    PolicyRule,
    ResourceScopes,
    TimeWindow,
    Upstream,
    UpstreamUrl,
)
from fastgate.context import RequestContext
from fastgate.identity import Identity
from fastgate.policies.authorization import build
from fastgate.policies.shared import SharedState

BATCH = 2_000
NOON_COLOMBO = datetime(2026, 5, 20, 12, 0, tzinfo=ZoneInfo("Asia/Colombo")).timestamp()


class Req:
    __slots__ = ("method", "target", "headers")

    def __init__(self, method: bytes, target: bytes, headers=()) -> None:
        self.method = method
        self.target = target
        self.headers = list(headers)


def twenty() -> Authorization:
    resources = []
    rules = []
    for i in range(18):
        resources.append(ResourceScopes(f"/svc{i}/items/{{id}}", ("GET",), (f"svc{i}:read",)))
        rules.append(PolicyRule(f"rules[{i}]", True, roles=(f"role{i}",), path=f"/svc{i}/**",
                                methods=("GET", "POST")))
    resources.append(ResourceScopes("/courses", ("POST",), ("course:create",)))
    resources.append(ResourceScopes("/courses/{id}", ("GET",), ("course:view",)))
    rules.append(PolicyRule("rules[18]", True, roles=("teacher",), path="/courses", methods=("POST",)))
    rules.append(PolicyRule("rules[19]", True, roles=("student",), path="/courses/**", methods=("GET",),
                            client_ips=("10.0.0.0/8", "2001:db8::/32"), claims={"tenant": ["acme", "globex"]},
                            time=TimeWindow("06:00", "22:00", "Asia/Colombo")))
    return Authorization(roles_to_scopes={"teacher": ("course:create", "course:view"),
                                          "student": ("course:view",)},
                         resources=tuple(resources), rules=tuple(rules))


def make(authz: Authorization):
    api = Api(name="edu", base_path="/edu", upstream=Upstream(urls=(UpstreamUrl("http", "127.0.0.1", 9),)),
              authentication=("oauth2",), authorization=authz)
    config = Config(source=Path("bench.yaml"), listeners=(), apis=(api,))
    return build(api, config, SharedState(), lambda: NOON_COLOMBO, monotonic=time.monotonic)


STUDENT = Identity(method="oauth2", subject="bob", application="web", scopes=frozenset({"profile"}),
                   roles=frozenset({"student"}), claims={"tenant": "acme"})
TEACHER = Identity(method="oauth2", subject="alice", roles=frozenset({"teacher"}))
CTX = RequestContext("r1", "10.1.2.3", "public", "https", None)


def drive(az, req, identity, rest):
    """One authorize(): outcome string (the coroutine never suspends without OPA)."""
    coro = az.authorize(CTX, req, identity, rest)
    try:
        coro.send(None)
    except StopIteration:
        return "allow"
    except errors.GatewayError as e:
        return e.code
    raise AssertionError("authorize suspended")


def batch(az, req, identity, rest):
    authorize = az.authorize
    for _ in range(BATCH):
        coro = authorize(CTX, req, identity, rest)
        try:
            coro.send(None)
        except StopIteration:
            pass
        except errors.GatewayError:
            pass


SCENARIOS = {
    # name: (method, rest path, identity, expected outcome)
    "last rule, all conditions": (b"GET", "/courses/7", STUDENT, "allow"),
    "rule 19 of 20, POST": (b"POST", "/courses", TEACHER, "allow"),
    "first rule": (b"GET", "/svc0/items/1", Identity("oauth2", roles=frozenset({"role0"}),
                                                     scopes=frozenset({"svc0:read"})), "allow"),
    "default deny (raises)": (b"GET", "/nowhere/x", STUDENT, "forbidden"),
    "insufficient scope (raises)": (b"POST", "/courses", STUDENT, "insufficient_scope"),
}



BEST: dict[str, float] = {}


def report(benchmark, name: str) -> None:
    best = BEST[name] = benchmark.stats.stats.min / BATCH * 1e6
    median = benchmark.stats.stats.median / BATCH * 1e6
    print(f"\n  authorize() {name}: best {best:.2f} µs/call, median {median:.2f}")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_authorize_20_rules_20_resources(benchmark, name):
    method, rest, ident, expected = SCENARIOS[name]
    az = make(twenty())
    req = Req(method, b"/edu" + rest.encode())
    assert drive(az, req, ident, rest) == expected
    benchmark(batch, az, req, ident, rest)
    report(benchmark, name)


class _Noop:
    async def authorize(self, ctx, req, identity, rest_path) -> None:
        return None


def test_baseline_empty_coroutine(benchmark):
    """What any awaited policy costs before doing anything (coroutine create + run)."""
    benchmark(batch, _Noop(), Req(b"GET", b"/"), None, "/")
    report(benchmark, "baseline (empty async method)")


class Naive:
    """The reference a straightforward implementation would be: one regex per template and glob
    (compiled at load), every resource and rule scanned, ipaddress and datetime per request."""

    def __init__(self, authz: Authorization, clock) -> None:
        def rx(path: str) -> re.Pattern:
            out = ""
            for seg in path.strip("/").split("/") if path.strip("/") else []:
                out += "(?:/.*)?" if seg == "**" else "/[^/]+" if seg in ("*",) or seg.startswith("{") \
                    else "/" + re.escape(seg)
            return re.compile(out or "/?")

        self.resources = [(rx(r.path), set(r.methods), set(r.scopes), len(r.path)) for r in authz.resources]
        self.rules = [(r, rx(r.path) if r.path else None,
                       [ipaddress.ip_network(c) for c in r.client_ips]) for r in authz.rules]
        self.role_scopes = {k: set(v) for k, v in authz.roles_to_scopes.items()}
        self.clock = clock

    async def authorize(self, ctx, req, identity, rest_path) -> None:
        method = req.method.decode()
        path = rest_path.rstrip("/") or "/"
        eff = set(identity.scopes)
        for role in identity.roles:
            eff |= self.role_scopes.get(role, set())
        best = None
        for pattern, methods, scopes, length in self.resources:
            if (not methods or method in methods) and pattern.fullmatch(path):
                if best is None or length > best[0]:
                    best = (length, scopes)
        if best is not None and not best[1] <= eff:
            raise errors.InsufficientScope("missing scope")
        for r, pattern, nets in self.rules:
            if r.methods and method not in r.methods:
                continue
            if pattern is not None and not pattern.fullmatch(path):
                continue
            if r.roles and not set(r.roles) & identity.roles:
                continue
            if r.claims and any(identity.claims.get(k) != v and identity.claims.get(k) not in v
                                for k, v in r.claims.items()):
                continue
            if nets and not any(ipaddress.ip_address(ctx.client_ip) in n for n in nets):
                continue
            if r.time is not None:
                local = datetime.fromtimestamp(self.clock(), ZoneInfo(r.time.timezone))
                hhmm = f"{local.hour:02d}:{local.minute:02d}"
                if not r.time.start <= hhmm < r.time.end:
                    continue
            if not r.allow:
                raise errors.Forbidden("denied by policy")
            return
        raise errors.Forbidden("denied by policy")


def test_naive_reference_last_rule(benchmark):
    """Same request as "last rule, all conditions", through the naive reference: the ratio."""
    method, rest, ident, expected = SCENARIOS["last rule, all conditions"]
    naive = Naive(twenty(), lambda: NOON_COLOMBO)
    req = Req(method, b"/edu" + rest.encode())
    assert drive(naive, req, ident, rest) == expected
    benchmark(batch, naive, req, ident, rest)
    report(benchmark, "naive reference, last rule")
    ours = BEST.get("last rule, all conditions")
    if ours:
        print(f"  naive / compiled: {BEST['naive reference, last rule'] / ours:.1f}x")


def test_opa_cache_hit(benchmark):
    """OPA configured, decision already cached: input document + orjson + sha256 + LRU hit."""
    az = make(Authorization(opa=Opa(url="http://127.0.0.1:9/v1/data/x", cache_ttl=3600.0)))
    req = Req(b"GET", b"/edu/courses/7?page=2",
              [(b"host", b"api.example.com"), (b"accept", b"application/json"),
               (b"user-agent", b"curl/8.5"), (b"authorization", b"Bearer x")])
    doc = az.opa.input_document(CTX, req, STUDENT, "/courses/7", "GET", az.effective_scopes(STUDENT))
    digest = hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)).digest()
    az.opa.cache[digest] = (time.monotonic() + 3600.0, True)
    assert drive(az, req, STUDENT, "/courses/7") == "allow"
    benchmark(batch, az, req, STUDENT, "/courses/7")
    report(benchmark, "OPA, cached decision")
    assert az.opa.calls == 0

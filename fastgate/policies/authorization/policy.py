"""An API's authorization chain: resource scopes (with roles_to_scopes), then the rules, then OPA.

Invariant: every stage that is configured must allow; the first refusal raises (403
insufficient_scope, 403 forbidden, or 503 unavailable when OPA fails closed). Everything is
compiled in `build` (templates, globs, CIDRs, zones, role expansions, a rule index), so a
request without OPA costs a few dict and set operations (~2 µs with 20 resources and 20 rules).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from ... import errors
from ...config.model import Api, Config
from ...identity import Identity, Request
from ..shared import SharedState
from .opa import OpaDecider
from .rules import Rule, RuleIndex, parse_ip
from .templates import ResourceTable, split_path

EFFECTIVE_CACHE_MAX = 4096  # distinct (scopes, roles) pairs whose expansion is remembered
_EMPTY: frozenset[str] = frozenset()


class Authorizer:
    __slots__ = ("api_name", "resources", "rules", "opa", "role_scopes", "clock", "_effective")

    def __init__(self, api: Api, config: Config, shared: SharedState, clock: Callable[[], float],
                 monotonic: Callable[[], float],
                 extra_resources: Iterable[tuple[str, Iterable[str], Iterable[str], str]] = ()) -> None:
        authz = api.authorization
        self.api_name = api.name
        self.clock = clock
        self.role_scopes = {role: frozenset(scopes) for role, scopes in authz.roles_to_scopes.items()}
        table = ResourceTable()
        for i, res in enumerate(authz.resources):
            table.add(res.path, res.methods, res.scopes, f"resources[{i}]")
        for path, methods, scopes, source in extra_resources:  # e.g. OpenAPI security requirements
            table.add(path, methods, scopes, source)
        self.resources = table.freeze() if len(table) else None
        rules = tuple(Rule(r) for r in authz.rules)
        self.rules = RuleIndex(rules) if rules else None
        self.opa = (OpaDecider(authz.opa, api, config, shared.http, clock, monotonic)
                    if authz.opa is not None else None)
        self._effective: dict[tuple[frozenset, frozenset], frozenset[str]] = {}

    def effective_scopes(self, identity: Identity | None) -> frozenset[str]:
        """Token scopes ∪ the scopes roles_to_scopes gives the identity's roles."""
        if identity is None:
            return _EMPTY
        scopes = identity.scopes
        if type(scopes) is not frozenset:
            scopes = frozenset(scopes)
        roles = identity.roles
        if not roles or not self.role_scopes:
            return scopes
        if type(roles) is not frozenset:
            roles = frozenset(roles)
        key = (scopes, roles)
        eff = self._effective.get(key)
        if eff is None:
            eff = scopes.union(*(self.role_scopes.get(r, _EMPTY) for r in roles))
            if len(self._effective) >= EFFECTIVE_CACHE_MAX:
                self._effective.clear()
            self._effective[key] = eff
        return eff

    async def authorize(self, ctx, req: Request, identity: Identity | None, rest_path: str) -> None:
        method = req.method
        if not method.isupper():  # policies see "get" as GET: never fewer checks than for GET
            method = method.upper()
        segs = split_path(rest_path)
        eff = None

        # 1. resource scopes: the most specific resource's scopes, all of them
        if self.resources is not None:
            res = self.resources.lookup(method, segs)
            if res is not None and res.scopes:
                eff = self.effective_scopes(identity)
                if not res.scopes <= eff:
                    ctx.decision = res.decision
                    raise errors.InsufficientScope("missing scope", headers=[("WWW-Authenticate", res.challenge)],
                                                   log_detail=res.log_detail)

        # 2. rules: first match decides; rules present and none matched = deny
        if self.rules is not None:
            ip = False  # parsed on first use
            now = None
            # candidates: the rules whose methods and leading literal allow this request, in order
            for rule in self.rules.candidates(method, segs):
                if rule.path is not None and not rule.path.match(segs):
                    continue
                if rule.roles is not None and (identity is None or rule.roles.isdisjoint(identity.roles)):
                    continue
                if rule.applications is not None and (
                        identity is None or identity.application not in rule.applications):
                    continue
                if rule.scopes is not None:
                    if eff is None:
                        eff = self.effective_scopes(identity)
                    if not rule.scopes <= eff:
                        continue
                if rule.claims is not None and (identity is None or not rule.claims.matches(identity.claims)):
                    continue
                if rule.nets is not None:
                    if ip is False:
                        ip = parse_ip(ctx.client_ip)
                    if not rule.nets.contains(ip):
                        continue
                if rule.window is not None:
                    if now is None:
                        now = self.clock()
                    if not rule.window.contains(now):
                        continue
                ctx.decision = rule.decision
                if not rule.allow:
                    raise errors.Forbidden("denied by policy", log_detail=f"rule {rule.id}")
                break
            else:
                ctx.decision = "authorization.default"
                raise errors.Forbidden("denied by policy", log_detail="no rule matched (default deny)")

        # 3. OPA: must allow too
        if self.opa is not None:
            if eff is None:
                eff = self.effective_scopes(identity)
            if self.rules is None:
                ctx.decision = "authorization.opa"
            await self.opa.check(ctx, req, identity, rest_path, method.decode("latin-1"), eff)


def build(api: Api, config: Config, shared: SharedState, clock: Callable[[], float] = time.time, *,
          monotonic: Callable[[], float] = time.monotonic,
          extra_resources: Iterable[tuple[str, Iterable[str], Iterable[str], str]] = ()) -> Authorizer | None:
    """The API's Authorizer, or None when it has no `authorization` block (or one that enforces
    nothing: no resources, rules or OPA). `clock` gives wall time for time windows and OPA's
    `time`; `monotonic` ages OPA cache entries. `extra_resources` are (path, methods, scopes,
    source) entries merged with `authorization.resources` (OpenAPI security requirements).
    Raises ValueError for a template, glob, CIDR, time or zone the loader let through."""
    authz = api.authorization
    if authz is None:
        return None
    extra = tuple(extra_resources)
    if not (authz.resources or authz.rules or authz.opa or extra):
        return None
    return Authorizer(api, config, shared, clock, monotonic, extra)

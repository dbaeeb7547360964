"""Traffic control for one API: every rate-limit level, applied in the contract's order.

Invariant: levels run in this order and the first denial wins: burst (node-local, the tier's
`burst`) -> resource -> subscription (application x API tier) -> application (its tier, across
every API) -> API (all consumers) -> anonymous per client IP (public APIs) -> backend
`max_requests_per_second` (503 backend_busy). A level's quota is spent only when every level
before it admitted the request. Count quotas go through one QuotaBackend per process (native GCRA
here, or the shared GCRA in Redis with leases); bandwidth through a BandwidthMeter. Keys name the
quota, not its numbers, so a reload keeps counters and a changed tier applies at once.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import NamedTuple

from ... import errors
from ...config.model import Api, Config, RedisSettings, Tier
from ...quota import LocalQuota, QuotaBackend, QuotaDecision, whole_seconds
from ...quota.bandwidth import BandwidthMeter
from ..authorization.templates import compile_template, method_set, split_path
from ..throttle import ip_key

__all__ = ["Limit", "QuotaStores", "TrafficControl", "build", "stores"]

class Limit:
    """One count quota a request may spend: the level and tier it reports as, its key, numbers."""

    __slots__ = ("level", "tier", "key", "requests", "per", "decision")

    def __init__(self, level: str, tier: str, key: str, requests: int, per: float) -> None:
        self.level = level
        self.tier = tier
        self.key = key
        self.requests = requests
        self.per = per
        self.decision = f"rate_limits.{level}"


class _Bandwidth:
    __slots__ = ("level", "tier", "key", "bandwidth", "per", "decision")

    def __init__(self, level: str, tier: Tier, key: str) -> None:
        self.level = level
        self.tier = tier.name
        self.key = key
        self.bandwidth = tier.bandwidth
        self.per = tier.per
        self.decision = f"rate_limits.{level}.bandwidth"


class _Resource:
    __slots__ = ("pattern", "methods", "limit")

    def __init__(self, api: str, path: str, methods: tuple[str, ...], requests: int,
                 per: float) -> None:
        self.pattern = compile_template(path)
        self.methods = method_set(methods)
        shape = f"{','.join(methods) or '*'} {path}"  # stable across reloads that reorder entries
        self.limit = Limit("resource", "", f"res:{api}:{shape}", requests, per)


class _Plan:
    """What one application (or no application) spends on this API, built once and cached."""

    __slots__ = ("burst", "counted", "bandwidth")

    def __init__(self, burst: tuple[Limit, ...], counted: tuple[Limit, ...],
                 bandwidth: tuple[_Bandwidth, ...]) -> None:
        self.burst = burst  # node-local
        self.counted = counted  # subscription, application (after resources)
        self.bandwidth = bandwidth


class QuotaStores(NamedTuple):
    """The process's rate-limit stores, kept on SharedState across reloads."""

    redis: RedisSettings | None  # the settings they were made for
    backend: QuotaBackend  # count quotas: LocalQuota, or RedisQuota shared by the cluster
    meter: BandwidthMeter
    local: LocalQuota  # burst windows: node-local whatever the backend


def stores(shared, redis: RedisSettings | None) -> QuotaStores:
    """The process's stores for these Redis settings; kept across reloads (same settings = same
    counters). A change of settings starts new stores and closes the old backend."""
    current: QuotaStores | None = shared.quota_stores
    if current is not None and current.redis == redis:
        return current
    if redis is None:
        backend = LocalQuota()
        meter = BandwidthMeter()
    else:
        from ...quota.redis_backend import RedisQuota

        node = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        backend = RedisQuota(redis.urls, redis.timeout, redis.on_unavailable, node)
        meter = BandwidthMeter(backend)
    if current is not None:  # Redis settings changed on reload: the old client goes
        try:
            asyncio.get_running_loop().create_task(current.backend.close())
        except RuntimeError:  # no loop (a unit test building runtimes by hand)
            pass
    shared.quota_stores = QuotaStores(redis, backend, meter, LocalQuota())
    return shared.quota_stores


class TrafficControl:
    """The compiled rate limits of one API (immutable; per-request state lives in ctx)."""

    def __init__(self, api: Api, config: Config, shared) -> None:
        rl = api.rate_limits
        self.api = api.name
        _, self.backend, self.meter, self.local = stores(shared, config.redis)
        self.tiers = config.tiers
        self.applications = {a.name: a for a in config.applications}
        self.resources = tuple(
            _Resource(api.name, r.path, r.methods, r.requests, r.per) for r in rl.resources)
        self.use_application = rl.application
        self.use_subscription = rl.subscription
        self.api_limit = (Limit("api", "", f"api:{api.name}", rl.api.requests, rl.api.per)
                          if rl.api is not None else None)
        anon = rl.anonymous if not api.authentication else None
        self.anonymous = anon
        rps = api.upstream.max_requests_per_second
        self.backend_limit = Limit("backend", "", f"backend:{api.name}", rps, 1.0) if rps else None
        self._plans: dict[str | None, _Plan] = {}

    # -- plans ------------------------------------------------------------------------------------
    def _plan(self, app_name: str | None) -> _Plan:
        plan = self._plans.get(app_name)
        if plan is None:
            plan = self._plans[app_name] = self._make_plan(app_name)
        return plan

    def _make_plan(self, app_name: str | None) -> _Plan:
        burst: list[Limit] = []
        counted: list[Limit] = []
        bandwidth: list[_Bandwidth] = []
        app = self.applications.get(app_name) if app_name is not None else None
        if app is None:
            return _Plan((), (), ())
        levels = []
        if self.use_subscription:
            sub = next((s for s in app.subscriptions if s.api == self.api), None)
            if sub is not None and sub.tier in self.tiers:
                levels.append(("subscription", self.tiers[sub.tier], f"sub:{app.name}:{self.api}"))
        if self.use_application and app.tier is not None and app.tier in self.tiers:
            levels.append(("application", self.tiers[app.tier], f"app:{app.name}"))
        for level, tier, key in levels:
            if tier.burst is not None:
                burst.append(Limit("burst", tier.name, f"burst:{key}", tier.burst.requests, tier.burst.per))
            if tier.requests is not None and tier.per is not None:
                counted.append(Limit(level, tier.name, key, tier.requests, tier.per))
            if tier.bandwidth is not None and tier.per is not None:
                bandwidth.append(_Bandwidth(level, tier, key))
        return _Plan(tuple(burst), tuple(counted), tuple(bandwidth))

    # -- the request path -------------------------------------------------------------------------
    async def admit(self, ctx, method: bytes, rest: str, identity) -> None:
        """Spend one request at every level, in order; raise the first denial. Sets
        ctx.rate_decision to the admitting decision closest to exhaustion (RateLimit-*)."""
        app_name = identity.application if identity is not None else None
        plan = self._plan(app_name) if app_name is not None else None
        best: QuotaDecision | None = None
        if plan is not None:
            for lim in plan.burst:
                d = self.local.take_now(lim.key, lim.requests, lim.per)
                best = self._judge(ctx, lim, d, best)
        if self.resources:
            segs = None
            for res in self.resources:
                if res.methods is not None and method not in res.methods:
                    continue
                if segs is None:
                    segs = split_path(rest)
                if res.pattern.match(segs):
                    best = await self._take(ctx, res.limit, best)
        if plan is not None:
            for bw in plan.bandwidth:  # a debt from earlier responses: no spending here
                wait = self.meter.retry_after(bw.key, bw.bandwidth, bw.per)
                if wait > 0.0:
                    ctx.decision = bw.decision
                    raise _tagged(errors.RateLimited("bandwidth quota exceeded",
                                                     headers=[("retry-after", str(whole_seconds(wait)))]),
                                  bw.level, bw.tier)
            for lim in plan.counted:
                best = await self._take(ctx, lim, best)
            if plan.bandwidth:
                ctx.charges = plan.bandwidth
        if self.api_limit is not None:
            best = await self._take(ctx, self.api_limit, best)
        if self.anonymous is not None:
            w = self.anonymous
            lim = Limit("anonymous", "", "anon:" + self.api + ":" + ip_key(ctx.client_ip),
                        w.requests, w.per)
            best = await self._take(ctx, lim, best)
        if best is not None:
            ctx.rate_decision = best
        if self.backend_limit is not None:
            lim = self.backend_limit
            d = self.backend.take_now(lim.key, lim.requests, lim.per)
            if d is None:
                d = await self.backend.take(lim.key, lim.requests, lim.per)
            if not d.allowed:
                ctx.decision = lim.decision
                retry = [("retry-after", str(max(1, whole_seconds(d.retry_after))))]
                if d.source == "deny":
                    raise _tagged(errors.Unavailable("rate-limit store unavailable", headers=retry),
                                  "backend", "")
                raise _tagged(errors.BackendBusy("backend throughput limit reached", headers=retry),
                              "backend", "")

    async def _take(self, ctx, lim: Limit, best: QuotaDecision | None) -> QuotaDecision | None:
        d = self.backend.take_now(lim.key, lim.requests, lim.per)
        if d is None:
            d = await self.backend.take(lim.key, lim.requests, lim.per)
        return self._judge(ctx, lim, d, best)

    def _judge(self, ctx, lim: Limit, d: QuotaDecision, best: QuotaDecision | None) -> QuotaDecision:
        if d.allowed:
            return d if best is None or d.remaining < best.remaining else best
        ctx.decision = lim.decision
        retry = [("retry-after", str(max(1, whole_seconds(d.retry_after))))]
        if d.source == "deny":  # Redis down and on_unavailable: deny (fail closed)
            raise _tagged(errors.Unavailable("rate-limit store unavailable", headers=retry),
                          lim.level, lim.tier)
        ctx.rate_decision = d
        raise _tagged(errors.RateLimited("rate limit exceeded", headers=retry), lim.level, lim.tier)

    def charge(self, ctx) -> None:
        """After the response: the request's and response's body bytes against bandwidth tiers."""
        nbytes = ctx.bytes_in + ctx.bytes_out
        for bw in ctx.charges:
            self.meter.charge(bw.key, nbytes, bw.bandwidth, bw.per)


def _tagged(err: errors.GatewayError, level: str, tier: str) -> errors.GatewayError:
    """The level and tier ride on the error to the pipeline's denial metric."""
    err.level = level
    err.tier = tier
    return err


def build(api: Api, config: Config, shared) -> TrafficControl | None:
    """None when the API has no limit at all (no work on its requests)."""
    rl = api.rate_limits
    anonymous = rl.anonymous is not None and not api.authentication
    if not (rl.resources or rl.api or anonymous or api.upstream.max_requests_per_second
            or rl.application or rl.subscription):
        return None
    return TrafficControl(api, config, shared)

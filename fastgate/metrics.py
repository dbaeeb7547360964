"""Prometheus metrics with the contract's names (CONTRACT.md "Metrics").

Invariant: label values come from config (API names, listener names) or fixed vocabularies
(status, code, kind), never from request data, so cardinality stays bounded. Labelled children
are cached so the hot path pays one dict lookup, not prometheus_client's label resolution.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.requests = Counter("fastgate_requests", "Requests answered", ["api", "status", "code"], registry=r)
        self.duration = Histogram("fastgate_request_duration_seconds", "Total request time", ["api"],
                                  buckets=LATENCY_BUCKETS, registry=r)
        self.rejections = Counter("fastgate_policy_rejections", "Requests refused by a policy",
                                  ["api", "policy", "code"], registry=r)
        self.ratelimit_denials = Counter("fastgate_ratelimit_denials", "Rate-limit denials",
                                         ["api", "level", "tier"], registry=r)
        # rate-limit state: Redis round trips of the quota store (with leases, far fewer than requests)
        self.ratelimit_store_calls = Counter("fastgate_ratelimit_store_calls", "Quota store round trips",
                                             ["result"], registry=r)
        self.upstream_errors = Counter("fastgate_upstream_errors", "Upstream failures", ["api", "kind"],
                                       registry=r)
        self.tls_failures = Counter("fastgate_tls_handshake_failures", "Failed TLS handshakes",
                                    ["listener", "reason"], registry=r)
        self.active_connections = Gauge("fastgate_active_connections", "Open client connections",
                                        ["listener"], registry=r, multiprocess_mode="livesum")
        self.config_reloads = Counter("fastgate_config_reloads", "Config reloads", ["result"], registry=r)
        self._req_children: dict[tuple, tuple] = {}

    def observe_request(self, api: str, status: int, code: str | None, seconds: float) -> None:
        key = (api, status, code)
        children = self._req_children.get(key)
        if children is None:
            if len(self._req_children) > 10_000:  # pragma: no cover - bounded by config anyway
                self._req_children.clear()
            children = (self.requests.labels(api, str(status), code or ""), self.duration.labels(api))
            self._req_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def render_multiprocess(path: str) -> bytes:
    """With workers > 1: every worker's values, summed (live ones only for the gauge)."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return generate_latest(registry)

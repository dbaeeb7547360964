"""The compiled, per-config state the pipeline runs on: routes, upstream pools, limiters.

Invariant: built once per (re)load and swapped atomically; requests already in flight keep the
Runtime they started with. Rate-limit counters live in process-wide stores keyed by quota name
(policies.ratelimit.stores), so they survive a reload and a changed tier applies at once.
"""

from __future__ import annotations

import importlib
from dataclasses import replace

from .config.model import Api, Config
from .http.upstream import UpstreamPool
from .policies.shared import SharedState
from .routing import Router
from .tls import upstream_context


class ApiRuntime:
    __slots__ = ("api", "pool", "max_body", "max_concurrency",
                 "authenticators", "authorizer", "monitor", "threat", "cors", "api_key_header",
                 "spec", "validate_request", "validate_response", "traffic")

    def __init__(self, api: Api, config: Config, previous: ApiRuntime | None, shared: SharedState) -> None:
        self.api = api
        self.monitor = api.mode == "monitor"
        # the API key header is a credential: never regex-scanned, never forwarded
        self.api_key_header = frozenset(
            {api.api_key.header.lower().encode()} if "api_key" in api.authentication else ())
        # policies/<method>/policy.py: build(api, config, shared) -> Authenticator, in config order
        self.authenticators = tuple(
            importlib.import_module(f"fastgate.policies.{method}.policy").build(api, config, shared)
            for method in api.authentication
        )
        self.spec = None
        validation = api.validation
        self.validate_request = validation is not None and validation.request
        self.validate_response = validation is not None and validation.response
        extra = ()
        if api.openapi is not None:
            from .openapi import load_spec

            stamp = api.openapi.stat().st_mtime_ns
            self.spec = shared.get(("openapi", api.openapi, stamp, self.validate_response),
                                   lambda: load_spec(api.openapi, responses=self.validate_response))
            extra = tuple(self.spec.scope_resources())  # security requirements -> scopes
        self.authorizer = None
        if api.authorization is not None or extra:
            from .config.model import Authorization
            from .policies.authorization.policy import build as build_authorizer

            with_authz = api if api.authorization is not None else replace(api, authorization=Authorization())
            self.authorizer = build_authorizer(with_authz, config, shared, extra_resources=extra)
        self.threat = None
        if api.threat_protection is not None:
            from .policies.threat.policy import build as build_threat

            self.threat = build_threat(api, config, shared)
        self.cors = None
        if api.cors is not None:
            from .policies.cors.policy import build as build_cors

            self.cors = build_cors(api, config, shared)
        ctx = None
        if any(u.scheme == "https" for u in api.upstream.urls):
            ctx = upstream_context(api.upstream.tls)
        if previous is not None and previous.api.upstream == api.upstream:
            self.pool = previous.pool  # keep warm connections across reloads
            self.pool.ssl_context = ctx  # but new connections use key files as they are now
        else:
            self.pool = UpstreamPool(api.upstream, config.http.fast_path, ctx)
        self.pool.fast_path = config.http.fast_path and self.pool.fast_path_available
        from .policies.ratelimit.policy import build as build_traffic

        self.traffic = build_traffic(api, config, shared)
        self.max_body = api.max_body_bytes if api.max_body_bytes is not None else config.limits.max_body_bytes
        self.max_concurrency = api.upstream.max_concurrency


class Runtime:
    __slots__ = ("config", "router", "apis", "shared", "token_service")

    def __init__(self, config: Config, previous: Runtime | None = None, shared: SharedState | None = None) -> None:
        self.config = config
        self.shared = shared or (previous.shared if previous is not None else SharedState())
        self.router = Router(config.apis)
        old = previous.apis if previous is not None else {}
        self.apis = {api.name: ApiRuntime(api, config, old.get(api.name), self.shared) for api in config.apis}
        self.token_service = None  # issue 7: the built-in authorization server's endpoints
        if config.token_service is not None:
            from .token_service.endpoints import build as build_token_service

            self.token_service = build_token_service(config, self.shared)

    def retired_pools(self, newer: Runtime) -> list[UpstreamPool]:
        keep = {id(a.pool) for a in newer.apis.values()}
        return [a.pool for a in self.apis.values() if id(a.pool) not in keep]

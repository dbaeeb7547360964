"""Open Policy Agent decisions over the Data API: POST {"input": ...} to `opa.url`, read `result`.

Invariant: the input document never carries a credential (Authorization, Proxy-Authorization,
Cookie, the API-key header, any `logging.redact_headers` entry, CSRF tokens, query values, also
the Referer's, the bearer token);
decisions are cached by the SHA-256 of the canonical input without its per-request fields
(`time`, `request_id`), at most `cache_ttl`, in a bounded LRU; identical inputs in flight at the
same time share one call. A failed or slow call is `on_error`: deny = 503, allow = let through.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

import orjson

from ... import errors
from ...config.model import Api, Config, Opa
from ...http.client import HttpClient

log = logging.getLogger("fastgate.authorization")

CACHE_MAX_ENTRIES = 10_000  # distinct inputs remembered; the oldest is dropped past this
ERROR_LOG_INTERVAL = 10.0  # seconds between two "OPA unavailable" warnings per API

# Never sent to OPA: credentials (CONTRACT.md) and CSRF tokens (session-bound secrets) ...
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key",
                                "x-csrf-token", "x-xsrf-token"})
# ... and per-request tracing ids, which would make every input unique (and the cache useless).
TRACING_HEADERS = frozenset({
    "traceparent", "tracestate", "x-request-id", "x-correlation-id", "request-id", "b3",
    "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags",
    "x-amzn-trace-id", "x-cloud-trace-context", "uber-trace-id",
})
_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
_JSON_HEADERS = [(b"content-type", b"application/json"), (b"accept", b"application/json")]


def _rfc3339(t: float) -> str:
    ms = int(t * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{ms:03d}Z"


def query_names(target: bytes) -> list[str]:
    """Parameter names of the query, first occurrence order, never the values."""
    query = target.partition(b"?")[2]
    if not query:
        return []
    names = {}
    for part in query.split(b"&"):
        if part:
            names[part.partition(b"=")[0].decode("latin-1")] = None
    return list(names)


def allowed(doc) -> bool:
    """`{"result": true}` allows; so does `{"result": {"allow": true}}` (querying a package
    rather than a rule). Anything else (false, undefined = no `result`, other types) denies."""
    if not isinstance(doc, dict):
        return False
    result = doc.get("result")
    if result is True:
        return True
    return isinstance(result, dict) and result.get("allow") is True


class OpaDecider:
    __slots__ = ("url", "timeout", "fail_open", "ttl", "api_name", "base", "drop_headers",
                 "http", "clock", "monotonic", "cache", "inflight", "calls", "_last_error_log")

    def __init__(self, opa: Opa, api: Api, config: Config, http: HttpClient,
                 clock: Callable[[], float], monotonic: Callable[[], float]) -> None:
        self.url = opa.url
        self.timeout = opa.timeout
        self.fail_open = opa.on_error == "allow"
        self.ttl = opa.cache_ttl
        self.api_name = api.name
        self.base = "" if api.base_path == "/" else api.base_path
        drop = set(CREDENTIAL_HEADERS) | TRACING_HEADERS
        drop.update(h.lower() for h in config.logging.redact_headers)
        if api.api_key is not None and api.api_key.header:
            drop.add(api.api_key.header.lower())
        self.drop_headers = frozenset(h.encode("latin-1") for h in drop)
        self.http = http
        self.clock = clock
        self.monotonic = monotonic
        self.cache: OrderedDict[bytes, tuple[float, bool]] = OrderedDict()
        self.inflight: dict[bytes, asyncio.Task] = {}
        self.calls = 0  # OPA requests actually sent (tests, metrics)
        self._last_error_log = -ERROR_LOG_INTERVAL

    # ------------------------------------------------------------ input document
    def headers(self, req) -> dict[str, str]:
        out: dict[str, str] = {}
        drop = self.drop_headers
        for name, value in req.headers:
            if not name.islower():
                name = name.lower()
            # x-fastgate-*: identity headers a client sent are untrusted (the upstream never sees them)
            if name in drop or name.startswith(b"x-fastgate-"):
                continue
            n = name.decode("latin-1")
            v = value.decode("latin-1")
            if n == "referer":  # a URL: its query values are as secret as ours
                v = v.partition("?")[0].partition("#")[0]
            out[n] = f"{out[n]}, {v}" if n in out else v  # RFC 9110 §5.3
        return out

    def input_document(self, ctx, req, identity, rest_path: str, method: str,
                       scopes: frozenset[str]) -> dict:
        """The input without its per-request fields (those are added to the body only)."""
        ident = None
        roles: list[str] = []
        if identity is not None:
            roles = sorted(identity.roles)
            ident = {
                "method": identity.method,
                "subject": identity.subject,
                "application": identity.application,
                "scopes": sorted(identity.scopes),
                "roles": roles,
                "claims": identity.claims,
                "credential_id": identity.credential_id,
            }
        return {
            "api": self.api_name,
            "method": method,
            "path": (self.base + rest_path) or "/",
            "rest_path": rest_path or "/",
            "scheme": ctx.scheme,
            "headers": self.headers(req),
            "query": query_names(req.target),
            "identity": ident,
            "scopes": sorted(scopes),
            "roles": roles,
            "client_ip": ctx.client_ip,
        }

    # ------------------------------------------------------------ decision
    async def check(self, ctx, req, identity, rest_path: str, method: str,
                    scopes: frozenset[str]) -> None:
        """Return when OPA allows (or fails open); raise Forbidden / Unavailable otherwise."""
        doc = self.input_document(ctx, req, identity, rest_path, method, scopes)
        try:
            canonical = orjson.dumps(doc, default=str, option=_CANONICAL)
        except orjson.JSONEncodeError as e:  # e.g. an integer claim beyond 64 bits
            canonical = None
            failure = errors.Unavailable("policy input not encodable", log_detail=str(e))
        verdict = None
        if canonical is not None:
            digest = hashlib.sha256(canonical).digest()
            verdict = self._cached(digest)
        if verdict is None:
            try:
                if canonical is None:
                    raise failure
                task = self.inflight.get(digest)
                if task is None:
                    tail = orjson.dumps({"request_id": ctx.request_id, "time": _rfc3339(self.clock())})
                    body = b'{"input":' + canonical[:-1] + b"," + tail[1:] + b"}"
                    task = asyncio.ensure_future(self._call(body))
                    self.inflight[digest] = task
                    task.add_done_callback(lambda t, d=digest: self._done(d, t))
                verdict = await asyncio.shield(task)
            except errors.Unavailable as err:
                ctx.decision = "authorization.opa"
                if not self.fail_open:
                    raise errors.Unavailable("authorization backend unavailable",
                                             log_detail=f"OPA: {err.log_detail or err.detail}") from None
                now = self.monotonic()
                if now - self._last_error_log >= ERROR_LOG_INTERVAL:
                    self._last_error_log = now
                    log.warning("api %s: OPA unavailable, on_error: allow lets requests through (%s)",
                                self.api_name, err.log_detail or err.detail)
                ctx.decision = "authorization.opa:on_error_allow"
                return
        if not verdict:
            ctx.decision = "authorization.opa"
            raise errors.Forbidden("denied by policy", log_detail="OPA result is not true")

    def _cached(self, digest: bytes) -> bool | None:
        hit = self.cache.get(digest)
        if hit is None:
            return None
        if hit[0] <= self.monotonic():
            del self.cache[digest]
            return None
        self.cache.move_to_end(digest)
        return hit[1]

    def _done(self, digest: bytes, task: asyncio.Task) -> None:
        self.inflight.pop(digest, None)
        if task.cancelled():
            return
        err = task.exception()  # also marks it retrieved when every waiter went away
        if err is None and self.ttl > 0:
            self.cache[digest] = (self.monotonic() + self.ttl, task.result())
            self.cache.move_to_end(digest)
            while len(self.cache) > CACHE_MAX_ENTRIES:
                self.cache.popitem(last=False)

    async def _call(self, body: bytes) -> bool:
        self.calls += 1
        resp = await self.http.request("POST", self.url, headers=list(_JSON_HEADERS), body=body,
                                       timeout=self.timeout)
        if resp.status != 200:
            raise errors.Unavailable("policy backend error", log_detail=f"OPA answered {resp.status}")
        try:
            doc = orjson.loads(resp.body)
        except orjson.JSONDecodeError:
            raise errors.Unavailable("policy backend error", log_detail="OPA answer is not JSON") from None
        return allowed(doc)

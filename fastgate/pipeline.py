"""The request pipeline: fixed stages in order, and the only place errors become responses.

Invariant: a request reaches an upstream only after every stage let it through; any stage may
raise a GatewayError, which is rendered here as problem+json (RFC 9457) with the contract's
status and code, never with a payload, a secret or a stack trace.
"""

from __future__ import annotations

import logging
import os
import time
from http import HTTPStatus
from urllib.parse import quote, unquote_plus

import orjson

from . import errors
from .http.server import Request, ServerConnection, new_context
from .quota import whole_seconds
from .routing import normalise_path, upstream_path

log = logging.getLogger("fastgate")

# RFC 9110 §7.6.1 hop-by-hop fields, plus the framing we always redo ourselves.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding",
    b"upgrade", b"content-length", b"host", b"expect", b"proxy-authorization", b"proxy-authenticate",
})
# Client-sent values of these are replaced, never trusted (CONTRACT.md "What reaches the upstream").
CLIENT_REPLACED = frozenset({
    b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port",
    b"forwarded", b"x-real-ip", b"x-request-id",
})
BANNERS = frozenset({b"server", b"x-powered-by", b"x-aspnet-version", b"x-aspnetmvc-version"})
RESPONSE_DROP = (HOP_BY_HOP - {b"host", b"expect"}) | BANNERS | {b"x-request-id"}

PROBLEM = b"application/problem+json"
RESPONSE_VALIDATION_MAX = 8 * 1024 * 1024  # bigger upstream bodies cannot be validated: 502


class _RequestIds:
    """Unique ids without a system call per request: a random 64-bit prefix drawn per process
    (again in every forked worker) and a counter. Correlation ids, not secrets."""

    __slots__ = ("prefix", "n")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"{self.prefix}{self.n:08x}"


new_request_id = _RequestIds()
os.register_at_fork(after_in_child=new_request_id.reset)


def _connection_tokens(headers: list[tuple[bytes, bytes]]) -> frozenset[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return frozenset(tokens)


def forward_request_headers(headers: list[tuple[bytes, bytes]], ctx, host: bytes,
                            consumed: set[bytes] | frozenset[bytes] = frozenset()) -> list[tuple[bytes, bytes]]:
    """One pass: hop-by-hop, client-sent forwarding/identity headers and consumed credentials
    out; our forwarding headers in."""
    listed = _connection_tokens(headers)
    out = []
    for name, value in headers:
        key = name.replace(b"_", b"-") if b"_" in name else name  # X_Forwarded_For is X-Forwarded-For to some backends
        if key in HOP_BY_HOP or key in CLIENT_REPLACED or key.startswith(b"x-fastgate-"):
            continue
        if (listed and name in listed) or (consumed and name in consumed):
            continue
        out.append((name, value))
    out.append((b"x-forwarded-for", ctx.client_ip.encode()))
    out.append((b"x-forwarded-proto", ctx.scheme.encode()))
    if host:
        out.append((b"x-forwarded-host", host))
    out.append((b"x-request-id", ctx.request_id.encode()))
    return out


def response_headers(headers: list[tuple[bytes, bytes]], ctx) -> list[tuple[bytes, bytes]]:
    listed = _connection_tokens(headers)
    out = [(n, v) for n, v in headers if n not in RESPONSE_DROP and not (listed and n in listed)]
    out.append((b"x-request-id", ctx.request_id.encode()))
    out.extend(_ratelimit_headers(ctx))
    if ctx.cors_headers:
        out = [(n, v) for n, v in out if not n.startswith(b"access-control-") and n != b"vary"] + \
            [(n, v) for n, v in headers if n == b"vary"] + ctx.cors_headers
    return out


class Consumed:
    """Every credential of the API's methods present on a request: the deciding method's, and
    any other configured method's, which nobody verified and which must not reach the upstream
    (a forged Bearer token beside a valid API key would otherwise pass through unchecked)."""

    __slots__ = ("headers", "query")

    def __init__(self) -> None:
        self.headers: set[bytes] = set()
        self.query: list[str] = []

    def add(self, method_name: str, found) -> None:
        self.headers.update(found.strip_headers)
        if method_name == "oauth2":
            self.headers.add(b"authorization")
        if found.strip_query:
            self.query.append(found.strip_query)


_DECISIONS = {m: f"authentication.{m}" for m in ("api_key", "basic", "digest", "oauth2", "mtls")}
_CONSUMED_ONE: dict[tuple, Consumed] = {}


class _Fixed(Consumed):
    """A Consumed shared by every request with the same single method and credential places
    (read-only: frozenset headers, tuple query)."""

    __slots__ = ()


def _consumed_one(method_name: str, found, verified: bool) -> Consumed:
    """What `_authenticate` strips when the API has one method: the same answer as the general
    path (Authorization always, unless oauth2 verified the Bearer token it carries)."""
    key = (method_name, found.strip_headers, found.strip_query, verified)
    c = _CONSUMED_ONE.get(key)
    if c is None:
        c = Consumed()
        c.headers.add(b"authorization")
        c.add(method_name, found)
        if method_name == "oauth2" and verified:
            c.headers.discard(b"authorization")
        fixed = _Fixed.__new__(_Fixed)
        fixed.headers = frozenset(c.headers)
        fixed.query = tuple(c.query)
        if len(_CONSUMED_ONE) >= 1024:
            _CONSUMED_ONE.clear()
        c = _CONSUMED_ONE[key] = fixed
    return c


def _drop_query_param(query: str, name: str) -> str:
    """Remove every `name=...` (names compared percent-decoded); the rest keeps its encoding."""
    kept = [p for p in query.split("&") if p and unquote_plus(p.split("=", 1)[0]) != name]
    return "&".join(kept)


_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%") + " "


def _header_safe(value: str) -> bytes:
    """Identity values come from tokens and config: percent-encode anything outside printable
    ASCII so no claim can inject a header line (CR/LF) or smuggle bytes."""
    if value.isascii() and value.isprintable() and "%" not in value:
        return value.encode("ascii")  # the common case, without quote()'s cost
    return quote(value, safe=_SAFE).encode("ascii")


_IDENTITY_HEADERS: dict[tuple, list[tuple[bytes, bytes]]] = {}
IDENTITY_HEADER_CACHE = 10_000  # distinct (subject, application, scopes) triples kept encoded


def _identity_headers(identity) -> list[tuple[bytes, bytes]]:
    """X-Fastgate-* for an identity; the encoded headers are cached per (subject, application,
    scopes) because a hot client presents the same identity on every request."""
    key = (identity.subject, identity.application, identity.scopes)
    cached = _IDENTITY_HEADERS.get(key)
    if cached is None:
        if len(_IDENTITY_HEADERS) >= IDENTITY_HEADER_CACHE:
            _IDENTITY_HEADERS.clear()
        cached = _IDENTITY_HEADERS[key] = _encode_identity(identity)
    return cached


def _encode_identity(identity) -> list[tuple[bytes, bytes]]:
    out = []
    if identity.subject:
        out.append((b"x-fastgate-subject", _header_safe(identity.subject)))
    if identity.application:
        out.append((b"x-fastgate-application", _header_safe(identity.application)))
    if identity.scopes:
        out.append((b"x-fastgate-scopes", _header_safe(" ".join(sorted(identity.scopes)))))
    return out


def _ratelimit_headers(ctx) -> list[tuple[bytes, bytes]]:
    d = ctx.rate_decision
    if d is None:
        return []
    return [
        (b"ratelimit-limit", b"%d" % d.limit),
        (b"ratelimit-remaining", b"%d" % d.remaining),
        (b"ratelimit-reset", b"%d" % whole_seconds(d.reset_after)),
    ]


_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


def _reason(status: int) -> bytes:
    return _REASONS.get(status, b"Unknown")


def problem_body(err: errors.GatewayError, request_id: str) -> bytes:
    doc = {"type": "about:blank", "title": err.title, "status": err.status, "code": err.code}
    if err.detail:
        doc["detail"] = err.detail
    doc["request_id"] = request_id
    if err.extra:
        doc.update(err.extra)
    return orjson.dumps(doc)


class Pipeline:
    def __init__(self, gateway) -> None:
        self.gateway = gateway

    async def handle(self, conn: ServerConnection, req: Request) -> bool:
        """Answer one request; returns whether the connection may be kept alive."""
        gw = self.gateway
        runtime = gw.runtime
        ctx = new_context(conn, new_request_id())
        ctx.method = req.method.decode("latin-1")
        ctx.http_version = req.http_version.decode("latin-1")
        keep = False
        try:
            keep = await self._run(conn, req, ctx, runtime)
        except errors.GatewayError as err:
            keep = await self._refuse(conn, req, ctx, err)
        except ConnectionError:  # the client went away mid-answer: logged as 499 below
            keep = False
        except Exception:  # a bug must cost one request, never the worker
            log.exception("request %s failed", ctx.request_id)
            if conn.closed or ctx.status:
                keep = False
            else:
                keep = await self._refuse(conn, req, ctx, errors.GatewayError())
        finally:
            if ctx.charges:
                runtime.apis[ctx.route.name].traffic.charge(ctx)
            if not ctx.status:  # cancelled: the client went away before an answer (nginx's 499)
                ctx.status = 499
                ctx.code = "client_closed_request"
            total = time.perf_counter() - ctx.started
            gw.observe(ctx, total)
        return keep

    async def _run(self, conn: ServerConnection, req: Request, ctx, runtime) -> bool:
        # stage 1 leftover: `client_certificates: required` on the listener (see tls.py)
        if conn.client_cert_required and conn.peer_cert is None:
            ctx.decision = "listener.client_certificates"
            raise errors.Unauthenticated("a client certificate is required")
        # stage 2 leftovers: only origin-form reaches an API (RFC 9112 §3.2.1)
        target = req.target.decode("latin-1")
        if target[:1] != "/":
            raise errors.BadRequest("request target must be a path")
        raw_path, _, query = target.partition("?")
        ctx.path = raw_path
        ctx.query = query
        path = normalise_path(raw_path)
        ctx.path = path
        ts = runtime.token_service  # issue 7: its endpoints, on every TLS listener
        if ts is not None and path in ts.paths and conn.scheme == "https":
            return await ts.handle(conn, req, ctx, path, query)
        # stage 3: route
        api, rest = runtime.router.route(path)
        ctx.route = api
        ar = runtime.apis[api.name]
        # stage 4: cheap checks first
        if ar.cors is not None:
            ctx.cors_headers = ar.cors.response_headers(req)
            pre = ar.cors.preflight(req)
            if pre is not None:
                status, headers = pre
                if status < 400:
                    return self._answer(conn, req, ctx, status, headers)
                ctx.decision = "cors"
                self._enforce(ar, ctx, errors.Forbidden("CORS preflight refused"))
        match = None
        if ar.spec is not None:
            match = self._operation(ar, ctx, req, rest)
        if ar.threat is not None:
            try:
                ar.threat.check_head(ctx, req, raw_path, query, ar.api_key_header)
            except errors.GatewayError as err:
                self._enforce(ar, ctx, err)
        # stage 5: authenticate (the first method that finds its credentials decides)
        found = None
        if ar.authenticators or api.mtls == "required":
            found = await self._authenticate(ctx, req, ar)
        # stage 6: authorize
        if ar.authorizer is not None:
            try:
                await ar.authorizer.authorize(ctx, req, ctx.identity, rest)
            except errors.GatewayError as err:
                self._enforce(ar, ctx, err)
        # stage 7: quota (burst, resource, subscription, application, API, anonymous, backend)
        if ar.traffic is not None:
            try:
                await ar.traffic.admit(ctx, req.method, rest, ctx.identity)
            except errors.GatewayError as err:
                self.gateway.metrics.ratelimit_denials.labels(
                    api.name, getattr(err, "level", ""), getattr(err, "tier", "")).inc()
                self._enforce(ar, ctx, err)
        pool = ar.pool
        if ar.max_concurrency is not None and pool.in_flight >= ar.max_concurrency:
            ctx.decision = "upstream.max_concurrency"
            raise errors.BackendBusy("backend concurrency limit reached", headers=[("retry-after", "1")])
        if req.content_length > ar.max_body:
            raise errors.PayloadTooLarge(f"body larger than {ar.max_body} bytes")
        # stage 9: proxy
        host = b""
        for name, value in req.headers:
            if name == b"host":
                host = value
                break
        fwd = forward_request_headers(req.headers, ctx, host, found.headers if found is not None else frozenset())
        if found is not None:
            for name in found.query:
                query = _drop_query_param(query, name)
        if ctx.identity is not None:
            fwd.extend(_identity_headers(ctx.identity))
        up_target = upstream_path(api.upstream.path, rest)
        if query:
            up_target = up_target + "?" + query
        ctx.upstream_path = up_target
        body = None
        body_length = None
        if ar.validate_request and match is not None:
            data = await self._validate_request(ar, ctx, req, match, query)
            if data is not None:
                body, body_length = data, len(data)
        elif req.has_body:
            if ar.threat is not None and ar.threat.inspects_body:
                data = await self._accepted_body(ar, ctx, req)
                body, body_length = data, len(data)
            else:
                body = self._counted(req.body(ar.max_body), ctx)
                body_length = None if req.chunked else req.content_length
        pool.in_flight += 1
        ctx.upstream_started = time.perf_counter()
        try:
            try:
                resp = await pool.exchange(req.method, up_target.encode("latin-1"), fwd, body, body_length)
            except (errors.BadGateway, errors.GatewayTimeout) as e:
                self.gateway.metrics.upstream_errors.labels(api.name, e.code).inc()
                # our own wording (address + exception class), never request bytes
                log.warning("%s api=%s %s: %s", ctx.request_id, api.name, e.code, e.log_detail or e.detail)
                raise
            ctx.upstream_ms = round((time.perf_counter() - ctx.upstream_started) * 1000, 3)
            if ar.validate_response and match is not None and not resp.head_only:
                return await self._validated_response(conn, req, ctx, ar, match, resp)
            ctx.status = resp.status
            conn.start_response(req, resp.status, resp.reason or _reason(resp.status), response_headers(resp.headers, ctx),
                                resp.content_length, close=not req.body_done)
            try:
                async for chunk in resp.body():
                    ctx.bytes_out += len(chunk)
                    conn.send_data(chunk)
                    await conn.drain()
            except errors.GatewayError as e:
                # The head is already out: the only honest signal left is to cut the connection.
                self.gateway.metrics.upstream_errors.labels(api.name, e.code).inc()
                ctx.code = e.code
                resp.release()
                conn.close()
                return False
            resp.release()
            return conn.end_response()
        finally:
            pool.in_flight -= 1

    async def _authenticate(self, ctx, req: Request, ar) -> Consumed:
        """Sets ctx.identity; returns every credential to strip before forwarding. Only a
        Bearer token that oauth2 itself verified is forwarded (CONTRACT.md); any other
        Authorization header, and other methods' keys, are dropped even in monitor mode."""
        if ar.api.mtls == "required" and ctx.peer_cert is None:
            ctx.decision = "apis.mtls"
            self._enforce(ar, ctx, errors.Unauthenticated("a client certificate is required"))
        if len(ar.authenticators) == 1:  # the common case, without the general bookkeeping
            method = ar.authenticators[0]
            found = method.find(ctx, req)
            if found is not None:
                ctx.decision = _DECISIONS.get(method.name) or f"authentication.{method.name}"
                try:
                    ctx.identity = await method.verify(ctx, req, found)
                except errors.GatewayError as err:
                    self._enforce(ar, ctx, err)
                return _consumed_one(method.name, found, ctx.identity is not None)
        consumed = Consumed()
        consumed.headers.add(b"authorization")
        deciding = None
        for method in ar.authenticators:
            found = method.find(ctx, req)
            if found is None:
                continue
            if deciding is None:
                deciding = (method, found)
            else:
                consumed.add(method.name, found)
        if deciding is not None:
            method, found = deciding
            consumed.add(method.name, found)
            ctx.decision = f"authentication.{method.name}"
            try:
                ctx.identity = await method.verify(ctx, req, found)
            except errors.GatewayError as err:
                self._enforce(ar, ctx, err)
            if method.name == "oauth2" and ctx.identity is not None:
                consumed.headers.discard(b"authorization")  # the verified token goes on unchanged
            return consumed
        if ar.authenticators:
            ctx.decision = "authentication"
            challenges = [c for c in (m.challenge() for m in ar.authenticators) if c]
            self._enforce(ar, ctx, errors.Unauthenticated(
                "credentials required", headers=[("www-authenticate", c) for c in challenges]))
        return consumed

    def _enforce(self, ar, ctx, err: errors.GatewayError) -> None:
        """Raise `err`, unless the API is in monitor mode: then log and count what would have
        been refused and let the request go on (Envoy's filter_enabled without filter_enforced)."""
        if not ar.monitor:
            raise err
        self.gateway.metrics.rejections.labels(ar.api.name, (ctx.decision or "policy") + ":monitor",
                                               err.code).inc()
        log.info("%s monitor: would refuse with %d %s (%s)", ctx.request_id, err.status, err.code,
                 ctx.decision or "policy")
        ctx.decision = f"monitor:{ctx.decision or 'policy'}:{err.code}"

    def _operation(self, ar, ctx, req: Request, rest: str):
        """OpenAPI: an undeclared path is 404, an undeclared method 405 with Allow."""
        from .openapi import NOT_FOUND, MethodNotAllowed

        found = ar.spec.match(req.method, rest or "/")
        if found is NOT_FOUND:
            ctx.decision = "openapi"
            self._enforce(ar, ctx, errors.NotFound("no such resource in the API definition"))
            return None
        if isinstance(found, MethodNotAllowed):
            ctx.decision = "openapi"
            self._enforce(ar, ctx, errors.MethodNotAllowed(
                "method not declared for this resource", headers=[("allow", found.header)]))
            return None
        return found

    async def _accepted_body(self, ar, ctx, req: Request) -> bytes:
        """Stage 8: the whole body, accepted (through threat protection when it inspects
        bodies) before the upstream request starts."""
        if ar.threat is not None and ar.threat.inspects_body:
            # enforce=None raises, which is what _enforce does unless the API is in monitor mode
            return await ar.threat.read_body(ctx, req, ar.max_body, enforce=(
                (lambda err: self._enforce(ar, ctx, err)) if ar.monitor else None))
        parts = []
        async for chunk in req.body(ar.max_body):
            parts.append(chunk)
        data = b"".join(parts)
        ctx.bytes_in = len(data)
        return data

    async def _validate_request(self, ar, ctx, req: Request, match, query: str) -> bytes | None:
        """Parameters and the JSON body against the operation: the body is accepted whole (and
        through threat protection when on) before it is validated, then forwarded as read."""
        data = await self._accepted_body(ar, ctx, req) if req.has_body else None
        problems = match.validate_request(query, req.headers, None, data)
        if problems:
            ctx.decision = "validation.request"
            self._enforce(ar, ctx, errors.InvalidRequest("the request does not match the API definition",
                                                         extra={"errors": problems[:10]}))
        return data

    async def _validated_response(self, conn, req, ctx, ar, match, resp) -> bool:
        """`validation.response`: the upstream body is read whole (bounded) and checked before a
        byte of it is forwarded; a mismatch is 502 `invalid_response` and the body is dropped."""
        parts = []
        size = 0
        try:
            async for chunk in resp.body():
                size += len(chunk)
                if size > RESPONSE_VALIDATION_MAX:
                    raise errors.InvalidResponse("upstream response too large to validate")
                parts.append(chunk)
        finally:
            resp.release()
        data = b"".join(parts)
        ctype = next((v for n, v in resp.headers if n == b"content-type"), None)
        problems = match.operation.validate_response(resp.status, ctype, data)
        if problems:
            ctx.decision = "validation.response"
            log.warning("%s api=%s upstream response does not match the API definition: %s",
                        ctx.request_id, ar.api.name, problems[:3])
            self._enforce(ar, ctx, errors.InvalidResponse("the upstream response does not match the API definition"))
        ctx.status = resp.status
        ctx.bytes_out = len(data)
        conn.start_response(req, resp.status, resp.reason or _reason(resp.status),
                            response_headers(resp.headers, ctx), len(data), close=not req.body_done)
        conn.send_data(data)
        return conn.end_response()

    def _answer(self, conn: ServerConnection, req: Request, ctx, status: int,
                headers: list[tuple[bytes, bytes]]) -> bool:
        """An answer the gateway gives itself without an upstream (a CORS preflight)."""
        ctx.status = status
        hdrs = list(headers) + [(b"x-request-id", ctx.request_id.encode())]
        conn.start_response(req, status, _reason(status), hdrs, 0, close=not req.body_done)
        return conn.end_response() and req.body_done

    async def _counted(self, body, ctx):
        async for chunk in body:
            ctx.bytes_in += len(chunk)
            yield chunk

    async def _refuse(self, conn: ServerConnection, req: Request, ctx, err: errors.GatewayError) -> bool:
        ctx.status = err.status
        ctx.code = err.code
        ctx.log_detail = err.log_detail
        if conn.closed:
            return False
        if ctx.route is not None and err.status not in (502, 504):
            self.gateway.metrics.rejections.labels(ctx.route.name, ctx.decision or "gateway", err.code).inc()
        close = err.close_connection or not req.body_done
        body = problem_body(err, ctx.request_id)
        headers = [(b"content-type", PROBLEM), (b"cache-control", b"no-store"),
                   (b"x-request-id", ctx.request_id.encode())]
        headers += [(n.encode(), v.encode()) for n, v in err.headers]
        headers += _ratelimit_headers(ctx)
        if ctx.cors_headers:
            headers += ctx.cors_headers
        if close:
            # We close anyway: write the answer raw, whatever state the codec is in.
            conn.write_raw_error(err.status, err.title.encode(), headers, body,
                                 head_only=req.method == b"HEAD")
            ctx.bytes_out += len(body)
            return False
        conn.start_response(req, err.status, err.title.encode(), headers, len(body))
        conn.send_data(body)
        ctx.bytes_out += len(body)
        return conn.end_response()

    async def reject_connection(self, conn: ServerConnection, err: errors.GatewayError) -> None:
        """An error before a request could be parsed (limits, framing, timeouts): answer, close."""
        ctx = new_context(conn, new_request_id())
        ctx.status = err.status
        ctx.code = err.code
        ctx.log_detail = err.log_detail
        body = problem_body(err, ctx.request_id)
        headers = [(b"content-type", PROBLEM), (b"cache-control", b"no-store"),
                   (b"x-request-id", ctx.request_id.encode())]
        conn.write_raw_error(err.status, err.title.encode(), headers, body)
        ctx.bytes_out = len(body)
        self.gateway.observe(ctx, time.perf_counter() - ctx.started)

"""Upstream HTTP/1.1 client: pooled keep-alive connections, round robin, timeouts, back-off.

Invariant: a connection goes back to the pool only after a response was read to its end with
both sides agreeing on keep-alive; anything odd closes it. Response heads use the native fast
path when it fully understands them and h11 otherwise; with `http.fast_path: false` the whole
exchange goes through h11. Every wait is bounded by `connect_timeout` or `timeout`.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator

import h11

from .. import errors
from ..config.model import Upstream, UpstreamUrl
from .flow import FlowProtocol
from .server import _find_head_end

try:
    from .._native import httpfast
except ImportError:  # pragma: no cover
    httpfast = None

MAX_IDLE_PER_URL = 128  # idle keep-alive connections kept per upstream URL
IDLE_EXPIRY = 30.0  # an idle pooled connection older than this is closed, not reused
DOWN_BACKOFF = 2.0  # a URL that refused a connection is skipped this long
MAX_RESPONSE_HEAD = 64 * 1024  # a bigger upstream response head is a bad gateway
CHUNK = 64 * 1024
# RFC 9110 §9.2.2: only these may be sent again after a connection died without an answer.
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
# RFC 9110 §8.6: methods whose content has a meaning; sent bodiless, they say Content-Length: 0.
BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})


class _Gone(Exception):
    """The connection closed before any response byte: safe to retry an idempotent request."""


class UpstreamConnection(FlowProtocol):
    def __init__(self, url: UpstreamUrl) -> None:
        super().__init__()
        self.url = url
        self.idle_since = 0.0

    def connection_made(self, transport) -> None:
        self.transport = transport

    async def wait(self, deadline: float) -> None:
        if not await self.wait_input(deadline):
            raise errors.GatewayTimeout("upstream did not answer in time")

    async def send(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("upstream closed")
        self.transport.write(data)
        await self.drain()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamResponse:
    """A response head plus its streamed body; `release()` returns the connection when clean."""

    __slots__ = ("status", "reason", "headers", "content_length", "_pool", "_conn", "_h11",
                 "_head_only", "_deadline_gap", "_keep", "_done")

    def __init__(self, pool, conn, status, reason, headers, content_length, keep, h11conn,
                 head_only) -> None:
        self._pool = pool
        self._conn = conn
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content_length = content_length  # None = unknown (chunked or until close)
        self._keep = keep
        self._h11 = h11conn
        self._head_only = head_only
        self._deadline_gap = pool.upstream.timeout
        self._done = head_only or content_length == 0

    async def body(self) -> AsyncIterator[bytes]:
        if self._done:
            return
        conn = self._conn
        loop = conn.loop
        if self._h11 is None:
            remaining = self.content_length if self.content_length is not None else -1
            while remaining != 0:
                if conn.buf:
                    n = len(conn.buf) if remaining < 0 else min(remaining, len(conn.buf))
                    chunk = conn.take(min(n, CHUNK))
                    if remaining > 0:
                        remaining -= len(chunk)
                    yield chunk
                    continue
                if conn.eof:
                    if remaining < 0:
                        break  # close-delimited body ends here
                    self._keep = False
                    raise errors.BadGateway("upstream closed mid-response")
                await conn.wait(loop.time() + self._deadline_gap)
            self._done = True
            return
        hc = self._h11
        while True:
            try:
                ev = hc.next_event()
            except h11.RemoteProtocolError as e:
                self._keep = False
                raise errors.BadGateway("malformed upstream response", log_detail=str(e)) from None
            if ev is h11.NEED_DATA:
                if conn.buf:
                    hc.receive_data(conn.take(len(conn.buf)))
                elif conn.eof:
                    hc.receive_data(b"")
                else:
                    await conn.wait(loop.time() + self._deadline_gap)
                continue
            t = type(ev)
            if t is h11.Data:
                yield bytes(ev.data)
            elif t is h11.EndOfMessage:
                self._done = True
                return
            else:  # ConnectionClosed before the end
                self._keep = False
                raise errors.BadGateway("upstream closed mid-response")

    @property
    def head_only(self) -> bool:
        """No body follows (HEAD, 204, 304)."""
        return self._head_only

    def release(self) -> None:
        """Return the connection to the pool if the exchange ended cleanly, else close it."""
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        reusable = self._done and self._keep and not conn.closed and not conn.buf
        if reusable and self._h11 is not None:
            hc = self._h11
            reusable = hc.our_state is h11.DONE and hc.their_state is h11.DONE and not hc.trailing_data[0]
        if reusable:
            self._pool.put_back(conn)
        else:
            conn.close()


class UpstreamPool:
    """All connections of one API's upstream: round robin over `urls`, bounded idle pools."""

    def __init__(self, upstream: Upstream, fast_path: bool, ssl_context: ssl.SSLContext | None) -> None:
        self.upstream = upstream
        self.fast_path_available = httpfast is not None
        self.fast_path = fast_path and self.fast_path_available
        self.ssl_context = ssl_context
        self._idle: dict[UpstreamUrl, deque[UpstreamConnection]] = {u: deque() for u in upstream.urls}
        self._down_until: dict[UpstreamUrl, float] = {}
        self._next = 0
        self.in_flight = 0

    def _pick(self) -> list[UpstreamUrl]:
        """URLs in round-robin order, those in back-off last."""
        urls = self.upstream.urls
        n = len(urls)
        start = self._next
        self._next = (start + 1) % n
        order = [urls[(start + i) % n] for i in range(n)]
        if self._down_until:
            now = time.monotonic()
            up = [u for u in order if self._down_until.get(u, 0.0) <= now]
            order = up + [u for u in order if u not in up]
        return order

    async def _connect(self, url: UpstreamUrl) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        ctx = self.ssl_context if url.scheme == "https" else None
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(
                    lambda: UpstreamConnection(url), url.host, url.port, ssl=ctx,
                    server_hostname=url.host if ctx is not None else None,
                ),
                self.upstream.connect_timeout,
            )
        except (TimeoutError, OSError, ssl.SSLError) as e:
            self._down_until[url] = time.monotonic() + DOWN_BACKOFF
            raise errors.BadGateway("upstream unreachable", log_detail=f"{url.authority}: {e!r}") from None
        self._down_until.pop(url, None)
        return proto

    def _idle_conn(self, url: UpstreamUrl) -> UpstreamConnection | None:
        pool = self._idle[url]
        now = time.monotonic()
        while pool:
            conn = pool.pop()
            if not conn.closed and not conn.buf and now - conn.idle_since < IDLE_EXPIRY:
                return conn
            conn.close()
        return None

    def put_back(self, conn: UpstreamConnection) -> None:
        pool = self._idle.get(conn.url)
        if pool is None or len(pool) >= MAX_IDLE_PER_URL:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        pool.append(conn)

    def close(self) -> None:
        for pool in self._idle.values():
            while pool:
                pool.pop().close()

    async def exchange(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]],
                       body: AsyncIterator[bytes] | bytes | None, body_length: int | None) -> UpstreamResponse:
        """Send one request and read the response head.

        `headers` carries no framing headers: `body_length` (None = chunked) and Host are ours.
        `body` is an async iterator of chunks, or bytes for a body already read whole (one write
        with the head, no generator).
        A reused connection that turns out closed before any response byte is retried once on a
        fresh one when the request has no body (nothing was consumed from the client) and its
        method is idempotent (RFC 9110 §9.2.2: the upstream may have acted on it already).
        """
        last_error: errors.GatewayError | None = None
        for url in self._pick():
            conn = self._idle_conn(url)
            reused = conn is not None
            try:
                if conn is None:
                    conn = await self._connect(url)
            except errors.BadGateway as e:
                last_error = e
                continue
            try:
                return await self._exchange_on(conn, url, method, target, headers, body, body_length)
            except _Gone:
                conn.close()
                if reused and body is None and method in IDEMPOTENT:
                    try:
                        conn = await self._connect(url)
                        return await self._exchange_on(conn, url, method, target, headers, None, body_length)
                    except _Gone:
                        conn.close()
                raise errors.BadGateway("upstream closed the connection") from None
            except BaseException:
                conn.close()
                raise
        raise last_error or errors.BadGateway("no upstream reachable")

    async def _exchange_on(self, conn, url, method, target, headers, body, body_length) -> UpstreamResponse:
        hdrs = [(b"host", url.authority.encode())]
        hdrs += headers
        if body is not None:
            if body_length is None:
                hdrs.append((b"transfer-encoding", b"chunked"))
            else:
                hdrs.append((b"content-length", b"%d" % body_length))
        elif method in BODY_METHODS:
            hdrs.append((b"content-length", b"0"))  # RFC 9110 §8.6; else some answer 411
        if self.fast_path:
            await self._send_fast(conn, method, target, hdrs, body, body_length)
            hc = None
        else:
            hc = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD)
            await self._send_h11(conn, hc, method, target, hdrs, body)
        return await self._read_head(conn, method, hc)

    async def _send_fast(self, conn, method, target, hdrs, body, body_length) -> None:
        try:
            head = httpfast.serialize_request_head(method, target, hdrs)
        except ValueError:
            raise errors.BadRequest("header value not allowed") from None
        try:
            if body is None:
                await conn.send(head)
                return
            if isinstance(body, bytes):
                if body_length != len(body):  # pragma: no cover - the pipeline passes len(body)
                    raise errors.BadRequest("body length mismatch")
                await conn.send(head + body)
                return
            chunked = body_length is None
            sent = 0
            pending = head  # the head goes out with the first body chunk: one write, one record
            async for chunk in body:
                sent += len(chunk)
                data = b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk
                if pending is not None:
                    data = pending + data
                    pending = None
                await conn.send(data)
            if pending is not None:
                await conn.send(pending)
            if chunked:
                await conn.send(b"0\r\n\r\n")
            elif sent != body_length:  # pragma: no cover - the client reader enforces it
                raise errors.BadRequest("body length mismatch")
        except ConnectionError:
            raise _Gone from None

    async def _send_h11(self, conn, hc, method, target, hdrs, body) -> None:
        try:
            data = hc.send(h11.Request(method=method, target=target, headers=hdrs))
            await conn.send(data)
            if isinstance(body, bytes):
                if body:
                    await conn.send(hc.send(h11.Data(data=body)))
            elif body is not None:
                async for chunk in body:
                    await conn.send(hc.send(h11.Data(data=chunk)))
            await conn.send(hc.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:
            raise errors.BadRequest("request not forwardable") from None
        except ConnectionError:
            raise _Gone from None

    async def _read_head(self, conn, method, hc) -> UpstreamResponse:
        loop = conn.loop
        deadline = loop.time() + self.upstream.timeout
        head_only = method == b"HEAD"
        while True:
            end = _find_head_end(conn.buf) if conn.buf else -1
            if end >= 0 or hc is not None and conn.buf:
                break
            if len(conn.buf) > MAX_RESPONSE_HEAD:
                raise errors.BadGateway("upstream response head too large")
            if conn.eof:
                if not conn.buf:
                    raise _Gone
                raise errors.BadGateway("upstream closed mid-response")
            await conn.wait(deadline)
        if end > MAX_RESPONSE_HEAD:  # a head that arrived whole is bounded too
            raise errors.BadGateway("upstream response head too large")
        if hc is None:
            h = httpfast.parse_response_head(bytes(conn.buf[:end]))
            if h is not None:
                del conn.buf[:end]
                cl = h.content_length
                status = h.status
                no_body = head_only or status in (204, 304)
                return UpstreamResponse(
                    self, conn, status, h.reason, h.headers,
                    cl if cl >= 0 else (0 if no_body else None),
                    h.keep_alive and (cl >= 0 or no_body), None, no_body,
                )
            # Outside the fast subset (1xx, chunked, odd syntax): h11 reads this response.
            hc = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD)
            hc.send(h11.Request(method=method, target=b"/", headers=[(b"host", b"upstream")]))
            hc.send(h11.EndOfMessage())
        while True:
            try:
                ev = hc.next_event()
            except h11.RemoteProtocolError as e:
                raise errors.BadGateway("malformed upstream response", log_detail=str(e)) from None
            if ev is h11.NEED_DATA:
                if conn.buf:
                    hc.receive_data(conn.take(len(conn.buf)))
                elif conn.eof:
                    hc.receive_data(b"")
                else:
                    await conn.wait(deadline)
                continue
            if type(ev) is h11.InformationalResponse:
                continue  # 100 Continue / 103 Early Hints are not forwarded
            if type(ev) is h11.Response:
                headers = list(ev.headers)
                cl = None
                chunked = False
                size = 0
                for n, v in headers:
                    size += len(n) + len(v) + 4
                    if n == b"content-length":
                        cl = int(v)
                    elif n == b"transfer-encoding":
                        chunked = True
                if size > MAX_RESPONSE_HEAD:  # h11 bounds only a head that arrives in pieces
                    raise errors.BadGateway("upstream response head too large")
                if chunked and cl is not None:
                    # RFC 9112 §6.1: both framings at once is response splitting or a broken
                    # server; h11 would follow the chunks, the client the length: refuse it.
                    raise errors.BadGateway("upstream response has Content-Length and Transfer-Encoding")
                no_body = head_only or ev.status_code in (204, 304)
                return UpstreamResponse(self, conn, ev.status_code, ev.reason, headers,
                                        cl, True, hc, no_body)
            if type(ev) is h11.ConnectionClosed:
                raise _Gone
            raise errors.BadGateway("malformed upstream response")

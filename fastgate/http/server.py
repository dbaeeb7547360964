"""Client-side HTTP/1.1 connection: native fast path for plain heads, h11 for everything else.

Invariant: h11 is the authority. A head the native parser does not fully understand is handed,
with the bytes already read, to h11, which then owns the connection's parsing for good. Every
head passes headlimits first; buffers are bounded (reading pauses past a high-water mark);
every wait has a deadline (head, body gap, idle).
"""

from __future__ import annotations

import asyncio

import h11

from .. import errors
from ..context import RequestContext
from ..tls import peer_certificate
from .flow import FlowProtocol
from .headlimits import check_head, check_parsed, check_partial

try:
    from .._native import httpfast
except ImportError:  # pragma: no cover - the native build is part of `make`; h11 still works
    httpfast = None

BODY_CHUNK = 64 * 1024
LINGER = 2.0  # seconds of discarding input after a final error answer, before closing
LINGER_BYTES = 1024 * 1024
LINGER_QUIET = 0.25
FLUSH_AT = 64 * 1024  # queued output past this is written at once

_BLANK = (b"\n\r\n", b"\n\n")


def _py_find_head_end(buf: bytearray) -> int:
    """h11's rule: a head ends at the first blank line (b"\\n\\r?\\n")."""
    a = buf.find(b"\n\r\n")
    b = buf.find(b"\n\n")
    if a < 0:
        return b + 2 if b >= 0 else -1
    if b < 0 or a < b:
        return a + 3
    return b + 2


_find_head_end = httpfast.find_head_end if httpfast is not None else _py_find_head_end

# RFC 9110 §5.6.2 tchar: a request line starts with a method token; anything else (a TLS
# ClientHello on a plain port, binary junk) is refused at its first byte, not at the timeout.
_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


class _Timeout(Exception):
    pass


class Request:
    """One parsed request head plus a way to read its body (fast path or h11)."""

    __slots__ = ("method", "target", "http_version", "headers", "content_length", "chunked",
                 "keep_alive", "expect_continue", "body_done", "conn")

    def __init__(self, conn, method, target, http_version, headers, content_length, chunked,
                 keep_alive, expect_continue) -> None:
        self.conn = conn
        self.method = method
        self.target = target
        self.http_version = http_version
        self.headers = headers
        self.content_length = content_length
        self.chunked = chunked
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.body_done = content_length <= 0 and not chunked

    @property
    def has_body(self) -> bool:
        return self.content_length > 0 or self.chunked

    async def body(self, max_bytes: int):
        """Yields body chunks; raises PayloadTooLarge past max_bytes, RequestTimeout on a gap."""
        async for chunk in self.conn._read_body(self, max_bytes):
            yield chunk


class ServerConnection(FlowProtocol):
    """One client connection; `handler(ctx, request, conn)` answers each request in order."""

    def __init__(self, gateway, listener) -> None:
        super().__init__()
        self.gateway = gateway
        self.listener = listener
        self._h11: h11.Connection | None = None  # set for good once h11 owns the parsing
        self._task: asyncio.Task | None = None
        self.client_ip = ""
        self.peer_cert = None
        self.scheme = "https" if listener.tls is not None else "http"
        self.client_cert_required = listener.tls is not None and listener.tls.client_certificates == "required"
        self.requests = 0
        self._head_only = False
        self._lingering = False
        self._lingered = 0
        self._keep = True
        self._chunked = False
        self._resp_left = -1
        self._out: list[bytes] = []
        self._out_size = 0
        self.busy = False  # a request is in flight (drain waits for these)

    # ------------------------------------------------------------------ asyncio callbacks
    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else ""
        if self.listener.tls is not None:
            self.peer_cert = peer_certificate(transport.get_extra_info("ssl_object"))
        self.gateway.connection_opened(self)
        self._task = self.loop.create_task(self._serve())

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            self._lingered += len(data)
            if self._lingered > LINGER_BYTES:
                self.transport.abort()  # a client that keeps sending after our answer: cut it off
            else:
                self._arm_linger()
            return
        super().data_received(data)

    def eof_received(self):
        super().eof_received()
        return self.listener.tls is None  # keep the write side open to answer (plain TCP only)

    def connection_lost(self, exc) -> None:
        super().connection_lost(exc)
        self.gateway.connection_closed(self)
        if self._task is not None and not self._task.done() and self.busy:
            self._task.cancel()  # client gone: abort the upstream exchange too

    # ------------------------------------------------------------------ I/O helpers
    async def _wait(self, deadline: float) -> None:
        """Wait for more input until `deadline` (loop time); raises _Timeout."""
        if not await self.wait_input(deadline):
            raise _Timeout

    def write(self, data: bytes) -> None:
        """Queue output; it goes out in one transport write (one TLS record, one send) at the
        next flush: a response head and its first body bytes travel together."""
        if not self.closed:
            self._out.append(data)
            self._out_size += len(data)
            if self._out_size >= FLUSH_AT:
                self.flush()

    def flush(self) -> None:
        out = self._out
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            self._out_size = 0
            if not self.closed:
                self.transport.write(data)

    async def drain(self) -> None:
        self.flush()
        await super().drain()

    def close(self) -> None:
        if self._lingering:
            return  # the linger timer closes
        self.flush()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # ------------------------------------------------------------------ the request loop
    async def _serve(self) -> None:
        gw = self.gateway
        loop = self.loop
        try:
            while not self.closed:
                limits = gw.runtime.config.limits
                try:
                    req = await self._read_head(limits, loop)
                except errors.GatewayError as err:
                    await gw.reject_connection(self, err)
                    break
                if req is None:
                    break
                self.requests += 1
                self.busy = True
                try:
                    keep = await gw.handle(self, req)
                finally:
                    self.busy = False
                if not keep or self.closed or gw.draining:
                    break
        except ConnectionError:
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self.close()

    async def _read_head(self, limits, loop) -> Request | None:
        """Next request head, or None when the connection should close quietly."""
        buf = self.buf
        deadline = None
        # A new connection gets header_timeout for its first byte, not the (longer) idle timeout:
        # otherwise connections that never speak would hold slots for idle_timeout each.
        wait_first = limits.header_timeout if self.requests == 0 else limits.idle_timeout
        idle_deadline = loop.time() + wait_first
        while True:
            if buf:
                if deadline is None:
                    deadline = loop.time() + limits.header_timeout
                if buf[0] in (0x0D, 0x0A):
                    # RFC 9112 §2.2: ignore empty lines before a request line (bounded by the
                    # header timeout like any other byte of the head).
                    while buf[:2] == b"\r\n" or buf[:1] == b"\n":
                        del buf[: 2 if buf[0] == 0x0D else 1]
                if buf and buf != b"\r":
                    if buf[0] not in _TCHAR:
                        raise errors.BadRequest("not an HTTP request")
                    end = _find_head_end(buf)
                    if end >= 0:
                        head = bytes(buf[:end])
                        check_head(head, limits)
                        return self._parse_head(head, end, limits)
                    check_partial(buf, limits)
            if self.eof:
                if buf:
                    raise errors.BadRequest("connection closed inside a request head")
                return None
            try:
                await self._wait(deadline if deadline is not None else idle_deadline)
            except _Timeout:
                if deadline is None:
                    return None  # idle keep-alive connection: close quietly
                raise errors.RequestTimeout("request head not received in time") from None

    def _new_h11(self, limits) -> h11.Connection:
        return h11.Connection(
            h11.SERVER, max_incomplete_event_size=limits.max_request_line + limits.max_header_bytes + 1024
        )

    def _parse_head(self, head: bytes, end: int, limits) -> Request:
        runtime = self.gateway.runtime
        if self._h11 is None and runtime.config.http.fast_path and httpfast is not None:
            h = httpfast.parse_request_head(head)
            if h is not None:
                del self.buf[:end]
                check_parsed(h.method, h.target, h.headers, limits)
                return Request(self, h.method, h.target, h.http_version, h.headers,
                               h.content_length, False, h.keep_alive, h.expect_continue)
        # h11 reads this request: a fresh h11 connection per request, so every head passes
        # check_head above and any pipelined bytes h11 did not use come back to our buffer.
        conn = self._new_h11(limits)
        self._h11 = conn
        conn.receive_data(bytes(self.buf))
        self.buf.clear()
        if self.eof:
            conn.receive_data(b"")
        try:
            ev = conn.next_event()
        except h11.RemoteProtocolError as e:
            raise errors.BadRequest("malformed request", log_detail=str(e)) from None
        if not isinstance(ev, h11.Request):
            raise errors.BadRequest("malformed request", log_detail=repr(ev))
        headers = list(ev.headers)
        check_parsed(ev.method, ev.target, headers, limits)
        cl = -1
        chunked = False
        for name, value in headers:
            if name == b"content-length":
                cl = int(value)
            elif name == b"transfer-encoding":
                chunked = True
        keep = ev.http_version == b"1.1" and not any(
            n == b"connection" and b"close" in [t.strip().lower() for t in v.split(b",")]
            for n, v in headers
        )
        expect = conn.they_are_waiting_for_100_continue
        req = Request(self, ev.method, ev.target, ev.http_version, headers, cl, chunked, keep, expect)
        if not req.has_body:
            self._finish_h11_request(req)
        return req

    def _finish_h11_request(self, req: Request) -> None:
        """Take EndOfMessage and hand back any pipelined bytes h11 holds."""
        conn = self._h11
        if conn.their_state is h11.SEND_BODY:
            ev = conn.next_event()
            if type(ev) is not h11.EndOfMessage:  # pragma: no cover - no-body requests only
                raise errors.BadRequest("malformed request")
        leftover, _closed = conn.trailing_data
        if leftover:
            self.buf[:0] = leftover
        req.body_done = True

    async def _read_body(self, req: Request, max_bytes: int):
        limits = self.gateway.runtime.config.limits
        loop = self.loop
        if req.content_length > max_bytes:
            raise errors.PayloadTooLarge(f"body larger than {max_bytes} bytes")
        if req.body_done:
            return
        if req.expect_continue:
            # RFC 9110 §10.1.1: the client waits for this before sending the body.
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.flush()
            req.expect_continue = False
        seen = 0
        if self._h11 is None:
            remaining = req.content_length
            while remaining > 0:
                if not self.buf:
                    if self.eof:
                        raise errors.BadRequest("connection closed inside a request body")
                    try:
                        await self._wait(loop.time() + limits.body_timeout)
                    except _Timeout:
                        raise errors.RequestTimeout("request body not received in time") from None
                    continue
                chunk = self.take(min(remaining, len(self.buf), BODY_CHUNK))
                remaining -= len(chunk)
                yield chunk
            req.body_done = True
            return
        conn = self._h11
        while True:
            try:
                ev = conn.next_event()
            except h11.RemoteProtocolError as e:
                raise errors.BadRequest("malformed request body", log_detail=str(e)) from None
            if ev is h11.NEED_DATA:
                if self.buf:
                    conn.receive_data(self.take(len(self.buf)))
                    continue
                if self.eof:
                    conn.receive_data(b"")
                    continue
                try:
                    await self._wait(loop.time() + limits.body_timeout)
                except _Timeout:
                    raise errors.RequestTimeout("request body not received in time") from None
                continue
            if type(ev) is h11.Data:
                seen += len(ev.data)
                if seen > max_bytes:
                    raise errors.PayloadTooLarge(f"body larger than {max_bytes} bytes")
                yield bytes(ev.data)
            elif type(ev) is h11.EndOfMessage:
                leftover, _ = conn.trailing_data
                if leftover:
                    self.buf[:0] = leftover
                req.body_done = True
                return
            else:
                raise errors.BadRequest("malformed request body")

    # ------------------------------------------------------------------ responses
    def start_response(self, req: Request, status: int, reason: bytes,
                       headers: list[tuple[bytes, bytes]], content_length: int | None,
                       close: bool = False) -> None:
        """Send a response head; framing headers are ours to add (none may be in `headers`)."""
        keep = req.keep_alive and not close and not self.gateway.draining
        self._head_only = req.method == b"HEAD" or status in (204, 304)
        self._keep = keep
        if self._h11 is None:
            hdrs = list(headers)
            self._chunked = False
            self._resp_left = -1 if content_length is None or self._head_only else content_length
            if content_length is not None:
                hdrs.append((b"content-length", b"%d" % content_length))
            elif not self._head_only:
                if req.http_version == b"1.1":
                    hdrs.append((b"transfer-encoding", b"chunked"))
                    self._chunked = True
                else:
                    self._keep = keep = False  # close-delimited body
            if not keep:
                hdrs.append((b"connection", b"close"))
            self.write(serialize_response_head(status, reason, hdrs))
        else:
            hdrs = list(headers)
            if content_length is not None:
                hdrs.append((b"content-length", b"%d" % content_length))
            if not keep:
                hdrs.append((b"connection", b"close"))
            self.write(self._h11.send(h11.Response(status_code=status, headers=hdrs, reason=reason)))

    def send_data(self, data: bytes) -> None:
        if not data or self._head_only:
            return
        if self._h11 is None:
            if self._chunked:
                self.write(b"%x\r\n%b\r\n" % (len(data), data))
            elif self._resp_left < 0:
                self.write(data)
            else:
                # Never send more than the declared length: extra bytes would be read by the
                # client as the next response (response splitting). h11 raises; we cut.
                if len(data) > self._resp_left:
                    data = data[: self._resp_left]
                    self._keep = False
                self._resp_left -= len(data)
                self.write(data)
        else:
            self.write(self._h11.send(h11.Data(data=data)))

    def end_response(self) -> bool:
        """Finish the response; True when the connection may serve another request."""
        if self._h11 is None:
            if self._chunked and not self._head_only:
                self.write(b"0\r\n\r\n")
            self.flush()
            if self._resp_left > 0:
                return False  # short body: the client is still waiting for bytes; only a close ends it
            return self._keep
        conn = self._h11
        self.write(conn.send(h11.EndOfMessage()) or b"")
        self.flush()
        return self._keep and conn.our_state is h11.DONE

    def write_raw_error(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]],
                        body: bytes, head_only: bool = False) -> None:
        """An answer after which the connection closes: no codec state is trusted or needed."""
        hdrs = list(headers)
        hdrs.append((b"content-length", b"%d" % len(body)))
        hdrs.append((b"connection", b"close"))
        self.write(serialize_response_head(status, reason, hdrs) + (b"" if head_only else body))
        self.linger_close()

    def linger_close(self) -> None:
        """Close after the answer is out without resetting it away: closing a socket that still
        has unread input sends RST, which can destroy the response in flight (nginx's
        lingering_close). Discard input for at most LINGER seconds / LINGER_BYTES, then close."""
        if self.closed or self.transport is None or self.transport.is_closing():
            return
        self.flush()
        self._lingering = True
        self.buf.clear()
        if self._read_paused:
            self._read_paused = False
            self.transport.resume_reading()
        if self.listener.tls is None and self.transport.can_write_eof():
            self.transport.write_eof()
        loop = asyncio.get_running_loop()
        self._linger_deadline = loop.time() + LINGER
        self._linger_timer = None
        self._arm_linger()

    def _arm_linger(self) -> None:
        """Close once the client has been quiet for LINGER_QUIET, or at the LINGER deadline."""
        loop = asyncio.get_running_loop()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        when = min(loop.time() + LINGER_QUIET, self._linger_deadline)
        self._linger_timer = loop.call_at(when, self.transport.close)


def serialize_response_head(status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    if httpfast is not None:
        return httpfast.serialize_response_head(status, reason, headers)
    parts = [b"HTTP/1.1 %d %b\r\n" % (status, reason)]
    for name, value in headers:
        if b"\r" in value or b"\n" in value or b"\x00" in value:
            raise ValueError("header injection")
        parts.append(b"%b: %b\r\n" % (name, value))
    parts.append(b"\r\n")
    return b"".join(parts)


def new_context(conn: ServerConnection, request_id: str) -> RequestContext:
    return RequestContext(request_id, conn.client_ip, conn.listener.name, conn.scheme, conn.peer_cert)

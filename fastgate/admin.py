"""Admin listener: GET /healthz, /readyz, /metrics (Prometheus text). Never on a public listener.

Invariant: plain HTTP, one small request per connection through h11, bounded in size and time;
it exposes counters and readiness, never configuration or secrets.
"""

from __future__ import annotations

import asyncio

import h11

from .console import say

ADMIN_TIMEOUT = 5.0
ADMIN_MAX_HEAD = 8192
PROM = b"text/plain; version=0.0.4; charset=utf-8"


class AdminServer:
    def __init__(self, gateway, host: str, port: int) -> None:
        self.gateway = gateway
        self.host = host
        self.port = port
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, self.host, self.port, reuse_address=True)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.port = port
        say(f"fastgate: admin accepting on http://{host}:{port}")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    def ready(self) -> tuple[bool, str]:
        gw = self.gateway
        if gw.draining:
            return False, "draining"
        if not gw.listeners:
            return False, "no listener bound"
        sync = getattr(gw, "revocation_sync", None)  # the workers' master has none
        if sync is not None and not sync.healthy:
            return True, "ok (redis unavailable: serving last known revocations)"
        return True, "ok"

    def answer(self, method: bytes, target: bytes) -> tuple[int, bytes, bytes]:
        path = target.split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            return 405, b"text/plain", b"method not allowed\n"
        if path == b"/healthz":
            return 200, b"text/plain", b"ok\n"
        if path == b"/readyz":
            ok, why = self.ready()
            return (200 if ok else 503), b"text/plain", why.encode() + b"\n"
        if path == b"/metrics":
            return 200, PROM, self.gateway.metrics.render()
        return 404, b"text/plain", b"not found\n"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=ADMIN_MAX_HEAD)
        try:
            async with asyncio.timeout(ADMIN_TIMEOUT):
                while True:
                    ev = conn.next_event()
                    if ev is h11.NEED_DATA:
                        data = await reader.read(4096)
                        conn.receive_data(data)
                        continue
                    break
                if not isinstance(ev, h11.Request):
                    return
                status, ctype, body = self.answer(ev.method, ev.target)
                headers = [(b"content-type", ctype), (b"content-length", b"%d" % len(body)),
                           (b"connection", b"close"), (b"cache-control", b"no-store")]
                if status == 405:
                    headers.append((b"allow", b"GET, HEAD"))  # RFC 9110 §15.5.6
                writer.write(conn.send(h11.Response(status_code=status, headers=headers)))
                if ev.method != b"HEAD":
                    writer.write(conn.send(h11.Data(data=body)))
                writer.write(conn.send(h11.EndOfMessage()))
                await writer.drain()
        except (h11.RemoteProtocolError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

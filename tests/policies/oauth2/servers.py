"""Tiny real HTTP/1.1 servers (h11 over asyncio) standing in for an IdP in the oauth2 tests: a
JWKS endpoint and an RFC 7662 introspection endpoint that can change their answers, count hits,
be slow, answer 5xx, or go down (listener and live connections closed) and come back.

Invariant: the gateway side talks to these over real sockets through fastgate's HttpClient;
nothing in the code under test is patched.
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from urllib.parse import parse_qs

import h11
import orjson


class _Conn(asyncio.Protocol):
    def __init__(self, server: IdpServer) -> None:
        self.server = server
        self.h = h11.Connection(h11.SERVER)
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport = None
        self.task = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.server.conns.add(self)
        self.task = asyncio.get_running_loop().create_task(self.run())

    def data_received(self, data: bytes) -> None:
        self.queue.put_nowait(data)

    def eof_received(self):
        self.queue.put_nowait(b"")

    def connection_lost(self, exc) -> None:
        self.server.conns.discard(self)
        self.queue.put_nowait(b"")
        if self.task is not None:
            self.task.cancel()

    async def _event(self):
        while True:
            ev = self.h.next_event()
            if ev is h11.NEED_DATA:
                self.h.receive_data(await self.queue.get())
                continue
            return ev

    async def run(self) -> None:
        try:
            while True:
                req = await self._event()
                if not isinstance(req, h11.Request):
                    break
                body = b""
                while True:
                    ev = await self._event()
                    if isinstance(ev, h11.Data):
                        body += ev.data
                    elif isinstance(ev, h11.EndOfMessage):
                        break
                    else:
                        return
                status, headers, payload = await self.server.handle(req, body)
                headers = [*headers, (b"content-length", b"%d" % len(payload))]
                self.transport.write(self.h.send(h11.Response(status_code=status, headers=headers)))
                self.transport.write(self.h.send(h11.Data(data=payload)))
                self.transport.write(self.h.send(h11.EndOfMessage()))
                if self.h.our_state is h11.MUST_CLOSE:
                    break
                self.h.start_next_cycle()
        except (h11.ProtocolError, asyncio.CancelledError):
            pass
        finally:
            if self.transport is not None:
                self.transport.close()


class IdpServer:
    """GET /jwks serves `jwks`; POST /introspect answers from `tokens` (unknown = inactive)."""

    def __init__(self, client_id: str = "gateway", client_secret: str = "s3cret") -> None:
        self.jwks: dict = {"keys": []}
        self.jwks_headers: list[tuple[bytes, bytes]] = []
        self.tokens: dict[str, dict] = {}  # opaque token -> introspection answer
        self.expected_auth = b"Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode())
        self.hits: Counter[str] = Counter()
        self.seen_tokens: list[str] = []
        self.delay = 0.0  # seconds before answering
        self.status = 200  # anything else: answer this status with an empty JSON object
        self.conns: set[_Conn] = set()
        self.port = 0
        self._server: asyncio.base_events.Server | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> IdpServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Conn(self), "127.0.0.1", self.port,
                                                reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def down(self) -> None:
        """Stop listening and drop live keep-alive connections: connects are refused."""
        self._server.close()
        for c in list(self.conns):
            c.transport.close()
        await self._server.wait_closed()

    async def up(self) -> None:
        await self.start()

    async def handle(self, req: h11.Request, body: bytes):
        path = req.target.decode()
        self.hits[path] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            return self.status, [(b"content-type", b"application/json")], b"{}"
        if path == "/jwks" and req.method == b"GET":
            return 200, [(b"content-type", b"application/json"), *self.jwks_headers], orjson.dumps(self.jwks)
        if path == "/introspect" and req.method == b"POST":
            auth = dict(req.headers).get(b"authorization")
            if auth != self.expected_auth:
                return 401, [(b"content-type", b"application/json")], b'{"error":"invalid_client"}'
            form = parse_qs(body.decode(), strict_parsing=True)
            token = form["token"][0]
            assert form.get("token_type_hint") == ["access_token"]
            self.seen_tokens.append(token)
            answer = self.tokens.get(token, {"active": False})
            return 200, [(b"content-type", b"application/json")], orjson.dumps(answer)
        return 404, [], b""

"""A small echo upstream for the demo and the tests: answers with what it received, as JSON.

Invariant: test-only behaviour is reached through fixed paths (/status/N, /slow/MS, /bytes/N,
/chunked/N, /reset, /close-early; /connid adds the connection's number to the echo); everything
else echoes method, target, headers and a body digest, so a test can see exactly what the
gateway forwarded.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools

import h11
import orjson

LOG_REQUESTS = False  # `--log`: one line per request on stdout, so tests see what was forwarded
_CONN_IDS = itertools.count(1)  # a path containing /connid/ answers with its connection's number


class EchoProtocol(asyncio.Protocol):
    def __init__(self, server_header: bytes = b"echo/1.0") -> None:
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)
        self.server_header = server_header
        self.transport = None
        self.task = None
        self.queue: asyncio.Queue = asyncio.Queue()
        self.conn_id = next(_CONN_IDS)

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.task = asyncio.get_running_loop().create_task(self.run())

    def data_received(self, data: bytes) -> None:
        self.queue.put_nowait(data)

    def eof_received(self):
        self.queue.put_nowait(b"")

    def connection_lost(self, exc) -> None:
        self.queue.put_nowait(b"")
        if self.task is not None:
            self.task.cancel()

    async def next_event(self):
        while True:
            ev = self.conn.next_event()
            if ev is h11.NEED_DATA:
                self.conn.receive_data(await self.queue.get())
                continue
            return ev

    async def run(self) -> None:
        try:
            while True:
                ev = await self.next_event()
                if not isinstance(ev, h11.Request):
                    break
                digest = hashlib.sha256()
                size = 0
                while True:
                    b = await self.next_event()
                    if isinstance(b, h11.Data):
                        digest.update(b.data)
                        size += len(b.data)
                    elif isinstance(b, h11.EndOfMessage):
                        break
                    else:
                        return
                if LOG_REQUESTS:  # only complete requests count as received
                    print("echo: " + ev.method.decode() + " " + ev.target.decode("latin-1"), flush=True)
                await self.respond(ev, size, digest.hexdigest())
                if self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is h11.MUST_CLOSE:
                    break
                self.conn.start_next_cycle()
        except (h11.ProtocolError, asyncio.CancelledError):
            pass
        finally:
            self.transport.close()

    def send(self, event) -> None:
        data = self.conn.send(event)
        if data:
            self.transport.write(data)

    async def respond(self, req: h11.Request, size: int, digest: str) -> None:
        path = req.target.split(b"?", 1)[0].decode("latin-1")
        parts = path.strip("/").split("/")
        status = 200
        extra = [(b"server", self.server_header), (b"x-powered-by", b"echo")]
        if "status" in parts[:-1]:
            status = int(parts[parts.index("status") + 1])
        if "slow" in parts[:-1]:
            await asyncio.sleep(int(parts[parts.index("slow") + 1]) / 1000)
        if "reset" in parts:
            self.transport.abort()
            return
        if "bytes" in parts[:-1]:
            n = int(parts[parts.index("bytes") + 1])
            self.send(h11.Response(status_code=status, headers=[(b"content-length", str(n).encode()), *extra]))
            block = b"x" * 65536
            left = n
            while left > 0:
                self.send(h11.Data(data=block[: min(left, len(block))]))
                left -= min(left, len(block))
            self.send(h11.EndOfMessage())
            return
        if "close-early" in parts:
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
            self.transport.close()
            return
        body = orjson.dumps({
            "method": req.method.decode(), "target": req.target.decode("latin-1"),
            "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in req.headers],
            "body_length": size, "body_sha256": digest,
            **({"conn_id": self.conn_id} if "connid" in parts else {}),
        })
        if "chunked" in parts[:-1]:
            n = int(parts[parts.index("chunked") + 1])
            self.send(h11.Response(status_code=status, headers=[(b"content-type", b"application/json"), *extra]))
            for _ in range(n):
                self.send(h11.Data(data=body))
            self.send(h11.EndOfMessage())
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
        self.send(h11.Response(status_code=status, headers=headers))
        if req.method != b"HEAD":
            self.send(h11.Data(data=body))
        self.send(h11.EndOfMessage())


async def start_echo(host: str = "127.0.0.1", port: int = 0, ssl=None) -> asyncio.AbstractServer:
    loop = asyncio.get_running_loop()
    return await loop.create_server(EchoProtocol, host, port, reuse_address=True, ssl=ssl)


def main() -> None:
    import uvloop

    ap = argparse.ArgumentParser(description="fastgate echo upstream (demo/tests)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--log", action="store_true", help="print each request line")
    ap.add_argument("--tls-cert", help="serve HTTPS with this certificate chain")
    ap.add_argument("--tls-key")
    ap.add_argument("--client-ca", help="require client certificates signed by this CA")
    args = ap.parse_args()
    global LOG_REQUESTS
    LOG_REQUESTS = args.log
    ctx = None
    if args.tls_cert:
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.client_ca:
            ctx.load_verify_locations(args.client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED

    async def serve() -> None:
        server = await start_echo(args.host, args.port, ctx)
        port = server.sockets[0].getsockname()[1]
        scheme = "https" if ctx else "http"
        print(f"echo upstream listening on {scheme}://{args.host}:{port}", flush=True)
        await server.serve_forever()

    uvloop.run(serve())


if __name__ == "__main__":
    main()

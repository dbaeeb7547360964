"""The built-in upstream for `fastgate bench`: answers every request with one canned keep-alive
200 (uvloop + asyncio.Protocol), so the gateway, not the backend, is what gets measured.

Invariant: one response per complete request (Content-Length or chunked bodies are skipped, not
parsed), in order; `--stall START:LENGTH` holds every response due in that window (seconds after
the first request) until the window ends, the stall the coordinated-omission test needs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
import time

BODY = b'{"ok":true}'
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
_CL = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.I)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r]*chunked", re.I)
READY = "fastgate bench upstream listening on http://"


class _Stall:
    """When responses are held back: [first request + start, + length) on the monotonic clock."""

    def __init__(self, start: float | None, length: float) -> None:
        self.start, self.length = start, length
        self.begin: float | None = None

    def until(self, trigger: bool = True) -> float:
        """The end of the stall if now is inside it, else 0; the clock starts at the first
        `trigger` request (bench's own ceiling requests do not start it)."""
        if self.start is None:
            return 0.0
        now = time.monotonic()
        if self.begin is None:
            if not trigger:
                return 0.0
            self.begin = now + self.start
        return self.begin + self.length if self.begin <= now < self.begin + self.length else 0.0


class CannedUpstream(asyncio.Protocol):
    """Keep-alive HTTP/1.1 server that frames requests just enough to count them."""

    stall = _Stall(None, 0.0)

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.buf = b""
        self.body_left = 0  # Content-Length bytes still to skip
        self.chunked = False

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        done = 0
        while True:
            if self.body_left:
                take = min(self.body_left, len(buf))
                buf = buf[take:]
                self.body_left -= take
                if self.body_left:
                    break
                done += 1
                continue
            if self.chunked:
                end = buf.find(b"0\r\n\r\n")  # good enough for the gateway's own chunking
                if end < 0:
                    buf = buf[-4:]
                    break
                buf = buf[end + 5:]
                self.chunked = False
                done += 1
                continue
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                break
            head = buf[:i + 2]
            buf = buf[i + 4:]
            if b"ength" in head or b"ENGTH" in head:
                m = _CL.search(head)
                if m and int(m.group(1)):
                    self.body_left = int(m.group(1))
                    continue
            elif b"hunked" in head or b"HUNKED" in head:
                if _CHUNKED.search(head):
                    self.chunked = True
                    continue
            done += 1
        self.buf = buf
        if done:
            until = self.stall.until(b"GET /ceiling " not in data)
            if until:
                asyncio.get_running_loop().call_at(
                    asyncio.get_running_loop().time() + (until - time.monotonic()),
                    self.transport.write, RESPONSE * done)
            else:
                self.transport.write(RESPONSE * done)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(CannedUpstream, host, port, backlog=4096, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    print(f"{READY}{host}:{bound} pid {os.getpid()}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    server.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="fastgate bench's canned-200 upstream")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--stall", metavar="START:LENGTH",
                    help="hold responses for LENGTH s, START s after the first request (tests)")
    args = ap.parse_args(argv)
    if args.stall:
        start, length = (float(x) for x in args.stall.split(":"))
        CannedUpstream.stall = _Stall(start, length)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        asyncio.run(serve(args.host, args.port))
    else:
        uvloop.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A small OPA-Data-API-compatible HTTP server for tests: POST /v1/data/<path> with
{"input": ...} answers {"result": decide(path, input)} (no `result` when decide returns UNDEFINED).

Invariant: runs in its own thread with real sockets (HTTP/1.1 keep-alive, Content-Length framed),
so the gateway's HTTP client is exercised exactly as against OPA; it records every input it got,
and can be made slow (`delay`), erroring (`status`) or down (`stop()`, or a closed port).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

UNDEFINED = object()  # decide() returns this for an undefined document (no "result" key)


class OpaServer:
    def __init__(self, decide: Callable[[str, dict], Any] = lambda path, inp: True,
                 delay: float = 0.0, status: int = 200, port: int = 0) -> None:
        self.decide = decide
        self.delay = delay
        self.status = status
        self.raw_body: bytes | None = None  # answer these bytes instead (malformed answers)
        self.calls: list[tuple[str, dict]] = []  # (path below /v1/data/, input)
        self.bodies: list[bytes] = []  # exactly what arrived
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server._conns.add(self.connection)

            def finish(self) -> None:
                with server._lock:
                    server._conns.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                prefix = "/v1/data/"
                if not self.path.startswith(prefix):
                    self._answer(404, b'{"code":"not_found"}')
                    return
                path = self.path[len(prefix):]
                try:
                    doc = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    self._answer(400, b'{"code":"invalid_parameter"}')
                    return
                with server._lock:
                    server.calls.append((path, doc.get("input")))
                    server.bodies.append(raw)
                if server.delay:
                    time.sleep(server.delay)
                if server.raw_body is not None:
                    self._answer(server.status, server.raw_body)
                    return
                result = server.decide(path, doc.get("input"))
                body = {} if result is UNDEFINED else {"result": result}
                self._answer(server.status, orjson.dumps(body))

            def _answer(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (timeout test)
                    pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    def url(self, path: str = "fastgate/allow") -> str:
        return f"http://127.0.0.1:{self.port}/v1/data/{path}"

    def start(self) -> OpaServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Down for real: stop accepting and close kept-alive connections too."""
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> OpaServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def inputs(self) -> list[dict]:
        with self._lock:
            return [inp for _, inp in self.calls]


def closed_port_url(path: str = "fastgate/allow") -> str:
    """A URL where nothing listens (connection refused): OPA down."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/v1/data/{path}"

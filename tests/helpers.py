"""Real processes and real sockets for integration tests: the gateway and the echo upstream run
as subprocesses; clients speak raw bytes over TCP or TLS so a test controls every byte."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
LISTEN_RE = re.compile(r"fastgate: listener (\S+) accepting on (https?)://([^ ]+):(\d+)")
ADMIN_RE = re.compile(r"fastgate: admin accepting on http://([^ ]+):(\d+)")


class Proc:
    """A subprocess whose stdout/stderr lines are collected by a thread (never blocks a test)."""

    def __init__(self, args: list[str], env: dict | None = None) -> None:
        full_env = dict(os.environ)
        full_env["PYTHONUNBUFFERED"] = "1"
        if env:
            full_env.update(env)
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                                  env=full_env)
        self.out: list[str] = []
        self.err: list[str] = []
        self._cv = threading.Condition()
        for stream, sink in ((self.p.stdout, self.out), (self.p.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    def _pump(self, stream, sink) -> None:
        for raw in stream:
            with self._cv:
                sink.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def wait_line(self, pattern: re.Pattern | str, timeout: float = 15.0, stream: str = "out",
                  start: int = 0) -> re.Match:
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        sink = self.out if stream == "out" else self.err
        seen = start
        with self._cv:
            while True:
                while seen < len(sink):
                    m = rx.search(sink[seen])
                    seen += 1
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.p.poll() is not None and seen >= len(sink)):
                    raise AssertionError(
                        f"no line matching {rx.pattern!r}; stdout={self.out[-20:]!r} stderr={self.err[-20:]!r}")
                self._cv.wait(min(left, 0.2))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode


class Echo(Proc):
    """The echo upstream; `seen(marker)` tells whether a request line containing it arrived."""

    def __init__(self, *extra: str) -> None:
        super().__init__([sys.executable, "-m", "fastgate.devtools.echo", "--port", "0", "--log", *extra])
        m = self.wait_line(r"listening on https?://127\.0\.0\.1:(\d+)")
        self.port = int(m.group(1))

    def seen(self, marker: str) -> bool:
        return any(marker in line for line in list(self.out) if line.startswith("echo: "))


class Gateway(Proc):
    """`fastgate run -c FILE` with a config written from a YAML string."""

    def __init__(self, config_text: str, directory: Path, name: str = "gateway.yaml",
                 wait: bool = True) -> None:
        self.path = directory / name
        self.path.write_text(config_text)
        super().__init__([sys.executable, "-m", "fastgate.cli", "run", "-c", str(self.path)])
        self.ports: dict[str, int] = {}
        self.admin_port: int | None = None
        if wait:
            self.wait_ready(config_text)

    def wait_ready(self, config_text: str) -> None:
        expected = _listener_count(config_text)
        deadline = time.monotonic() + 20
        while len(self.ports) < expected:
            for line in list(self.out):
                m = LISTEN_RE.search(line)
                if m:
                    self.ports[m.group(1)] = int(m.group(4))
            if len(self.ports) >= expected:
                break
            if time.monotonic() > deadline or self.p.poll() is not None:
                raise AssertionError(f"gateway not ready: stdout={self.out[-20:]!r} stderr={self.err[-20:]!r}")
            time.sleep(0.02)
        if re.search(r"^admin:\s*$", config_text, re.M):
            m = self.wait_line(ADMIN_RE)
            self.admin_port = int(m.group(2))

    def access_log(self) -> list[dict]:
        recs = []
        for line in list(self.out):
            if line.startswith("{"):
                recs.append(orjson.loads(line))
        return recs

    def sighup(self) -> None:
        self.p.send_signal(signal.SIGHUP)


def _listener_count(config_text: str) -> int:
    block = config_text.split("listeners:", 1)[1]
    count = 0
    for line in block.splitlines()[0:]:
        if line and not line.startswith((" ", "-", "#")):
            break
        if re.match(r"\s*-\s+name:", line):
            count += 1
    return count


@contextmanager
def running(*procs: Proc) -> Iterator[None]:
    try:
        yield
    finally:
        for p in procs:
            p.stop()


# ---------------------------------------------------------------- clients
def client_context(ca: Path | None, cert: Path | None = None, key: Path | None = None,
                   min_version: ssl.TLSVersion | None = None, max_version: ssl.TLSVersion | None = None,
                   ciphers: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
    if ca is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx


def connect(port: int, ctx: ssl.SSLContext | None = None, timeout: float = 10.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if ctx is not None:
        s = ctx.wrap_socket(s, server_hostname="localhost")
    return s


class Response:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes, raw_head: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.raw_head = raw_head

    def header(self, name: str) -> str | None:
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def json(self):
        return orjson.loads(self.body)


def _recv_until(s: socket.socket, buf: bytearray, marker: bytes, deadline: float) -> int:
    while True:
        i = buf.find(marker)
        if i >= 0:
            return i
        s.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk


def read_response(s: socket.socket, buf: bytearray | None = None, timeout: float = 10.0,
                  head_only: bool = False) -> Response:
    """Read one response (Content-Length, chunked or close-delimited) from a socket."""
    buf = buf if buf is not None else bytearray()
    deadline = time.monotonic() + timeout
    end = _recv_until(s, buf, b"\r\n\r\n", deadline)
    head = bytes(buf[:end])
    del buf[: end + 4]
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = []
    for line in lines[1:]:
        n, _, v = line.partition(":")
        headers.append((n.strip(), v.strip()))
    resp = Response(status, headers, b"", head)
    if status == 100:
        return resp
    if head_only or status in (204, 304):
        return resp
    cl = resp.header("content-length")
    if cl is not None:
        n = int(cl)
        while len(buf) < n:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed mid-body")
            buf += chunk
        resp.body = bytes(buf[:n])
        del buf[:n]
    elif (resp.header("transfer-encoding") or "").lower() == "chunked":
        body = bytearray()
        while True:
            i = _recv_until(s, buf, b"\r\n", deadline)
            size = int(bytes(buf[:i]).split(b";")[0], 16)
            del buf[: i + 2]
            if size == 0:
                _recv_until(s, buf, b"\r\n", deadline)
                del buf[:2]
                break
            while len(buf) < size + 2:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError("closed mid-chunk")
                buf += chunk
            body += buf[:size]
            del buf[: size + 2]
        resp.body = bytes(body)
    else:
        while True:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                break
            if not chunk:
                break
            buf += chunk
        resp.body = bytes(buf)
        buf.clear()
    return resp


def exchange(port: int, data: bytes, ctx: ssl.SSLContext | None = None, timeout: float = 10.0) -> Response:
    with connect(port, ctx, timeout) as s:
        s.sendall(data)
        return read_response(s, timeout=timeout)


def get(port: int, path: str, ctx: ssl.SSLContext | None = None, headers: dict | None = None,
        method: str = "GET", body: bytes | None = None) -> Response:
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
    return exchange(port, data, ctx)


def is_closed(s: socket.socket, timeout: float = 3.0) -> bool:
    """True when the peer closed (EOF or reset) within `timeout`."""
    s.setblocking(False)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([s], [], [], 0.05)
            if r:
                try:
                    data = s.recv(65536)
                except ssl.SSLWantReadError:
                    continue
                except (ConnectionResetError, ssl.SSLError, OSError):
                    return True
                if not data:
                    return True
        return False
    finally:
        s.setblocking(True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

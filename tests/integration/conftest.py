"""Fixtures that start real processes: dev PKI, the echo upstream, gateways on free ports."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from fastgate.devtools.certs import make_dev_pki
from tests.helpers import Echo, Gateway, client_context, free_port


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> dict[str, Path]:
    return make_dev_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def echo():
    e = Echo()
    yield e
    e.stop()


@pytest.fixture(scope="session")
def tls_client(pki):
    return client_context(pki["ca.crt"])


def config_yaml(pki: dict[str, Path], upstream_port: int, *, tls: str | None = None, limits: str = "",
                apis: str | None = None, fast_path: bool = True, extra: str = "",
                admin: bool = True, listeners: str | None = None) -> str:
    """A gateway config: one TLS listener on a free port, one API `echo` at /echo/v1."""
    tls = tls if tls is not None else f"""
      certificate: {pki['server.crt']}
      private_key: {pki['server.key']}"""
    listeners = listeners if listeners is not None else f"""
  - name: public
    address: 127.0.0.1:0
    tls:{tls}
"""
    apis = apis if apis is not None else f"""
  - name: echo
    base_path: /echo/v1
    upstream:
      urls: [http://127.0.0.1:{upstream_port}]
      timeout: 2s
"""
    text = f"""version: 1
listeners:{listeners}
http:
  fast_path: {'true' if fast_path else 'false'}
"""
    if limits:
        text += "limits:\n" + limits
    if admin:
        text += "admin:\n  address: 127.0.0.1:0\n"
    text += extra
    text += "apis:" + apis
    return text


@pytest.fixture
def start_gateway(tmp_path):
    started: list[Gateway] = []

    def start(text: str, name: str = "gateway.yaml") -> Gateway:
        gw = Gateway(text, tmp_path, name)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()


class RedisServer:
    """A private `redis-server` on 127.0.0.1 (no persistence); stop() and start() again on the
    same port simulate an outage and a restart that lost the data."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.p: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.p = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.p.poll() is not None:
                self.stop()
                raise AssertionError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.p is not None and self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.p = None


def need_redis_server() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (`make test` installs it)")


@pytest.fixture(scope="session")
def redis_server():
    """The URL of a private redis-server shared by the session's tests."""
    need_redis_server()
    server = RedisServer()
    yield server.url
    server.stop()

"""Fixtures that start real processes: dev PKI, the echo upstream, gateways on free ports."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastgate.devtools.certs import make_dev_pki
from tests.helpers import Echo, Gateway, client_context


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

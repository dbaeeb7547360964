"""`workers: 2`: SO_REUSEPORT workers behind one port, metrics summed in the master's admin
listener, SIGHUP forwarded, a killed worker replaced, SIGTERM drains all and exits 0."""

from __future__ import annotations

import os
import re
import signal
import time

from tests.helpers import get
from tests.integration.conftest import config_yaml


def _index_of(lines: list[str], line: str) -> int:
    return lines.index(line)


def _pids(g) -> set[int]:
    out = os.popen(f"pgrep -P {g.p.pid}").read().split()
    return {int(p) for p in out}


def test_two_workers_share_the_port(pki, echo, start_gateway, tls_client):
    g = start_gateway(config_yaml(pki, echo.port, extra="workers: 2\n"))
    port = g.ports["public"]
    deadline = time.monotonic() + 10
    while len(_pids(g)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = _pids(g)
    assert len(workers) == 2
    for _ in range(40):
        assert get(port, "/echo/v1/w", tls_client).status == 200
    metrics = get(g.admin_port, "/metrics").body.decode()
    m = re.search(r'fastgate_requests_total\{api="echo",code="",status="200"\} (\d+)', metrics)
    assert m and int(float(m.group(1))) == 40, metrics[:2000]
    assert get(g.admin_port, "/readyz").status == 200
    # a worker that dies is replaced, and service goes on
    g.wait_line("worker 1 ready", stream="err")
    victim = sorted(workers)[0]
    os.kill(victim, signal.SIGKILL)
    m = g.wait_line("worker (.) exited; starting a new one", stream="err")
    g.wait_line(f"worker {m.group(1)} ready", stream="err", start=_index_of(g.err, m.string) + 1)
    assert len(_pids(g)) == 2 and victim not in _pids(g)
    for _ in range(10):
        assert get(port, "/echo/v1/w2", tls_client).status == 200
    # SIGHUP reaches every worker
    g.sighup()
    deadline = time.monotonic() + 10
    while sum("config reloaded" in line for line in g.err) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sum("config reloaded" in line for line in g.err) == 2, g.err
    assert g.stop() == 0

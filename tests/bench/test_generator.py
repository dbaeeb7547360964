"""The native generator against the built-in upstream over loopback: every request accounted
for, the rate held, and a 1 s stall in the middle showing up in p99 and max (latency is taken
from each request's scheduled time, so the requests a closed-loop client would never have sent
during the stall are counted as waiting)."""

from __future__ import annotations

import time

import pytest

from fastgate.bench import procs
from fastgate.bench.measure import Target, run_step

REQUEST = b"GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n"


@pytest.fixture
def upstream(request):
    stall = getattr(request, "param", None)
    child, port = procs.start_upstream(None, stall)
    yield port
    child.stop()


def test_constant_rate_every_request_accounted(upstream: int) -> None:
    gen = Target("upstream", "127.0.0.1", upstream, False).generator([REQUEST], 8, 5.0)
    assert gen.connect(5.0) == 8
    t0 = time.monotonic()
    step = run_step(gen, "upstream", 200, 2.0)
    elapsed = time.monotonic() - t0
    assert step.sent == 400 and step.unsent == 0
    assert step.sent == step.completed + step.errors + step.timeouts
    assert step.completed == 400 and step.status == {"200": 400}
    assert 1.9 <= elapsed < 3.0
    assert 190 <= step.achieved <= 210
    assert 0 < step.latency_ms["p50"] <= step.latency_ms["p99"] <= step.latency_ms["max"] < 500
    assert 0 < step.send_lag_p99_ms < 500  # the generator's own lateness is measured too


@pytest.mark.parametrize("upstream", ["1.0:1.0"], indirect=True)
def test_stall_shows_in_p99_and_max(upstream: int) -> None:
    connections = 4
    gen = Target("upstream", "127.0.0.1", upstream, False).generator([REQUEST], connections, 5.0)
    assert gen.connect(5.0) == connections
    step = run_step(gen, "upstream", 200, 3.0)
    assert step.sent == step.completed + step.errors + step.timeouts == 600
    # ~200 requests were due during the stall and waited up to 1 s each
    assert step.latency_ms["max"] >= 900
    assert step.latency_ms["p99"] >= 800
    assert step.latency_ms["p90"] >= 300
    slow = sum(n for lo, _hi, n in step.hist.buckets() if lo >= 100_000_000)
    # a closed-loop client would have had only its 4 in-flight requests see the stall
    assert slow >= 150 > connections

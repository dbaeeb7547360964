"""Micro-benchmark: threat protection on the e2e benchmark's 10 KiB JSON order (issue 5's
≤ 1.3× target), piece by piece, each next to its reference.

  read_body      ThreatPolicy.read_body with all seven rule sets + json limits, the body in one
                 piece (scanned whole) and in three pieces (scanned as it arrives), against
                 reading the same body with no protection (the unprotected POST's stage 8)
  regex          PatternSet.scan on bytes (normalising would only lowercase them: matched in
                 place) against the same scan forced through the normaliser (bytearray input)
  json           scan_json against orjson.loads (a full parse: the reference to beat)

Invariant: every variant accepts the body (asserted). The last test prints the table with ratios.
Run: .venv/bin/pytest benchmarks/micro/test_threat_body_bench.py --benchmark-only -s
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson
import pytest

from fastgate._native.jsonscan import scan_json
from fastgate.config.model import (
    Api,
    Config,
    JsonProtection,
    Listener,
    RegexProtection,
    ThreatProtection,
    Upstream,
    UpstreamUrl,
)
from fastgate.context import RequestContext
from fastgate.policies.shared import SharedState
from fastgate.policies.threat.policy import build

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from policies import THREAT_SETS, order_body  # noqa: E402  (the e2e benchmark's body and sets)

BODY = order_body()
THIRDS = [BODY[:4096], BODY[4096:8192], BODY[8192:]]


class _Req:
    """What read_body needs of a request: headers, Content-Length and body()."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.headers = [(b"host", b"gw"), (b"content-type", b"application/json"),
                        (b"content-length", str(len(BODY)).encode())]
        self.content_length = len(BODY)
        self.chunked = False
        self._chunks = chunks

    async def body(self, max_bytes: int):
        for c in self._chunks:
            yield c


def _policy():
    tp = ThreatProtection(regex=RegexProtection(sets=tuple(THREAT_SETS)), json=JsonProtection())
    api = Api(name="a", base_path="/a", upstream=Upstream(urls=(UpstreamUrl("http", "127.0.0.1", 1),)),
              threat_protection=tp)
    cfg = Config(source=None, listeners=(Listener("l", "127.0.0.1", 0),), apis=(api,))
    return build(api, cfg, SharedState())


POLICY = _policy()
POLICY.patterns.scan(BODY, kind="json")  # the first scan of these gate bytes compiles their
POLICY.patterns.settle()                 # gated database in the background: wait for it
LOOP = asyncio.new_event_loop()
_median: dict[str, float] = {}


def _record(benchmark, key: str) -> None:
    if not benchmark.disabled and benchmark.stats is not None:
        _median[key] = benchmark.stats.stats.median


async def _read_protected(chunks: list[bytes], n: int) -> bytes:
    for _ in range(n):
        ctx = RequestContext("rid", "127.0.0.1", "l", "https", None)
        body = await POLICY.read_body(ctx, _Req(chunks), 1 << 20)
    return body


async def _read_plain(chunks: list[bytes], n: int) -> bytes:
    for _ in range(n):
        parts = []
        async for c in _Req(chunks).body(1 << 20):
            parts.append(c)
        body = b"".join(parts)
    return body


N = 50  # reads per round: one event-loop turn per round, not per read


@pytest.mark.benchmark(group="read_body-10k")
@pytest.mark.parametrize("pieces", [1, 3])
def test_read_body_protected(benchmark, pieces):
    chunks = [BODY] if pieces == 1 else THIRDS
    got = benchmark.pedantic(lambda: LOOP.run_until_complete(_read_protected(chunks, N)),
                             iterations=1, rounds=40)
    assert got == BODY
    _record(benchmark, f"read:{pieces}")


@pytest.mark.benchmark(group="read_body-10k")
def test_read_body_unprotected_reference(benchmark):
    got = benchmark.pedantic(lambda: LOOP.run_until_complete(_read_plain([BODY], N)),
                             iterations=1, rounds=40)
    assert got == BODY
    _record(benchmark, "read:plain")


@pytest.mark.benchmark(group="regex-10k")
@pytest.mark.parametrize("path", ["in-place", "normalised"])
def test_regex_scan(benchmark, path):
    data = BODY if path == "in-place" else bytearray(BODY)  # bytearray: always normalised
    assert benchmark.pedantic(POLICY.patterns.scan, args=(data,), kwargs={"kind": "json"},
                              iterations=50, rounds=100) is None
    _record(benchmark, f"regex:{path}")


@pytest.mark.benchmark(group="json-10k")
def test_scan_json(benchmark):
    benchmark.pedantic(scan_json, args=(BODY, POLICY.json_limits), iterations=50, rounds=100)
    _record(benchmark, "json:scan_json")


@pytest.mark.benchmark(group="json-10k")
def test_orjson_reference(benchmark):
    benchmark.pedantic(orjson.loads, args=(BODY,), iterations=50, rounds=100)
    _record(benchmark, "json:orjson")


@pytest.mark.benchmark(group="zz-table")
def test_print_table(benchmark):
    benchmark.pedantic(lambda: None, rounds=1)  # a benchmark test, so --benchmark-only runs it
    if len(_median) < 7:
        pytest.skip("benchmarks disabled")
    us = {k: v * 1e6 for k, v in _median.items()}
    for k in ("read:1", "read:3", "read:plain"):
        if k in us:
            us[k] /= N
    rows = [
        ("read_body, 1 piece (scanned whole)", "read:1", "read:plain", "unprotected read"),
        ("read_body, 3 pieces (streamed)", "read:3", "read:plain", "unprotected read"),
        ("regex scan, bytes matched in place", "regex:in-place", "regex:normalised", "normalised"),
        ("scan_json", "json:scan_json", "json:orjson", "orjson.loads"),
    ]
    print(f"\n10 KiB JSON order, {len(BODY)} B, all seven rule sets + json limits (median µs)")
    for label, key, ref, ref_label in rows:
        if key in us and ref in us:
            print(f"  {label:38s} {us[key]:8.2f}   {ref_label:18s} {us[ref]:8.2f}   "
                  f"ratio {us[key] / us[ref]:6.2f}×")

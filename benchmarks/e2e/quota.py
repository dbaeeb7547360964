#!/usr/bin/env python3
"""Cluster quota cost end to end (issue 6): an API-key API with no rate limit, the same API with
the application's tier enforced in the local store, and in a private Redis on loopback (leases),
in one run; Redis round trips per request from the gateway's own /metrics.

Two gateway processes, started the same way and pinned the same way (CPU 0), used alternately
(`redis:` is global, so the local store needs a process of its own). Each has two APIs on one
listener (fast path, access log off, TLS 1.3, keep-alive), both `authentication: [api_key]`:
`open` (no limit) and `quota` (`rate_limits: {application: true}`, the application on a tier of
QUOTA per 1m, never reached):

  1   gateway R, `open`            (Redis configured, not on this API's path)
  2   gateway L, `quota`, local store (native GCRA)
  3   gateway R, `quota`, Redis store (RedisQuota: leases, one EVALSHA per refill)
  1L  gateway L, `open`            (the local gateway's own baseline)
  1'  gateway R, `open` again      (drift check)
then 1 and 3 again at a fixed moderate rate (half the lowest saturation req/s of 1, 3, 1'), in
--rounds alternating rounds (1,3 / 3,1 / 1,3), open loop: fastgate's own constant-arrival-rate
generator (fastgate/bench, the native loadgen: latency from each request's scheduled send time,
so no coordinated omission), run in this process on the load CPU. Without it (the native module
not built), closed-loop numbers only, said so. The p99 verdict at that rate is the median of the
rounds' 3 - 1.

Round trips per request (phase 3) = delta of `fastgate_ratelimit_store_calls_total{result="sent"}`
(every Redis script call of the quota store, heartbeats included) / delta of
`fastgate_requests_total{api="quota"}`, both scraped from the admin /metrics right before and after
the measured window (after the warm-up). Added p99 at saturation = p99(3) - mean(p99(1), p99(1')).
Targets: <= 0.05 round trips per request, <= 1 ms added p99.
Processes, pinning, wrk and /proc CPU accounting are benchmarks/e2e/run.py's (imported); the wrk
scripts, warm-up check and preflight are benchmarks/e2e/policies.py's. redis-server runs on the
load CPU (1) with wrk and the upstream; everything is on 127.0.0.1.

    .venv/bin/python benchmarks/e2e/quota.py [--duration 5] [--warmup 2] [--connections 32]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import ssl
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import policies  # noqa: E402  (benchmarks/e2e/policies.py: wrk Lua scripts, checked warm-up)
import run as e2e  # noqa: E402  (benchmarks/e2e/run.py: processes, wrk, /proc accounting)

from fastgate.credentials import api_key_hash  # noqa: E402

API_KEY = "fg_bench_" + "q" * 40
QUOTA = 100_000_000  # per minute: a tier nobody reaches in a benchmark, every request admitted
TARGET_TRIPS = 0.05  # Redis round trips per request, at steady state with leases
TARGET_P99_MS = 1.0  # added p99 latency
PACED_WARMUP = 0.5  # s of unrecorded open-loop load before each fixed-rate run
LOAD_BUDGET = 60.0  # seconds of load per invocation (shared machine)

CONFIG = """version: 1
listeners:
  - name: bench
    address: 127.0.0.1:{port}
    tls:
      certificate: {crt}
      private_key: {key}
      min_version: "1.3"
limits:
  idle_timeout: 600s
  max_connections: 10000
http:
  fast_path: true
admin:
  address: 127.0.0.1:{admin}
logging:
  access_log: off
  level: warning
{redis}tiers:
  huge: {{requests: {quota}, per: 1m}}
applications:
  - name: bench-app
    tier: huge
    api_keys:
      - id: bench-key
        hash: "{api_key_hash}"
apis:
  - name: open
    base_path: /open
    upstream:
      urls: [http://127.0.0.1:{upstream}]
      timeout: 10s
    authentication: [api_key]
    api_key: {{header: X-API-Key, query: null}}
  - name: quota
    base_path: /quota
    upstream:
      urls: [http://127.0.0.1:{upstream}]
      timeout: 10s
    authentication: [api_key]
    api_key: {{header: X-API-Key, query: null}}
    rate_limits: {{application: true}}
"""

REDIS_BLOCK = """redis:
  url: redis://127.0.0.1:{port}/0
  timeout: 50ms
  on_unavailable: local
"""

HEADERS = {"Accept": "application/json", "X-API-Key": API_KEY}

# ---------------------------------------------------------------------------------- processes


class Gateway:
    def __init__(self, name: str, workdir: Path, pki: dict, upstream: int, redis_port: int | None) -> None:
        self.name = name
        self.port = e2e.free_port()
        self.admin = e2e.free_port()
        cfg = workdir / f"{name}.yaml"
        cfg.write_text(CONFIG.format(
            port=self.port, admin=self.admin, crt=pki["server.crt"], key=pki["server.key"],
            upstream=upstream, quota=QUOTA, api_key_hash=api_key_hash(API_KEY),
            redis=REDIS_BLOCK.format(port=redis_port) if redis_port else ""))
        ok, out = policies.check(cfg)
        if not ok:
            raise RuntimeError(f"fastgate check refused the benchmark config:\n{out}")
        self.proc = e2e.Proc(name, e2e.pinned(e2e.GATEWAY_CPU, [*e2e.gateway_command(), "run", "-c", str(cfg)]),
                             workdir)
        self.pid = self.proc.pid
        self.proc.wait_output(r"listener bench accepting on https://")
        e2e.wait_port(self.admin)

    def url(self, api: str) -> str:
        return f"https://127.0.0.1:{self.port}/{api}/orders"

    def metrics(self) -> dict[str, float]:
        """{'calls': store calls sent, 'req:<api>': requests answered per API} from /metrics."""
        conn = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=10)
        try:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        out: dict[str, float] = {"calls": 0.0}
        for m in re.finditer(r"^(fastgate_\w+_total)\{([^}]*)\} (\S+)$", text, re.M):
            name, labels, value = m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(2))), float(m.group(3))
            if name == "fastgate_ratelimit_store_calls_total" and labels.get("result") == "sent":
                out["calls"] += value
            elif name == "fastgate_requests_total":
                key = f"req:{labels.get('api', '')}"
                out[key] = out.get(key, 0.0) + value
        return out

    def stop(self) -> None:
        self.proc.stop()


class RedisServer:
    """A private redis-server on a free loopback port, no persistence, on the load CPU."""

    def __init__(self, workdir: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.port = e2e.free_port()
        self.proc = e2e.Proc("redis", e2e.pinned(e2e.LOAD_CPU, [
            exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(workdir), "--protected-mode", "yes"]), workdir)
        self.pid = self.proc.pid
        self.proc.wait_output(r"Ready to accept connections")
        import redis

        self.client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)
        self.version = self.client.info("server")["redis_version"]

    def stats(self) -> dict[str, int]:
        """Commands the server processed (this INFO call included) and EVALSHA/EVAL calls."""
        info = self.client.info("all")
        return {"commands": int(info["total_commands_processed"]),
                "scripts": sum(int(info.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "eval"))}

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        self.proc.stop()


# ---------------------------------------------------------------------------------- phases


@dataclass
class Row:
    key: str
    label: str
    gateway: str  # R (Redis configured) | L (local store)
    api: str
    mode: str = "saturation"  # saturation | paced
    r: e2e.Result | None = None
    requests: float = 0.0  # fastgate_requests_total delta for the phase's API
    calls: float | None = None  # fastgate_ratelimit_store_calls_total{result="sent"} delta
    redis_commands: int | None = None  # commands the server executed (inside scripts, revocation polls too)
    redis_scripts: int | None = None  # EVALSHA + EVAL
    redis_cpu_ms: float | None = None  # redis-server CPU over the window (10 ms ticks)
    extra: dict = field(default_factory=dict)

    @property
    def trips(self) -> float | None:
        return None if self.calls is None or not self.requests else self.calls / self.requests


def preflight(gw: Gateway, api: str, limited: bool) -> None:
    """One request first: a 200, with RateLimit-Limit = QUOTA exactly when the API is limited."""
    ctx = ssl._create_unverified_context()  # noqa: S323  (dev PKI on 127.0.0.1)
    conn = http.client.HTTPSConnection("127.0.0.1", gw.port, context=ctx, timeout=15)
    try:
        conn.request("GET", f"/{api}/orders", headers=HEADERS)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status != 200:
        raise RuntimeError(f"{gw.name} /{api}: preflight got {resp.status}: {body[:300]!r}")
    limit = resp.getheader("RateLimit-Limit")
    if limited and limit != str(QUOTA):
        raise RuntimeError(f"{gw.name} /{api}: expected RateLimit-Limit {QUOTA}, got {limit!r}")
    if not limited and limit is not None:
        raise RuntimeError(f"{gw.name} /{api}: unexpected RateLimit-Limit {limit!r} on an API without limits")


def open_loop():
    """fastgate's open-loop generator (fastgate.bench.measure), or None when the native loadgen
    module is not built."""
    try:
        from fastgate.bench import measure
    except ImportError:
        return None
    return measure


def measured(row: Row, gw: Gateway, redis: RedisServer, run_wrk) -> Row:
    """run_wrk() -> e2e.Result, bracketed by /metrics, Redis INFO and redis-server CPU readings."""
    m0, s0, c0 = gw.metrics(), redis.stats(), e2e.cpu_seconds([redis.pid])
    r = run_wrk()
    c1, s1, m1 = e2e.cpu_seconds([redis.pid]), redis.stats(), gw.metrics()
    row.r = r
    row.requests = m1.get(f"req:{row.api}", 0.0) - m0.get(f"req:{row.api}", 0.0)
    if gw.name == "gateway-redis":
        row.calls = m1["calls"] - m0["calls"]
        row.redis_commands = s1["commands"] - s0["commands"] - 1  # less the first INFO itself
        row.redis_scripts = s1["scripts"] - s0["scripts"]
        row.redis_cpu_ms = (c1 - c0) * 1e3
    return row


class OpenLoop:
    """One API at a constant arrival rate over `connections` keep-alive TLS connections, opened
    once and reused by every round."""

    def __init__(self, measure, gw: Gateway, api: str, connections: int, up_pids: list[int]) -> None:
        self.measure = measure
        head = (f"GET /{api}/orders HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items()) + "\r\n").encode()
        self.target = measure.Target(api, "127.0.0.1", gw.port, True, server_name="localhost")
        self.gen = self.target.generator([head], connections, 5.0)
        n = self.gen.connect(10.0)
        if n != connections:
            raise RuntimeError(f"open-loop generator: {n}/{connections} connections to {gw.name}: "
                               f"{self.gen.stats().get('last_error')}")
        self.acc = measure.Accounting(gateway=[gw.pid], upstream=up_pids, load_cpus=(int(e2e.LOAD_CPU),),
                                      gateway_cpus=(int(e2e.GATEWAY_CPU),))

    def warm(self, rate: float) -> None:
        self.measure.run_step(self.gen, self.target.name, rate, PACED_WARMUP)

    def run(self, rate: float, seconds: float, label: str) -> e2e.Result:
        st = self.measure.run_step(self.gen, self.target.name, rate, seconds, accounting=self.acc)
        lat = st.latency_ms
        r = e2e.Result(label, requests=st.completed, seconds=st.seconds, rps=st.achieved, p50=lat["p50"],
                       p90=lat["p90"], p99=lat["p99"], errors=st.failures(), rate=rate,
                       cpu_us=st.cpu_us_per_request.get("gateway"), cpu_pct=st.gateway_cpu_pct,
                       core0_pct=st.gateway_cpus_busy_pct, load_pct=st.load_cpu_busy_pct)
        r.extra = {"p99.9": lat["p99.9"], "max": lat["max"], "send_lag_p99_ms": st.send_lag_p99_ms,
                   "status": st.status}
        return r


# ---------------------------------------------------------------------------------- the run


def run(args) -> int:
    if shutil.which("wrk") is None:
        print("wrk is not installed: `make wrk` (apt-get install wrk)", file=sys.stderr)
        return 1
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, {int(e2e.LOAD_CPU)})
    d, c, warm = args.duration, args.connections, args.warmup
    print(f"machine: {e2e.machine()}")
    before = e2e.cpu_busy()
    time.sleep(1.0)
    after = e2e.cpu_busy()
    idle = [e2e.busy_pct(before, after, cpu) or 0.0 for cpu in (e2e.GATEWAY_CPU, e2e.LOAD_CPU)]
    print(f"load average {os.getloadavg()[0]:.2f}; before the run (1 s): CPU0 {idle[0]:.0f}% busy, "
          f"CPU1 {idle[1]:.0f}% busy")
    rows: list[Row] = []
    started: list = []
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fastgate-quota-") as tmp:
        workdir = Path(tmp)
        try:
            pki = e2e.make_pki(workdir)
            up, up_pids, up_port, up_desc = e2e.start_upstream(workdir, use_nginx=False)
            started.append(up)
            redis = RedisServer(workdir)
            started.append(redis)
            gws = {"R": Gateway("gateway-redis", workdir, pki, up_port, redis.port)}
            started.append(gws["R"])
            gws["L"] = Gateway("gateway-local", workdir, pki, up_port, None)
            started.append(gws["L"])
            print(f"upstream: {up_desc} on CPU {e2e.LOAD_CPU}; redis-server {redis.version} on 127.0.0.1:{redis.port}, "
                  f"CPU {e2e.LOAD_CPU}; gateways R (redis) pid {gws['R'].pid} and L (local) pid {gws['L'].pid}, both "
                  f"on CPU {e2e.GATEWAY_CPU}; wrk -t1 -c{c}, {warm:g} s warm-up + {d:g} s per phase", flush=True)
            script = policies.static_script(workdir / "get.lua", "GET", HEADERS, None)
            ph = {api: policies.Phase(api, api, api, "GET", HEADERS) for api in ("open", "quota")}
            for g in gws.values():
                preflight(g, "open", limited=False)
                preflight(g, "quota", limited=True)

            plan = [("1", "no limit", "R", "open"),
                    ("2", "application tier, local store", "L", "quota"),
                    ("3", "application tier, Redis store (leases)", "R", "quota"),
                    ("1L", "no limit, on gateway L", "L", "open"),
                    ("1'", "no limit (again)", "R", "open")]
            for key, label, g, api in plan:
                gw = gws[g]
                policies.warm_up(gw.url(api), warm, c, ph[api], script)
                row = measured(Row(key, label, g, api), gw, redis, lambda gw=gw, api=api, label=label: e2e.wrk(
                    gw.url(api), d, c, label, workdir, [gw.pid], up_pids, script=script))
                rows.append(row)
                r = row.r
                print(f"  {key:>3} [{g}] {label}: {r.rps:,.0f} req/s, {r.cpu_us:.1f} µs/req, p99 {r.p99:.2f} ms, "
                      f"errors {r.errors}" + (f", store calls {row.calls:.0f} = {row.trips:.5f}/req"
                                              if row.trips is not None else ""), flush=True)
            rate = None
            ol = None if args.no_paced else open_loop()
            if ol is None and not args.no_paced:
                print("NOTE: fastgate's open-loop generator (native loadgen) is not built: no fixed-rate runs, "
                      "closed-loop numbers only", flush=True)
            if ol is not None:
                # a share of what this run actually served (not of 1e6 / CPU µs: on a shared
                # machine the gateway may not get a whole core, and the "moderate" rate would be
                # saturation again)
                rate = args.rate or args.rate_fraction * min(row.r.rps for row in rows if row.key in ("1", "3", "1'"))
                pair = (("1", "no limit", "R", "open"), ("3", "application tier, Redis store (leases)", "R", "quota"))
                loads = {key: OpenLoop(ol, gws[g], api, c, up_pids) for key, _label, g, api in pair}
                pd = args.paced_duration
                for rnd in range(1, args.rounds + 1):
                    for key, label, g, api in pair if rnd % 2 else pair[::-1]:  # 1,3 / 3,1 / 1,3 ...
                        gw = gws[g]
                        loads[key].warm(rate)
                        row = Row(key, label, g, api, mode="paced", extra={"round": rnd})
                        measured(row, gw, redis, lambda key=key, label=label: loads[key].run(rate, pd, label))
                        rows.append(row)
                        r = row.r
                        print(f"  {key:>3} [{g}] {label} at {rate:,.0f} req/s, round {rnd}: got {r.rps:,.0f}, "
                              f"p99 {r.p99:.2f} ms, errors {r.errors}", flush=True)
                del loads
            hb = gws["R"].metrics()["calls"]
        finally:
            for p in reversed(started):
                p.stop()
    print(f"(load phases took {time.monotonic() - t_start:.0f} s including start-up)")
    print_results(rows, rate, d, c, warm)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": e2e.machine(), "duration": d, "warmup": warm, "connections": c, "quota": QUOTA,
            "rate": rate, "store_calls_total": hb,
            "phases": [{**asdict(row.r), **{k: v for k, v in asdict(row).items() if k not in ("r", "requests")},
                        "extra": {**row.r.extra, **row.extra}, "metrics_requests": row.requests, "trips": row.trips}
                       for row in rows]}, indent=2))
    return 0


def _mean(vals: list[float]) -> float | None:
    return sum(vals) / len(vals) if vals else None


def print_results(rows: list[Row], rate: float | None, d: float, c: int, warm: float) -> None:
    sat = [r for r in rows if r.mode == "saturation"]
    by = {r.key: r for r in sat}
    base_p99 = _mean([by[k].r.p99 for k in ("1", "1'") if k in by])
    base_cpu = _mean([by[k].r.cpu_us for k in ("1", "1'") if k in by])
    print(f"\nsaturation: wrk -t1 -c{c} (closed loop), {warm:g} s warm-up + {d:g} s measured per phase, TLS 1.3 "
          "keep-alive GET with X-API-Key;\nCPU µs/req = the gateway's user+sys (/proc/PID/stat) / wrk's requests; "
          "trips/req = fastgate_ratelimit_store_calls_total{result=\"sent\"}\ndelta / fastgate_requests_total delta "
          "(heartbeats included); redis cmds/req = commands redis-server executed (those inside\nthe scripts: "
          "TIME, GET, SET..., and the revocation poll's MGET, 2/s, included) / requests; redis CPU ms = its CPU\n"
          "time in the window (10 ms ticks); Δ = against the mean of 1 and 1' (gateway R), or against 1L for "
          "phase 2.\n")
    hdr = ("#", "gw", "phase", "req/s", "p50 ms", "p99 ms", "Δp99 ms", "CPU µs/req", "usr+sys µs", "Δ µs",
           "trips/req", "redis cmds/req", "redis CPU ms", "gw CPU%", "CPU0 all%", "CPU1%", "err")

    def line(row: Row, b_p99: float | None, b_cpu: float | None) -> tuple[str, ...]:
        r = row.r
        return (row.key + (" *" if e2e._noisy(r) else ""), row.gateway, row.label, f"{r.rps:,.0f}", f"{r.p50:.2f}",
                f"{r.p99:.2f}", "-" if b_p99 is None else f"{r.p99 - b_p99:+.2f}", f"{r.cpu_us:.1f}",
                f"{r.user_us:.1f}+{r.sys_us:.1f}", "-" if b_cpu is None else f"{r.cpu_us - b_cpu:+.1f}",
                "-" if row.trips is None else f"{row.trips:.5f}",
                "-" if row.redis_commands is None else f"{row.redis_commands / max(1.0, row.requests):.5f}",
                e2e._fmt(row.redis_cpu_ms, ".0f"), e2e._fmt(r.cpu_pct, ".0f"), e2e._fmt(r.core0_pct, ".0f"),
                e2e._fmt(r.load_pct, ".0f"), str(r.errors))

    out = [hdr]
    for row in sat:
        if row.key in ("1", "1'"):
            out.append(line(row, None, None))
        elif row.key == "2" and "1L" in by:
            out.append(line(row, by["1L"].r.p99, by["1L"].r.cpu_us))
        else:
            out.append(line(row, base_p99, base_cpu))
    e2e._print_rows(out)
    if any(e2e._noisy(r.r) for r in sat):
        print("  * CPU 0 was more than 10 points busier than the gateway itself: other processes ran there")

    paced_rows = [r for r in rows if r.mode == "paced"]
    rounds: dict[int, dict[str, Row]] = {}
    for row in paced_rows:
        rounds.setdefault(row.extra["round"], {})[row.key] = row
    deltas = [rd["3"].r.p99 - rd["1"].r.p99 for rd in rounds.values() if "1" in rd and "3" in rd]
    if paced_rows:
        pd = paced_rows[0].r.seconds
        print(f"\nfixed moderate rate, open loop: {rate:,.0f} req/s scheduled on {c} keep-alive connections by "
              f"fastgate's generator\n(fastgate/bench; latency from each request's scheduled send time), {len(rounds)} "
              f"rounds alternating 1 and 3 (1,3 / 3,1 / ...),\n{PACED_WARMUP:g} s unrecorded + ~{pd:.0f} s measured "
              "each. Δp99 = 3 − 1 of the same round.\n")
        out = [("#", "round", "phase", "asked req/s", "got req/s", "p50 ms", "p90 ms", "p99 ms", "Δp99 ms",
                "p99.9 ms", "CPU µs/req", "trips/req", "redis cmds/req", "gw CPU%", "CPU0 all%", "err")]
        for row in paced_rows:
            r = row.r
            b = rounds[row.extra["round"]].get("1")
            out.append((row.key + (" *" if e2e._noisy(r) else ""), str(row.extra["round"]), row.label,
                        f"{r.rate:,.0f}", f"{r.rps:,.0f}", f"{r.p50:.2f}", f"{r.p90:.2f}", f"{r.p99:.2f}",
                        "-" if b is None or row is b else f"{r.p99 - b.r.p99:+.2f}", f"{r.extra['p99.9']:.2f}",
                        e2e._fmt(r.cpu_us, ".1f"),
                        "-" if row.trips is None else f"{row.trips:.5f}",
                        "-" if row.redis_commands is None else f"{row.redis_commands / max(1.0, row.requests):.5f}",
                        e2e._fmt(r.cpu_pct, ".0f"), e2e._fmt(r.core0_pct, ".0f"), str(r.errors)))
        e2e._print_rows(out)
    else:
        print("\nno fixed-rate measurement (--no-paced, or the native loadgen is not built): closed-loop numbers "
              "only")

    print("\ntargets (issue 6: cluster quota through Redis on loopback vs. none):")

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    three = by.get("3")
    if three is not None and three.trips is not None:
        print(f"  Redis round trips per request, saturation  {three.trips:.5f}  (goal ≤ {TARGET_TRIPS})  "
              f"{verdict(three.trips <= TARGET_TRIPS)}   [{three.calls:.0f} store calls / {three.requests:,.0f} requests; "
              f"server: {three.redis_scripts} EVALSHA/EVAL, {three.redis_commands} commands]")
    p3 = [r for r in paced_rows if r.key == "3" and r.calls is not None]
    if p3:
        calls, reqs = sum(r.calls for r in p3), sum(r.requests for r in p3)
        trips = calls / max(1.0, reqs)
        print(f"  Redis round trips per request, fixed rate  {trips:.5f}  (goal ≤ {TARGET_TRIPS})  "
              f"{verdict(trips <= TARGET_TRIPS)}   [{calls:.0f} store calls / {reqs:,.0f} requests, all rounds]")
    if three is not None and base_p99 is not None:
        added = three.r.p99 - base_p99
        again = by.get("1'", by["1"])
        print(f"  added p99, saturation (3 − mean of 1, 1')  {added:+.2f} ms  (goal ≤ {TARGET_P99_MS:g} ms)  "
              f"{verdict(added <= TARGET_P99_MS)}   [p99 {three.r.p99:.2f} vs {by['1'].r.p99:.2f} / "
              f"{again.r.p99:.2f} ms; closed loop: includes queueing behind the extra CPU]")
    if deltas:
        med = statistics.median(deltas)
        print(f"  added p99, fixed rate (median of 3 − 1)   {med:+.2f} ms  (goal ≤ {TARGET_P99_MS:g} ms)  "
              f"{verdict(med <= TARGET_P99_MS)}   [per round: {', '.join(f'{x:+.2f}' for x in deltas)} ms]")
    if three is not None and base_cpu:
        print(f"  (for reference) CPU µs/req: Redis store {three.r.cpu_us - base_cpu:+.1f} µs "
              f"({three.r.cpu_us / base_cpu:.2f}×) vs no limit"
              + (f"; local store {by['2'].r.cpu_us - by['1L'].r.cpu_us:+.1f} µs "
                 f"({by['2'].r.cpu_us / by['1L'].r.cpu_us:.2f}×) vs its own gateway's no limit"
                 if "2" in by and "1L" in by else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per measured phase (default 5)")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load before each (default 2)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    ap.add_argument("--rate", type=float, default=0.0,
                    help="req/s of the fixed-rate runs (default: --rate-fraction of the saturation req/s)")
    ap.add_argument("--rate-fraction", type=float, default=0.5,
                    help="fixed rate = this × the lowest req/s of phases 1, 3, 1' (default 0.5)")
    ap.add_argument("--rounds", type=int, default=3, help="fixed-rate rounds, each 1 then 3 or 3 then 1 (default 3)")
    ap.add_argument("--paced-duration", type=float, default=3.0,
                    help="seconds per measured fixed-rate run (default 3)")
    ap.add_argument("--no-paced", action="store_true", help="skip the fixed-rate phases")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args(argv)
    secs = lambda s: max(1, round(s))  # noqa: E731  (wrk takes whole seconds)
    load = 5 * (secs(args.warmup) + secs(args.duration))
    if not args.no_paced:
        load += 2 * args.rounds * (PACED_WARMUP + args.paced_duration)
    if load > LOAD_BUDGET:
        ap.error(f"{load:g} s of load: keep it ≤ {LOAD_BUDGET:g} s on this shared machine "
                 "(lower --duration / --warmup or add --no-paced)")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The bench generator's own ceiling against wrk's, on one core each, same target, same
connections: closed loop (as fast as the connections go) against (a) the built-in upstream
over plain HTTP and (b) nginx `return 200` over TLS 1.3 when nginx is installed.

Invariant: the target runs on CPU 0, the client (generator or wrk -t1) on CPU 1; every process
is started here, talks to 127.0.0.1 only and is stopped by pid. Issue 8's goal: generator
≥ 0.8 × wrk.

    .venv/bin/python benchmarks/e2e/loadgen_vs_wrk.py [--duration 5] [--connections 64]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as e2e  # noqa: E402  (nginx and wrk helpers)

from fastgate.bench import procs  # noqa: E402
from fastgate.bench.measure import Accounting, Target, run_step  # noqa: E402

TARGET_CPU, CLIENT_CPU = (0,), (1,)


def generator(target: Target, seconds: float, connections: int) -> tuple[float, float, float]:
    """(req/s, generator CPU µs/req, p99 ms) closed loop, this process pinned to CLIENT_CPU."""
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, CLIENT_CPU)
    try:
        gen = target.generator([b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"], connections, 5.0)
        assert gen.connect(10.0) == connections, gen.stats()["last_error"]
        step = run_step(gen, target.name, 0, seconds, accounting=Accounting(), warmup=1.0)
        return step.achieved, step.cpu_us_per_request["generator"], step.latency_ms["p99"]
    finally:
        os.sched_setaffinity(0, saved)


def wrk(url: str, seconds: float, connections: int) -> tuple[float, float]:
    """(req/s, wrk's CPU µs/req from the children's rusage)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(["taskset", "-c", str(CLIENT_CPU[0]), "wrk", "-t1", f"-c{connections}",
                          f"-d{round(seconds)}s", url], capture_output=True, text=True, timeout=seconds + 30)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = e2e.parse_wrk(out.stdout, url)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return r.rps, cpu * 1e6 / max(r.requests, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per measurement (max 10)")
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args(argv)
    if args.duration > 10:
        ap.error("--duration: at most 10 s")
    if not shutil.which("wrk"):
        print("wrk is not installed")
        return 2
    rows = []
    up, port = procs.start_upstream(TARGET_CPU)
    try:
        time.sleep(0.2)
        g = generator(Target("built-in upstream", "127.0.0.1", port, False), args.duration, args.connections)
        w = wrk(f"http://127.0.0.1:{port}/", args.duration, args.connections)
        rows.append(("built-in upstream, plain HTTP", g, w))
    finally:
        up.stop()
    if e2e.nginx_binary():
        with tempfile.TemporaryDirectory(prefix="loadgen-vs-wrk-") as tmp:
            workdir = Path(tmp)
            pki = e2e.make_pki(workdir)
            ng, _pids, nport = e2e.start_nginx_proxy(workdir, pki, port, cpu=str(TARGET_CPU[0]))
            # the proxy config forwards /api/ only: / is answered by nginx itself (404, tiny)
            try:
                g = generator(Target("nginx TLS", "127.0.0.1", nport, True), args.duration, args.connections)
                w = wrk(f"https://127.0.0.1:{nport}/", args.duration, args.connections)
                rows.append(("nginx (TLS 1.3, 404 from nginx)", g, w))
            finally:
                ng.stop()
    print(f"\nclosed loop, {args.connections} connections, {args.duration:g} s, target on CPU {TARGET_CPU[0]}, "
          f"client on CPU {CLIENT_CPU[0]}\n")
    print("req/s = measured (both clients are limited by the target when it saturates CPU 0); µs/req = the "
          "client's own CPU per request, so 1e6 / µs = its one-core ceiling\n")
    print(f"{'target':32} {'gen req/s':>10} {'gen µs/req':>10} {'gen p99 ms':>10} {'wrk req/s':>10} "
          f"{'wrk µs/req':>10} {'req/s ratio':>11} {'one-core ceiling ratio':>22}")
    for name, (rps, us, p99), (w, wus) in rows:
        print(f"{name:32} {rps:10,.0f} {us:10.1f} {p99:10.2f} {w:10,.0f} {wus:10.1f} {rps / w:10.2f}× "
              f"{wus / us:21.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Idle keep-alive TLS connections: RSS of one gateway worker (and of an nginx worker) before,
with N connections open and idle, and after they close.

Invariant: the client (this process, on CPU 1) opens N TLS 1.3 connections to 127.0.0.1, sends
one small GET on each, reads the answer and leaves the connection idle; the server is measured
from /proc/PID/status (VmRSS) only; every process started here is stopped on exit.

    .venv/bin/python benchmarks/e2e/idle_conns.py [--connections 10000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as e2e  # noqa: E402  (run.py beside this file: processes, nginx, the gateway)

REQUEST = b"GET /api/x HTTP/1.1\r\nHost: localhost\r\nUser-Agent: idle-conns\r\n\r\n"
CONCURRENT_HANDSHAKES = 200
SETTLE = 3.0  # seconds after the last open / close before RSS is read


class _Client(asyncio.Protocol):
    """Sends REQUEST once, resolves `done` when the whole answer is in, then stays idle."""

    def __init__(self, done: asyncio.Future) -> None:
        self.done = done
        self.buf = b""
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(REQUEST)

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        self.buf += data
        head, sep, body = self.buf.partition(b"\r\n\r\n")
        if not sep:
            return
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(body) >= length:
            self.done.set_result(head.split(b"\r\n", 1)[0])
            self.buf = b""

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"closed before the answer: {exc!r}"))


async def open_idle(port: int, ctx: ssl.SSLContext, n: int, timeout: float) -> list[asyncio.Transport]:
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(CONCURRENT_HANDSHAKES)
    transports: list[asyncio.Transport] = []
    failures: list[str] = []

    async def one() -> None:
        async with sem:
            done = loop.create_future()
            try:
                transport, _ = await loop.create_connection(
                    lambda: _Client(done), "127.0.0.1", port, ssl=ctx, server_hostname="localhost")
                status = await asyncio.wait_for(done, 30)
            except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as e:
                failures.append(repr(e))
                return
            if not status.startswith(b"HTTP/1.1 200"):
                failures.append(status.decode(errors="replace"))
            transports.append(transport)

    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(n))), timeout)
    if failures:
        print(f"    {len(failures)} connections failed, e.g. {failures[0]}", flush=True)
    return transports


async def close_all(transports: list[asyncio.Transport]) -> None:
    for t in transports:
        t.close()
    transports.clear()
    await asyncio.sleep(0.5)


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class Measure:
    target: str
    baseline: int = 0  # KiB after warm-up
    rounds: list[tuple[int, int, int, int]] = field(default_factory=list)  # KiB before, opened, open, after
    open_seconds: list[float] = field(default_factory=list)
    trimmed: int | None = None  # KiB after the last round and a malloc_trim(0) forced with gdb


def malloc_trim(pid: int) -> bool:
    """Diagnostic: make the process call glibc's malloc_trim(0) (gdb attaches, calls, detaches),
    to tell memory glibc keeps as free heap from memory still in use."""
    gdb = shutil.which("gdb")
    if gdb is None:
        return False
    r = subprocess.run([gdb, "-p", str(pid), "-batch", "-nx", "-ex", "call (int) malloc_trim(0)"],
                       capture_output=True, text=True, timeout=60)
    return r.returncode == 0 and ("= 1" in r.stdout or "= 0" in r.stdout)


async def measure(target: str, pid: int, port: int, ctx: ssl.SSLContext, n: int, rounds: int,
                  timeout: float, trim: bool = False) -> Measure:
    m = Measure(target)
    warm = await open_idle(port, ctx, min(200, n), timeout)  # one-time allocations are not per-connection
    await close_all(warm)
    await asyncio.sleep(SETTLE)
    m.baseline = e2e.rss_kib(pid)
    print(f"  {target}: baseline {m.baseline / 1024:.1f} MiB", flush=True)
    for r in range(rounds):
        start = e2e.rss_kib(pid)
        t0 = time.monotonic()
        conns = await open_idle(port, ctx, n, timeout)
        m.open_seconds.append(time.monotonic() - t0)
        await asyncio.sleep(SETTLE)
        opened = len(conns)
        held = e2e.rss_kib(pid)
        fds = fd_count(pid)
        await close_all(conns)
        deadline = time.monotonic() + 30
        while fd_count(pid) > fds - opened + 50 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(SETTLE)
        after = e2e.rss_kib(pid)
        m.rounds.append((start, opened, held, after))
        print(f"  {target} round {r + 1}: {opened} open in {m.open_seconds[-1]:.1f}s, RSS {held / 1024:.1f} MiB "
              f"({(held - start) / max(opened, 1):.1f} KiB/conn, server fds {fds}), "
              f"after close {after / 1024:.1f} MiB", flush=True)
    if trim and malloc_trim(pid):
        await asyncio.sleep(1.0)
        m.trimmed = e2e.rss_kib(pid)
        print(f"  {target}: after malloc_trim(0) {m.trimmed / 1024:.1f} MiB", flush=True)
    return m


def client_context(ca: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def print_results(results: list[Measure], n: int) -> None:
    rows = [("server", "round", "open conns", "RSS before MiB", "RSS open MiB", "KiB / idle conn",
             "RSS after close MiB", "after − first baseline MiB", "open took s", "after malloc_trim MiB")]
    for m in results:
        for i, (start, opened, held, after) in enumerate(m.rounds):
            rows.append((m.target, str(i + 1), f"{opened:,}", f"{start / 1024:.1f}", f"{held / 1024:.1f}",
                         f"{(held - start) / max(opened, 1):.1f}", f"{after / 1024:.1f}",
                         f"{(after - m.baseline) / 1024:+.1f}", f"{m.open_seconds[i]:.1f}",
                         f"{m.trimmed / 1024:.1f}" if m.trimmed and i == len(m.rounds) - 1 else "-"))
    e2e._print_rows(rows)
    gw = next((m for m in results if m.target.startswith("gateway")), None)
    ng = next((m for m in results if m.target.startswith("nginx")), None)
    if gw and gw.rounds:
        per = (gw.rounds[0][2] - gw.rounds[0][0]) / max(gw.rounds[0][1], 1)
        line = f"\ngateway: {per:.1f} KiB per idle TLS connection (goal ≤ 32 KiB: {'met' if per <= 32 else 'NOT met'})"
        if ng and ng.rounds:
            nper = (ng.rounds[0][2] - ng.rounds[0][0]) / max(ng.rounds[0][1], 1)
            line += f"; nginx worker {nper:.1f} KiB ({per / nper:.1f}×)" if nper > 0 else ""
        print(line)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=2, help="open/close cycles per server (default 2)")
    ap.add_argument("--timeout", type=float, default=180.0, help="bound on opening all connections")
    ap.add_argument("--no-nginx", action="store_true")
    ap.add_argument("--no-trim", action="store_true",
                    help="skip the diagnostic malloc_trim(0) forced into the gateway with gdb at the end")
    ap.add_argument("--gateway-env", action="append", metavar="KEY=VALUE",
                    help="extra environment for the gateway (e.g. MALLOC_MMAP_THRESHOLD_=131072)")
    args = ap.parse_args(argv)
    n = args.connections
    nofile = n + 4096
    e2e.raise_nofile(nofile)
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, {int(e2e.LOAD_CPU)})
    use_nginx = e2e.nginx_binary() is not None and not args.no_nginx
    genv = e2e.parse_env(args.gateway_env)
    import uvloop

    print(f"machine: {e2e.machine()}")
    print(f"{n:,} idle TLS 1.3 keep-alive connections from one uvloop client on CPU {e2e.LOAD_CPU}, "
          f"server on CPU {e2e.GATEWAY_CPU}; RSS = VmRSS of the gateway process / the nginx worker")
    results: list[Measure] = []
    started: list = []
    with tempfile.TemporaryDirectory(prefix="fastgate-idle-") as tmp:
        workdir = Path(tmp)
        try:
            pki = e2e.make_pki(workdir)
            ctx = client_context(pki["ca.crt"])
            up, _pids, up_port, desc = e2e.start_upstream(workdir, use_nginx)
            started.append(up)
            print(f"upstream: {desc}")
            gw, gw_port = e2e.start_gateway(workdir, pki, up_port, max_connections=n + 1000, nofile=nofile,
                                            env=genv)
            started.append(gw)
            label = "gateway (1 worker)" + "".join(f" {k}={v}" for k, v in genv.items())
            results.append(uvloop.run(measure(label, gw.pid, gw_port, ctx, n, args.rounds, args.timeout,
                                              trim=not args.no_trim)))
            gw.stop()
            started.remove(gw)
            if use_nginx:
                ng, ng_pids, ng_port = e2e.start_nginx_proxy(workdir, pki, up_port, nofile=nofile)
                started.append(ng)
                results.append(uvloop.run(measure("nginx TLS proxy (worker)", ng_pids[0], ng_port, ctx, n,
                                                  args.rounds, args.timeout)))
                ng.stop()
                started.remove(ng)
        finally:
            for p in reversed(started):
                p.stop()
    print()
    print_results(results, n)
    return 0


if __name__ == "__main__":
    sys.exit(main())

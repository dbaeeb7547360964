#!/usr/bin/env python3
"""End-to-end load: wrk against (a) a fast upstream directly, the gateway over TLS 1.3 with
(b) `fast_path: true` and (c) `fast_path: false`, and (d) nginx as a TLS reverse proxy.

Invariant: every process is started by this script, pinned (the proxy under test on CPU 0, wrk
and the upstream on CPU 1), bounded in time, talks to 127.0.0.1 only, and is stopped on exit.
CPU µs per request = the proxy process's user+sys time delta (/proc/PID/stat) / wrk's count.

    .venv/bin/python benchmarks/e2e/run.py [--duration 10] [--connections 50] [--profile 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

GATEWAY_CPU = "0"  # the proxy under test: the gateway, or the nginx reverse proxy
LOAD_CPU = "1"  # wrk, the upstream, py-spy and the idle-connection client
PATH = "/api/x"  # the gateway strips base_path /api; the nginx proxy does the same
TICK = os.sysconf("SC_CLK_TCK")

# ---------------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def pinned(cpu: str, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if shutil.which("taskset") else cmd


def raise_nofile(n: int) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= n:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, max(n, hard)))
    except (ValueError, OSError):  # not root: as high as the hard limit allows
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Proc:
    """A child process with its output in files, stopped by pid (never by name)."""

    def __init__(self, name: str, cmd: list[str], workdir: Path, nofile: int = 0,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.out = workdir / f"{name}.out"
        self.err = workdir / f"{name}.err"
        pre = (lambda: raise_nofile(nofile)) if nofile else None
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.popen = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                          preexec_fn=pre, env={**os.environ, **(env or {})})
        self.pid = self.popen.pid

    def wait_output(self, pattern: str, timeout: float = 20.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.out.read_text(errors="replace"))
            if m:
                return m
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not print {pattern!r}:\n{self.err.read_text()[-2000:]}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{d}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d))
    return out


def cpu_times(pids: list[int]) -> tuple[float, float]:
    """(user, sys) seconds of all threads of `pids` (fields 14 and 15 of /proc/PID/stat)."""
    user = system = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        user += int(fields[11])
        system += int(fields[12])
    return user / TICK, system / TICK


def cpu_seconds(pids: list[int]) -> float:
    return sum(cpu_times(pids))


def cpu_busy() -> dict[str, tuple[int, int]]:
    """Per CPU (busy, total) jiffies from /proc/stat: what every process on that core used."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *vals = line.split()
            v = [int(x) for x in vals[:8]]
            out[name[3:]] = (sum(v) - v[3] - v[4], sum(v))
    return out


def busy_pct(before: dict, after: dict, cpu: str) -> float | None:
    if cpu not in before or cpu not in after:
        return None
    busy = after[cpu][0] - before[cpu][0]
    total = after[cpu][1] - before[cpu][1]
    return busy * 100.0 / total if total else None


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


# ---------------------------------------------------------------------------------- upstreams

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"


class _FastUpstream(asyncio.Protocol):
    """GET-only keep-alive upstream: one canned 200 per request head, no parsing beyond that."""

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        n = buf.count(b"\r\n\r\n")
        if n:
            self.transport.write(RESPONSE * n)
            buf = buf[buf.rfind(b"\r\n\r\n") + 4:]
        self.buf = buf


def serve_upstream(port: int) -> None:
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_FastUpstream, "127.0.0.1", port, backlog=4096)
        print(f"upstream ready on {port}", flush=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        server.close()

    uvloop.run(main())


NGINX_COMMON = """
worker_processes 1;
{user}
pid {dir}/{name}.pid;
error_log {dir}/{name}-error.log warn;
worker_rlimit_nofile {nofile};
events {{ worker_connections {nofile}; multi_accept on; }}
http {{
  access_log off;
  client_body_temp_path {dir}/{name}-tmp/body;
  proxy_temp_path {dir}/{name}-tmp/proxy;
  fastcgi_temp_path {dir}/{name}-tmp/fastcgi;
  uwsgi_temp_path {dir}/{name}-tmp/uwsgi;
  scgi_temp_path {dir}/{name}-tmp/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  server_tokens off;
{body}
}}
"""

NGINX_UPSTREAM = """
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{ default_type text/plain; return 200 "ok\\n"; }}
  }}
"""

NGINX_PROXY = """
  upstream backend {{ server 127.0.0.1:{upstream}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port} ssl backlog=4096;
    ssl_certificate {crt};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.3;
    location /api/ {{
      proxy_pass http://backend/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Request-Id $request_id;
    }}
  }}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


class Nginx:
    def __init__(self, name: str, body: str, workdir: Path, cpu: str, nofile: int = 65536) -> None:
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (workdir / f"{name}-tmp" / sub).mkdir(parents=True, exist_ok=True)
        user = "user root;" if os.geteuid() == 0 else ""
        conf = workdir / f"{name}.conf"
        conf.write_text(NGINX_COMMON.format(user=user, dir=workdir, name=name, nofile=nofile, body=body))
        cmd = [nginx_binary() or "nginx", "-p", str(workdir), "-c", str(conf), "-e", str(workdir / f"{name}-error.log"),
               "-g", "daemon off;"]
        self.proc = Proc(name, pinned(cpu, cmd), workdir, nofile=nofile + 1024)

    def workers(self) -> list[int]:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            kids = children(self.proc.pid)
            if kids:
                return kids
            time.sleep(0.05)
        raise RuntimeError(f"nginx {self.proc.name} has no worker")

    def stop(self) -> None:
        self.proc.stop()


def start_upstream(workdir: Path, use_nginx: bool) -> tuple[object, list[int], int, str]:
    """(handle, pids to measure, port, description); on LOAD_CPU."""
    port = free_port()
    if use_nginx:
        ng = Nginx("upstream", NGINX_UPSTREAM.format(port=port), workdir, LOAD_CPU)
        wait_port(port)
        return ng, ng.workers(), port, "nginx `return 200` (1 worker)"
    p = Proc("upstream", pinned(LOAD_CPU, [sys.executable, __file__, "--serve-upstream", str(port)]), workdir)
    p.wait_output(r"upstream ready")
    return p, [p.pid], port, "uvloop canned-200 upstream (benchmarks/e2e/run.py --serve-upstream)"


def start_nginx_proxy(workdir: Path, pki: dict, upstream_port: int, cpu: str = GATEWAY_CPU,
                      nofile: int = 65536) -> tuple[Nginx, list[int], int]:
    port = free_port()
    body = NGINX_PROXY.format(port=port, upstream=upstream_port, crt=pki["server.crt"], key=pki["server.key"])
    ng = Nginx("proxy", body, workdir, cpu, nofile=nofile)
    wait_port(port)
    return ng, ng.workers(), port


# ---------------------------------------------------------------------------------- the gateway

GATEWAY_YAML = """version: 1
listeners:
  - name: bench
    address: 127.0.0.1:{port}
    tls:
      certificate: {crt}
      private_key: {key}
      min_version: "1.3"
limits:
  idle_timeout: 600s
  max_connections: {max_connections}
http:
  fast_path: {fast_path}
admin: off
logging:
  access_log: {access_log}
  level: warning
apis:
  - name: bench
    base_path: /api
    upstream:
      urls: [http://127.0.0.1:{upstream}]
      timeout: 10s
"""


def gateway_command() -> list[str]:
    exe = Path(sys.executable).with_name("fastgate")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "fastgate.cli"]


def start_gateway(workdir: Path, pki: dict, upstream_port: int, *, fast_path: bool = True,
                  access_log: str = "off", max_connections: int = 10000, nofile: int = 0,
                  name: str = "gateway", env: dict[str, str] | None = None) -> tuple[Proc, int]:
    port = free_port()
    cfg = workdir / f"{name}.yaml"
    cfg.write_text(GATEWAY_YAML.format(
        port=port, crt=pki["server.crt"], key=pki["server.key"], upstream=upstream_port,
        fast_path="true" if fast_path else "false", access_log=access_log,
        max_connections=max_connections))
    p = Proc(name, pinned(GATEWAY_CPU, [*gateway_command(), "run", "-c", str(cfg)]), workdir, nofile=nofile,
             env=env)
    p.wait_output(r"listener bench accepting on https://")
    return p, port


def make_pki(workdir: Path) -> dict:
    from fastgate.devtools.certs import make_dev_pki

    return make_dev_pki(workdir / "pki")


# ---------------------------------------------------------------------------------- wrk

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass
class Result:
    target: str
    requests: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    p50: float = 0.0  # ms
    p75: float = 0.0
    p90: float = 0.0
    p99: float = 0.0
    errors: int = 0  # non-2xx/3xx + socket errors
    cpu_us: float | None = None  # CPU µs per request of the measured process(es)
    user_us: float | None = None  # ... of which in user space
    sys_us: float | None = None  # ... of which in the kernel (loopback TCP, syscalls)
    core0_pct: float | None = None  # CPU 0 busy with anything (other processes too), %
    cpu_pct: float | None = None  # their CPU time / wall time, %
    load_pct: float | None = None  # wrk + upstream CPU / wall time on LOAD_CPU, %
    rate: float | None = None  # the requested rate for a rate-limited run
    extra: dict = field(default_factory=dict)


def parse_wrk(text: str, target: str) -> Result:
    r = Result(target)
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise RuntimeError(f"unexpected wrk output:\n{text}")
    r.requests = int(m.group(1))
    r.seconds = _ms(m.group(2) + m.group(3)) / 1000.0
    r.rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    for pct in (50, 75, 90, 99):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        if m:
            setattr(r, f"p{pct}", _ms(m.group(1)))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    r.errors += int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r.errors += sum(int(x) for x in m.groups()) if m else 0
    return r


RATE_LUA = """-- rate-limited wrk: each connection waits `delay()` ms after a response before its next
-- request; wrk times a request from its first byte written, so the wait is not in the latency.
local d = {delay_ms}
function delay()
  local base = math.floor(d)
  if math.random() < d - base then return base + 1 end
  return base
end
"""


def wrk(url: str, seconds: float, connections: int, target: str, workdir: Path,
        measure: list[int] | None = None, load: list[int] | None = None,
        delay_ms: float | None = None, script: Path | None = None) -> Result:
    """`script`: a wrk Lua script (method, headers, body...); not together with `delay_ms`."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "5s"]
    if delay_ms is not None:
        script = workdir / "rate.lua"
        script.write_text(RATE_LUA.format(delay_ms=f"{delay_ms:.4f}"))
    if script is not None:
        cmd += ["-s", str(script)]
    cmd.append(url)
    cpu0 = cpu_times(measure) if measure else (0.0, 0.0)
    load0 = cpu_seconds(load) if load else 0.0
    busy0 = cpu_busy()
    t0 = time.monotonic()
    p = subprocess.Popen(pinned(LOAD_CPU, cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.read().decode(errors="replace")
    _pid, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    busy1 = cpu_busy()
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed ({p.returncode}):\n{out}")
    r = parse_wrk(out, target)
    r.core0_pct = busy_pct(busy0, busy1, GATEWAY_CPU)
    if measure:
        cpu1 = cpu_times(measure)
        n = max(1, r.requests)
        r.user_us = (cpu1[0] - cpu0[0]) / n * 1e6
        r.sys_us = (cpu1[1] - cpu0[1]) / n * 1e6
        r.cpu_us = r.user_us + r.sys_us
        r.cpu_pct = (sum(cpu1) - sum(cpu0)) / wall * 100.0
    loadcpu = usage.ru_utime + usage.ru_stime + ((cpu_seconds(load) - load0) if load else 0.0)
    r.load_pct = loadcpu / wall * 100.0
    return r


def rate_run(url: str, rate: float, seconds: float, connections: int, target: str, workdir: Path,
             measure: list[int] | None, load: list[int] | None) -> Result:
    """`rate` req/s with a per-connection think time, calibrated by a 2 s pilot run."""
    cycle = connections * 1000.0 / rate  # ms between two requests on one connection
    pilot = wrk(url, 2, connections, target, workdir, delay_ms=cycle)
    latency = max(0.0, connections * 1000.0 / max(pilot.rps, 1.0) - cycle)
    r = wrk(url, seconds, connections, target, workdir, measure, load, delay_ms=max(0.0, cycle - latency))
    r.rate = rate
    return r


# ---------------------------------------------------------------------------------- py-spy

def py_spy() -> str | None:
    exe = Path(sys.executable).with_name("py-spy")
    return str(exe) if exe.exists() else shutil.which("py-spy")


def profile(pid: int, seconds: float, url: str, connections: int, workdir: Path,
            script: Path | None = None) -> dict | None:
    """py-spy (Python-level: which code pays) then perf (which library/kernel burns the cycles),
    each for `seconds`, under one continuous wrk load."""
    spy = py_spy()
    perf = shutil.which("perf")
    if spy is None and perf is None:
        print("neither py-spy nor perf installed: profile skipped (pip install py-spy)", file=sys.stderr)
        return None
    secs = max(1, round(seconds))
    total = 1 + (secs + 3 if spy else 0) + (secs + 3 if perf else 0)
    load = subprocess.Popen(pinned(LOAD_CPU, ["wrk", "-t1", f"-c{connections}", f"-d{total}s",
                                              *(["-s", str(script)] if script else []), url]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out: dict = {}
    try:
        time.sleep(1.0)
        if spy:
            raw = workdir / "py-spy.txt"
            subprocess.run(pinned(LOAD_CPU, [spy, "record", "--native", "--function", "--rate", "200",
                                             "--format", "raw", "--duration", str(secs), "--pid", str(pid),
                                             "--output", str(raw)]),
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=secs + 60)
            out["py_spy"] = summarize_py_spy(raw.read_text())
        if perf:
            data = workdir / "perf.data"
            rec = subprocess.run(pinned(LOAD_CPU, [perf, "record", "-F", "999", "-p", str(pid), "-o", str(data),
                                                   "--", "sleep", str(secs)]),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=secs + 60)
            if rec.returncode == 0:
                out["perf"] = summarize_perf(perf, data)
    finally:
        load.wait(total + 30)
    return out


def _perf_report(perf: str, data: Path, sort: str) -> list[tuple[str, float]]:
    text = subprocess.run([perf, "report", "-i", str(data), "--stdio", "--no-children", "--sort", sort],
                          capture_output=True, text=True, timeout=120).stdout
    rows = []
    for line in text.splitlines():
        m = re.match(r"^\s+([\d.]+)%\s+(.*\S)\s*$", line)
        if m:
            rows.append((re.sub(r"\s{2,}", "  ", m.group(2)), float(m.group(1))))
    return rows


def summarize_perf(perf: str, data: Path, top: int = 60) -> dict:
    by_dso = _perf_report(perf, data, "dso")
    by_sym = _perf_report(perf, data, "dso,sym")[:top]
    return {"by_dso": by_dso[:15], "by_symbol": by_sym}


_PY = re.compile(r"^(?P<fn>.+?) \((?P<file>[^()]*\.py)[^()]*\)$")


def _frame(frame: str) -> tuple[str, str]:
    """(label, library) of one py-spy frame; library is the .py or .so file."""
    m = _PY.match(frame)
    if m:
        f = m.group("file")
        short = f.split("site-packages/")[-1]
        short = re.sub(r"^.*?/(fastgate|benchmarks)/", r"\1/", short)
        return f"{m.group('fn')} ({short})", short
    m = re.match(r"^(?P<fn>.+?) \((?P<lib>[^()]+)\)$", frame)
    if m:
        lib = os.path.basename(m.group("lib"))
        return f"{m.group('fn')} ({lib})", lib
    return frame, "?"


def _category(lib: str) -> str:
    if lib.startswith(("libssl", "libcrypto")):
        return "OpenSSL (libssl/libcrypto)"
    if lib.startswith("libc") or lib.startswith("ld-linux") or lib == "libpthread.so.0":
        return "libc / syscalls (send, recv, epoll, malloc)"
    if lib.startswith("loop.cpython") or lib.startswith("uvloop") or lib.startswith("libuv"):
        return "uvloop / libuv (incl. its sslproto)"
    if lib.startswith("httpfast"):
        return "fastgate native httpfast"
    if lib.startswith(("python", "libpython")):
        return "CPython interpreter / runtime"
    if lib.startswith("fastgate/"):
        return "fastgate Python code"
    if lib.endswith(".py"):
        return "other Python code (stdlib, h11, prometheus_client)"
    if lib.startswith("_ssl"):
        return "CPython _ssl module"
    return f"other native ({lib})"


def summarize_py_spy(text: str, top: int = 25) -> dict:
    """Self time by leaf frame and by library; 'owner' = the innermost Python frame of a sample
    (its C callees included), which is what the Python code is paying for."""
    total = 0
    leaf: Counter = Counter()
    cat: Counter = Counter()
    owner: Counter = Counter()
    incl: Counter = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        label, lib = frames[-1]
        leaf[label] += n
        cat[_category(lib)] += n
        own = next((lbl for lbl, lb in reversed(frames) if lb.endswith(".py")), "(no Python frame)")
        owner[own] += n
        for lbl in {lbl for lbl, lb in frames if lb.endswith(".py")}:
            incl[lbl] += n

    def pct(c: Counter) -> list[tuple[str, float]]:
        return [(k, round(v * 100.0 / max(total, 1), 1)) for k, v in c.most_common(top)]

    return {"samples": total, "self_leaf": pct(leaf), "self_by_library": pct(cat),
            "by_innermost_python_frame": pct(owner), "inclusive_python": pct(incl)}


def print_profile(summary: dict) -> None:
    spy = summary.get("py_spy")
    if spy:
        print(f"\npy-spy --native of the gateway (fast path, under wrk load): {spy['samples']} samples")
        for key, title, n in (
                ("self_by_library", "self time by library (py-spy stops the process with ptrace, which "
                 "over-weights syscall wrappers: trust perf below for the split)", 10),
                ("self_leaf", "self time, leaf frames", 20),
                ("by_innermost_python_frame", "by innermost Python frame (its C callees included)", 25),
                ("inclusive_python", "inclusive time, Python functions", 30)):
            print(f"\n  {title}:")
            for name, p in spy[key][:n]:
                print(f"    {p:5.1f}%  {name}")
    perf = summary.get("perf")
    if perf:
        print("\nperf record -F 999 (cpu-clock) of the gateway: share of its CPU time by shared object")
        for name, p in perf["by_dso"]:
            print(f"    {p:5.1f}%  {name}")
        print("\n  top symbols:")
        for name, p in perf["by_symbol"][:30]:
            print(f"    {p:5.1f}%  {name}")


# ---------------------------------------------------------------------------------- the run

def parse_env(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--gateway-env wants KEY=VALUE, not {item!r}")
        out[key] = value
    return out


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs, {model}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.2f}×"


def core_rps(r: Result) -> float | None:
    """What one dedicated core would serve at this CPU cost (robust to other load on the machine)."""
    return 1e6 / r.cpu_us if r.cpu_us else None


def _noisy(r: Result) -> bool:
    """Something besides the proxy under test used CPU 0 (other processes on the machine)."""
    return r.core0_pct is not None and r.cpu_pct is not None and r.core0_pct - r.cpu_pct > 10.0


def _print_rows(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                        for j, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def print_table(results: list[Result], nginx: Result | None, direct: Result) -> None:
    rows = [("target", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "usr+sys µs", "1 core req/s", "proc CPU%",
             "CPU0 all%", "CPU1%", "err", "req/s ÷ nginx", "µs/req ÷ nginx", "req/s ÷ direct")]
    for r in results:
        rows.append((r.target + (" *" if _noisy(r) and "direct" not in r.target else ""),
                     f"{r.rps:,.0f}", f"{r.p50:.2f}", f"{r.p99:.2f}", _fmt(r.cpu_us, ".1f"),
                     "-" if r.user_us is None else f"{r.user_us:.1f}+{r.sys_us:.1f}",
                     f"{core_rps(r):,.0f}" if core_rps(r) else "-", _fmt(r.cpu_pct, ".0f"), _fmt(r.core0_pct, ".0f"), _fmt(r.load_pct, ".0f"), str(r.errors),
                     _ratio(r.rps, nginx.rps if nginx else None),
                     _ratio(r.cpu_us, nginx.cpu_us if nginx else None), _ratio(r.rps, direct.rps)))
    _print_rows(rows)
    if any(_noisy(r) for r in results if "direct" not in r.target):
        print("  * CPU 0 was more than 10 points busier than the proxy itself: other processes ran there")


def print_rate_table(results: list[Result], direct: Result | None) -> None:
    rows = [("target", "asked req/s", "got req/s", "p50 ms", "p90 ms", "p99 ms", "added p99 ms",
             "CPU µs/req", "proc CPU%", "CPU0 all%")]
    for r in results:
        added = "-" if direct is None or r is direct else f"{r.p99 - direct.p99:.2f}"
        rows.append((r.target, f"{r.rate:,.0f}", f"{r.rps:,.0f}", f"{r.p50:.2f}", f"{r.p90:.2f}",
                     f"{r.p99:.2f}", added, _fmt(r.cpu_us, ".1f"), _fmt(r.cpu_pct, ".0f"),
                     _fmt(r.core0_pct, ".0f")))
    _print_rows(rows)


def run(args) -> int:
    for tool in ("wrk",):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed: `make wrk` (apt-get install wrk)", file=sys.stderr)
            return 1
    use_nginx = nginx_binary() is not None and not args.no_nginx
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, {int(LOAD_CPU)})  # this script waits on CPU 1 too
    d, c = args.duration, args.connections
    genv = parse_env(args.gateway_env)
    warm = max(1.0, min(2.0, d / 5))
    print(f"machine: {machine()}")
    if genv:
        print(f"gateway environment: {genv}")
    print(f"layout: proxy under test on CPU {GATEWAY_CPU}; wrk (-t1 -c{c}) and the upstream on CPU {LOAD_CPU}; "
          f"{d:g}s per phase, {warm:g}s warm-up; TLS 1.3, keep-alive, GET {PATH}, no policies, "
          f"gateway access log off unless stated")
    before = cpu_busy()
    time.sleep(1.0)
    idle0, idle1 = busy_pct(before, cpu_busy(), GATEWAY_CPU), busy_pct(before, cpu_busy(), LOAD_CPU)
    print(f"before the run (1 s, nothing of ours running): CPU0 {idle0 or 0:.0f}% busy, CPU1 {idle1 or 0:.0f}% busy"
          + ("  <- other processes are using the machine: numbers will be noisy" if max(idle0 or 0, idle1 or 0) > 10
             else ""))
    started: list = []
    with tempfile.TemporaryDirectory(prefix="fastgate-e2e-") as tmp:
        workdir = Path(tmp)
        try:
            pki = make_pki(workdir)
            up, up_pids, up_port, up_desc = start_upstream(workdir, use_nginx)
            started.append(up)
            print(f"upstream: {up_desc} on CPU {LOAD_CPU}" + ("" if use_nginx else "; nginx not installed: (d) skipped"))
            direct_url = f"http://127.0.0.1:{up_port}{PATH}"
            results: list[Result] = []
            rated: list[Result] = []

            def phase(label, url, measure, load):
                wrk(url, warm, c, label, workdir)
                r = wrk(url, d, c, label, workdir, measure, load)
                print(f"  {label}: {r.rps:,.0f} req/s, p99 {r.p99:.2f} ms", flush=True)
                results.append(r)
                return r

            direct = phase("(a) upstream direct (plain HTTP)", direct_url, up_pids, None)

            gw, gw_port = start_gateway(workdir, pki, up_port, fast_path=True, env=genv)
            started.append(gw)
            gw_url = f"https://127.0.0.1:{gw_port}{PATH}"
            fast = phase("(b) gateway fast_path: true", gw_url, [gw.pid], up_pids)
            half = max(fast.rps, core_rps(fast) or 0.0) / 2  # other load on CPU 0 must not make it easy
            r = rate_run(gw_url, half, d, c, "(b) gateway fast_path: true", workdir, [gw.pid], up_pids)
            print(f"  (b) at {half:,.0f} req/s: p99 {r.p99:.2f} ms", flush=True)
            rated.append(r)
            prof = None
            if args.profile:
                prof = profile(gw.pid, args.profile, gw_url, c, workdir)
            gw.stop()
            started.remove(gw)

            gw, gw_port = start_gateway(workdir, pki, up_port, fast_path=True, env=genv,
                                        access_log=str(workdir / "access.log"), name="gateway-log")
            started.append(gw)
            phase("(b') gateway fast_path: true, access log to a file",
                  f"https://127.0.0.1:{gw_port}{PATH}", [gw.pid], up_pids)
            gw.stop()
            started.remove(gw)

            gw, gw_port = start_gateway(workdir, pki, up_port, fast_path=False, name="gateway-h11", env=genv)
            started.append(gw)
            phase("(c) gateway fast_path: false", f"https://127.0.0.1:{gw_port}{PATH}", [gw.pid], up_pids)
            gw.stop()
            started.remove(gw)

            nginx = None
            if use_nginx:
                ng, ng_pids, ng_port = start_nginx_proxy(workdir, pki, up_port)
                started.append(ng)
                ng_url = f"https://127.0.0.1:{ng_port}{PATH}"
                nginx = phase("(d) nginx TLS reverse proxy (1 worker)", ng_url, ng_pids, up_pids)
                r = rate_run(ng_url, half, d, c, "(d) nginx TLS reverse proxy (1 worker)", workdir, ng_pids, up_pids)
                rated.append(r)
                ng.stop()
                started.remove(ng)
            rd = rate_run(direct_url, half, d, c, "(a) upstream direct (plain HTTP)", workdir, up_pids, None)
            rated.append(rd)
        finally:
            for p in reversed(started):
                p.stop()

    print(f"\nsaturation: wrk -t1 -c{c} -d{d:g}s (closed loop). CPU µs/req = the measured process's user+sys "
          "(/proc/PID/stat) / requests;\nproc CPU% = that CPU time / wall time; CPU0 all% = CPU 0 busy with "
          "anything (/proc/stat); CPU1% = wrk + upstream\n(≈100 means the load side is the limit); 1 core req/s = "
          "1e6 / CPU µs per request. For (a) the measured process is the upstream.\n")
    print_table(results, nginx, direct)
    print(f"\nhalf of the gateway's capacity ({half:,.0f} req/s = max(req/s, 1 core req/s) of (b) / 2; {c} "
          "connections with a calibrated per-connection think time;\n'added' = p99 minus the direct upstream's p99 "
          "at the same rate)\n")
    print_rate_table(rated, rd)
    print("\ntargets (1 worker, TLS 1.3, keep-alive, small GET, no policies):")
    if nginx is None:
        print("  req/s and CPU µs/req vs nginx: no nginx in this run")
    else:
        print(f"  req/s vs nginx      {fast.rps / nginx.rps:.2f}×  (goal ≥ 0.70×)  "
              f"{'met' if fast.rps / nginx.rps >= 0.7 else 'NOT met'}; per dedicated core (1e6 / CPU µs): "
              f"{core_rps(fast) / core_rps(nginx):.2f}×")
        cr = fast.cpu_us / nginx.cpu_us
        print(f"  CPU µs/req vs nginx {cr:.2f}×  (goal ≤ 1.40×)  {'met' if cr <= 1.4 else 'NOT met'}")
    added = rated[0].p99 - rd.p99
    print(f"  added p99 at half capacity {added:.2f} ms  (goal ≤ 2 ms)  {'met' if added <= 2.0 else 'NOT met'}")
    if prof is not None:
        print_profile(prof)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": machine(), "duration": d, "connections": c,
            "saturation": [asdict(r) for r in results], "half_capacity": [asdict(r) for r in rated],
            "profile": prof}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per measured phase (default 10)")
    ap.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    ap.add_argument("--profile", type=float, default=0.0, metavar="SECONDS",
                    help="also record a py-spy profile of the gateway under load for SECONDS")
    ap.add_argument("--no-nginx", action="store_true", help="skip nginx even when installed")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--gateway-env", action="append", metavar="KEY=VALUE",
                    help="extra environment for the gateway (e.g. MALLOC_MMAP_THRESHOLD_=131072)")
    ap.add_argument("--serve-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

"""Processes `fastgate bench` starts (the built-in upstream, the gateway under test), the cores
they are pinned to, and their CPU time from /proc (benchmarks/e2e/run.py's accounting).

Invariant: every child is started here, talks to 127.0.0.1 only, and is stopped by its own pid
(SIGTERM, then SIGKILL after a grace period), never by name.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
LISTENER_RE = re.compile(r"fastgate: listener (\S+) accepting on (https?)://([^ ]+):(\d+)")
UPSTREAM_RE = re.compile(r"listening on http://[^:]+:(\d+)")


@dataclass(frozen=True)
class Pinning:
    """Which CPUs the gateway and the load side (generator + upstream) may run on."""

    gateway: tuple[int, ...]
    load: tuple[int, ...]

    @staticmethod
    def plan(workers: int = 1, enabled: bool = True) -> Pinning:
        """Gateway on the first `workers` CPUs we may use, the rest for the load side; with one
        CPU (or pinning off) everything shares everything."""
        cpus = tuple(sorted(os.sched_getaffinity(0)))
        if not enabled or len(cpus) < 2:
            return Pinning(cpus, cpus)
        n = max(1, min(workers, len(cpus) - 1))
        return Pinning(cpus[:n], cpus[n:])


class Child:
    """A child process whose output lines are collected by a thread (a full pipe never blocks it)."""

    def __init__(self, name: str, cmd: list[str], cpus: tuple[int, ...] | None = None,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.lines: list[str] = []
        self._cv = threading.Condition()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        pre = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        self.popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=env, cwd=cwd, preexec_fn=pre)
        self.pid = self.popen.pid
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            with self._cv:
                if len(self.lines) < 10000:
                    self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def wait_for(self, rx: re.Pattern, count: int = 1, timeout: float = 30.0) -> list[re.Match]:
        """The first `count` output lines matching rx; RuntimeError with the output otherwise."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                found = [m for m in map(rx.search, self.lines) if m]
                if len(found) >= count:
                    return found[:count]
                if time.monotonic() > deadline or self.popen.poll() is not None:
                    tail = "\n".join(self.lines[-20:])
                    raise RuntimeError(f"{self.name} did not start:\n{tail}")
                self._cv.wait(0.1)

    def pids(self) -> list[int]:
        """This process and its children (gateway workers)."""
        return [self.pid, *children(self.pid)]

    def stop(self, grace: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start_upstream(cpus: tuple[int, ...] | None, stall: str | None = None) -> tuple[Child, int]:
    """The built-in canned-200 upstream; (process, port)."""
    cmd = [sys.executable, "-m", "fastgate.bench.upstream", "--port", "0"]
    if stall:
        cmd += ["--stall", stall]
    child = Child("upstream", cmd, cpus)
    port = int(child.wait_for(UPSTREAM_RE)[0].group(1))
    return child, port


def start_gateway(config: Path, cpus: tuple[int, ...] | None, listeners: int = 1,
                  timeout: float = 60.0) -> tuple[Child, dict[str, tuple[str, str, int]]]:
    """`python -m fastgate.cli run -c config`; (process, {listener: (scheme, host, port)})."""
    child = Child("gateway", [sys.executable, "-m", "fastgate.cli", "run", "-c", str(config)], cpus,
                  cwd=config.parent)
    found = child.wait_for(LISTENER_RE, listeners, timeout)
    return child, {m.group(1): (m.group(2), m.group(3), int(m.group(4))) for m in found}


def children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{d}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """user + system seconds of every thread of `pids` (fields 14 and 15 of /proc/PID/stat);
    a process that has gone away counts 0."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def self_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def cpu_busy(cpus: tuple[int, ...]) -> tuple[int, int]:
    """(busy, total) jiffies of these CPUs from /proc/stat: everything that ran there."""
    busy = total = 0
    want = {str(c) for c in cpus}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *vals = line.split()
            if name[3:] in want:
                v = [int(x) for x in vals[:8]]
                busy += sum(v) - v[3] - v[4]
                total += sum(v)
    return busy, total


def machine() -> dict:
    """What a reader needs to compare two result files."""
    import ssl

    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {"python": platform.python_version(), "openssl": ssl.OPENSSL_VERSION}
    for mod in ("fastgate", "uvloop", "cryptography", "jwt", "hyperscan", "orjson"):
        with contextlib.suppress(Exception):
            versions[mod] = __import__(mod).__version__
    commit = None
    with contextlib.suppress(Exception):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parents[2], timeout=5).stdout.strip() or None
    return {"cpu_model": model, "cpus": os.cpu_count(), "kernel": platform.release(),
            "machine": platform.machine(), "versions": versions, "git_commit": commit,
            "load_average": os.getloadavg()}

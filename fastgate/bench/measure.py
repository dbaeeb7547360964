"""One measurement: a constant arrival rate against one target for a fixed time, with a live
progress line, turned into a StepResult (counts, statuses and problem codes, percentiles, CPU
µs per request of each process we can see).

Invariant: sent == completed + errors + timeouts once a step ends (the generator's accounting);
`unsent` is what the schedule asked for but no connection was free to send before the step's
drain deadline; both count against the objective.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO
from urllib.parse import urlsplit

from fastgate._native.loadgen import Generator, Histogram

from . import procs

PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9))


@dataclass(frozen=True)
class Target:
    """Where the load goes: an IPv4 address and port, plain or TLS."""

    name: str
    host: str
    port: int
    tls: bool
    server_name: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    prefix: str = ""  # path prefix of a --target/--compare-to URL, before the API's path

    @staticmethod
    def from_url(name: str, url: str, **tls) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r}: expected http://HOST:PORT or https://HOST:PORT")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:  # the generator speaks IPv4: resolve once, here
            host = socket.getaddrinfo(parts.hostname, port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
        except OSError as e:
            raise ValueError(f"{url!r}: no IPv4 address for {parts.hostname} ({e})") from e
        sni = parts.hostname if parts.scheme == "https" else None
        return Target(name, host, port, parts.scheme == "https", server_name=sni,
                      prefix=parts.path.rstrip("/"), **tls)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}{self.prefix}"

    def generator(self, requests: list[bytes], connections: int, timeout: float) -> Generator:
        return Generator(self.host, self.port, requests, connections, tls=self.tls,
                         server_name=self.server_name, ca_file=self.ca_file, cert_file=self.cert_file,
                         key_file=self.key_file, timeout=timeout)


@dataclass
class Accounting:
    """CPU time of the processes a step is charged to, and how busy the load side's CPUs were."""

    gateway: list[int] = field(default_factory=list)
    upstream: list[int] = field(default_factory=list)
    load_cpus: tuple[int, ...] = ()
    gateway_cpus: tuple[int, ...] = ()

    def snapshot(self) -> dict:
        return {"gateway": procs.cpu_seconds(self.gateway) if self.gateway else None,
                "upstream": procs.cpu_seconds(self.upstream) if self.upstream else None,
                "generator": procs.self_cpu_seconds(),
                "load_busy": procs.cpu_busy(self.load_cpus) if self.load_cpus else None,
                "gateway_busy": procs.cpu_busy(self.gateway_cpus) if self.gateway_cpus else None}


@dataclass
class StepResult:
    target: str
    rate: float  # requested arrivals/s (0 = closed loop, as fast as the connections go)
    seconds: float  # wall time from the first scheduled send to the last answer
    sent: int = 0
    completed: int = 0
    errors: int = 0  # transport: connect, reset, closed mid-response, bad framing, TLS
    timeouts: int = 0
    unsent: int = 0
    achieved: float = 0.0  # completed / seconds
    latency_ms: dict[str, float] = field(default_factory=dict)  # from each scheduled send time
    latency_no429_ms: dict[str, float] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    codes: list[dict] = field(default_factory=list)  # {status, code, count}: problem+json codes
    error_kinds: dict[str, int] = field(default_factory=dict)
    rate_limited: int = 0  # 429 responses (configured limits doing their job)
    failed_responses: int = 0  # other 4xx and 5xx
    cpu_us_per_request: dict[str, float | None] = field(default_factory=dict)
    load_cpu_busy_pct: float | None = None  # the load side's CPUs, busy with anything
    gateway_cpu_pct: float | None = None  # the gateway's own CPU time / wall time
    gateway_cpus_busy_pct: float | None = None  # the gateway's CPUs, busy with anything
    send_lag_p99_ms: float = 0.0  # the generator's own lateness
    passed: bool | None = None
    verdict: str = ""
    hist: Histogram | None = field(default=None, repr=False, compare=False)
    hist_no429: Histogram | None = field(default=None, repr=False, compare=False)

    def p99(self, exclude_429: bool = False) -> float:
        src = self.latency_no429_ms if exclude_429 else self.latency_ms
        return src.get("p99", 0.0)

    @property
    def contended(self) -> bool:
        """Other processes took more than 10 points of the gateway's CPUs: latency is not ours."""
        if self.gateway_cpu_pct is None or self.gateway_cpus_busy_pct is None:
            return False
        return self.gateway_cpus_busy_pct - self.gateway_cpu_pct > 10.0

    def failures(self, include_429: bool = True) -> int:
        return self.errors + self.timeouts + self.unsent + self.failed_responses + (
            self.rate_limited if include_429 else 0)

    def as_json(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k not in ("hist", "hist_no429")}
        out["accounted"] = self.sent == self.completed + self.errors + self.timeouts
        out["contended"] = self.contended
        return out


def _ms(h: Histogram) -> dict[str, float]:
    out = {name: round(h.percentile(q) / 1e6, 4) for name, q in PERCENTILES}
    out["max"] = round(h.max / 1e6, 4)
    out["mean"] = round(h.mean / 1e6, 4)
    return out


def summarize(target: str, rate: float, seconds: float, stats: dict, hist: Histogram,
              hist_no429: Histogram, lag_p99_ns: int, cpu: dict[str, float | None],
              load_busy: float | None) -> StepResult:
    status = {str(k): v for k, v in sorted(stats["status"].items())}
    limited = stats["status"].get(429, 0)
    failed = sum(v for k, v in stats["status"].items() if k >= 400 and k != 429)
    codes = [{"status": s, "code": c or None, "count": n}
             for (s, c), n in sorted(stats["codes"].items(), key=lambda kv: -kv[1])]
    r = StepResult(target, rate, seconds, sent=stats["sent"], completed=stats["completed"],
                   errors=stats["errors"], timeouts=stats["timeouts"], unsent=stats["unsent"],
                   achieved=stats["completed"] / seconds if seconds else 0.0, latency_ms=_ms(hist),
                   latency_no429_ms=_ms(hist_no429), status=status, codes=codes,
                   error_kinds=stats["error_kinds"], rate_limited=limited, failed_responses=failed,
                   cpu_us_per_request=cpu, load_cpu_busy_pct=load_busy,
                   send_lag_p99_ms=round(lag_p99_ns / 1e6, 4))
    r.hist, r.hist_no429 = hist, hist_no429
    return r


class Progress:
    """The live line: rate, the last interval's p99, errors, 429s, backlog (stderr)."""

    def __init__(self, stream: TextIO | None = None, every: float = 0.5) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = every if self.tty else 1.0
        self.width = 0

    def show(self, label: str, gen: Generator, elapsed: float, duration: float, rate: float) -> None:
        s = gen.stats()
        iv = gen.interval
        p99 = iv.percentile(99) / 1e6
        iv.reset()
        backlog = max(0, gen.scheduled - s["sent"])
        limited = s["status"].get(429, 0)
        bad = sum(v for k, v in s["status"].items() if k >= 400 and k != 429)
        rate_txt = f"{rate:,.0f}/s" if rate else "max"
        line = (f"{label}: {min(elapsed, duration):5.1f}/{duration:g}s  rate {rate_txt}  done "
                f"{s['completed']:,}  p99 {p99:7.2f} ms  errors {s['errors'] + s['timeouts'] + bad:,}  "
                f"429 {limited:,}  backlog {backlog:,}")
        if self.tty:
            self.stream.write("\r" + line.ljust(self.width))
            self.width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()
            self.width = 0


def run_step(gen: Generator, target: str, rate: float, duration: float, *,
             accounting: Accounting | None = None, progress: Progress | None = None,
             drain: float = 5.0, warmup: float = 0.0,
             on_tick: Callable[[float], None] | None = None) -> StepResult:
    """Drive `gen` at `rate` for `duration` s (after an unrecorded warm-up) and summarize."""
    if warmup > 0:
        _drive(gen, rate, warmup, None, target, drain)
    gen.reset_counters()
    gen.interval.reset()
    acc = accounting or Accounting()
    before = acc.snapshot()
    seconds = _drive(gen, rate, duration, progress, target, drain, on_tick)
    after = acc.snapshot()
    stats = gen.stats()
    cpu: dict[str, float | None] = {}
    n = max(stats["completed"], 1)
    for who in ("gateway", "upstream", "generator"):
        if before[who] is not None and after[who] is not None:
            cpu[who] = round((after[who] - before[who]) * 1e6 / n, 2)
    r = summarize(target, rate, seconds, stats, gen.histogram.copy(), gen.histogram_no429.copy(),
                  gen.send_lag.percentile(99), cpu, _busy(before["load_busy"], after["load_busy"]))
    r.gateway_cpus_busy_pct = _busy(before["gateway_busy"], after["gateway_busy"])
    if before["gateway"] is not None and after["gateway"] is not None:
        r.gateway_cpu_pct = round((after["gateway"] - before["gateway"]) * 100.0 / seconds, 1)
    return r


def _busy(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    if not before or not after:
        return None
    dt = after[1] - before[1]
    return round((after[0] - before[0]) * 100.0 / dt, 1) if dt else None


def _drive(gen: Generator, rate: float, duration: float, progress: Progress | None, label: str,
           drain: float, on_tick: Callable[[float], None] | None = None) -> float:
    gen.start(rate, duration)
    t0 = time.monotonic_ns()
    end = t0 + int(duration * 1e9)
    deadline = end + int(drain * 1e9)
    every = int((progress.every if progress else 0.25) * 1e9)
    tick = t0
    while True:
        tick = min(tick + every, deadline)
        if gen.step(tick):
            break
        now = time.monotonic_ns()
        if progress:
            progress.show(label, gen, (now - t0) / 1e9, duration, rate)
        if on_tick:
            on_tick((now - t0) / 1e9)
        if now >= deadline:
            gen.finish()
            break
    if progress:
        progress.show(label, gen, (time.monotonic_ns() - t0) / 1e9, duration, rate)
        progress.done()
    return max((time.monotonic_ns() - t0) / 1e9, 1e-9)


def merge(results: list[StepResult]) -> StepResult:
    """One result from several segments of the same target (the --compare-to alternation)."""
    first = results[0]
    hist, h429 = Histogram(), Histogram()
    stats = {"sent": 0, "completed": 0, "errors": 0, "timeouts": 0, "unsent": 0, "status": {},
             "codes": {}, "error_kinds": {}}
    seconds = 0.0
    cpu_total: dict[str, float] = {}
    for r in results:
        hist.merge(r.hist)
        h429.merge(r.hist_no429)
        seconds += r.seconds
        for k in ("sent", "completed", "errors", "timeouts", "unsent"):
            stats[k] += getattr(r, k)
        for k, v in r.status.items():
            stats["status"][int(k)] = stats["status"].get(int(k), 0) + v
        for c in r.codes:
            key = (c["status"], c["code"] or "")
            stats["codes"][key] = stats["codes"].get(key, 0) + c["count"]
        for k, v in r.error_kinds.items():
            stats["error_kinds"][k] = stats["error_kinds"].get(k, 0) + v
        for k, v in r.cpu_us_per_request.items():
            if v is not None:
                cpu_total[k] = cpu_total.get(k, 0.0) + v * r.completed
    n = max(stats["completed"], 1)
    cpu = {k: round(v / n, 2) for k, v in cpu_total.items()}
    lag = max(r.send_lag_p99_ms for r in results)
    out = summarize(first.target, first.rate, seconds, stats, hist, h429, int(lag * 1e6), cpu,
                    first.load_cpu_busy_pct)
    return out

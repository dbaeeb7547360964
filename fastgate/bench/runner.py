"""`fastgate bench`: start the built-in upstream and the gateway (unless --target), measure the
generator's own ceiling, then run the chosen load (--rate, --find-capacity, --policy-cost,
--compare-to) and report.

Invariant: every process started here is stopped and the temp config removed on every exit
path; exit 0 = done, 2 = config or usage error, 1 = failure (a --baseline regression, a target
that never answered).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from . import capacity as cap
from . import credentials as creds
from . import measure, prepare, procs, report
from .measure import Accounting, Progress, StepResult, Target

CEILING_REQUEST = b"GET /ceiling HTTP/1.1\r\nHost: localhost\r\n\r\n"


@dataclass
class Options:
    config: Path
    api: str | None = None
    slo_p99: float = 0.005  # seconds
    duration: float = 30.0
    connections: int = 64
    rate: float | None = None
    find_capacity: bool = False
    policy_cost: bool = False
    compare_to: str | None = None
    target: str | None = None
    out: Path | None = None
    plot: Path | None = None
    baseline: Path | None = None
    max_drop: float = 10.0
    exclude_429: bool = False
    max_error_ratio: float = 0.001
    auth: str | None = None
    credentials: int = 100
    path: str | None = None
    method: str | None = None
    body: bytes | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    timeout: float = 5.0
    warmup: float = 1.0
    start_rate: float | None = None
    ceiling_duration: float = 2.0
    pin: bool = True
    keep_access_log: bool = False
    without_quotas: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    upstream_stall: str | None = None  # tests: START:LENGTH (see bench.upstream)


class BenchError(Exception):
    """A failure to report with exit status `code` (1 run failure, 2 config/usage)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def run(opts: Options, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        return _Run(opts, out, err).main()
    except BenchError as e:
        print(f"fastgate bench: {e}", file=err)
        return e.code
    except ValueError as e:  # a bad --target/--compare-to URL, a bad TLS file
        print(f"fastgate bench: {e}", file=err)
        return 2
    except RuntimeError as e:  # a process that did not start (its output is in the message)
        print(f"fastgate bench: {e}", file=err)
        return 1


class _Run:
    def __init__(self, opts: Options, out: TextIO, err: TextIO) -> None:
        self.o, self.out, self.err = opts, out, err
        self.progress = Progress(err)
        self.notes: list[str] = []
        self.children: list[procs.Child] = []
        self.prepared: prepare.Prepared | None = None
        self.workdir = Path(tempfile.mkdtemp(prefix="fastgate-bench-"))
        self.results: dict = {}

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    # ------------------------------------------------------------------ the run
    def main(self) -> int:
        from fastgate.config import ConfigError, load_config

        o = self.o
        try:
            cfg = load_config(str(o.config))
        except ConfigError as e:
            for problem in e.problems:
                print(problem, file=self.err)
            return 2
        try:
            api = prepare.pick_api(cfg, o.api)
        except ValueError as e:
            raise BenchError(str(e), 2) from e
        pin = procs.Pinning.plan(cfg.workers if isinstance(cfg.workers, int) else 1, o.pin and not o.target)
        saved = os.sched_getaffinity(0)
        _raise_nofile(2 * o.connections + 256)
        try:
            if o.pin and not o.target:
                os.sched_setaffinity(0, pin.load)
            return self._main(cfg, api, pin)
        finally:
            os.sched_setaffinity(0, saved)
            for child in reversed(self.children):
                child.stop()
            if self.prepared is not None:
                self.prepared.cleanup()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _main(self, cfg, api, pin: procs.Pinning) -> int:
        o = self.o
        self.results = {
            "tool": "fastgate bench", "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": {"path": str(o.config), "digest": prepare.digest(o.config), "api": api.name,
                       "base_path": api.base_path},
            "objective": {"p99_ms": o.slo_p99 * 1e3, "exclude_429": o.exclude_429,
                          "max_error_ratio": o.max_error_ratio},
            "duration": o.duration, "connections": o.connections,
            "machine": procs.machine(),
            "pinning": {"gateway": list(pin.gateway), "load": list(pin.load), "enabled": o.pin and not o.target},
            "notes": self.notes,
        }
        upstream, up_port = procs.start_upstream(pin.load, o.upstream_stall)
        self.children.append(upstream)
        ceiling = self._ceiling(up_port, upstream)
        limit = cap.HONEST_FRACTION * ceiling

        # the target: a gateway we start on the rewritten config, or --target
        method = None
        if o.target:
            target = Target.from_url("gateway", o.target, ca_file=o.ca_file, cert_file=o.cert_file,
                                     key_file=o.key_file)
            pool = creds.CredentialPool(None)
            gw_pids: list[int] = []
            self.notes.append("--target: the config is only read for request templates; no credentials "
                              "are minted (send your own with --header) and no gateway CPU is measured")
        else:
            target, pool, gw_pids, method = self._start_gateway(cfg, api, pin, up_port)
        self.results["config"]["auth"] = method
        self.results["config"]["credentials"] = len(pool) if method else 0
        self.results["target"] = target.url
        templates = prepare.templates_for(api, path=o.path, method=o.method, body=o.body, headers=o.headers)
        base = target.prefix + ("" if o.target and target.prefix else api.base_path)
        requests = prepare.build_requests(templates, base, pool)
        self.results["requests"] = [{"method": t.method, "path": base.rstrip("/") + t.path} for t in templates]
        self.say(f"target {target.url}: {len(templates)} request template(s) "
                 f"({', '.join(f'{t.method} {base.rstrip(chr(47))}{t.path}' for t in templates[:4])}), "
                 f"{f'{len(pool)} {method} credential(s)' if method else 'no credentials minted'}, "
                 f"{o.connections} connections")
        acc = Accounting(gateway=gw_pids, upstream=upstream.pids(), load_cpus=pin.load if o.pin else (),
                         gateway_cpus=pin.gateway if o.pin and not o.target else ())
        gen = self._connect(target, requests)
        self._preflight(gen)

        steps: list[StepResult] = []
        search: cap.Search | None = None
        objective = cap.Objective(o.slo_p99 * 1e3, o.exclude_429, o.max_error_ratio)

        def measure_at(rate: float) -> StepResult:
            return measure.run_step(gen, "gateway", rate, o.duration, accounting=acc, progress=self.progress,
                                    drain=o.timeout, warmup=o.warmup)

        if o.find_capacity:
            start = o.start_rate or max(50.0, round(limit / 32))
            search = cap.find_capacity(measure_at, objective, start=start, limit=limit)
            steps = search.steps
            self.results["capacity"] = {"rate": search.capacity, "knee": search.knee,
                                        "first_failure": search.first_failure,
                                        "generator_bound": search.generator_bound, "search_limit": round(limit)}
        elif o.rate is not None and not o.compare_to:
            steps = [objective.judge(measure_at(o.rate))]

        compare = None
        if o.compare_to:
            rate = o.rate or (search.capacity if search and search.capacity else None)
            if rate is None:
                raise BenchError("--compare-to needs --rate, or a capacity from --find-capacity", 2)
            compare = self._compare(gen, templates, pool, rate, acc, objective, api)
            if not steps:
                steps = [compare["gateway"]]
        if o.rate is not None and o.rate >= limit:
            self.notes.append(f"--rate {o.rate:,.0f}/s is within 80% of the generator's ceiling "
                              f"({ceiling:,.0f}/s): not reported as a gateway figure")
            for s in steps:
                s.passed, s.verdict = None, "not a gateway figure (≥ 80% of the generator's ceiling)"
        self.results["steps"] = [s.as_json() for s in steps]

        policy_rows = None
        if o.policy_cost:
            rate = o.rate or (0.5 * search.capacity if search and search.capacity else None) or 1000.0
            policy_rows = self._policy_cost(target, templates, pool, rate, acc)

        gen_cpu = [s.cpu_us_per_request.get("generator") for s in steps if s.cpu_us_per_request.get("generator")]
        if gen_cpu:
            self.results["generator"]["cpu_us_per_request_on_target"] = round(sum(gen_cpu) / len(gen_cpu), 2)
        # ------------------------------------------------------------- report
        if steps:
            self.say()
            self.say(report.steps_table(steps, o.exclude_429))
            self.say("latency from each request's scheduled send time; gw CPU% = the gateway process / its "
                     "CPUs busy with anything (* = other processes took > 10 points)")
            self.say()
            self.say("errors by status and problem code:")
            self.say(report.errors_table(steps))
        if search is not None:
            self.say()
            self._say_capacity(search, ceiling, limit)
        elif steps and steps[0].passed is not None:
            self.say()
            self.say(f"objective p99 ≤ {o.slo_p99 * 1e3:g} ms at {o.rate:,.0f}/s: "
                     f"{'met' if steps[0].passed else 'NOT met'} ({steps[0].verdict})")
        if compare:
            self.say()
            self.say(f"--compare-to {self.results['compare']['url']}: the same schedule, alternating "
                     f"{compare['segment']:g} s segments at {compare['rate']:,.0f}/s:")
            self.say(report.compare_table(compare["gateway"], compare["other"]))
        if policy_rows:
            self.say()
            self.say(f"per-policy cost at {policy_rows[0][1].rate:,.0f}/s (gateway CPU from /proc/PID/stat ÷ requests):")
            self.say(report.policy_table(policy_rows))
        late = [s for s in steps if s.send_lag_p99_ms > 0.2 * o.slo_p99 * 1e3]
        if late:
            self.notes.append(f"{len(late)} step(s) where the generator itself sent 1% of requests more than "
                              f"{0.2 * o.slo_p99 * 1e3:g} ms late (send_lag_p99_ms in the JSON): its CPU was busy")
        busy = [s for s in steps if (s.load_cpu_busy_pct or 0) >= 90]
        if busy:
            self.notes.append(f"{len(busy)} step(s) ran with the load side's CPUs ≥ 90% busy (load_cpu_busy_pct): "
                              "the generator and upstream may have added latency")
        contended = [s for s in steps if s.contended]
        if contended:
            self.notes.append(f"{len(contended)} step(s) marked * ran while other processes took more than 10 "
                              "points of the gateway's CPU: their latency is partly theirs; rerun on a quiet box")
        for note in self.notes:
            self.say(f"note: {note}")
        if o.plot:
            self._plot(steps, search, api)
        if o.out:
            report.write_json(o.out, self.results)
            self.say(f"results: {o.out}")
        if o.baseline:
            try:
                ok, message = report.check_baseline(o.baseline, self.results, o.max_drop)
            except report.BaselineError as e:
                raise BenchError(str(e), 2) from e
            self.say(message) if ok else print(f"fastgate bench: {message}", file=self.err)
            if not ok:
                return 1
        return 0

    # ------------------------------------------------------------------ pieces
    def _ceiling(self, up_port: int, upstream: procs.Child) -> float:
        """Closed-loop against the built-in upstream, sharing the load CPUs as in the real run."""
        o = self.o
        gen = Target("upstream", "127.0.0.1", up_port, False).generator([CEILING_REQUEST], o.connections,
                                                                        o.timeout)
        if gen.connect(10.0) == 0:
            raise BenchError("the built-in upstream accepts no connection")
        acc = Accounting(upstream=upstream.pids())
        step = measure.run_step(gen, "generator ceiling", 0, o.ceiling_duration, accounting=acc,
                                progress=self.progress, drain=o.timeout, warmup=min(0.5, o.warmup))
        up_us = step.cpu_us_per_request.get("upstream")
        gen_us = step.cpu_us_per_request.get("generator")
        self.results["generator"] = {
            "ceiling_rps": round(step.achieved), "mode": "closed loop, plain HTTP, built-in upstream",
            "cpu_us_per_request": gen_us, "ceiling_step": step.as_json()}
        self.results["upstream"] = {
            "kind": "built-in (uvloop, canned 200)", "cpu_us_per_request": up_us,
            "capacity_per_core_rps": round(1e6 / up_us) if up_us else None}
        self.say(f"generator ceiling: {step.achieved:,.0f} req/s closed loop against the built-in upstream "
                 f"(generator {_f(gen_us)} µs CPU/req, upstream {_f(up_us)} µs CPU/req ≈ "
                 f"{(1e6 / up_us if up_us else 0):,.0f} req/s per core); gateway figures above "
                 f"{cap.HONEST_FRACTION * step.achieved:,.0f} req/s are not reported")
        return step.achieved

    def _start_gateway(self, cfg, api, pin: procs.Pinning, up_port: int):
        from fastgate.config import ConfigError, load_config

        o = self.o
        try:
            method = creds.choose_method(tuple(api.authentication), o.auth)
        except ValueError as e:
            raise BenchError(str(e), 2) from e
        scopes, roles = prepare.scopes_and_roles(api)
        header = getattr(getattr(api, "api_key", None), "header", None) or "X-API-Key"
        pool = creds.make_pool(method, o.credentials, self.workdir, scopes=scopes, roles=roles,
                               api_key_header=header)
        self.prepared = prepare.rewrite(o.config, api, ("127.0.0.1", up_port), pool,
                                        policy_variants=o.policy_cost, keep_access_log=o.keep_access_log,
                                        without_quotas=o.without_quotas)
        self.notes += self.prepared.notes
        try:
            bench_cfg = load_config(str(self.prepared.path))
        except ConfigError as e:
            for problem in e.problems:
                print(f"(bench's rewritten copy) {problem}", file=self.err)
            raise BenchError("the rewritten config was refused; please report this", 2) from e
        tls = [lst for lst in bench_cfg.listeners if lst.tls is not None]
        if not tls:
            self.notes.append("the config has no TLS listener: measuring plain HTTP")
        if tls and tls[0].tls.client_certificates == "required" and not o.cert_file:
            raise BenchError("the listener requires client certificates: pass --client-cert/--client-key", 2)
        gw, listeners = procs.start_gateway(self.prepared.path, pin.gateway if o.pin else None,
                                            len(bench_cfg.listeners))
        self.children.append(gw)
        name = (tls or list(bench_cfg.listeners))[0].name
        scheme, _host, port = listeners[name]
        target = Target("gateway", "127.0.0.1", port, scheme == "https", server_name="localhost",
                        ca_file=o.ca_file, cert_file=o.cert_file, key_file=o.key_file)
        self.say(f"gateway pid {gw.pid} on CPU {','.join(map(str, pin.gateway))}, load side on CPU "
                 f"{','.join(map(str, pin.load))}; temp config {self.prepared.path.name}")
        return target, pool, gw.pids(), method

    def _connect(self, target: Target, requests: list[bytes]):
        gen = target.generator(requests, self.o.connections, self.o.timeout)
        n = gen.connect(10.0)
        if n < self.o.connections:
            last = gen.stats()["last_error"]
            if n == 0:
                raise BenchError(f"{target.url}: no connection could be opened ({last or 'refused'})")
            self.notes.append(f"{target.url}: only {n} of {self.o.connections} connections opened ({last})")
        return gen

    def _preflight(self, gen) -> None:
        """A few requests first: a config that rejects bench's requests is said up front."""
        step = measure.run_step(gen, "preflight", 100.0, 0.2, drain=self.o.timeout)
        bad = [c for c in step.codes if c["status"] >= 400]
        if step.errors or step.timeouts:
            raise BenchError(f"preflight: {step.errors} transport errors, {step.timeouts} timeouts "
                             f"({gen.stats()['last_error'] or 'no detail'})")
        if bad:
            what = ", ".join(f"{c['status']} {c['code'] or ''}".strip() + f" ×{c['count']}" for c in bad)
            self.notes.append(f"preflight answers were not all 2xx ({what}): the load measures those answers")
            print(f"fastgate bench: warning: preflight got {what}", file=self.err)

    def _compare(self, gen, templates, pool, rate: float, acc: Accounting, objective: cap.Objective,
                 api) -> dict:
        o = self.o
        other_t = Target.from_url("other", o.compare_to, ca_file=o.ca_file, cert_file=o.cert_file,
                                  key_file=o.key_file)
        base = other_t.prefix if other_t.prefix else api.base_path
        other = self._connect(other_t, prepare.build_requests(templates, base, pool))
        segment = min(2.0, o.duration)
        mine: list[StepResult] = []
        theirs: list[StepResult] = []
        left = o.duration
        while left > 1e-9:
            seg = min(segment, left)
            mine.append(measure.run_step(gen, "gateway", rate, seg, accounting=acc, progress=self.progress,
                                         drain=o.timeout))
            theirs.append(measure.run_step(other, "other", rate, seg, progress=self.progress, drain=o.timeout))
            left -= seg
        a, b = objective.judge(measure.merge(mine)), objective.judge(measure.merge(theirs))
        b.target = "other"
        result = {"rate": rate, "segment": segment, "gateway": a, "other": b}
        self.results["compare"] = {"url": other_t.url, "rate": rate, "segment_s": segment,
                                   "gateway": a.as_json(), "other": b.as_json(),
                                   "ratios": {k: (b.latency_ms[k] / a.latency_ms[k] if a.latency_ms.get(k) else None)
                                              for k in ("p50", "p90", "p99", "p99.9", "max")}}
        return result

    def _policy_cost(self, target: Target, templates, pool, rate: float, acc: Accounting):
        o = self.o
        if o.target or self.prepared is None:
            raise BenchError("--policy-cost needs the gateway bench starts (not --target)", 2)
        variants = self.prepared.variants
        order = ["none", *[p for p in prepare.POLICIES if p in variants], "all", "none"]
        rows: list[tuple[str, StepResult]] = []
        for i, policy in enumerate(order):
            requests = prepare.build_requests(templates, variants[policy], pool)
            gen = self._connect(target, requests)
            label = policy if not (policy == "none" and i) else "none (again)"
            r = measure.run_step(gen, f"policy {label}", rate, o.duration, accounting=acc,
                                 progress=self.progress, drain=o.timeout, warmup=o.warmup)
            rows.append((label, r))
            del gen
        self.results["policy_cost"] = {
            "rate": rate, "variants": variants,
            "rows": [{"policy": p, "cpu_us_per_request": r.cpu_us_per_request.get("gateway"),
                      "p99_ms": r.p99(), **{"step": r.as_json()}} for p, r in rows]}
        return rows

    def _say_capacity(self, search: cap.Search, ceiling: float, limit: float) -> None:
        o = self.o
        slo = f"p99 ≤ {o.slo_p99 * 1e3:g} ms" + (" (429s excluded)" if o.exclude_429 else "")
        if search.generator_bound:
            self.say(f"capacity: ≥ {search.capacity:,.0f} req/s at {slo}: the search stopped at 80% of the "
                     f"generator's ceiling ({ceiling:,.0f}/s), so this is the generator's limit, not the "
                     "gateway's (run the generator on another machine or more cores)")
        elif search.capacity is None:
            self.say(f"capacity: no rate met {slo} (lowest tried {min(s.rate for s in search.steps):,.0f}/s)")
        else:
            self.say(f"capacity: {search.capacity:,.0f} req/s at {slo}; first failing rate "
                     f"{search.first_failure:,.0f}/s; knee ≈ {_f(search.knee, ',.0f')}/s "
                     f"(p90 within 3× its lowest)")

    def _plot(self, steps: list[StepResult], search: cap.Search | None, api) -> None:
        from . import plot

        o = self.o
        assert o.plot is not None
        title = f"fastgate bench: {o.config.name} / {api.name}"
        ok = plot.plot(o.plot, steps, o.slo_p99 * 1e3, title=title, capacity=search.capacity if search else None,
                       knee=search.knee if search else None, exclude_429=o.exclude_429)
        if ok:
            self.say(f"plot: {o.plot}")
        else:
            print("fastgate bench: --plot skipped: matplotlib is not installed "
                  "(pip install 'fastgate[bench]')", file=self.err)


def _f(v: float | None, fmt: str = ".1f") -> str:
    return "-" if v is None else format(v, fmt)


def _raise_nofile(n: int) -> None:
    """Enough file descriptors for the connections (the soft limit is often 1024)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard) if hard != resource.RLIM_INFINITY else n, hard))

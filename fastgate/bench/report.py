"""What `fastgate bench` prints and writes: the step table, errors by status and problem code,
the --compare-to ratios, the per-policy cost table, the JSON results and the --baseline check.

Invariant: the JSON holds everything the tables show (and the machine, versions, config digest
and pinning), so a later run can be compared with it by --baseline without re-measuring.
"""

from __future__ import annotations

import json
from pathlib import Path

from .measure import StepResult

SCHEMA = "fastgate-bench/1"


def _rows(rows: list[tuple]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, r in enumerate(rows):
        out.append("  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _f(v: float | None, fmt: str = ".2f") -> str:
    return "-" if v is None else format(v, fmt)


def steps_table(steps: list[StepResult], exclude_429: bool = False) -> str:
    rows: list[tuple] = [("target", "rate/s", "achieved/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms",
                          "sent", "errors", "timeouts", "unsent", "4xx/5xx", "429", "gw CPU µs/req", "gw CPU%",
                          "verdict")]
    for s in steps:
        lat = s.latency_no429_ms if exclude_429 else s.latency_ms
        busy = "-" if s.gateway_cpu_pct is None else f"{s.gateway_cpu_pct:.0f}"
        if s.gateway_cpus_busy_pct is not None:
            busy += f"/{s.gateway_cpus_busy_pct:.0f}" + ("*" if s.contended else "")
        rows.append((s.target, f"{s.rate:,.0f}" if s.rate else "max", f"{s.achieved:,.0f}", _f(lat.get("p50")),
                     _f(lat.get("p90")), _f(lat.get("p99")), _f(lat.get("p99.9")), _f(lat.get("max")),
                     f"{s.sent:,}", f"{s.errors:,}", f"{s.timeouts:,}", f"{s.unsent:,}", f"{s.failed_responses:,}",
                     f"{s.rate_limited:,}", _f(s.cpu_us_per_request.get("gateway"), ".1f"), busy,
                     ("PASS " if s.passed else "FAIL " if s.passed is False else "") + s.verdict))
    return _rows(rows)


def errors_table(steps: list[StepResult]) -> str:
    """Non-2xx/3xx responses by status and contract `code`, and transport errors by kind."""
    counts: dict[tuple[int, str], int] = {}
    kinds: dict[str, int] = {}
    for s in steps:
        for c in s.codes:
            key = (c["status"], c["code"] or "-")
            counts[key] = counts.get(key, 0) + c["count"]
        for k, v in s.error_kinds.items():
            if v:
                kinds[k] = kinds.get(k, 0) + v
        if s.timeouts:
            kinds["timeout"] = kinds.get("timeout", 0) + s.timeouts
        if s.unsent:
            kinds["unsent"] = kinds.get("unsent", 0) + s.unsent
    if not counts and not kinds:
        return "no errors"
    rows: list[tuple] = [("status", "code", "count", "")]
    for (status, code), n in sorted(counts.items(), key=lambda kv: -kv[1]):
        rows.append((str(status), code, f"{n:,}", "rate limited (configured)" if status == 429 else ""))
    for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1]):
        rows.append(("-", kind, f"{n:,}", "transport" if kind not in ("timeout", "unsent") else ""))
    return _rows(rows)


def compare_table(ours: StepResult, other: StepResult) -> str:
    """Ratios other / gateway: >1 means the other endpoint was slower (latency) or faster (rate)."""
    rows: list[tuple] = [("", ours.target, other.target, f"{other.target} / {ours.target}")]
    for key in ("p50", "p90", "p99", "p99.9", "max"):
        a, b = ours.latency_ms.get(key, 0.0), other.latency_ms.get(key, 0.0)
        rows.append((f"{key} ms", f"{a:.2f}", f"{b:.2f}", f"{b / a:.2f}×" if a else "-"))
    rows.append(("achieved/s", f"{ours.achieved:,.0f}", f"{other.achieved:,.0f}",
                 f"{other.achieved / ours.achieved:.2f}×" if ours.achieved else "-"))
    rows.append(("failures", f"{ours.failures():,}", f"{other.failures():,}", ""))
    return _rows(rows)


def policy_table(rows_in: list[tuple[str, StepResult]]) -> str:
    base = next((r for p, r in rows_in if p == "none"), None)
    b_cpu = base.cpu_us_per_request.get("gateway") if base else None
    b_p99 = base.p99() if base else None
    rows: list[tuple] = [("policy", "CPU µs/req", "added µs/req", "p99 ms", "added p99 ms", "429", "other errors")]
    for policy, r in rows_in:
        cpu = r.cpu_us_per_request.get("gateway")
        rows.append((policy, _f(cpu, ".1f"),
                     "baseline" if policy.startswith("none") else _f(None if cpu is None or b_cpu is None else cpu - b_cpu, "+.1f"),
                     _f(r.p99()), "baseline" if policy.startswith("none") else _f(None if b_p99 is None else r.p99() - b_p99, "+.2f"),
                     f"{r.rate_limited:,}", f"{r.failures(include_429=False):,}"))
    return _rows(rows)


def write_json(path: Path, results: dict) -> None:
    path.write_text(json.dumps({"schema": SCHEMA, **results}, indent=2, default=str) + "\n")


class BaselineError(Exception):
    """The baseline file cannot be compared (missing, wrong schema, no capacity in it)."""


def check_baseline(baseline: Path, current: dict, max_drop: float) -> tuple[bool, str]:
    """(ok, message): capacity may fall at most `max_drop` percent below the baseline's."""
    try:
        old = json.loads(baseline.read_text())
    except (OSError, ValueError) as e:
        raise BaselineError(f"--baseline {baseline}: cannot read it ({e})") from e
    if old.get("schema") != SCHEMA:
        raise BaselineError(f"--baseline {baseline}: not a `fastgate bench --out` file")
    old_cap = (old.get("capacity") or {}).get("rate")
    new_cap = (current.get("capacity") or {}).get("rate")
    if old_cap is None:
        raise BaselineError(f"--baseline {baseline}: it has no capacity (was it run with --find-capacity?)")
    if new_cap is None:
        return False, (f"capacity regression: no rate met the objective in this run; the baseline "
                       f"{baseline} held {old_cap:,.0f} req/s")
    drop = (old_cap - new_cap) * 100.0 / old_cap
    slo = current.get("objective", {}).get("p99_ms")
    what = f"{old_cap:,.0f} -> {new_cap:,.0f} req/s at p99 ≤ {slo:g} ms" if slo else f"{old_cap:,.0f} -> {new_cap:,.0f} req/s"
    if old.get("objective", {}).get("p99_ms") != slo:
        what += f" (the baseline's objective was p99 ≤ {old.get('objective', {}).get('p99_ms')} ms)"
    if drop > max_drop:
        return False, (f"capacity regression: {drop:.1f}% below the baseline ({what}); "
                       f"--max-drop allows {max_drop:g}%")
    return True, f"capacity within {max_drop:g}% of the baseline: {-drop:+.1f}% change ({what})"

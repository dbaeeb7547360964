"""`fastgate bench` end to end: real gateway processes over TLS on loopback, small rates, a few
seconds each. Checks the report's fields, that every request is accounted for, a stalled
upstream in the gateway's p99, errors by status and problem code, and the --baseline failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastgate.cli import main

FAST = ["--warmup", "0", "--ceiling-duration", "0.3s", "--connections", "16"]


def write_config(tmp_path: Path, pki: dict[str, Path]) -> Path:
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(f"""version: 1
listeners:
  - name: public
    address: 127.0.0.1:0
    tls:
      certificate: {pki['server.crt']}
      private_key: {pki['server.key']}
admin: off
logging:
  access_log: off
applications:
  - name: someone
    api_keys:
      - {{id: k0, hash: "sha256:{'0' * 64}"}}
apis:
  - name: orders
    base_path: /orders/v1
    upstream:
      urls: [http://127.0.0.1:9]
    authentication: [api_key]
    authorization:
      resources:
        - {{path: "/orders/{{id}}", methods: [GET], scopes: [orders:read]}}
    threat_protection:
      regex: {{sets: [sql]}}
  - name: limited
    base_path: /limited
    upstream:
      urls: [http://127.0.0.1:9]
    rate_limits:
      anonymous: {{requests: 20, per: 100ms}}
""")
    return cfg


def no_temp_configs(directory: Path) -> bool:
    return not list(directory.glob(".fastgate-bench-*"))


def test_rate_run_with_policy_cost_and_plot(tmp_path: Path, pki, capsys) -> None:
    cfg = write_config(tmp_path, pki)
    out, png = tmp_path / "r.json", tmp_path / "p.png"
    rc = main(["bench", "-c", str(cfg), "--api", "orders", "--rate", "200", "--duration", "1s",
               "--policy-cost", "--out", str(out), "--plot", str(png), *FAST])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    r = json.loads(out.read_text())
    assert r["schema"] == "fastgate-bench/1"
    assert r["config"]["digest"].startswith("sha256:") and r["config"]["auth"] == "api_key"
    assert r["config"]["credentials"] == 100
    assert r["machine"]["cpu_model"] and r["machine"]["versions"]["python"]
    assert set(r["pinning"]) >= {"gateway", "load"}
    assert r["generator"]["ceiling_rps"] > 1000
    assert r["upstream"]["capacity_per_core_rps"] > 1000
    (step,) = r["steps"]
    assert step["sent"] == 200 and step["accounted"]
    assert step["completed"] == 200 and step["status"] == {"200": 200}, step
    assert step["cpu_us_per_request"]["gateway"] > 0
    assert set(step["latency_ms"]) >= {"p50", "p90", "p99", "p99.9", "max"}
    rows = r["policy_cost"]["rows"]
    assert [row["policy"] for row in rows] == ["none", "auth", "threat_protection", "all", "none (again)"]
    assert all(row["step"]["accounted"] and row["step"]["status"] == {"200": 200} for row in rows)
    assert "per-policy cost at 200/s" in printed.out and "added µs/req" in printed.out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert no_temp_configs(tmp_path)


def test_stalled_upstream_shows_in_the_gateways_p99(tmp_path: Path, pki, capsys) -> None:
    cfg = write_config(tmp_path, pki)
    out = tmp_path / "r.json"
    rc = main(["bench", "-c", str(cfg), "--api", "orders", "--rate", "200", "--duration", "3s",
               "--upstream-stall", "0.8:1", "--out", str(out), *FAST])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    (step,) = json.loads(out.read_text())["steps"]
    assert step["sent"] == step["completed"] + step["errors"] + step["timeouts"] == 600
    assert step["latency_ms"]["max"] >= 800
    assert step["latency_ms"]["p99"] >= 600
    assert step["passed"] is False and "objective p99 ≤ 5 ms at 200/s: NOT met" in printed.out


def test_errors_by_status_and_code(tmp_path: Path, pki, start_gateway, capsys) -> None:
    cfg = write_config(tmp_path, pki)
    gw = start_gateway(cfg.read_text(), "target.yaml")
    out = tmp_path / "r.json"
    rc = main(["bench", "-c", str(cfg), "--api", "orders", "--target", f"https://localhost:{gw.ports['public']}",
               "--rate", "100", "--duration", "1s", "-H", "X-API-Key: fg_wrong_key", "--out", str(out), *FAST])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    (step,) = json.loads(out.read_text())["steps"]
    assert step["status"] == {"401": 100} and step["failed_responses"] == 100
    assert step["codes"] == [{"status": 401, "code": "invalid_credentials", "count": 100}]
    assert "invalid_credentials" in printed.out and "warning: preflight got 401" in printed.err
    # and without any key: the contract's `unauthenticated`
    rc = main(["bench", "-c", str(cfg), "--api", "orders", "--target", f"https://localhost:{gw.ports['public']}",
               "--rate", "100", "--duration", "0.5s", "--out", str(out), *FAST])
    assert rc == 0
    (step,) = json.loads(out.read_text())["steps"]
    assert step["codes"] == [{"status": 401, "code": "unauthenticated", "count": 50}]


def test_find_capacity_and_baseline_regression(tmp_path: Path, pki, capsys) -> None:
    """An anonymous limit of 20 per 100 ms makes the capacity deterministic: 429s above it fail a step."""
    cfg = write_config(tmp_path, pki)
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps({"schema": "fastgate-bench/1", "objective": {"p99_ms": 50.0},
                               "capacity": {"rate": 1_000_000}}))
    rc = main(["bench", "-c", str(cfg), "--api", "limited", "--find-capacity", "--start-rate", "100",
               "--duration", "0.5s", "--slo-p99", "50ms", "--out", str(new), "--baseline", str(old),
               "--max-drop", "10", *FAST])
    printed = capsys.readouterr()
    assert rc == 1, printed.err
    r = json.loads(new.read_text())
    cap = r["capacity"]["rate"]
    assert 100 <= cap < 230, r["steps"]
    assert [s["rate"] for s in r["steps"]][:2] == [100, 200]
    assert any(s["rate_limited"] for s in r["steps"]) and "rate limited (configured)" in printed.out
    assert all(s["accounted"] for s in r["steps"])
    drop = (1_000_000 - cap) / 10_000
    assert (f"fastgate bench: capacity regression: {drop:.1f}% below the baseline (1,000,000 -> "
            f"{cap:,.0f} req/s at p99 ≤ 50 ms); --max-drop allows 10%") in printed.err


@pytest.mark.parametrize("argv, message", [
    (["--rate", "100", "--slo-p99", "soon"], "--slo-p99: expected a duration"),
    ([], "say what to run"),
    (["--rate", "100", "--max-drop", "5"], "--max-drop goes with --baseline"),
    (["--rate", "100", "--api", "nope"], "--api nope: no such API"),
])
def test_usage_errors_exit_2(tmp_path: Path, pki, capsys, argv: list[str], message: str) -> None:
    cfg = write_config(tmp_path, pki)
    assert main(["bench", "-c", str(cfg), *argv]) == 2
    assert message in capsys.readouterr().err


def test_compare_to_alternates_the_same_schedule(tmp_path: Path, pki, capsys) -> None:
    from fastgate.bench import procs

    cfg = write_config(tmp_path, pki)
    other, port = procs.start_upstream(None)  # a second endpoint: the built-in upstream itself
    try:
        out = tmp_path / "r.json"
        rc = main(["bench", "-c", str(cfg), "--api", "orders", "--rate", "200", "--duration", "2s",
                   "--compare-to", f"http://127.0.0.1:{port}", "--out", str(out), *FAST])
    finally:
        other.stop()
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    c = json.loads(out.read_text())["compare"]
    assert c["url"] == f"http://127.0.0.1:{port}" and c["segment_s"] == 2.0
    for side in ("gateway", "other"):
        assert c[side]["sent"] == c[side]["completed"] == 400 and c[side]["accounted"]
    assert set(c["ratios"]) == {"p50", "p90", "p99", "p99.9", "max"}
    assert "the same schedule, alternating" in printed.out and "other / gateway" in printed.out

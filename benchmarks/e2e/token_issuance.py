#!/usr/bin/env python3
"""Token issuance end to end (issue 7): `client_credentials` tokens per second from the built-in
token service, and their gateway CPU µs each, against a proxied GET through the same gateway
process, in one run (GET, POST /oauth2/token, GET again; wrk, TLS 1.3 keep-alive, access log off).

The client's secret is checked against its scrypt hash once, then from the verified-credentials
cache, as for a real client that asks for a token every few minutes; each request still costs an
ES256 signature. Process layout and CPU accounting are benchmarks/e2e/run.py's.

    .venv/bin/python benchmarks/e2e/token_issuance.py [--duration 5] [--warmup 2] [--connections 32]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import shutil
import ssl
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as e2e  # noqa: E402
from policies import Phase, phase_script, warm_up  # noqa: E402

from fastgate.credentials import hash_password  # noqa: E402

CLIENT, SECRET = "bench-client", "bench-client-secret-1"
MASTER_ENV = "FG_BENCH_MASTER_KEY"

CONFIG = """version: 1
listeners:
  - name: bench
    address: 127.0.0.1:{port}
    tls: {{certificate: {crt}, private_key: {key}, min_version: "1.3"}}
limits: {{idle_timeout: 600s, max_connections: 10000}}
admin: off
logging: {{access_log: off, level: warning}}
secrets: {{master_key_env: {master_env}}}
applications:
  - name: bench-app
    client_id: {client}
    client_secret_hash: "{secret_hash}"
    grant_types: [client_credentials]
    scopes: [orders:read]
token_service:
  enabled: true
  issuer: https://127.0.0.1:{port}/
  signing_key: {signing_key}
  grants: [client_credentials]
apis:
  - name: public
    base_path: /public
    upstream: {{urls: ["http://127.0.0.1:{upstream}"], timeout: 10s}}
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--profile", type=float, default=0.0, help="py-spy/perf the token phase for SECONDS")
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (make bench installs it)", file=sys.stderr)
        return 1
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, {int(e2e.LOAD_CPU)})
    print(f"machine: {e2e.machine()}; load average {os.getloadavg()[0]:.2f}")
    env = {MASTER_ENV: base64.b64encode(os.urandom(32)).decode()}
    basic = "Basic " + base64.b64encode(f"{CLIENT}:{SECRET}".encode()).decode()
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": "orders:read"}).encode()
    phases = [
        Phase("1", "GET proxied (no auth)", "public/orders", "GET", {"Accept": "*/*"}, base=""),
        Phase("2", "POST /oauth2/token client_credentials", "oauth2/token", "POST",
              {"Authorization": basic, "Content-Type": "application/x-www-form-urlencoded"}, form),
        Phase("1'", "GET proxied (again)", "public/orders", "GET", {"Accept": "*/*"}, base=""),
    ]
    results = []
    started: list = []
    with tempfile.TemporaryDirectory(prefix="fastgate-tokens-") as tmp:
        workdir = Path(tmp)
        try:
            pki = e2e.make_pki(workdir)
            up, up_pids, up_port, up_desc = e2e.start_upstream(workdir, e2e.nginx_binary() is not None)
            started.append(up)
            port = e2e.free_port()
            cfg = workdir / "gateway.yaml"
            cfg.write_text(CONFIG.format(port=port, crt=pki["server.crt"], key=pki["server.key"],
                                         master_env=MASTER_ENV, client=CLIENT,
                                         secret_hash=hash_password(SECRET),
                                         signing_key=workdir / "signing.key", upstream=up_port))
            gw = e2e.Proc("gateway", e2e.pinned(e2e.GATEWAY_CPU, [*e2e.gateway_command(), "run", "-c", str(cfg)]),
                          workdir, env=env)
            started.append(gw)
            gw.wait_output(r"listener bench accepting on https://")
            print(f"upstream: {up_desc}; gateway pid {gw.pid} on CPU {e2e.GATEWAY_CPU}; wrk -t1 "
                  f"-c{args.connections}, {args.warmup:g} s warm-up + {args.duration:g} s per phase")
            _preflight(port, phases[1])
            for ph in phases:
                url = f"https://127.0.0.1:{port}/{ph.api}"
                script = phase_script(workdir / f"phase-{ph.key.strip(chr(39))}{len(results)}.lua", ph)
                warm_up(url, args.warmup, args.connections, ph, script)
                r = e2e.wrk(url, args.duration, args.connections, ph.label, workdir, [gw.pid], up_pids,
                            script=script)
                results.append((ph, r))
                print(f"  {ph.key:>2} {ph.label}: {r.rps:,.0f} req/s, {r.cpu_us:.1f} µs/req, "
                      f"p50 {r.p50:.2f} ms, p99 {r.p99:.2f} ms, errors {r.errors}", flush=True)
                if args.profile and ph.key == "2":
                    _main_thread_profile(gw.pid, args.profile, url, args.connections, script)
        finally:
            for p in reversed(started):
                p.stop()
    base = (results[0][1].cpu_us + results[2][1].cpu_us) / 2
    tok = results[1][1]
    print(f"\ntoken issuance: {tok.rps:,.0f} tokens/s on one gateway process, {tok.cpu_us:.1f} µs CPU "
          f"each = {tok.cpu_us / base:.2f}× a proxied GET ({base:.1f} µs, mean of 1 and 1')")
    return 0


def _main_thread_profile(pid: int, seconds: float, url: str, connections: int, script: Path) -> None:
    """py-spy of the event-loop thread only (idle pool threads would swamp the samples), by
    innermost fastgate-or-library frame with its callees."""
    import collections
    import subprocess

    spy = e2e.py_spy()
    if spy is None:
        print("py-spy not installed: no profile")
        return
    secs = max(1, round(seconds))
    load = subprocess.Popen(e2e.pinned(e2e.LOAD_CPU, ["wrk", "-t1", f"-c{connections}", f"-d{secs + 3}s",
                                                       "-s", str(script), url]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        out = subprocess.run([spy, "record", "--threads", "--function", "--rate", "250", "--format", "raw",
                              "--duration", str(secs), "--pid", str(pid), "--output", "/dev/stdout"],
                             capture_output=True, text=True, timeout=secs + 60).stdout
    finally:
        load.wait(secs + 30)
    incl: collections.Counter = collections.Counter()
    total = 0
    for line in out.splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit() or f"(0x{pid:x})" not in stack and f"{pid})" not in stack:
            continue
        frames = stack.split(";")
        total += int(n)
        for f in set(frames[1:]):
            incl[f] += int(n)
    print(f"     event-loop thread: {total} samples; inclusive share of the top frames:")
    for f, n in incl.most_common(40):
        print(f"     {100 * n / max(total, 1):5.1f}%  {f}")


def _preflight(port: int, ph: Phase) -> None:
    """One token request before the load: it must be a 200 with an access token."""
    import http.client

    ctx = ssl._create_unverified_context()  # noqa: S323  (dev PKI on 127.0.0.1)
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    c.request(ph.method, f"/{ph.api}", body=ph.body, headers=ph.headers)
    r = c.getresponse()
    body = r.read()
    if r.status != 200 or b"access_token" not in body:
        raise RuntimeError(f"token preflight: {r.status} {body[:200]!r}")
    c.close()
    time.sleep(0.1)


if __name__ == "__main__":
    raise SystemExit(main())

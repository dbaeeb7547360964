"""fastgate's commands (CONTRACT.md "Commands"): run, check, audit, hash-password, new-api-key,
revoke.

Invariant: exit 2 on a config error with `FILE:LINE: key.path: message` per problem; a secret
is read from stdin or a terminal prompt, never from argv.
"""

from __future__ import annotations

import argparse
import getpass
import sys


def _load(path: str):
    """The compiled config, or None after printing every problem (the caller exits 2)."""
    from .config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return None


def _check(args) -> int:
    if _load(args.config) is None:
        return 2
    print(f"{args.config}: ok")
    return 0


def _audit(args) -> int:
    from .audit import audit, format_findings

    cfg = _load(args.config)
    if cfg is None:
        return 2
    findings = audit(cfg)
    if findings:
        print(format_findings(findings, args.config))
    else:
        print(f"{args.config}: no findings")
    return 0


def _hash_password(args) -> int:
    from .credentials import hash_password

    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            print("fastgate: the two entries differ", file=sys.stderr)
            return 1
        secret = first
    else:
        secret = sys.stdin.readline().rstrip("\r\n")
    if not secret:
        print("fastgate: empty password refused", file=sys.stderr)
        return 1
    print(hash_password(secret))
    return 0


def _new_api_key(args) -> int:
    from .credentials import new_api_key

    key, digest = new_api_key()
    print(key)
    print(digest)
    return 0


def _run(args) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    if config.workers > 1:
        # Must run before prometheus_client is imported: it picks multiprocess mode at import.
        from .workers import run_workers

        return run_workers(config, args.config)
    from .server import run

    return run(config, args.config)


def _revoke(args) -> int:
    """`fastgate revoke -c FILE (--api-key ID | --jti JTI [--exp EPOCH]) [--undo]`: write to the
    Redis every gateway syncs from (config/revocation.md). Exit 0, 2 (config/usage), 1 (Redis)."""
    import asyncio

    from . import revocations

    cfg = _load(args.config)
    if cfg is None:
        return 2
    if cfg.redis is None:
        print(f"fastgate revoke: {args.config} has no `redis:` section; revocations are shared "
              "through Redis (without it, remove the key from the config and reload)",
              file=sys.stderr)
        return 2
    if args.jti is not None and args.undo:
        print("fastgate revoke: --undo works for --api-key only; a revoked jti stays revoked until "
              "its token expires (issue a new token instead)", file=sys.stderr)
        return 2
    if args.exp is not None and args.jti is None:
        print("fastgate revoke: --exp goes with --jti", file=sys.stderr)
        return 2
    ident = args.api_key if args.api_key is not None else args.jti
    if not ident or len(ident) > 1024 or not ident.isprintable():
        print("fastgate revoke: expected a non-empty printable id of at most 1024 characters",
              file=sys.stderr)
        return 2
    if args.api_key is not None and ident not in revocations.known_key_ids(cfg):
        print(f"fastgate revoke: warning: no api key {ident!r} in {args.config}; writing it anyway "
              "(a key with that id added later is revoked too)", file=sys.stderr)
    if args.api_key is not None:
        write = revocations.unrevoke_api_key if args.undo else revocations.revoke_api_key
        coro = write(cfg.redis, ident, timeout=max(cfg.redis.timeout, revocations.CLI_TIMEOUT))
        done = f"api key {ident} {'un-revoked' if args.undo else 'revoked'}"
    else:
        coro = revocations.revoke_jti(cfg.redis, ident, args.exp,
                                      timeout=max(cfg.redis.timeout, revocations.CLI_TIMEOUT))
        done = f"jti {ident} revoked"
    try:
        asyncio.run(coro)
    except revocations.redis_errors() as e:
        print(f"fastgate revoke: redis {revocations.describe(cfg.redis)} unreachable "
              f"({type(e).__name__}: {e}); not confirmed: run it again once Redis is reachable",
              file=sys.stderr)
        return 1
    print(f"{done}; every gateway enforces it within 1 s")
    return 0


def _bench(args) -> int:
    """`fastgate bench`: the capacity harness (benchmarks/README.md). Exit 0, 2 (config/usage),
    1 (a run failure, or capacity fell more than --max-drop below --baseline)."""
    from pathlib import Path

    from .bench.runner import Options, run
    from .config.units import parse_duration

    def seconds(value: str, flag: str, minimum: float = 0.0) -> float:
        parsed = parse_duration(value)
        if parsed is None or parsed <= minimum:
            raise ValueError(f"{flag}: expected a duration like \"5ms\" or \"30s\", got {value!r}")
        return parsed

    try:
        headers = []
        for h in args.header or ():
            name, sep, value = h.partition(":")
            if not sep or not name.strip():
                raise ValueError(f"--header {h!r}: expected \"Name: value\"")
            headers.append((name.strip(), value.strip()))
        body = None
        if args.body is not None:
            body = Path(args.body[1:]).read_bytes() if args.body.startswith("@") else args.body.encode()
        if args.rate is not None and args.rate <= 0:
            raise ValueError("--rate: expected requests per second > 0")
        if not (args.rate or args.find_capacity or args.policy_cost):
            raise ValueError("say what to run: --rate R, --find-capacity and/or --policy-cost")
        if args.connections < 1 or args.connections > 10000:
            raise ValueError("--connections: 1..10000")
        if args.policy_cost and args.target:
            raise ValueError("--policy-cost needs the gateway bench starts itself (not --target)")
        if args.max_drop is not None and args.baseline is None:
            raise ValueError("--max-drop goes with --baseline")
        opts = Options(
            config=Path(args.config), api=args.api, slo_p99=seconds(args.slo_p99, "--slo-p99"),
            duration=seconds(args.duration, "--duration"), connections=args.connections, rate=args.rate,
            find_capacity=args.find_capacity, policy_cost=args.policy_cost, compare_to=args.compare_to,
            target=args.target, out=Path(args.out) if args.out else None,
            plot=Path(args.plot) if args.plot else None,
            baseline=Path(args.baseline) if args.baseline else None,
            max_drop=args.max_drop if args.max_drop is not None else 10.0, exclude_429=args.exclude_429,
            max_error_ratio=args.max_errors / 100.0, auth=args.auth, credentials=args.credentials,
            path=args.path, method=args.method, body=body, headers=headers,
            timeout=seconds(args.timeout, "--timeout"), warmup=parse_duration(args.warmup) or 0.0,
            start_rate=args.start_rate, pin=not args.no_pin, keep_access_log=args.access_log,
            without_quotas=args.without_quotas,
            ca_file=args.ca, cert_file=args.client_cert, key_file=args.client_key,
            upstream_stall=args.upstream_stall,
            ceiling_duration=seconds(args.ceiling_duration, "--ceiling-duration"))
    except (ValueError, OSError) as e:
        print(f"fastgate bench: {e}", file=sys.stderr)
        return 2
    return run(opts)


def _bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="capacity harness: open-loop load, latency percentiles, capacity at an SLO",
                       description="Open-loop constant-arrival-rate load against the gateway (started on a "
                                   "copy of the config, with a built-in upstream) or --target.")
    p.add_argument("-c", "--config", required=True, help="config file (YAML)")
    p.add_argument("--api", help="the API to load (default: the first)")
    p.add_argument("--slo-p99", default="5ms", help="latency objective for p99 (default 5ms)")
    p.add_argument("--duration", default="30s", help="length of each measured step (default 30s)")
    p.add_argument("--connections", type=int, default=64, help="keep-alive connections (default 64)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--rate", type=float, help="constant arrival rate, requests/s")
    mode.add_argument("--find-capacity", action="store_true",
                      help="step the rate up, then bisect: the highest rate meeting the objective")
    p.add_argument("--policy-cost", action="store_true",
                   help="also: the same load with each of the API's policies on alone; CPU µs and p99 added "
                        "(at --rate, else half the capacity found, else 1000/s)")
    p.add_argument("--compare-to", metavar="URL", help="alternate the same schedule against this endpoint")
    p.add_argument("--target", metavar="URL", help="load a running gateway instead of starting one")
    p.add_argument("--out", metavar="FILE", help="write the results as JSON")
    p.add_argument("--plot", metavar="PNG", help="latency-vs-rate plot (needs matplotlib: the bench extra)")
    p.add_argument("--baseline", metavar="FILE", help="an earlier --out file: exit 1 if capacity fell")
    p.add_argument("--max-drop", type=float, metavar="PCT", help="with --baseline: allowed drop (default 10)")
    p.add_argument("--exclude-429", action="store_true",
                   help="429 answers (configured limits) count neither as failures nor in the objective's p99")
    p.add_argument("--max-errors", type=float, default=0.1, metavar="PCT",
                   help="failures allowed in a passing step, percent (default 0.1)")
    p.add_argument("--without-quotas", action="store_true",
                   help="remove the API's rate_limits for the run: what the box takes, not what the quota allows")
    p.add_argument("--auth", help="authentication method to mint credentials for (default: the API's first "
                                  "of api_key, oauth2, basic)")
    p.add_argument("--credentials", type=int, default=100, help="credential pool size (default 100)")
    p.add_argument("--path", help="request path under the API's base_path (default: its declared resources)")
    p.add_argument("--method", help="request method (default GET, or POST with --body)")
    p.add_argument("--body", help="request body, or @FILE")
    p.add_argument("-H", "--header", action="append", metavar="'NAME: VALUE'", help="extra request header")
    p.add_argument("--timeout", default="5s", help="per-request timeout (default 5s)")
    p.add_argument("--warmup", default="1s", help="unrecorded load before each step (default 1s)")
    p.add_argument("--start-rate", type=float, help="--find-capacity's first rate")
    p.add_argument("--no-pin", action="store_true", help="do not pin the gateway and the load side to CPUs")
    p.add_argument("--access-log", action="store_true", help="keep the config's access log (default off)")
    p.add_argument("--ca", help="verify the target's certificate with this CA (default: no verification)")
    p.add_argument("--client-cert", help="client certificate (mTLS)")
    p.add_argument("--client-key", help="its private key")
    p.add_argument("--ceiling-duration", default="2s", help="how long the generator's ceiling is measured")
    p.add_argument("--upstream-stall", help=argparse.SUPPRESS)  # tests: START:LENGTH seconds
    p.set_defaults(fn=_bench)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fastgate", description="API security gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, fn, helptext in (
        ("run", _run, "run the gateway"),
        ("check", _check, "validate a config file"),
        ("audit", _audit, "security review of a valid config"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("-c", "--config", required=True, help="config file (YAML)")
        p.set_defaults(fn=fn)
    sub.add_parser("hash-password", help="read a secret from stdin, print its scrypt hash").set_defaults(
        fn=_hash_password)
    sub.add_parser("new-api-key", help="print a new API key and its sha256 hash").set_defaults(fn=_new_api_key)
    _bench_parser(sub)
    p = sub.add_parser("revoke", help="revoke an API key or a token id on every gateway (via Redis)")
    p.add_argument("-c", "--config", required=True, help="config file (YAML) with a `redis:` section")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--api-key", metavar="ID", help="an applications[].api_keys[].id")
    what.add_argument("--jti", metavar="JTI", help="a token's `jti` claim")
    p.add_argument("--exp", metavar="EPOCH", type=int,
                   help="with --jti: the token's `exp` (default: kept 24 h)")
    p.add_argument("--undo", action="store_true", help="with --api-key: lift the revocation")
    p.set_defaults(fn=_revoke)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())

"""fastgate's commands (CONTRACT.md "Commands"): run, check, audit, hash-password, new-api-key.

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


def _bench(args) -> int:
    print("fastgate bench: the capacity harness arrives with issue 8; see benchmarks/e2e/run.py",
          file=sys.stderr)
    return 2


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
    sub.add_parser("bench", help="capacity harness (not yet)").set_defaults(fn=_bench)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())

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

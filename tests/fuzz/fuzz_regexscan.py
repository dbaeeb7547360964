"""Atheris target for fastgate._native.regexscan: normalise, block scan and stream scan.

Invariant checked on every input: the normalised bytes are no longer than the input and the
same whether the input is normalised whole or streamed in the pieces chosen by the first input
bytes; the block scan and the stream scan over those pieces agree on the verdict (a rule found
or not), and a rule the stream reports also matches the whole input on its own. Any
disagreement raises; a crash, a hang (-timeout) or runaway memory (-rss_limit_mb) fails the run.
Long run (from the repo root): `make fuzz`, or
    .venv/bin/python tests/fuzz/fuzz_regexscan.py -max_total_time=600 -seed=1 /tmp/rxcorpus
"""

from __future__ import annotations

import sys

from fastgate._native.regexscan import KINDS, PatternSet, normalise
from fastgate.regex_rules import RULE_SETS

# The demo rules, plus patterns whose matches are long or cross encoded/normalised boundaries.
RULES = [
    *RULE_SETS["demo"],
    ("fz-gap", r"abc.{0,40}xyz"),
    ("fz-space", r"a b c d"),
    ("fz-tail", r"zz$"),
    ("fz-bytes", r"\xff\xfe"),
    ("fz-class", r"[<>][a-z]{6}[<>]"),
]
SET = PatternSet(RULES)
ALONE = {rid: PatternSet([(rid, pattern)]) for rid, pattern in RULES}


def split(data: bytes, spec: bytes) -> list[bytes]:
    """Pieces of data at the cut points spec describes (each byte: a step of 0..255 bytes)."""
    pieces, at = [], 0
    for step in spec:
        pieces.append(data[at:at + step])
        at += step
    pieces.append(data[at:])
    return pieces


def check_one(data: bytes) -> None:
    """Byte 0 picks the kind and how many cut bytes follow (0..7); the rest is the input."""
    if not data:
        return
    kind = KINDS[data[0] % len(KINDS)]
    ncut = (data[0] >> 4) & 7
    spec, body = data[1:1 + ncut], data[1 + ncut:]
    pieces = split(body, spec)

    norm = normalise(body, kind)
    if len(norm) > len(body):
        raise AssertionError(f"normalise grew {body!r} -> {norm!r}")

    block = SET.scan(body, kind=kind)
    stream = SET.stream(kind=kind)
    got = None
    for piece in pieces:
        got = stream.feed(piece)
        if got is not None:
            break
    if got is None:
        got = stream.close()
    if (block is None) != (got is None):
        raise AssertionError(f"block {block} vs stream {got} ({kind}, {pieces!r})")
    if got is not None and got.rule_id != block.rule_id:
        # Several rules may match; hyperscan reports one first. The stream's must be real.
        if ALONE[got.rule_id].scan(body, kind=kind) is None:
            raise AssertionError(f"stream reported {got} which does not match {body!r}")
    _signal(block)
    _shape(body, norm)


def _shape(body: bytes, norm: bytes) -> int:
    """Branches on what the normaliser undid: libFuzzer sees no coverage of the native code,
    so these tell it which inputs reach which decoder."""
    n = 0
    if len(norm) < len(body):
        n += 1
    if b"%" in body and b"%" not in norm:
        n += 2
    if b"&" in body and b"&" not in norm:
        n += 4
    if b"\\" in body and b"\\" not in norm:
        n += 8
    if b"/*" in body and b"/*" not in norm:
        n += 16
    if b"\xc0" in body or b"\xc1" in body:
        n += 32
    return n


def _signal(m) -> int:
    """One Python branch per outcome: the only coverage libFuzzer sees of the native code."""
    if m is None:
        return 0
    rid = m.rule_id
    if rid.startswith("demo-sqli"):
        return 1
    if rid.startswith("demo-xss"):
        return 2
    if rid.startswith("demo-path"):
        return 3
    return 4


def TestOneInput(data: bytes) -> None:  # noqa: N802 (atheris' name)
    check_one(data)


def main() -> None:
    import atheris

    g = globals()
    for name in ("check_one", "split", "_signal", "_shape"):
        g[name] = atheris.instrument_func(g[name])
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

"""Atheris target for fastgate._native.jsonscan, and the reference oracle its tests share.

Invariant checked on every input: the verdict (None or (limit, offset)) is the same for one whole
feed and for the split chosen by the first input byte, and agrees with `oracle` (strict json.loads +
a plain-Python walker of the limits in document order); any disagreement raises.
Long run (from the repo root): `make fuzz`, or
    .venv/bin/python tests/fuzz/fuzz_jsonscan.py -max_total_time=600 -seed=1 /tmp/jscorpus
(an empty or existing corpus directory; seed it with copies of shared/data/jsontestsuite/*.json
prefixed by two mode bytes).
"""

from __future__ import annotations

import json
import random
import sys

from fastgate._native.jsonscan import JsonLimits, JsonScanner
from fastgate.errors import PayloadRejected

MALFORMED = "malformed"
UNKNOWN = "unknown"  # json.loads hit its recursion limit: the oracle cannot say


# ---------------------------------------------------------------------------------------------
# The oracle
# ---------------------------------------------------------------------------------------------


class Obj(list):
    """A JSON object as json.loads saw it: its (key, value) pairs in order, duplicates kept."""


class _Violation:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_END = object()


def _reject_constant(name: str):
    raise ValueError(f"not JSON: {name}")  # NaN, Infinity, -Infinity: Python-only extensions


def parse(data: bytes):
    """The document as strict json.loads reads it; objects become Obj; raises ValueError.

    Strict UTF-8 (no BOM, no UTF-16/32 detection, no surrogatepass, unlike json.loads(bytes)),
    no NaN/Infinity; numbers are not converted (Python caps int() at 4300 digits).
    """
    text = data.decode("utf-8")
    return json.loads(
        text,
        object_pairs_hook=Obj,
        parse_constant=_reject_constant,
        parse_int=len,
        parse_float=len,
    )


def _over(n: int, cap: int | None) -> bool:
    return cap is not None and n >= cap


def _check_str(s: str, cap: int | None, name: str) -> str | None:
    for i, ch in enumerate(s):
        if _over(i, cap):
            return name
        if "\ud800" <= ch <= "\udfff":  # a lone surrogate escape: we reject it
            return MALFORMED
    return None


def first_violation(tree, limits: JsonLimits) -> str | None:
    """The first limit broken in document order, "malformed" for a lone surrogate, or None.

    Order at one point of the document: an array element or object entry beyond the limit is
    reported before anything inside it; then a container's depth; an entry's key is checked for
    length, then for being a duplicate (compared decoded), before its value is visited; a string
    is checked code point by code point (length first, then surrogate).
    """

    def children(v):
        if isinstance(v, Obj):
            seen = set()
            for i, (k, val) in enumerate(v):
                if _over(i, limits.max_object_entries):
                    yield _Violation("max_object_entries")
                    return
                bad = _check_str(k, limits.max_key_length, "max_key_length")
                if bad:
                    yield _Violation(bad)
                    return
                if k in seen:
                    yield _Violation("duplicate_key")
                    return
                seen.add(k)
                yield val
        else:
            for i, item in enumerate(v):
                if _over(i, limits.max_array_elements):
                    yield _Violation("max_array_elements")
                    return
                yield item

    stack: list = []

    def visit(v, depth: int) -> str | None:  # depth: containers around v
        if isinstance(v, list):  # Obj included
            if _over(depth, limits.max_depth):
                return "max_depth"
            stack.append((children(v), depth + 1))
            return None
        if isinstance(v, str):
            return _check_str(v, limits.max_string_length, "max_string_length")
        return None

    bad = visit(tree, 0)
    while bad is None and stack:
        it, depth = stack[-1]
        nxt = next(it, _END)
        if nxt is _END:
            stack.pop()
        elif isinstance(nxt, _Violation):
            return nxt.name
        else:
            bad = visit(nxt, depth)
    return bad


def oracle(data: bytes, limits: JsonLimits) -> str | None:
    """None: valid and within limits (max_bytes aside); else the first violation's name."""
    try:
        tree = parse(data)
    except RecursionError:
        return UNKNOWN
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return MALFORMED
    return first_violation(tree, limits)


def check_verdict(data: bytes, limits: JsonLimits, got) -> None:
    """Raise AssertionError unless `got` (None or (limit, offset)) is what the oracle allows.

    json.loads accepts -> exactly the walker's first violation, or acceptance; json.loads refuses
    -> a rejection (a limit may come before the flaw). max_bytes is checked at byte max_bytes,
    which the walker cannot place: past it, max_bytes (offset == max_bytes) or the walker's
    violation is right; a document within max_bytes never gets it.
    """
    try:
        tree = parse(data)
    except RecursionError:
        return
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        tree = _END
    too_big = limits.max_bytes is not None and len(data) > limits.max_bytes
    if got is not None:
        if got[0] == "max_bytes":
            assert too_big and got[1] == limits.max_bytes, (data, limits, got)
        else:
            assert 0 <= got[1] <= len(data), (data, limits, got)
            assert not too_big or got[1] < limits.max_bytes, (data, limits, got)
    if tree is _END:
        assert got is not None, (data, limits, "json.loads refuses")
        return
    want = first_violation(tree, limits)
    if too_big:
        assert got is not None, (data, limits, want)
        assert got[0] in ("max_bytes", want), (data, limits, got, want)
    else:
        assert (None if got is None else got[0]) == want, (data, limits, got, want)


# ---------------------------------------------------------------------------------------------
# Running the scanner
# ---------------------------------------------------------------------------------------------


def run(chunks, limits: JsonLimits):
    """Feed the chunks then finish: None if accepted, else (limit, offset)."""
    s = JsonScanner(limits)
    try:
        for chunk in chunks:
            s.feed(chunk)
        s.finish()
    except PayloadRejected as e:
        return (e.limit, e.offset)
    return None


def split(data: bytes, mode: int, seed: int) -> list[bytes]:
    """Split data for feeding: whole, byte by byte, fixed-size chunks or random cuts."""
    kind = mode % 4
    if kind == 0 or not data:
        return [data]
    if kind == 1:
        return [data[i : i + 1] for i in range(len(data))]
    if kind == 2:
        n = seed % 17 + 1
        return [data[i : i + n] for i in range(0, len(data), n)]
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(len(data) + 1), min(len(data) + 1, rng.randint(1, 8))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


PRESETS = (
    JsonLimits(max_depth=64, max_string_length=None, max_key_length=None,
               max_array_elements=None, max_object_entries=None, max_bytes=None),
    JsonLimits(max_depth=3, max_string_length=5, max_key_length=3,
               max_array_elements=3, max_object_entries=3, max_bytes=64),
    JsonLimits(max_depth=1, max_string_length=1, max_key_length=1,
               max_array_elements=1, max_object_entries=1, max_bytes=None),
    JsonLimits(max_depth=0, max_string_length=0, max_key_length=0,
               max_array_elements=0, max_object_entries=0, max_bytes=16),
    JsonLimits(max_depth=8, max_string_length=16, max_key_length=8,
               max_array_elements=8, max_object_entries=8, max_bytes=1024),
    JsonLimits(),
)


def check_one(data: bytes) -> None:
    """The fuzz property on one input: byte 0 picks the split, byte 1 the limits preset."""
    if len(data) < 2:
        return
    mode, sel, doc = data[0], data[1], data[2:]
    limits = PRESETS[sel % len(PRESETS)]
    whole = run([doc], limits)
    parts = run(split(doc, mode, sel * 257 + mode), limits)
    if whole != parts:
        raise AssertionError(f"split changed the verdict: {whole} vs {parts} on {doc!r}")
    _signal(whole)
    check_verdict(doc, limits, whole)


def _signal(verdict) -> int:
    """One Python branch per verdict kind: the only coverage libFuzzer sees of the C scanner."""
    if verdict is None:
        return 0
    limit = verdict[0]
    if limit == "malformed":
        return 1
    if limit == "max_depth":
        return 2
    if limit == "max_string_length":
        return 3
    if limit == "max_key_length":
        return 4
    if limit == "max_array_elements":
        return 5
    if limit == "max_object_entries":
        return 6
    if limit == "max_bytes":
        return 7
    if limit == "duplicate_key":
        return 8
    raise AssertionError(f"unknown limit {limit!r}")


def TestOneInput(data: bytes) -> None:  # noqa: N802 (atheris' name)
    check_one(data)


def main() -> None:
    import atheris

    # Coverage of the oracle's Python code guides mutations (instrument_all() costs ~13 s here).
    g = globals()
    for name in ("first_violation", "check_verdict", "_check_str", "_signal", "check_one", "split"):
        g[name] = atheris.instrument_func(g[name])
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

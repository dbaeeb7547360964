"""Gated block scans (fastgate/regex_gates.py + PatternSet): a rule is left out of a scan only
when the scanned bytes lack every byte of one of its clauses, so the verdict never changes.

Oracles: Python for the presence mask; hyperscan itself (one ungated set per rule) for what a
rule matches; the ungated full set for the verdict, on the attack and benign corpora and on
hypothesis-built mixtures of attack fragments.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgate._native.regexscan import MAX_GATED_DATABASES, PatternSet, _gates_present, normalise
from fastgate.regex_gates import GATES, clauses, gate_masks
from fastgate.regex_rules import select_rules

DATA = Path(__file__).resolve().parent.parent / "data"
SETS = ("sql", "javascript", "ssi", "xpath", "java_exception", "path_traversal", "command")
RULES = select_rules(SETS)


def _load(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _kind(item: dict) -> str:
    return item.get("kind") or item["where"]


ITEMS = [it for p in sorted((DATA / "benign").glob("*.jsonl")) for it in _load(p)] + \
        [it for cls in SETS for it in _load(DATA / "attacks" / f"{cls}.jsonl")]
NORMALISED = [normalise(it["text"].encode(), _kind(it)) for it in ITEMS]


def _present(data: bytes) -> int:
    return sum(1 << i for i, g in enumerate(GATES) if g in data)


# ------------------------------------------------------------------------- the presence mask
@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 255), st.sampled_from(list(GATES))), max_size=300))
def test_presence_mask_matches_python(values):
    data = bytes(values)
    assert _gates_present(data) == _present(data)


@pytest.mark.parametrize("n", [0, 1, 31, 32, 33, 63, 64, 65, 95, 96, 1000])
@pytest.mark.parametrize("gate", list(GATES))
def test_presence_mask_sees_a_gate_at_every_position_class(n, gate):
    # the vector loop, its last full block and the scalar tail each see a lone gate byte; bytes
    # sharing a nibble with a gate (0x3B vs 0x3C, 0x7C vs 0x2C) never count as one
    filler = bytes((0x40 | (i * 7 & 0x3F)) for i in range(n))
    for at in {0, n // 2, n - 1} if n else ():
        data = filler[:at] + bytes([gate]) + filler[at + 1:]
        assert _gates_present(data) == _present(data), (n, at)
    near = bytes(((g & 0xF0) | ((g + 1) & 0x0F)) for g in GATES if ((g & 0xF0) | ((g + 1) & 0x0F)) not in GATES)
    assert _gates_present(near * 10) == _present(near * 10)


# ------------------------------------------------------------------------- the analysis
@pytest.mark.parametrize("pattern, expected", [
    (r"; ?drop table", [";"]),
    (r"(?:<|>)x", ["<>"]),
    (r"[<>]", ["<>"]),
    (r"a?<b", ["<"]),
    (r"or 1 ?(?:=|<>|!=|<=>) ?1", ["!<="]),  # one clause per branch: {=} {<} {!} {<}
    (r"(?:<){0,3}x", []),           # may match with no '<'
    (r"(?:<x|y)", []),              # one branch needs no gate: the alternation needs nothing
    (r"[^<]x", []),                 # a negated class requires a byte, not a gate byte
    (r"x.y", []),                   # '.' is any byte
    (r"\(\)", ["(", ")"]),
    (r"(?:\$\{|`)", ["$`"]),
    (r"a[[:punct:]]b", []),         # POSIX class: refused (Python reads it differently)
    (r"\Q<\E", []),                 # \Q..\E: refused
    (r"(?i)<", []),                 # inline flags: refused
    (r"x{,3}<", []),                # PCRE reads {,3} as text: refused
    (r"(unclosed", []),             # unparsable: no clause
])
def test_clauses(pattern, expected):
    assert [bytes(sorted(c)).decode() for c in clauses(pattern)] == sorted(expected, key=lambda s: (len(s), s))


def test_shipped_rules_mostly_have_clauses():
    # the point of gating: most rules need a punctuation byte a JSON body rarely has
    assert sum(1 for _rid, p in RULES if clauses(p)) >= len(RULES) // 2


@pytest.fixture(scope="module")
def alone() -> dict[str, PatternSet]:
    return {rid: PatternSet([(rid, p)], gates=False) for rid, p in RULES}


def test_every_rule_match_in_the_corpora_holds_a_byte_of_each_clause(alone):
    # soundness against hyperscan itself: whatever a rule matches in an item (scanned as the
    # gateway scans it: normalised by its kind) contains one byte of each of the rule's clauses
    checked = 0
    for rid, pattern in RULES:
        masks = gate_masks(pattern)
        if not masks:
            continue
        for it, text in zip(ITEMS, NORMALISED, strict=True):
            if alone[rid].scan(it["text"].encode(), kind=_kind(it)) is None:
                continue
            present = _present(text)
            assert all(mask & present for mask in masks), (rid, text[:200])
            checked += 1
    assert checked > 1000


def _settled_scan(ps: PatternSet, data: bytes, kind: str):
    first = ps.scan(data, kind=kind)
    ps.settle()
    return first, ps.scan(data, kind=kind)


def test_gated_verdicts_equal_the_full_set_on_the_corpora():
    gated = PatternSet(RULES, gate_min=0)
    full = PatternSet(RULES, gates=False)
    differ = []
    for it in ITEMS:
        data, kind = it["text"].encode(), _kind(it)
        want = full.scan(data, kind=kind)
        before, after = _settled_scan(gated, data, kind)
        for got in (before, after):
            if (got is None) != (want is None):
                differ.append((it["text"][:120], want, got))
    assert not differ, differ[:5]
    assert 0 < gated.gated_databases <= MAX_GATED_DATABASES


FRAGMENTS = [it["text"] for it in ITEMS if it.get("class")][:400:7] + [
    "O'Brien", "order by date", "a < b", "x;y", "$HOME", "`id`", "=", "(", ")", "/", "\\", "#", "!", "*",
    "|", "&", "{", "}", "select", "union", "script", "onload", "..", "etc/passwd", " ", "\"", ":"]


_FULL = PatternSet(RULES, gates=False)
_GATED = PatternSet(RULES, gate_min=0)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=6),
       st.sampled_from(["body", "json", "query", "header", "path"]))
def test_gated_verdict_equals_the_full_set_on_mixtures(parts, kind):
    data = " ".join(parts).encode()
    want = _FULL.scan(data, kind=kind)
    before, after = _settled_scan(_GATED, data, kind)
    assert (before is None) == (want is None) and (after is None) == (want is None)


def test_a_buffer_no_rule_can_match_is_answered_without_a_scan():
    ps = PatternSet([("lt", "<script"), ("semi", "; ?drop")], gate_min=0)
    assert ps.scan(b"plain words only") is None
    assert ps.scan(b"x <script") is not None
    assert ps.scan(b"a; drop") is not None


def test_short_buffers_use_the_full_database():
    # paths, queries and header values (memoised by the policy) never start a compile
    ps = PatternSet(RULES)
    assert ps.scan(b"application/json; charset=utf-8", kind="header") is None
    assert ps.scan(b"x' or 1=1 --", kind="query") is not None
    ps.settle()
    assert ps.gated_databases == 0
    body = b'{"note": "' + b"plain words " * 40 + b'"}'
    assert ps.scan(body, kind="json") is None
    ps.settle()
    assert ps.gated_databases == 1


def test_gated_databases_are_bounded():
    # every rule needs its own gate byte: each combination of gates present is its own subset
    rules = [(f"r{i}", re.escape(chr(g)) + "x") for i, g in enumerate(GATES)]
    ps = PatternSet(rules, gate_min=0)
    for i in range(1, 60):
        data = bytes(g for b, g in enumerate(GATES) if i >> (b % 6) & 1) + b" y"
        ps.scan(data)
        ps.settle()
        ps.scan(data)
    assert ps.gated_databases == MAX_GATED_DATABASES  # asked for more; capped
    assert ps.scan(b"$x") is not None and ps.scan(b"$y") is None  # past the cap: the full set


# ------------------------------------------------------------------------- the analysis, fuzzed
@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="()[]{}|*+?.^$\\<>=;&`#/'!-,:0123abcdxyz ", max_size=40))
def test_clauses_never_fail_on_any_pattern(pattern):
    for clause in clauses(pattern):
        assert clause and clause <= frozenset(GATES)


_ATOMS = [re.escape(chr(g)) for g in GATES] + ["a", "b", "x", " ", r"\d", r"\s", r"\w", ".", "[<>]",
                                                 "[;|]", "[^a]", "[a-c]", r"[()]"]


def _regex(draw, depth: int = 0) -> str:
    kind = draw(st.integers(0, 5 if depth < 3 else 0))
    if kind == 0:
        return draw(st.sampled_from(_ATOMS))
    if kind == 1:
        return "".join(_regex(draw, depth + 1) for _ in range(draw(st.integers(2, 4))))
    if kind == 2:
        return "(?:" + "|".join(_regex(draw, depth + 1) for _ in range(draw(st.integers(2, 3)))) + ")"
    quant = ["?", "*", "+", "{0,2}", "{1,3}"][kind - 3 + draw(st.integers(0, 2))]
    return "(?:" + _regex(draw, depth + 1) + ")" + quant


@st.composite
def _patterns(draw) -> str:
    return _regex(draw)


@settings(max_examples=200, deadline=None)
@given(_patterns(), st.lists(st.text(alphabet="<>=;|&$`#/\\()'!*abx 1", max_size=12), min_size=1, max_size=8))
def test_every_match_of_a_random_pattern_holds_a_byte_of_each_clause(pattern, texts):
    # the analysis against hyperscan on patterns it was not written for
    try:
        alone = PatternSet([("r", pattern)], gates=False)
    except ValueError:  # hyperscan refuses it (e.g. it can match empty input)
        return
    masks = gate_masks(pattern)
    for text in texts:
        data = text.encode()
        if alone.scan(data, kind="body") is not None:
            present = _present(normalise(data, "body"))
            assert all(m & present for m in masks), (pattern, data)

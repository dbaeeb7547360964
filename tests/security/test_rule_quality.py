"""Quality of the shipped threat rule sets, measured the way the gateway runs them: every set
compiled into ONE PatternSet, each item scanned with the normaliser kind of where it travels.

Invariants: no benign item (tests/data/benign/) is blocked; every attack class
(tests/data/attacks/<class>.jsonl) is detected at >= 95%; every rule compiles, ids are unique
and of the form "<set>-<name>"; a 1 MB ReDoS-shaped input scans (hyperscan is linear).
The corpora are written by tests/security/make_corpus.py (deterministic, no network).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fastgate._native.regexscan import KINDS, PatternSet, normalise
from fastgate.regex_rules import RULE_SETS, select_rules

DATA = Path(__file__).resolve().parent.parent / "data"
SETS = ("sql", "javascript", "ssi", "xpath", "java_exception", "path_traversal", "command")
MIN_DETECTION = 0.95
# Where a request carries the text -> the normaliser kind the gateway scans it with. A body item
# names its own kind ("json" for JSON, "query" for a form body, "body" for anything else).
WHERE_KIND = {"path": "path", "query": "query", "header": "header", "body": "body"}


def _load(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _kind(item: dict) -> str:
    kind = item.get("kind") or WHERE_KIND[item["where"]]
    assert kind in KINDS, item
    return kind


BENIGN = [it for p in sorted((DATA / "benign").glob("*.jsonl")) for it in _load(p)]
ATTACKS = {cls: _load(DATA / "attacks" / f"{cls}.jsonl") for cls in SETS}


@pytest.fixture(scope="module")
def gateway_set() -> PatternSet:
    return PatternSet(select_rules(SETS))


def _show(item: dict, match) -> str:
    norm = normalise(item["text"].encode(), _kind(item))
    lo = max(0, match.offset - 60) if match else 0
    return f"  {match.rule_id if match else '-':32} {item['where']:6} ...{norm[lo:lo + 90]!r}"


def test_corpus_sizes():
    assert len(BENIGN) >= 500
    wheres = {it["where"] for it in BENIGN}
    assert wheres == {"body", "query", "header", "path"}
    for cls, rows in ATTACKS.items():
        assert len(rows) >= 300, cls
        assert {r["class"] for r in rows} == {cls}


def test_every_rule_compiles_and_ids_are_unique():
    seen: set[str] = set()
    for name in SETS:
        rules = RULE_SETS[name]
        assert rules, name
        for rule in rules:
            assert rule.id.startswith(f"{name}-"), rule.id
            assert rule.id not in seen, rule.id
            seen.add(rule.id)
            PatternSet([rule])  # raises PatternError (naming the rule) if hyperscan refuses it
    assert len(PatternSet(select_rules(SETS))) == len(seen)
    select_rules(list(RULE_SETS))  # demo + all sets together: still no id collision


def test_no_benign_item_is_blocked(gateway_set):
    blocked = []
    for it in BENIGN:
        m = gateway_set.scan(it["text"].encode(), kind=_kind(it))
        if m is not None:
            blocked.append(_show(it, m))
    print(f"\nbenign: {len(BENIGN)} items, {len(blocked)} blocked")
    assert not blocked, "benign items blocked:\n" + "\n".join(blocked)


def test_detection_per_class(gateway_set):
    own_sets = {cls: PatternSet(RULE_SETS[cls]) for cls in SETS}
    lines, failing, missed = [], [], []
    for cls, rows in ATTACKS.items():
        hit = own = 0
        for r in rows:
            data, kind = r["text"].encode(), _kind(r)
            if gateway_set.scan(data, kind=kind) is not None:
                hit += 1
            else:
                missed.append(f"  [{cls}] " + _show(r, None))
            own += own_sets[cls].scan(data, kind=kind) is not None
        rate = hit / len(rows)
        lines.append(f"  {cls:15} {hit:4}/{len(rows):<4} {rate:7.1%}   own set alone {own / len(rows):7.1%}")
        if rate < MIN_DETECTION:
            failing.append(cls)
    print("\ndetection (all sets in one PatternSet):\n" + "\n".join(lines))
    if missed:
        print("missed:\n" + "\n".join(missed))
    assert not failing, f"detection below {MIN_DETECTION:.0%}: {failing}\n" + "\n".join(lines)


def test_block_and_stream_mode_agree(gateway_set):
    """The gateway streams bodies: 7-byte chunks give the block verdict for every body item."""
    body_items = [it for it in BENIGN if it["where"] == "body"][:100]
    body_items += [r for rows in ATTACKS.values() for r in rows if r["where"] == "body"][::7]
    for it in body_items:
        data, kind = it["text"].encode(), _kind(it)
        st = gateway_set.stream(kind=kind)
        for i in range(0, len(data), 7):
            st.feed(data[i:i + 7])
        got = st.close()
        want = gateway_set.scan(data, kind=kind)
        assert (got is None) == (want is None), it


@pytest.mark.parametrize(
    "shape",
    [b"a" * (1 << 20), b"' or " * 200_000, b"../" * 350_000, b"<a " * 350_000,
     b"; cat " * 175_000, b"union " * 175_000, b"at com.x.y" * 100_000, b"%25" * 350_000],
    ids=["a", "quote-or", "dotdot", "tag", "sep-cat", "union", "frame", "pct25"],
)
def test_redos_shaped_input_scans(gateway_set, shape):
    """1 MB of a shape that makes backtracking engines explode: it completes (time printed)."""
    t0 = time.perf_counter()
    for kind in ("body", "query"):
        gateway_set.scan(shape, kind=kind)
    print(f"\n{len(shape)} B {shape[:8]!r}...: {(time.perf_counter() - t0) * 1e3:.1f} ms (2 scans)")

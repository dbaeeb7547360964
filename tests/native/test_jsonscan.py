"""Tests for fastgate._native.jsonscan against its oracle (strict json.loads + a limits walker).

Invariant checked: every input gets the same verdict (limit and offset) whole, byte by byte and
in random splits; that verdict is the oracle's (tests/fuzz/fuzz_jsonscan.py: `check_verdict`), the
JSONTestSuite corpus decides grammar, and every limit is exact at its boundary.

Decisions on the JSONTestSuite i_* files ("py" = json.loads(bytes) of Python 3.11, which decodes
with utf-8-sig / UTF-16 / UTF-32 detection and errors="surrogatepass"):

| i_* file                                        | py     | fastgate               | why |
|-------------------------------------------------|--------|------------------------|-----|
| number_double_huge_neg_exp, number_huge_exp,    | accept | accept                 | RFC 8259 §6 grammar only; no conversion, O(n) |
| number_neg_int_huge_exp, number_pos_double_huge_exp, number_real_neg_overflow, number_real_pos_overflow, number_real_underflow, number_too_big_neg_int, number_too_big_pos_int, number_very_big_negative_int | | | |
| object_key_lone_2nd_surrogate                   | accept | reject malformed       | lone surrogate escape (RFC 8259 §8.2: unpredictable) |
| string_1st_surrogate_but_2nd_missing            | accept | reject malformed       | lone high surrogate |
| string_1st_valid_surrogate_2nd_invalid          | accept | reject malformed       | high surrogate + non-low escape |
| string_incomplete_surrogate_and_escape_valid    | accept | reject malformed       | high surrogate + \\n |
| string_incomplete_surrogate_pair                | accept | reject malformed       | lone low surrogate |
| string_incomplete_surrogates_escape_valid       | accept | reject malformed       | two high surrogates |
| string_invalid_lonely_surrogate                 | accept | reject malformed       | lone high surrogate |
| string_invalid_surrogate                        | accept | reject malformed       | lone high surrogate |
| string_inverted_surrogates_U+1D11E              | accept | reject malformed       | low before high |
| string_lone_second_surrogate                    | accept | reject malformed       | lone low surrogate |
| string_UTF8_surrogate_U+D800                    | accept | reject malformed       | ED A0 80: not UTF-8 (RFC 3629 §3) |
| string_UTF-8_invalid_sequence, string_invalid_utf-8, string_iso_latin_1, string_lone_utf8_continuation_byte, string_not_in_unicode_range, string_overlong_sequence_2_bytes, string_overlong_sequence_6_bytes, string_overlong_sequence_6_bytes_null, string_truncated-utf-8 | reject | reject malformed | invalid UTF-8, as Python |
| string_UTF-16LE_with_BOM, string_utf16BE_no_BOM, string_utf16LE_no_BOM | accept | reject malformed | RFC 8259 §8.1: UTF-8 only |
| structure_UTF-8_BOM_empty_object                | accept | reject malformed at 0  | §8.1: MUST NOT send a BOM; we don't ignore it |
| structure_500_nested_arrays                     | accept | accept iff max_depth >= 500 | a limit, not grammar |

Why reject lone surrogates although Python accepts them: they cannot be encoded as UTF-8, so an
upstream either fails, drops or replaces them (Go: U+FFFD) — a parser differential a gateway
should not forward. The two y_* files with duplicate keys (y_object_duplicated_key*) are valid
grammar and rejected by policy with limit "duplicate_key".
"""

from __future__ import annotations

import json
import random
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fastgate._native.jsonscan import LIMIT_NAMES, JsonLimits, JsonScanner, scan_json
from fastgate.errors import PayloadRejected
from tests.fuzz.fuzz_jsonscan import (
    UNKNOWN,
    Obj,
    check_verdict,
    first_violation,
    oracle,
    parse,
    run,
    split,
)

CORPUS = Path(__file__).resolve().parents[3] / "shared/data/jsontestsuite"
UNLIMITED = JsonLimits.unlimited()
# Generous but finite: only grammar decides on the corpus (its deepest y_ file nests 500 levels,
# n_structure_100000_opening_arrays 100000).
GENEROUS = JsonLimits(max_depth=1000, max_string_length=None, max_key_length=None,
                      max_array_elements=None, max_object_entries=None, max_bytes=None)

DUPLICATE_KEY_Y = {"y_object_duplicated_key.json", "y_object_duplicated_key_and_value.json"}

_SURROGATE = "reject malformed: lone/inverted surrogate escape"
_BAD_UTF8 = "reject malformed: invalid UTF-8, as Python"
# file -> (json.loads(bytes) accepts?, we accept (with GENEROUS)?, why)
I_DECISIONS: dict[str, tuple[bool, bool, str]] = {
    "i_number_double_huge_neg_exp.json": (True, True, "number grammar only"),
    "i_number_huge_exp.json": (True, True, "number grammar only"),
    "i_number_neg_int_huge_exp.json": (True, True, "number grammar only"),
    "i_number_pos_double_huge_exp.json": (True, True, "number grammar only"),
    "i_number_real_neg_overflow.json": (True, True, "number grammar only"),
    "i_number_real_pos_overflow.json": (True, True, "number grammar only"),
    "i_number_real_underflow.json": (True, True, "number grammar only"),
    "i_number_too_big_neg_int.json": (True, True, "number grammar only"),
    "i_number_too_big_pos_int.json": (True, True, "number grammar only"),
    "i_number_very_big_negative_int.json": (True, True, "number grammar only"),
    "i_object_key_lone_2nd_surrogate.json": (True, False, _SURROGATE),
    "i_string_1st_surrogate_but_2nd_missing.json": (True, False, _SURROGATE),
    "i_string_1st_valid_surrogate_2nd_invalid.json": (True, False, _SURROGATE),
    "i_string_incomplete_surrogate_and_escape_valid.json": (True, False, _SURROGATE),
    "i_string_incomplete_surrogate_pair.json": (True, False, _SURROGATE),
    "i_string_incomplete_surrogates_escape_valid.json": (True, False, _SURROGATE),
    "i_string_invalid_lonely_surrogate.json": (True, False, _SURROGATE),
    "i_string_invalid_surrogate.json": (True, False, _SURROGATE),
    "i_string_inverted_surrogates_U+1D11E.json": (True, False, _SURROGATE),
    "i_string_lone_second_surrogate.json": (True, False, _SURROGATE),
    "i_string_UTF8_surrogate_U+D800.json": (True, False, "reject malformed: UTF-8-encoded surrogate"),
    "i_string_UTF-8_invalid_sequence.json": (False, False, _BAD_UTF8),
    "i_string_invalid_utf-8.json": (False, False, _BAD_UTF8),
    "i_string_iso_latin_1.json": (False, False, _BAD_UTF8),
    "i_string_lone_utf8_continuation_byte.json": (False, False, _BAD_UTF8),
    "i_string_not_in_unicode_range.json": (False, False, _BAD_UTF8),
    "i_string_overlong_sequence_2_bytes.json": (False, False, _BAD_UTF8),
    "i_string_overlong_sequence_6_bytes.json": (False, False, _BAD_UTF8),
    "i_string_overlong_sequence_6_bytes_null.json": (False, False, _BAD_UTF8),
    "i_string_truncated-utf-8.json": (False, False, _BAD_UTF8),
    "i_string_UTF-16LE_with_BOM.json": (True, False, "reject malformed: UTF-8 only"),
    "i_string_utf16BE_no_BOM.json": (True, False, "reject malformed: UTF-8 only"),
    "i_string_utf16LE_no_BOM.json": (True, False, "reject malformed: UTF-8 only"),
    "i_structure_UTF-8_BOM_empty_object.json": (True, False, "reject malformed: BOM"),
    "i_structure_500_nested_arrays.json": (True, True, "accept iff max_depth >= 500"),
}


def verdict(data: bytes, limits: JsonLimits = UNLIMITED, chunks=None):
    return run([data] if chunks is None else chunks, limits)


def all_splits_agree(data: bytes, limits: JsonLimits, seed: int = 0):
    """The verdict, after asserting byte-by-byte and a few random splits give the same one."""
    whole = verdict(data, limits)
    assert verdict(data, limits, split(data, 1, 0)) == whole, "byte by byte"
    for i in range(3):
        assert verdict(data, limits, split(data, 3, seed * 31 + i)) == whole, f"random split {i}"
    assert verdict(data, limits, split(data, 2, seed)) == whole, "fixed chunks"
    return whole


def rejected(data: bytes, limits: JsonLimits = UNLIMITED):
    v = all_splits_agree(data, limits)
    assert v is not None, data
    return v


def accepted(data: bytes, limits: JsonLimits = UNLIMITED) -> None:
    assert all_splits_agree(data, limits) is None


def python_accepts(data: bytes) -> bool:
    try:
        json.loads(data)
    except (ValueError, RecursionError):
        return False
    return True


# ---------------------------------------------------------------------------------------------
# JSONTestSuite
# ---------------------------------------------------------------------------------------------

needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"{CORPUS} missing")


def _corpus(prefix: str) -> list[Path]:
    return sorted(CORPUS.glob(f"{prefix}_*.json")) if CORPUS.is_dir() else []


@needs_corpus
@pytest.mark.parametrize("path", _corpus("y"), ids=lambda p: p.name)
def test_y_accepted(path: Path):
    data = path.read_bytes()
    v = all_splits_agree(data, GENEROUS)
    if path.name in DUPLICATE_KEY_Y:
        assert v is not None and v[0] == "duplicate_key"
    else:
        assert v is None
        assert oracle(data, GENEROUS) is None  # the oracle agrees with the suite too


@needs_corpus
@pytest.mark.parametrize("path", _corpus("n"), ids=lambda p: p.name)
def test_n_rejected(path: Path):
    data = path.read_bytes()
    v = all_splits_agree(data, UNLIMITED)
    assert v is not None and v[0] == "malformed", v
    assert oracle(data, UNLIMITED) in ("malformed", UNKNOWN)  # UNKNOWN: json's recursion limit
    assert 0 <= v[1] <= len(data)


@needs_corpus
def test_i_decisions_cover_the_corpus():
    assert {p.name for p in _corpus("i")} == set(I_DECISIONS)


@needs_corpus
@pytest.mark.parametrize("name", sorted(I_DECISIONS))
def test_i_decisions(name: str):
    py, ours, _why = I_DECISIONS[name]
    data = (CORPUS / name).read_bytes()
    assert python_accepts(data) is py  # the "py" column documents Python, keep it true
    v = all_splits_agree(data, GENEROUS)
    assert (v is None) is ours, v
    if not ours:
        assert v[0] == "malformed"
    check_verdict(data, GENEROUS, v)


@needs_corpus
def test_i_500_nested_arrays_is_a_depth_limit():
    data = (CORPUS / "i_structure_500_nested_arrays.json").read_bytes()
    assert verdict(data, JsonLimits(max_depth=500, max_bytes=None)) is None
    assert verdict(data, JsonLimits(max_depth=499, max_bytes=None)) == ("max_depth", 499)
    assert verdict(data, JsonLimits()) == ("max_depth", 20)


@needs_corpus
@pytest.mark.parametrize("path", _corpus("[yni]"), ids=lambda p: p.name)
def test_corpus_under_tight_limits(path: Path):
    """Small limits on the whole corpus: still the oracle's first violation, whatever the split."""
    data = path.read_bytes()
    for limits in (JsonLimits(2, 3, 2, 2, 2, 40), JsonLimits(0, 0, 0, 0, 0, 8), JsonLimits()):
        check_verdict(data, limits, all_splits_agree(data, limits, seed=len(data)))


# ---------------------------------------------------------------------------------------------
# Grammar details (RFC 8259)
# ---------------------------------------------------------------------------------------------

GOOD = [
    b"0", b"-0", b"1", b"-1", b"10", b"0.5", b"-0.0e+0", b"1E5", b"1e-5", b"123.456E+789",
    b"true", b"false", b"null", b'""', b"[]", b"{}", b" \t\r\n[ \t\r\n] \t\r\n",
    b'{"a":[1,{"b":null}],"c":"d"}', b'["\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\uD834\\uDD1E"]',
    "\"\u00e9\u4e2d\U0001f600\"".encode(), b'"\x7f"', b"[[[[]]]]", b'{"":""}',
    b'"\\u0000"', b"[1, 2 ,3]", b"1 ", b"\n\"x\"\n",
]
BAD = [
    b"", b" ", b"-", b"+1", b"01", b"-01", b"1.", b".5", b"1e", b"1e+", b"0x1", b"1.e5",
    b"NaN", b"Infinity", b"-Infinity", b"tru", b"truE", b"nul", b"True", b"[1,]", b"[,1]",
    b"{,}", b'{"a"}', b'{"a":}', b'{"a":1,}', b'{a:1}', b"{'a':1}", b"[1 2]", b"1 2", b"{}{}",
    b"[]]", b"[", b"{", b'"abc', b'"\\x"', b'"\\u12"', b'"\\U0041"', b"\"\\'\"", b'"\\u00G0"',
    b'"\t"', b'"\n"', b'"\x00"', b'"\x1f"', b"\x00", b"[\x00]", b"\xef\xbb\xbf{}", b"\x0c1",
    b"\xa01", b"[1]\x00", b"//c\n1", b"/*c*/1", b'"\\ud800"', b'"\\udc00"', b'"\\ud800\\u0041"',
    b'"\\ud800\\n"', b'"\\udc00\\ud800"', b'"\\ud800\\ud800"', b'"\\ud800\\', b'"\\ud800\\u',
    b'"\xc0\x80"', b'"\xc1\xbf"', b'"\xe0\x80\x80"', b'"\xe0\x9f\xbf"', b'"\xed\xa0\x80"',
    b'"\xed\xbf\xbf"', b'"\xf0\x80\x80\x80"', b'"\xf0\x8f\xbf\xbf"', b'"\xf4\x90\x80\x80"',
    b'"\xf5\x80\x80\x80"', b'"\xff"', b'"\x80"', b'"\xc3"', b'"\xe4\xb8"', b'"\xf0\x9f\x98"',
    b'"\xc3\x28"', b'"\xe4\x28\xad"', b'"\xf0\x9f\x28\x80"', b'"\xf0\x9f\x98\x28"',
]


@pytest.mark.parametrize("data", GOOD)
def test_grammar_good(data: bytes):
    accepted(data)
    assert python_accepts(data)


@pytest.mark.parametrize("data", BAD)
def test_grammar_bad(data: bytes):
    assert rejected(data)[0] == "malformed"
    assert oracle(data, UNLIMITED) == "malformed"


def test_utf8_boundaries_accepted():
    # The extremes of each well-formed range (RFC 3629 §4).
    for cp in (0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFF, 0x10000, 0x10FFFF):
        data = json.dumps(chr(cp), ensure_ascii=False).encode()
        accepted(data)
        accepted(json.dumps(chr(cp)).encode())  # and as an escape


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        (b"[1,]", 3),
        (b"01", 1),
        (b'"\xc3\x28"', 2),
        (b'"\xed\xa0\x80"', 2),
        (b'"\\ud800x"', 7),
        (b'"\\udc00"', 6),
        (b'["\\ud800\\u0041"]', 13),
        (b"\xef\xbb\xbf{}", 0),
        (b"[1] x", 4),
        (b"[1", 2),
        (b"", 0),
        (b"  ", 2),
        (b"-", 1),
    ],
)
def test_malformed_offsets(data: bytes, offset: int):
    assert rejected(data) == ("malformed", offset)


def test_rejects_during_feed_not_finish():
    s = JsonScanner(UNLIMITED)
    s.feed(b'{"a": [1, 2')
    with pytest.raises(PayloadRejected) as e:
        s.feed(b", x")
    assert (e.value.limit, e.value.offset) == ("malformed", 13)
    # Once failed, always failed with the same verdict.
    for call in (lambda: s.feed(b"]}"), s.finish):
        with pytest.raises(PayloadRejected) as again:
            call()
        assert (again.value.limit, again.value.offset) == ("malformed", 13)


def test_top_level_number_needs_finish():
    s = JsonScanner(UNLIMITED)
    s.feed(b"12")
    s.feed(b"34")
    s.finish()
    s = JsonScanner(UNLIMITED)
    s.feed(b"12e")
    with pytest.raises(PayloadRejected) as e:
        s.finish()
    assert (e.value.limit, e.value.offset) == ("malformed", 3)


# ---------------------------------------------------------------------------------------------
# Limits: exact at every boundary
# ---------------------------------------------------------------------------------------------


def nested(depth: int, open_: str = "[", close: str = "]") -> bytes:
    return (open_ * depth + close * depth).encode()


def test_depth_exact():
    lim = JsonLimits(max_depth=20)
    accepted(nested(20), lim)
    assert rejected(nested(21), lim) == ("max_depth", 20)
    obj = ('{"a":' * 20 + "1" + "}" * 20).encode()
    accepted(obj, lim)
    obj21 = ('{"a":' * 21 + "1" + "}" * 21).encode()
    assert rejected(obj21, lim) == ("max_depth", 100)
    mixed = ('[{"a":' * 10 + "[]" + "}]" * 10).encode()  # depth 21: arrays count too
    assert rejected(mixed, lim) == ("max_depth", len(b'[{"a":') * 10)
    assert rejected(b"[]", JsonLimits(max_depth=0)) == ("max_depth", 0)
    accepted(b'"scalar"', JsonLimits(max_depth=0))
    accepted(b"[[],[[]],[]]", JsonLimits(max_depth=3))


def test_max_depth_seen():
    s = JsonScanner(UNLIMITED)
    assert s.max_depth_seen == 0
    s.feed(b'[[{"a":[1]}],[[[]')
    assert s.max_depth_seen == 4
    s.feed(b"]]]")
    s.finish()
    assert s.max_depth_seen == 4
    assert s.bytes_seen == 20


def test_array_elements_exact():
    lim = JsonLimits(max_array_elements=1000)
    ok = ("[" + ",".join(["1"] * 1000) + "]").encode()
    accepted(ok, lim)
    over = ("[" + ",".join(["1"] * 1001) + "]").encode()
    assert rejected(over, lim) == ("max_array_elements", len(ok) - 1 + 1)
    # Per array: two arrays of 1000 are fine, nested ones too.
    accepted(("[" + ok.decode() + "," + ok.decode() + "]").encode(), lim)
    assert rejected(b"[[1,2],[1,2,3]]", JsonLimits(max_array_elements=2)) == (
        "max_array_elements", 12)
    assert rejected(b"[1]", JsonLimits(max_array_elements=0)) == ("max_array_elements", 1)
    accepted(b"[]", JsonLimits(max_array_elements=0))
    accepted(b"[[],[]]", JsonLimits(max_array_elements=2))


def _obj(n: int, prefix: str = "k") -> str:
    return "{" + ",".join(f'"{prefix}{i}":{i}' for i in range(n)) + "}"


def test_object_entries_exact_inside_array_inside_object():
    lim = JsonLimits(max_object_entries=1000)
    ok = '{"outer":[' + _obj(1000) + "]}"
    accepted(ok.encode(), lim)
    bad = '{"outer":[' + _obj(1001) + "]}"
    where = bad.index('"k1000"')
    assert rejected(bad.encode(), lim) == ("max_object_entries", where)
    # Per object, not per document: many objects of 1000 entries each are fine.
    many = "[" + ",".join([_obj(1000)] * 3) + "]"
    accepted(many.encode(), lim)
    assert rejected(b'{"a":1}', JsonLimits(max_object_entries=0)) == ("max_object_entries", 1)
    accepted(b'{"a":{},"b":{"c":{}}}', JsonLimits(max_object_entries=2))


def test_string_length_in_code_points():
    lim = JsonLimits(max_string_length=6)
    # Six code points: an escape, a 2-byte char, a \u escape, a surrogate-pair escape, 4-byte UTF-8.
    six = '"a\\n\u00e9\\u00e9\\ud834\\udd1e\U0001f600"'.encode()
    accepted(six, lim)
    assert verdict(six, JsonLimits(max_string_length=5)) == ("max_string_length", len(six) - 5)
    seven = '"a\\n\u00e9\\u00e9\\ud834\\udd1e\U0001f600x"'.encode()
    assert rejected(seven, lim) == ("max_string_length", len(seven) - 2)
    ascii_ok = b'"' + b"x" * 10_000 + b'"'
    accepted(ascii_ok, JsonLimits(max_string_length=10_000))
    assert rejected(b'"' + b"x" * 10_001 + b'"', JsonLimits(max_string_length=10_000)) == (
        "max_string_length", 10_001)
    multi = ("\"" + "\u00e9\u4e2d\U0001f600" * 3 + "\"").encode()
    accepted(multi, JsonLimits(max_string_length=9))
    assert rejected(multi, JsonLimits(max_string_length=8)) == ("max_string_length", len(multi) - 5)
    accepted(b'""', JsonLimits(max_string_length=0))
    assert rejected(b'"\\u0041"', JsonLimits(max_string_length=0)) == ("max_string_length", 1)
    # Keys are not strings for this limit.
    accepted(b'{"long key":""}', JsonLimits(max_string_length=0))


def test_key_length_in_code_points():
    lim = JsonLimits(max_key_length=3)
    accepted('{"\u00e9\\u00e9\U0001f600":1}'.encode(), lim)
    data = '{"\u00e9\\u00e9\U0001f600x":1}'.encode()
    assert rejected(data, lim) == ("max_key_length", data.index(b"x"))
    accepted(b'{"":1}', JsonLimits(max_key_length=0))
    assert rejected(b'{"a":1}', JsonLimits(max_key_length=0)) == ("max_key_length", 2)
    # Values are not keys.
    accepted(b'{"k":"a long value"}', JsonLimits(max_key_length=1))
    accepted(('{"' + "k" * 256 + '":1}').encode(), JsonLimits())
    assert rejected(('{"' + "k" * 257 + '":1}').encode(), JsonLimits())[0] == "max_key_length"


def test_max_bytes_exact():
    doc = b'{"a": [1, 2, 3], "b": "xyz"}'
    n = len(doc)
    accepted(doc, JsonLimits(max_bytes=n))
    accepted(doc + b"  ", JsonLimits(max_bytes=n + 2))
    assert rejected(doc, JsonLimits(max_bytes=n - 1)) == ("max_bytes", n - 1)
    assert rejected(doc + b" ", JsonLimits(max_bytes=n)) == ("max_bytes", n)
    assert rejected(doc, JsonLimits(max_bytes=0)) == ("max_bytes", 0)
    # A violation before byte max_bytes wins, however the input is split.
    assert rejected(b"[[[[]]]]", JsonLimits(max_depth=2, max_bytes=4)) == ("max_depth", 2)
    assert rejected(b"[[[[]]]]", JsonLimits(max_depth=3, max_bytes=3)) == ("max_bytes", 3)
    s = JsonScanner(JsonLimits(max_bytes=4))
    s.feed(b"[1,")
    with pytest.raises(PayloadRejected) as e:
        s.feed(b"2]")
    assert (e.value.limit, e.value.offset) == ("max_bytes", 4)
    assert s.bytes_seen == 5


def test_first_violation_in_document_order():
    lim = JsonLimits(max_depth=2, max_string_length=2, max_key_length=2, max_array_elements=2,
                     max_object_entries=2, max_bytes=None)
    cases = {
        b'["abc",[[1]]]': ("max_string_length", 4),
        b'[[[1]],"abc"]': ("max_depth", 2),
        b'{"abc":1,"abc":2}': ("max_key_length", 4),
        b'{"ab":1,"ab":[[[]]]}': ("duplicate_key", 11),
        b'{"a":1,"b":2,"abc":3}': ("max_object_entries", 13),
        b'[1,2,[[]]]': ("max_array_elements", 5),
        b'[1,2,x]': ("malformed", 5),  # not an element: the grammar decides first
        b'{"a":1,"b":2,x}': ("malformed", 13),
        b'["ab\\ud800"]': ("max_string_length", 4),  # the surrogate is the 3rd code point
        b'["a\\ud800"]': ("malformed", 9),
    }
    for data, want in cases.items():
        assert rejected(data, lim) == want, data
        try:
            tree = parse(data)
        except ValueError:
            continue
        assert first_violation(tree, lim) == want[0], data


# ---------------------------------------------------------------------------------------------
# Duplicate keys: compared decoded, per object, across growth of the key table
# ---------------------------------------------------------------------------------------------

DUPLICATES = [
    b'{"a":1,"a":2}',
    b'{"a":1,"\\u0061":2}',
    b'{"\\u00e9":1,"\xc3\xa9":2}',
    b'{"\\ud834\\udd1e":1,"\xf0\x9d\x84\x9e":2}',
    b'{"\\/":1,"/":2}',
    b'{"\\u0000":1,"\\u0000":2}',
    b'{"":1,"":2}',
    b'{"a":{"b":1},"c":[{"d":1,"d":2}]}',
    b'[{"x":1},{"y":1,"y":1}]',
]
NOT_DUPLICATES = [
    b'{"a":1,"A":2}',
    b'{"\\u0000":1,"\\u0000\\u0000":2,"":3}',
    b'{"a\\u0000":1,"a":2}',
    b'{"a":{"a":{"a":1}},"b":{"a":2}}',
    b'{"x":{"k1":1,"k2":2},"k1":1,"k2":2}',
    b'[{"a":1},{"a":1}]',
    b'{"e\xcc\x81":1,"\xc3\xa9":2}',  # no Unicode normalization: NFD != NFC
]


@pytest.mark.parametrize("data", DUPLICATES)
def test_duplicates(data: bytes):
    v = rejected(data, JsonLimits())
    assert v[0] == "duplicate_key"
    assert data[v[1]] == ord('"')  # at the duplicate's closing quote
    assert oracle(data, JsonLimits()) == "duplicate_key"


@pytest.mark.parametrize("data", NOT_DUPLICATES)
def test_not_duplicates(data: bytes):
    accepted(data, JsonLimits())


@pytest.mark.parametrize("n", [2, 8, 9, 16, 17, 33, 64, 65, 200, 1000])
def test_duplicate_found_in_large_objects(n: int):
    keys = [f"key-{i}" for i in range(n)]
    accepted(("{" + ",".join(f'"{k}":0' for k in keys) + "}").encode(), JsonLimits())
    for dup_of in {0, n // 2, n - 1}:
        body = ",".join(f'"{k}":0' for k in keys) + f',"{keys[dup_of]}":1'
        data = ("{" + body + "}").encode()
        assert verdict(data, JsonLimits(max_object_entries=None)) == (
            "duplicate_key", len(data) - 4)
    # Interleaved nested objects do not disturb the outer object's keys.
    inner = _obj(20, "k")
    data = ("{" + ",".join(f'"{k}":{inner}' for k in keys) + f',"{keys[-1]}":1' + "}").encode()
    assert verdict(data, JsonLimits(max_object_entries=None, max_bytes=None)) == (
        "duplicate_key", len(data) - 4)


def test_many_distinct_keys_unlimited():
    n = 100_000
    data = ("{" + ",".join(f'"{i}":{i}' for i in range(n)) + "}").encode()
    assert verdict(data, UNLIMITED) is None
    assert verdict(data[:-1] + b',"99999":0}', UNLIMITED) == ("duplicate_key", len(data) + 6)


def test_many_duplicate_keys():
    data = ("{" + ",".join(['"a":1'] * 100_000) + "}").encode()
    assert verdict(data, UNLIMITED) == ("duplicate_key", 9)


# ---------------------------------------------------------------------------------------------
# Hostile inputs
# ---------------------------------------------------------------------------------------------


def test_megabyte_of_brackets_fails_fast_in_bounded_memory():
    data = b"[" * (1 << 20)
    t0 = time.perf_counter()
    assert verdict(data, JsonLimits(max_depth=20)) == ("max_depth", 20)
    assert time.perf_counter() - t0 < 2  # generous: it reads 21 bytes
    # With a large limit the stack is O(max_depth), not O(input).
    tracemalloc.start()
    try:
        s = JsonScanner(JsonLimits(max_depth=10_000, max_bytes=None))
        with pytest.raises(PayloadRejected) as e:
            s.feed(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (e.value.limit, e.value.offset) == ("max_depth", 10_000)
    assert peak < 2 * 10_001 * 64 + 64 * 1024  # one small frame per level (x2: realloc)


def test_deep_objects():
    data = b'{"a":' * 100_000
    assert verdict(data, JsonLimits()) == ("max_depth", 100)
    assert verdict(data, JsonLimits(max_depth=None, max_bytes=None)) == ("malformed", len(data))


@pytest.mark.parametrize(
    "data",
    [b"1e999999", b"-1E-999999", b"[" + b"9" * 100_000 + b"]", b"0." + b"0" * 100_000 + b"1",
     b"1" * 1_000_000, b"[" + b"1e" + b"9" * 200_000 + b"]"],
    ids=["1e999999", "-1E-999999", "100k-digits", "100k-fraction", "1M-digits", "200k-exponent"],
)
def test_huge_numbers_accepted_linear(data: bytes):
    lim = JsonLimits(max_bytes=None)
    t0 = time.perf_counter()
    assert verdict(data, lim) is None
    assert time.perf_counter() - t0 < 2  # O(n): about a millisecond per megabyte
    assert verdict(data, lim, split(data, 2, 6)) is None


def test_nul_bytes_and_control_characters():
    for data in (b'"\x00"', b'{"\x00":1}', b"\x00[]", b"[]\x00", b"[1,\x00 2]"):
        assert rejected(data)[0] == "malformed"
    for c in range(0x20):
        assert rejected(b'"' + bytes([c]) + b'"')[0] == "malformed"
        assert verdict(json.dumps(chr(c)).encode()) is None  # escaped, fine


def test_invalid_escapes():
    for esc in (b"a", b"x", b"U", b"0", b"'", b"v", b"\xc3\xa9", b" ", b"\x00", b"u123",
                b"u12G4", b"uD83D\\u", b"uD83D\\uDE0"):
        assert rejected(b'"\\' + esc + b'"')[0] == "malformed", esc


# ---------------------------------------------------------------------------------------------
# The property: oracle agreement, split invariance (hypothesis)
# ---------------------------------------------------------------------------------------------

# .map(str): otherwise hypothesis folds both into one character set and the few samples vanish.
_CHARS = st.one_of(
    st.sampled_from(["a", "\u00e9", "\u4e2d", "\U0001d11e", "\x00", "\n", '"', "\\", "/",
                     "\ud800", "\udc00", "\ufeff", "\u2028"]),
    st.characters(codec="utf-8").map(str),
)
_KEYS = st.one_of(st.text(alphabet="ab\u00e9\U0001d11e", max_size=3), st.text(_CHARS, max_size=5))
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(_CHARS, max_size=8),
)
TREES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.lists(st.tuples(_KEYS, children), max_size=5).map(Obj),
    ),
    max_leaves=25,
)
_WS = st.sampled_from(["", "", "", " ", "\n", "\t", "\r\n  ", "   "])


def _plain(tree):
    """Obj -> dict (duplicates collapse) for json.dumps."""
    if isinstance(tree, Obj):
        return {k: _plain(v) for k, v in tree}
    if isinstance(tree, list):
        return [_plain(v) for v in tree]
    return tree


def dump(tree, rnd: random.Random, ensure_ascii: bool, esc_rate: float) -> str:
    """Serialize with random whitespace and random \\u escapes; keeps duplicate keys."""

    def ws() -> str:
        return rnd.choice(["", "", "", " ", "\n", "\t", "\r\n  "])

    def string(s: str) -> str:
        out = []
        for ch in s:
            if rnd.random() < esc_rate:
                b = ch.encode("utf-16-be", "surrogatepass")
                out.extend(f"\\u{b[i:i + 2].hex()}" for i in range(0, len(b), 2))
            else:
                out.append(json.dumps(ch, ensure_ascii=ensure_ascii)[1:-1])
        return '"' + "".join(out) + '"'

    def value(v) -> str:
        if isinstance(v, Obj):
            items = [ws() + string(k) + ws() + ":" + ws() + value(x) + ws() for k, x in v]
            return "{" + ",".join(items) + ws() + "}"
        if isinstance(v, list):
            return "[" + ",".join(ws() + value(x) + ws() for x in v) + ws() + "]"
        if isinstance(v, str):
            return string(v)
        return json.dumps(v)

    return ws() + value(tree) + ws()


@st.composite
def documents(draw) -> bytes:
    tree = draw(TREES)
    if draw(st.booleans()):
        text = json.dumps(
            _plain(tree),
            ensure_ascii=draw(st.booleans()),
            indent=draw(st.sampled_from([None, 0, 1, 2, "\t"])),
            separators=draw(st.sampled_from([None, (",", ":"), (", ", ": "), (" ,", " : ")])),
        )
        text = draw(_WS) + text + draw(_WS)
    else:
        rnd = random.Random(draw(st.integers(0, 2**32)))
        text = dump(tree, rnd, draw(st.booleans()), draw(st.sampled_from([0.0, 0.1, 0.5, 1.0])))
    return text.encode("utf-8", "surrogatepass")


_EDIT_BYTES = st.sampled_from(list(b'{}[]",:\\u0aeE+-.tfn \t\n') + [0, 0x80, 0xC3, 0xED, 0xF4, 0xFF])


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(documents()))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
        i = draw(st.integers(0, len(data)))
        if op == "insert":
            data[i:i] = bytes([draw(_EDIT_BYTES)])
        elif op == "delete" and i < len(data):
            del data[i]
        elif op == "replace" and i < len(data):
            data[i] = draw(_EDIT_BYTES)
        elif op == "truncate":
            del data[i:]
    return bytes(data)


_LIMIT = st.one_of(st.none(), st.integers(0, 6))
LIMITS = st.builds(JsonLimits, _LIMIT, _LIMIT, _LIMIT, _LIMIT, _LIMIT,
                   st.one_of(st.none(), st.integers(0, 300)))


def _property(data: bytes, limits: JsonLimits, cuts: list[int]) -> None:
    got = verdict(data, limits)
    check_verdict(data, limits, got)
    assert verdict(data, limits, split(data, 1, 0)) == got
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert verdict(data, limits, chunks) == got
    if got is not None and got[1] < len(data):
        # Raised as soon as certain, not before: the prefix up to the offset feeds without error.
        s = JsonScanner(limits)
        s.feed(data[: got[1]])
        with pytest.raises(PayloadRejected) as e:
            s.feed(data[got[1] : got[1] + 1])
        assert (e.value.limit, e.value.offset) == got


_CUTS = st.lists(st.integers(0, 10_000), max_size=6)
_SETTINGS = settings(max_examples=400, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_SETTINGS
@given(documents(), LIMITS, _CUTS)
@example(b'{"a":1,"\\u0061":2}', JsonLimits(), [3])
@example('["\U0001d11e\\ud834\\udd1e"]'.encode(), JsonLimits(max_string_length=1), [3, 4])
def test_documents_match_oracle(data: bytes, limits: JsonLimits, cuts: list[int]):
    _property(data, limits, cuts)


@_SETTINGS
@given(documents(), _CUTS)
def test_documents_unlimited_match_json(data: bytes, cuts: list[int]):
    """Without limits: accepted iff strict json.loads accepts (and no duplicate / lone surrogate)."""
    _property(data, UNLIMITED, cuts)


@_SETTINGS
@given(mutated(), LIMITS, _CUTS)
def test_mutations_match_oracle(data: bytes, limits: JsonLimits, cuts: list[int]):
    _property(data, limits, cuts)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), _CUTS)
def test_random_bytes_match_oracle(data: bytes, cuts: list[int]):
    _property(data, UNLIMITED, cuts)


# ---------------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------------


def test_limits_api():
    lim = JsonLimits()
    assert (lim.max_depth, lim.max_string_length, lim.max_key_length, lim.max_array_elements,
            lim.max_object_entries, lim.max_bytes) == (20, 10_000, 256, 1000, 1000, 1 << 20)
    assert lim == JsonLimits(20, 10_000, 256, 1000, 1000, 1 << 20)
    assert hash(lim) == hash(JsonLimits())
    assert JsonLimits(max_depth=None).max_depth is None
    assert "max_depth=20" in repr(lim)
    assert JsonLimits.unlimited() == JsonLimits(None, None, None, None, None, None)
    with pytest.raises(ValueError, match="max_depth"):
        JsonLimits(max_depth=-1)
    with pytest.raises(TypeError, match="max_bytes"):
        JsonLimits(max_bytes=True)
    with pytest.raises(TypeError):
        JsonLimits(max_bytes=1.5)
    with pytest.raises(AttributeError):
        lim.max_depth = 3
    assert set(LIMIT_NAMES) == {"malformed", "max_depth", "max_string_length", "max_key_length",
                                "max_array_elements", "max_object_entries", "max_bytes",
                                "duplicate_key"}


def test_scanner_api():
    s = JsonScanner()
    assert s.limits == JsonLimits()
    s.feed(bytearray(b"[1,"))
    s.feed(memoryview(b"xx2]")[2:])
    s.feed(b"")
    s.finish()
    s.finish()  # idempotent
    assert s.bytes_seen == 5
    with pytest.raises(RuntimeError):
        s.feed(b" ")
    s.reset()
    assert (s.bytes_seen, s.max_depth_seen) == (0, 0)
    s.feed(b'{"a":1}')
    s.finish()
    with pytest.raises(TypeError):
        JsonScanner().feed("[]")
    with pytest.raises(BufferError):
        JsonScanner().feed(memoryview(b"[1,2]")[::2])
    scan_json(b"[]")
    scan_json(bytearray(b"{}"), JsonLimits(max_depth=1))
    with pytest.raises(PayloadRejected) as e:
        scan_json(b"[[]]", JsonLimits(max_depth=1))
    err = e.value
    assert (err.limit, err.offset, err.status) == ("max_depth", 1, 400)
    assert "[" not in err.detail  # safe detail: never the payload
    assert "max_depth" in err.log_detail


def test_reset_after_failure_and_reuse():
    s = JsonScanner(JsonLimits(max_depth=1))
    with pytest.raises(PayloadRejected):
        s.feed(b"[[")
    s.reset()
    s.feed(b'[{"k":1}]'[:1])
    s.feed(b"]")
    s.finish()

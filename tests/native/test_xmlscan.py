"""Tests for fastgate._native.xmlscan: lxml as the well-formedness oracle, a tree walker for limits.

Invariants checked: every input gives the same (limit, offset) fed whole, one byte at a time and
in random splits; on DTD-free input within limits we accept exactly what lxml accepts (read as
`xml_corpus.lxml_accepts`), except for the documented quirks; with limits, the first limit hit is
the one a plain walk over the lxml tree finds first, at exact boundaries.
"""

from __future__ import annotations

import random
import tracemalloc
import zlib

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from fastgate._native import xmlscan
from fastgate._native.xmlscan import XmlLimits, XmlScanner, scan_xml
from fastgate.errors import PayloadRejected
from tests.fuzz.fuzz_xmlscan import LXML_MAX_DEPTH, QUIRKS, lxml_accepts, quirk, violations

from .xml_corpus import CASES, UNLIMITED

UNLIMITED_LIMITS = XmlLimits(**UNLIMITED)
# What the oracle comparisons run with: no limits but libxml2's own depth cap.
ORACLE_LIMITS = XmlLimits(**dict(UNLIMITED, max_depth=LXML_MAX_DEPTH))

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------------------------------------
# Running the scanner
# ---------------------------------------------------------------------------------------------


def _run(chunks, limits: XmlLimits) -> tuple[str, int] | None:
    s = XmlScanner(limits)
    try:
        for chunk in chunks:
            s.feed(chunk)
        s.finish()
    except PayloadRejected as e:
        # The scanner stays failed, with the same answer.
        with pytest.raises(PayloadRejected) as again:
            s.finish()
        assert (again.value.limit, again.value.offset) == (e.limit, e.offset)
        return e.limit, e.offset
    return None


def _random_splits(data: bytes, rnd: random.Random) -> list[bytes]:
    cuts = sorted(rnd.sample(range(len(data) + 1), min(len(data) + 1, rnd.randint(1, 8))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def verdict(data: bytes, limits: XmlLimits = UNLIMITED_LIMITS, *, seed: int = 0):
    """(limit, offset) or None; asserts every way of feeding the bytes agrees."""
    whole = _run([data], limits)
    rnd = random.Random(seed)
    others = {
        "bytewise": [data[k : k + 1] for k in range(len(data))],
        "random": _random_splits(data, rnd),
        "random2": _random_splits(data, rnd),
        "with_empty": [b"", *(_random_splits(data, rnd)), b""],
        "bytearray": [bytearray(data)],
        "memoryview": [memoryview(data)],
    }
    for how, chunks in others.items():
        assert _run(chunks, limits) == whole, how
    return whole


def limit_of(data: bytes, limits: XmlLimits = UNLIMITED_LIMITS, *, seed: int = 0):
    v = verdict(data, limits, seed=seed)
    return None if v is None else v[0]


# ---------------------------------------------------------------------------------------------
# The limits walker: a plain walk over the lxml tree, in document order
# ---------------------------------------------------------------------------------------------


def walker(data: bytes, limits: XmlLimits) -> str | None:
    """The first limit the lxml tree violates in document order (see fuzz_xmlscan.violations)."""
    hits = violations(data, limits)
    return hits[0] if hits else None


# ---------------------------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus(case):
    got = verdict(case.data, XmlLimits(**case.limits), seed=zlib.crc32(case.name.encode()))
    assert (None if got is None else got[0]) == case.expect
    if case.offset is not None:
        assert got is not None and got[1] == case.offset
    if len(case.data) > 3_000_000:
        return
    ours_ok = got is None or got[0] not in ("malformed", "allow_dtd")
    lxml_ok = lxml_accepts(case.data)
    if case.lxml == "same":
        assert ours_ok == lxml_ok
    else:
        # A documented difference must be a real one (or, for DTDs, simply not comparable).
        assert case.lxml in QUIRKS
        if case.lxml in ("encoding", "utf16"):
            assert lxml_ok and not ours_ok
            assert quirk(case.data, got[0], lxml_ok) == case.lxml
        elif case.lxml == "depth256":
            assert not lxml_ok


def test_corpus_names_unique():
    assert len({c.name for c in CASES}) == len(CASES)


# ---------------------------------------------------------------------------------------------
# Exact limit boundaries (lengths in characters, offsets in bytes)
# ---------------------------------------------------------------------------------------------


def _limits(**kw) -> XmlLimits:
    return XmlLimits(**dict(UNLIMITED, **kw))


def test_max_depth_boundary():
    doc = b"<a>" * 7 + b"</a>" * 7
    assert verdict(doc, _limits(max_depth=7)) is None
    assert verdict(doc, _limits(max_depth=6)) == ("max_depth", 3 * 6 + 1)
    assert verdict(b"<a/>", _limits(max_depth=0)) == ("max_depth", 1)
    assert walker(doc, _limits(max_depth=6)) == "max_depth"


def test_max_depth_counts_open_elements_only():
    doc = b"<r>" + b"<a><b/></a>" * 3 + b"</r>"
    assert verdict(doc, _limits(max_depth=3)) is None
    assert verdict(doc, _limits(max_depth=2)) == ("max_depth", 7)


def test_max_elements_boundary():
    doc = b"<r>" + b"<c/>" * 9 + b"<!--x--><?p?></r>"
    assert verdict(doc, _limits(max_elements=10)) is None
    assert verdict(doc, _limits(max_elements=9)) == ("max_elements", 3 + 8 * 4 + 1)


def test_max_children_boundary():
    doc = b"<r><c><g/><g/><g/></c><c/><c>t</c></r>"
    assert verdict(doc, _limits(max_children=3)) is None
    assert verdict(doc, _limits(max_children=2)) == ("max_children", doc.index(b"g/></c>"))
    assert verdict(doc, _limits(max_children=0)) == ("max_children", 4)


def test_max_attributes_boundary_counts_namespace_declarations():
    doc = b"<a xmlns='urn:d' xmlns:p='urn:p' p:x='1' y='2'/>"
    assert verdict(doc, _limits(max_attributes=4)) is None
    assert verdict(doc, _limits(max_attributes=3)) == ("max_attributes", doc.index(b"y="))
    assert verdict(doc, _limits(max_attributes=0)) == ("max_attributes", 3)
    assert walker(doc, _limits(max_attributes=3)) == "max_attributes"


@pytest.mark.parametrize(
    "value, chars",
    [
        (b"abc", 3),
        (b"&lt;&#65;&#x1F600;&amp;", 4),  # references are one character each
        ("é日\U0001f600".encode(), 3),  # characters, not bytes
        (b"a\r\nb\rc\nd\te", 9),  # CR LF is one character (normalized to one space)
        (b"&#13;&#10;", 2),  # references are not folded
        (b"", 0),
    ],
)
def test_max_attribute_length_boundary(value, chars):
    doc = b"<a b='" + value + b"'/>"
    assert len(etree.fromstring(doc).get("b")) == chars
    assert verdict(doc, _limits(max_attribute_length=chars)) is None
    if chars:
        got = verdict(doc, _limits(max_attribute_length=chars - 1))
        assert got[0] == "max_attribute_length"
        assert got[1] == len(doc) - 4  # the last character's last byte: the end of the value


def test_max_attribute_length_applies_to_namespace_declarations():
    doc = b"<a xmlns:p='urn:abc'/>"
    assert verdict(doc, _limits(max_attribute_length=7)) is None
    assert verdict(doc, _limits(max_attribute_length=6)) == ("max_attribute_length", 18)


@pytest.mark.parametrize(
    "body, chars",
    [
        (b"hello", 5),
        (b"a&amp;b&#x1F600;", 4),
        ("é日\U0001f600".encode(), 3),
        (b"x\r\ny\rz", 5),
        (b"a<![CDATA[<b>\r\n]]>c", 6),  # CDATA is part of the text node
        (b"]]<![CDATA[]]]]>>", 5),
        (b"  \n  ", 5),  # whitespace-only text counts
    ],
)
def test_max_text_length_boundary(body, chars):
    doc = b"<a>" + body + b"</a>"
    assert len(etree.fromstring(doc).text) == chars
    assert verdict(doc, _limits(max_text_length=chars)) is None
    got = verdict(doc, _limits(max_text_length=chars - 1))
    assert got[0] == "max_text_length"


def test_max_text_length_offset_and_nodes():
    # Tags, comments and PIs end a text node; a CDATA section does not.
    doc = b"<a>xxx<b/>xxx<!--c-->xxx<?p?>xxx</a>"
    assert verdict(doc, _limits(max_text_length=3)) is None
    doc = b"<a>xx<![CDATA[xx]]>xx</a>"
    assert verdict(doc, _limits(max_text_length=5)) == ("max_text_length", 20)
    assert verdict(b"<a>abcdef</a>", _limits(max_text_length=4)) == ("max_text_length", 7)
    # Pending ']' in a CDATA section count once they are known to be text.
    assert verdict(b"<a><![CDATA[ab]]></a>", _limits(max_text_length=2)) is None
    assert verdict(b"<a><![CDATA[ab]]x]]></a>", _limits(max_text_length=3)) == (
        "max_text_length",
        16,
    )


def test_max_text_length_ignores_misc_outside_root():
    assert verdict(b"  \n  <a/>  \n  ", _limits(max_text_length=0)) is None


def test_max_bytes_boundary():
    doc = b"<a>hello</a>"
    assert verdict(doc, _limits(max_bytes=len(doc))) is None
    assert verdict(doc, _limits(max_bytes=len(doc) - 1)) == ("max_bytes", len(doc) - 1)
    assert verdict(doc, _limits(max_bytes=0)) == ("max_bytes", 0)
    # An earlier violation wins over max_bytes.
    assert verdict(b"<a>&bad;</a>", _limits(max_bytes=6)) == ("malformed", 4)


@given(st.data())
@SETTINGS
def test_max_bytes_property(data):
    doc = data.draw(documents()).encode()
    limit = data.draw(st.integers(0, len(doc) + 2))
    ours = verdict(doc, UNLIMITED_LIMITS)
    got = verdict(doc, _limits(max_bytes=limit))
    if ours is not None and ours[1] < min(limit, len(doc)):
        assert got == ours  # a violation in the bytes we were allowed to see
    elif len(doc) > limit:
        assert got == ("max_bytes", limit)
    else:
        assert got == ours


# ---------------------------------------------------------------------------------------------
# Generated documents: hypothesis strategies
# ---------------------------------------------------------------------------------------------

NAME_START = "abxyzAB_" + "éßΩжあ日" + "\U00010400"
NAME_CHAR = NAME_START + "09-." + "\u00b7\u0300\u203f"
PREFIXES = ["p", "q", "ns1", "é"]
URIS = ["urn:a", "urn:b", "http://example.com/ns", "u", "http://x/y?z#f", "urn:a:b%20c"]

ncnames = st.builds(lambda a, b: a + b, st.sampled_from(NAME_START), st.text(NAME_CHAR, max_size=5))
# Mostly legal characters; illegal ones (C0 controls, U+FFFE) come now and then.
chars = st.one_of(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    st.sampled_from("\t\n\r \u00e9\u65e5\u0085\U0001f600\ufffd"),
    st.characters(blacklist_categories=("Cs", "Cc")),
)
raw_text = st.text(chars, max_size=12)


def _escape(s: str, quote: str = "") -> str:
    s = s.replace("&", "&amp;").replace("<", "&lt;")
    if quote:
        s = s.replace(quote, "&quot;" if quote == '"' else "&apos;")
    return s


def _charref(cp: int, hexa: bool) -> str:
    return f"&#x{cp:X};" if hexa else f"&#{cp};"


legal = st.one_of(
    st.sampled_from([0x9, 0xA, 0xD, 0x20, 0x41, 0x3C, 0xE9, 0xD7FF, 0xE000, 0xFFFD, 0x10FFFF]),
    st.integers(0x20, 0x10FFFF).filter(lambda c: not 0xD800 <= c <= 0xDFFF and c < 0xFFFE),
)
refs = st.one_of(
    st.sampled_from(["&lt;", "&gt;", "&amp;", "&apos;", "&quot;"]),
    st.builds(_charref, legal, st.booleans()),
)
text_pieces = st.one_of(
    raw_text.map(_escape),
    refs,
    st.sampled_from(["\r\n", "\r", "]", "]]", ">", " ", "\n  ", "\x0c", "\ufffe"]),
    raw_text.filter(lambda s: "]]>" not in s).map(lambda s: f"<![CDATA[{s}]]>"),
    raw_text.filter(lambda s: "--" not in s and not s.endswith("-")).map(lambda s: f"<!--{s}-->"),
    st.builds(
        lambda t, d: f"<?{t} {d}?>",
        ncnames.filter(lambda t: t.lower() != "xml"),
        raw_text.filter(lambda s: "?>" not in s),
    ),
)
attr_values = st.lists(
    st.one_of(raw_text.map(lambda t: ("raw", t)), refs.map(lambda r: ("ref", r))), max_size=3
)


@st.composite
def elements(draw, depth: int = 0, scope: frozenset = frozenset()):
    decls = []
    if draw(st.integers(0, 4)) == 0:
        decls.append(("xmlns", draw(st.sampled_from(["", *URIS]))))
    for prefix in draw(st.lists(st.sampled_from(PREFIXES), max_size=2, unique=True)):
        decls.append((f"xmlns:{prefix}", draw(st.sampled_from(URIS))))
    in_scope = sorted(scope | {d[0][6:] for d in decls if d[0] != "xmlns"})

    def qname():
        local = draw(ncnames)
        if in_scope and draw(st.integers(0, 2)) == 0:
            return f"{draw(st.sampled_from(in_scope))}:{local}"
        if draw(st.integers(0, 40)) == 0:
            return f"zz:{local}"  # now and then an unbound prefix
        return local

    name = qname()
    attrs = []
    seen = {d[0] for d in decls}
    for _ in range(draw(st.integers(0, 3))):
        an = qname()
        if an in seen:
            continue
        seen.add(an)
        q = draw(st.sampled_from("'\""))
        value = "".join(p if kind == "ref" else _escape(p, q) for kind, p in draw(attr_values))
        attrs.append(f"{an}={q}{value}{q}")
    ws = draw(st.sampled_from([" ", "\n  ", "\t"]))
    head = name + "".join(f'{ws}{n}="{v}"' for n, v in decls) + "".join(ws + a for a in attrs)
    if depth >= 4 or draw(st.integers(0, 3)) == 0:
        return f"<{head}/>"
    content = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            content.append(draw(elements(depth + 1, frozenset(in_scope))))
        else:
            content.append(draw(text_pieces))
    end = draw(st.sampled_from(["", " ", "\n"]))
    return f"<{head}>{''.join(content)}</{name}{end}>"


misc = st.sampled_from(["", " ", "\n", "<!-- c -->", "<?pi data?>", "\r\n<!---->"])


@st.composite
def documents(draw):
    prolog = draw(
        st.sampled_from(
            [
                "",
                "\ufeff",
                '<?xml version="1.0"?>',
                "<?xml version='1.0' encoding='UTF-8'?>\n",
                '\ufeff<?xml version="1.0" encoding="utf-8" standalone="yes" ?>',
                "<?xml version='1.0' encoding='US-ASCII'?>",
            ]
        )
    )
    return prolog + draw(misc) + draw(elements()) + draw(misc)


TOKENS = [
    b"<", b">", b"&", b"]]>", b"--", b"'", b'"', b"/", b":", b"=", b" ", b"\r", b"<!--",
    b"<![CDATA[", b"&#0;", b"&#x41;", b"&lt", b"\xc3", b"\xe2\x82", b"\xff", b"<?xml ",
    b"xmlns:zz='urn:z' ", b"</a>", b"<a>", b"\x00", b"\xef\xbb\xbf",
]  # fmt: skip


@st.composite
def mutated(draw):
    doc = bytearray(draw(documents()).encode())
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(doc)))
        op = draw(st.integers(0, 3))
        if op == 0:
            doc[pos:pos] = draw(st.sampled_from(TOKENS))
        elif op == 1:
            del doc[pos : pos + draw(st.integers(1, 3))]
        elif op == 2 and pos < len(doc):
            doc[pos] = draw(st.integers(0, 255))
        else:
            doc[pos:pos] = doc[pos : pos + draw(st.integers(1, 6))]
    return bytes(doc)


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------


def _agrees_with_lxml(doc: bytes, got) -> None:
    ours = None if got is None else got[0]
    lxml_ok = lxml_accepts(doc)
    if (ours is None) == lxml_ok:
        return
    if ours == "allow_dtd":
        assert b"<!D" in doc
        return
    explained = quirk(doc, ours, lxml_ok)
    assert explained in QUIRKS and explained != "limit", (doc, got, lxml_ok)


@given(documents())
@SETTINGS
@example('<a xmlns:p="urn:a" xmlns:q="urn:a" p:x="" q:x=""/>')
@example('<q:b xmlns:q="urn:a"><a xmlns="u"/><zz:c/></q:b>')
@example("<a>\r\n<![CDATA[]]]]><!---->&#x10FFFF;</a>")
def test_generated_documents_agree_with_lxml(doc):
    data = doc.encode()
    _agrees_with_lxml(data, verdict(data, ORACLE_LIMITS, seed=len(data)))


@given(mutated())
@SETTINGS
def test_mutated_documents_agree_with_lxml(data):
    _agrees_with_lxml(data, verdict(data, ORACLE_LIMITS, seed=len(data)))


LIMIT_RANGES = {
    "max_depth": 6,
    "max_elements": 12,
    "max_attributes": 6,
    "max_attribute_length": 12,
    "max_text_length": 16,
    "max_children": 6,
}


def _maybe(top: int):
    return st.one_of(st.none(), st.none(), st.integers(0, top))  # unlimited 2 times in 3


@given(documents(), st.fixed_dictionaries({k: _maybe(v) for k, v in LIMIT_RANGES.items()}))
@SETTINGS
def test_limits_match_the_tree_walker(doc, kw):
    data = doc.encode()
    assume(lxml_accepts(data))
    limits = XmlLimits(**dict(UNLIMITED, **kw))
    assert limit_of(data, limits, seed=len(data)) == walker(data, limits)


@pytest.mark.parametrize("name", sorted(LIMIT_RANGES))
@given(doc=documents(), value=st.integers(0, 16))
@settings(SETTINGS, max_examples=100)
def test_each_limit_alone_matches_the_tree_walker(name, doc, value):
    data = doc.encode()
    assume(lxml_accepts(data))
    limits = XmlLimits(**dict(UNLIMITED, **{name: value}))
    expected = walker(data, limits)
    assert limit_of(data, limits, seed=value) == expected
    assert expected in (None, name)


@given(st.text(st.sampled_from("aZ09-._~!$&'()*+,;=:@/?#[]% <>\"{}|\\^`é"), min_size=1))
@SETTINGS
@example("http://h:2147483648/")
@example("//[ x ]/")
@example("a%4")
def test_namespace_uri_check_matches_libxml2(uri):
    escaped = uri.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
    doc = f'<a xmlns:p="{escaped}"/>'.encode()
    assert xmlscan._uri_reference_ok(uri.encode()) == lxml_accepts(doc)
    assert (limit_of(doc) is None) == lxml_accepts(doc)


# ---------------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------------


def test_limits_defaults_and_validation():
    lim = XmlLimits()
    assert (lim.max_depth, lim.max_elements, lim.max_attributes) == (30, 10000, 50)
    assert (lim.max_attribute_length, lim.max_text_length, lim.max_children) == (1000, 100000, 1000)
    assert (lim.max_bytes, lim.allow_dtd) == (1 << 20, False)
    assert XmlLimits(max_depth=None).max_depth is None
    assert XmlLimits(max_depth=3) == XmlLimits(max_depth=3)
    assert hash(XmlLimits()) == hash(XmlLimits())
    assert XmlLimits() != XmlLimits(allow_dtd=True)
    assert "max_depth=30" in repr(lim)
    with pytest.raises(ValueError):
        XmlLimits(max_depth=-1)
    with pytest.raises(TypeError):
        XmlLimits(max_depth=1.5)
    with pytest.raises(TypeError):
        XmlLimits(max_depth=True)
    with pytest.raises(TypeError):
        XmlLimits(allow_dtd=1)
    with pytest.raises(TypeError):
        XmlLimits(30)  # keyword-only


def test_default_limits_apply():
    s = XmlScanner()
    assert s.limits == XmlLimits()
    with pytest.raises(PayloadRejected) as e:
        scan_xml(b"<a>" * 31)
    assert (e.value.limit, e.value.offset) == ("max_depth", 91)


def test_error_is_sticky_and_typed():
    s = XmlScanner()
    with pytest.raises(PayloadRejected) as e:
        s.feed(b"<a><!DOCTYPE")
    assert e.value.limit == "allow_dtd" and e.value.status == 400
    assert "not allowed" in e.value.detail and "DOCTYPE" not in e.value.detail
    for call in (lambda: s.feed(b"</a>"), s.finish):
        with pytest.raises(PayloadRejected) as again:
            call()
        assert (again.value.limit, again.value.offset) == ("allow_dtd", 5)


def test_feed_after_finish():
    s = XmlScanner()
    s.feed(b"<a/>")
    s.finish()
    s.finish()  # idempotent
    with pytest.raises(RuntimeError):
        s.feed(b" ")


def test_counters_and_inputs():
    s = XmlScanner()
    s.feed(bytearray(b"<a><b>"))
    s.feed(memoryview(b"xx<c/>"))
    assert (s.bytes_fed, s.depth, s.elements) == (12, 2, 3)
    s.feed(b"</b></a>")
    s.finish()
    assert s.depth == 0
    with pytest.raises(TypeError):
        XmlScanner().feed("<a/>")


def test_memory_stays_bounded_on_a_long_stream():
    # Memory follows the open elements and the current tag, not the document: 10 MB of records.
    record = b"<p:item xmlns:p='urn:x' a='1' b='2'>text &amp; more<!--c--><![CDATA[x]]></p:item>"
    chunk = record * 1000
    s = XmlScanner(_limits())
    s.feed(b"<root>")
    tracemalloc.start()
    try:
        for _ in range(10_000_000 // len(chunk)):
            s.feed(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    s.feed(b"</root>")
    s.finish()
    assert s.elements == 1 + 1000 * (10_000_000 // len(chunk))
    assert peak < 16 * 1024


def test_utf8_split_inside_a_character_is_reported_at_the_right_byte():
    doc = "<é日 a='\U0001f600'>\U0001f600</é日>".encode()
    assert verdict(doc) is None
    bad = doc.replace(b"\x9f\x98\x80<", b"\x9f\x98(<")
    assert verdict(bad) == ("malformed", bad.index(b"("))

"""Atheris target for fastgate._native.xmlscan, and the lxml oracle its tests share.

Invariant checked on every input: the verdict (None or (limit, offset)) is the same fed whole and
in the split chosen by the first input byte; a "malformed" verdict or an acceptance agrees with
lxml (read by `lxml_accepts`) unless `quirk` names a documented difference; a limit verdict names
a limit the lxml tree really violates (`violations`). Any disagreement raises.
Long run (from the repo root): `make fuzz`, or
    .venv/bin/python tests/fuzz/fuzz_xmlscan.py -max_total_time=600 -seed=1 /tmp/xmlcorpus
(an empty or existing corpus directory; seeds are two mode bytes followed by a document).
"""

from __future__ import annotations

import io
import random
import re
import sys

from lxml import etree

from fastgate._native.xmlscan import XmlLimits, XmlScanner
from fastgate.errors import PayloadRejected

# ---------------------------------------------------------------------------------------------
# The oracle
# ---------------------------------------------------------------------------------------------

# libxml2's own depth cap without XML_PARSE_HUGE: oracle comparisons use it as max_depth.
LXML_MAX_DEPTH = 256

# Documented differences from lxml (see xmlscan.pyx and the "XML scanner" section of
# benchmarks/README.md). Anything else is a bug.
QUIRKS = {
    "dtd": "a DTD is present: we never read it, lxml does (entities, defaults); no comparison",
    "encoding": "we accept only UTF-8 / US-ASCII declarations; lxml converts many charsets",
    "utf16": "we accept only UTF-8 bytes; lxml detects UTF-16/UCS-4 by BOM or by '<?' bytes",
    "depth256": "lxml without huge_tree refuses depth > 256; we enforce only max_depth",
    "limit": "one of our limits was hit: lxml has no such limit",
}


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def lxml_accepts(data: bytes) -> bool:
    """lxml 6 / libxml2 2.14 with the gateway's safe parser options accepts `data`.

    libxml2 reports namespace errors (unbound prefix, bad namespace URI, duplicate expanded
    attribute) as non-fatal ERRORs, and lxml raises only when the *last* message is an error, so
    a later warning (a relative namespace URI, an "xml-" PI target, version 1.1) hides them. We
    read any ERROR-level message as rejection, which is what libxml2 means by it.
    """
    parser = _parser()
    try:
        etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return False
    return not any(e.level >= 2 for e in parser.error_log)


_OURS = {"utf-8", "utf8", "us-ascii", "ascii"}
_DECL_ENCODING = re.compile(
    rb"\A(?:\xef\xbb\xbf)?<\?xml[ \t\r\n][^>]*?encoding[ \t\r\n]*=[ \t\r\n]*"
    rb"[\"']([A-Za-z][A-Za-z0-9._-]*)[\"']"
)


def quirk(data: bytes, ours: str | None, lxml_ok: bool) -> str | None:
    """Why our verdict (None or a limit name) may differ from lxml's here; None: it may not."""
    if ours is not None and ours != "malformed":
        return "dtd" if ours == "allow_dtd" else "limit"
    if ours is None or not lxml_ok:
        return None  # the same verdict, or we accept what libxml2 refuses: never a quirk
    # lxml accepts, we refuse as malformed
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:4]:
        return "utf16"  # UTF-16 / UCS-4, by BOM or by autodetection of '<?'
    if data[:4] == b"\x4c\x6f\xa7\x94":
        return "encoding"  # EBCDIC autodetection
    m = _DECL_ENCODING.match(data)
    if m and m.group(1).decode().lower() not in _OURS:
        return "encoding"
    return None


def violations(data: bytes, limits: XmlLimits) -> list[str]:
    """The limits a DTD-free document lxml accepts violates, in document order (repeats kept).

    A plain walk over the lxml tree. At a start tag: depth, element count, the parent's child
    count; then its attributes, namespace declarations first (lxml does not keep their order
    among the other attributes: the generated documents write them first), count then value
    length; then its text, its children, each followed by its tail. Lengths are len() of lxml's
    strings: characters after references, CR LF folding and attribute-value normalization.
    max_bytes is not the walker's business. Blind spot: libxml2 keeps no trace of an
    `xmlns:xml="..."` declaration (legal, and a no-op), which we count as the attribute it is.
    """
    decls: dict = {}
    pending: list = []
    root = None
    for event, obj in etree.iterparse(
        io.BytesIO(data),
        events=("start-ns", "start"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    ):
        if event == "start-ns":
            pending.append(obj)
        else:
            decls[obj] = pending
            pending = []
            if root is None:
                root = obj

    hits: list[str] = []
    elements = 0

    def check(value: int, limit: int | None, name: str) -> None:
        if limit is not None and value > limit:
            hits.append(name)

    stack = [(root, 1, None)]
    while stack:
        item, depth, parent_children = stack.pop()
        if isinstance(item, str):  # a tail, queued after its node
            check(len(item), limits.max_text_length, "max_text_length")
            continue
        el = item
        check(depth, limits.max_depth, "max_depth")
        elements += 1
        check(elements, limits.max_elements, "max_elements")
        if parent_children is not None:
            parent_children[0] += 1
            check(parent_children[0], limits.max_children, "max_children")
        values = [uri for _prefix, uri in decls[el]] + list(el.attrib.values())
        for count, value in enumerate(values, 1):
            check(count, limits.max_attributes, "max_attributes")
            check(len(value), limits.max_attribute_length, "max_attribute_length")
        if el.text is not None:
            check(len(el.text), limits.max_text_length, "max_text_length")
        children = [0]
        for child in reversed(el):
            if child.tail is not None:
                stack.append((child.tail, 0, None))
            if isinstance(child.tag, str):
                stack.append((child, depth + 1, children))
    return hits


# ---------------------------------------------------------------------------------------------
# The fuzz property
# ---------------------------------------------------------------------------------------------


def run(chunks, limits: XmlLimits):
    s = XmlScanner(limits)
    try:
        for chunk in chunks:
            s.feed(chunk)
        s.finish()
    except PayloadRejected as e:
        return e.limit, e.offset
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


_NONE = dict(
    max_depth=LXML_MAX_DEPTH,
    max_elements=None,
    max_attributes=None,
    max_attribute_length=None,
    max_text_length=None,
    max_children=None,
    max_bytes=None,
)
PRESETS = (
    XmlLimits(**_NONE),
    XmlLimits(**dict(_NONE, allow_dtd=True)),
    XmlLimits(max_depth=3, max_elements=6, max_attributes=2, max_attribute_length=4,
              max_text_length=5, max_children=3, max_bytes=200),
    XmlLimits(max_depth=1, max_elements=1, max_attributes=1, max_attribute_length=1,
              max_text_length=1, max_children=1, max_bytes=None),
    XmlLimits(max_depth=0, max_elements=0, max_attributes=0, max_attribute_length=0,
              max_text_length=0, max_children=0, max_bytes=16),
    XmlLimits(),
)  # fmt: skip


def check_verdict(doc: bytes, limits: XmlLimits, got) -> None:
    """Raise unless the verdict `got` on `doc` is what lxml and the walker allow."""
    ours = None if got is None else got[0]
    if ours == "allow_dtd":
        if limits.allow_dtd or b"<!D" not in doc:
            raise AssertionError(f"allow_dtd without a DOCTYPE: {got} on {doc!r}")
        return
    if ours == "max_bytes":
        if limits.max_bytes is None or len(doc) <= limits.max_bytes or got[1] != limits.max_bytes:
            raise AssertionError(f"bad max_bytes verdict {got} on {len(doc)} bytes")
        return
    if limits.allow_dtd and b"<!DOCTYPE" in doc:
        return  # the DTD is skipped by us and read by lxml: no oracle
    lxml_ok = lxml_accepts(doc)
    if ours in (None, "malformed"):
        if (ours is None) != lxml_ok and quirk(doc, ours, lxml_ok) is None:
            raise AssertionError(f"lxml {'accepts' if lxml_ok else 'refuses'}: {got} on {doc!r}")
        if ours is None and lxml_ok and violations(doc, limits):
            raise AssertionError(f"accepted over a limit: {violations(doc, limits)} on {doc!r}")
        return
    # A size limit: the document may be malformed further on, but if it is not, the limit must
    # really be exceeded somewhere.
    if ours in ("max_attributes", "max_attribute_length") and b"xmlns:xml" in doc:
        return  # the walker's blind spot (see violations)
    if lxml_ok and ours not in violations(doc, limits):
        raise AssertionError(f"{got} but the tree violates {violations(doc, limits)}: {doc!r}")


_KINDS = {
    None: 0,
    "malformed": 1,
    "max_depth": 2,
    "max_elements": 3,
    "max_attributes": 4,
    "max_attribute_length": 5,
    "max_text_length": 6,
    "max_children": 7,
    "max_bytes": 8,
    "allow_dtd": 9,
}
_STATES = 64  # more than the scanner has


def _tree(lo: int, hi: int, indent: str) -> list[str]:
    if hi - lo == 1:
        return [f"{indent}return {lo}"]
    mid = (lo + hi) // 2
    return [f"{indent}if v < {mid}:", *_tree(lo, mid, indent + "    "), *_tree(mid, hi, indent)]


# _branch(v) takes a different path for every v < 10 * 64: one coverage feature per value.
_generated: dict = {}
exec("def _branch(v):\n" + "\n".join(_tree(0, len(_KINDS) * _STATES, "    ")), _generated)
_branch = _generated["_branch"]


def _signal(doc: bytes, limits: XmlLimits, verdict) -> int:
    """A coverage feature per (verdict kind, state the deciding byte was read in): the scanner
    is C built without -fsanitize=fuzzer, so this is all libFuzzer sees of it."""
    if verdict is None:
        return _branch(0)
    s = XmlScanner(limits)
    try:
        s.feed(doc[: verdict[1]])  # every byte before the deciding one: no verdict yet
    except PayloadRejected as e:
        raise AssertionError(f"{verdict} came late: {e.limit}@{e.offset} on {doc!r}") from e
    return _branch(_KINDS[verdict[0]] * _STATES + s._state)


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
    _signal(doc, limits, whole)
    check_verdict(doc, limits, whole)


def TestOneInput(data: bytes) -> None:  # noqa: N802 (atheris' name)
    check_one(data)


def main() -> None:
    import atheris

    # Coverage of the oracle's Python code guides mutations (the scanner itself is not
    # instrumented: it is C built without -fsanitize=fuzzer).
    g = globals()
    for name in ("check_verdict", "quirk", "_signal", "_branch", "check_one", "split"):
        g[name] = atheris.instrument_func(g[name])
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

"""Gate bytes: the punctuation a rule cannot match without, so a scan can leave out the rules
the scanned bytes cannot satisfy (fastgate/_native/regexscan.pyx, PatternSet "gated" scans).

A clause is a set of GATES bytes of which every match of a rule contains at least one (`;` for
`; ?drop table`, `<=>` for `or 1 ?(?:=|<>|<=>)`). A rule whose clause has no byte in the scanned
buffer cannot match there; a typical JSON body has no `<`, `;`, `|`, `$` or backquote, and the
rules needing them (tags, stacked queries, shell chains) then cost nothing.

Invariant (sound by construction): a clause is only ever derived from what every match must
contain; what the analysis does not understand (a construct outside the subset below, or a
parse error) yields no clause, and a rule without clauses always runs. Patterns are read with
Python's regex parser, which agrees with hyperscan on the subset allowed here; hyperscan-only
syntax whose meaning differs in Python (POSIX classes, \\Q..\\E, inline flags) is refused.
"""

from __future__ import annotations

import re
import warnings

try:  # Python 3.11+
    import re._constants as _c
    import re._parser as _p
except ImportError:  # pragma: no cover
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _p  # type: ignore[no-redef]

__all__ = ["GATES", "clauses", "gate_masks"]

# Sixteen bytes that realistic API bodies (JSON, form fields, prose) rarely contain and attack
# rules often need: tags, operators, statement and shell separators, quotes of one kind, paths.
# Their order is the bit order of PatternSet's presence mask (bit i = GATES[i] present).
GATES = b"<>=;|&$`#/\\()'!*"
_GATE = frozenset(GATES)
_BIT = {b: 1 << i for i, b in enumerate(GATES)}

# Syntax whose meaning differs between Python's parser and hyperscan's (PCRE): refused whole.
_FOREIGN = re.compile(r"\[:|\\[QEpPXRhHvVKGAZzceNo]|\\x\{|\(\?(?!:)|\{,")

_ALL = frozenset(range(256))
_DIGIT = frozenset(b"0123456789")
_WORD = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_SPACE = frozenset(b" \t\n\r\f\v")
_CATEGORY = {
    _c.CATEGORY_DIGIT: _DIGIT, _c.CATEGORY_NOT_DIGIT: _ALL - _DIGIT,
    _c.CATEGORY_WORD: _WORD, _c.CATEGORY_NOT_WORD: _ALL - _WORD,
    _c.CATEGORY_SPACE: _SPACE, _c.CATEGORY_NOT_SPACE: _ALL - _SPACE,
}


class _Unknown(Exception):
    """A construct the analysis does not model: the rule gets no clauses."""


def _fold(chars: set[int] | frozenset[int]) -> frozenset[int]:
    out = set(chars)
    for ch in chars:
        if 0x41 <= ch <= 0x5A:
            out.add(ch + 32)
        elif 0x61 <= ch <= 0x7A:
            out.add(ch - 32)
    return frozenset(out)


def _in(items) -> frozenset[int]:
    chars: set[int] = set()
    negate = False
    for op, av in items:
        if op is _c.NEGATE:
            negate = True
        elif op is _c.LITERAL:
            chars.add(av)
        elif op is _c.RANGE:
            chars.update(range(av[0], av[1] + 1))
        elif op is _c.CATEGORY:
            chars |= _CATEGORY[av]
        else:
            raise _Unknown(op)
    folded = _fold(chars)
    return _ALL - folded if negate else folded


def _best(options: list[frozenset[int]]) -> frozenset[int]:
    """Of a branch's clauses, the one most useful as a gate: made of gate bytes, then smallest."""
    return min(options, key=lambda c: (not c <= _GATE, len(c)))


def _required(seq) -> list[frozenset[int]]:
    """Clauses (any bytes) every match of this parsed sequence satisfies."""
    out: list[frozenset[int]] = []
    for op, av in seq:
        if op is _c.LITERAL:
            out.append(_fold({av}))
        elif op is _c.NOT_LITERAL:
            out.append(_ALL - _fold({av}))
        elif op is _c.IN:
            out.append(_in(av))
        elif op is _c.CATEGORY:
            out.append(_CATEGORY[av])
        elif op is _c.ANY or op is _c.AT:
            pass  # any byte (DOTALL) / zero-width: requires nothing
        elif op is _c.SUBPATTERN:
            out += _required(av[-1])
        elif op is _c.MAX_REPEAT or op is _c.MIN_REPEAT:
            low, _high, item = av
            if low >= 1:
                out += _required(item)
        elif op is _c.BRANCH:
            branches = [_required(b) for b in av[1]]
            if all(branches):  # one branch without a clause: the alternation requires nothing
                out.append(frozenset().union(*(_best(b) for b in branches)))
        else:
            raise _Unknown(op)
    return out


def clauses(pattern: str) -> tuple[frozenset[int], ...]:
    """The gate clauses of one rule (each a set of GATES bytes; a match holds one of each),
    most selective first; () when none is known."""
    if _FOREIGN.search(pattern):
        return ()
    try:
        with warnings.catch_warnings():  # Python's parser warns of PCRE-isms ("nested set")
            warnings.simplefilter("ignore")
            found = _required(_p.parse(pattern))
    except Exception:  # noqa: BLE001 - _Unknown, re.error, RecursionError...: no clause, never a failure
        return ()
    gate = {c for c in found if c and c <= _GATE}
    return tuple(sorted(gate, key=lambda c: (len(c), sorted(c))))


def gate_masks(pattern: str) -> tuple[int, ...]:
    """clauses() as bitmasks over GATES: the rule can match a buffer whose presence mask has a
    bit of every one."""
    masks = []
    for clause in clauses(pattern):
        m = 0
        for b in clause:
            m |= _BIT[b]
        masks.append(m)
    return tuple(masks)

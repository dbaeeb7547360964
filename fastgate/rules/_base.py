"""The rule type shared by fastgate.regex_rules and the rule-set modules of fastgate.rules.

Invariant: a Rule is a plain (id, pattern) pair, exactly what PatternSet takes.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Rule", "kw", "quote_then"]


class Rule(NamedTuple):
    """One scanner rule; a (rule_id, pattern) pair as PatternSet takes it."""

    id: str
    pattern: str


def kw(word: str) -> str:
    """A keyword that may carry one space between any two letters (`union` -> `u ?n ?i ?o ?n`):
    what `UN/**/ION` or `SEL/**/ECT` becomes after normalisation."""
    return " ?".join(word)


def quote_then(quote: str, words: str, ops: str = "") -> str:
    """`{quote} *\\)* *(?:\\b(?:{words})\\b|{ops})` (a quote closing a string, closing parens,
    then a boolean keyword or operator) written out: the quote directly before the keyword, or
    spaces between, or parens. The same matches on any text (`quote` is a class of non-word
    characters, so `\\b` before the keyword always holds there), but hyperscan can anchor this
    form on literals such as `'or` and `" and` instead of running the folded loop from every
    quote: in a JSON body, where every key and string starts with one, it saves about 1 µs per
    10 KiB for sql-tautology alone (benchmarks/README.md)."""
    alts = [rf"{quote}(?:{words})\b", rf"{quote} +(?:{words})\b", rf"{quote} *\)+ *\b(?:{words})\b"]
    if ops:
        alts.append(rf"{quote} *\)* *(?:{ops})")
    return "(?:" + "|".join(alts) + ")"

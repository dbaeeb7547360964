"""The rule type shared by fastgate.regex_rules and the rule-set modules of fastgate.rules.

Invariant: a Rule is a plain (id, pattern) pair, exactly what PatternSet takes.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Rule", "kw"]


class Rule(NamedTuple):
    """One scanner rule; a (rule_id, pattern) pair as PatternSet takes it."""

    id: str
    pattern: str


def kw(word: str) -> str:
    """A keyword that may carry one space between any two letters (`union` -> `u ?n ?i ?o ?n`):
    what `UN/**/ION` or `SEL/**/ECT` becomes after normalisation."""
    return " ?".join(word)

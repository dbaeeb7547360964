"""Named rule sets for the regex scanner: `RULE_SETS[name]` is a list of `Rule(id, pattern)`.

Invariant: every pattern here compiles in hyperscan block and stream mode (no backreferences,
no lookarounds: linear time) and is written against normalised text (see
fastgate/_native/regexscan.pyx): ASCII lowercase, whitespace runs as one space, short SQL
comments as one space, NUL gone, percent/HTML/backslash encodings undone. The real sets (sql,
javascript, ssi, xpath, java_exception, path_traversal, command) live in fastgate/rules/, one
module each, with ids "<set>-<name>"; config/threat-rules.md documents them; `demo` stays small.

Writing a pattern: lowercase literals; ` ` or `\\s` for any run of whitespace; ` *` wherever a
comment could stand (`UNION/**/SELECT` arrives as `union select`, `1/**/OR/**/1` as `1 or 1`); a
keyword that attackers split with a comment (`UN/**/ION` arrives as `un ion`) via `kw()`.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastgate.rules import (
    COMMAND,
    JAVA_EXCEPTION,
    JAVASCRIPT,
    PATH_TRAVERSAL,
    SQL,
    SSI,
    XPATH,
)
from fastgate.rules._base import Rule, kw

__all__ = ["RULE_SETS", "Rule", "for_normalised", "kw", "select_rules"]


_UNION, _ALL, _DISTINCT, _SELECT = kw("union"), kw("all"), kw("distinct"), kw("select")

# A small, low-false-positive demo set: enough to exercise the engine end to end. Each rule
# needs more than a keyword (prose says "select" and "union"; attacks say "union select 1,2").
DEMO: list[Rule] = [
    # UNION [ALL|DISTINCT] SELECT followed by something a column list starts with (or the end).
    Rule(
        "demo-sqli-union",
        rf"\b{_UNION}(?: +(?:{_ALL}|{_DISTINCT}))? *\(* *{_SELECT}\b"
        r" *(?:\d|null\b|@@|\*|['\"(`]|0x|[a-z_][\w.$]* *[,(]|$)",
    ),
    # A quote closing a string, then OR/AND and a comparison: ' or 1=1, " OR "a"="a, ') or (1<2
    Rule(
        "demo-sqli-tautology",
        r"['\"`] *\)* *(?:\b(?:or|and|xor)\b|\|\||&&) *\(* *['\"]?[\w.]+['\"]? *"
        r"(?:=|<>|!=|<=>|<|>|\blike\b|\bis\b)",
    ),
    # A stacked statement that destroys or executes: '; DROP TABLE users --
    Rule(
        "demo-sqli-stacked",
        r"; *(?:(?:drop|truncate|alter) +(?:table|database|schema)\b"
        r"|shutdown\b|exec(?:ute)? +(?:xp|sp)_)",
    ),
    # Time-based blind probes: sleep(5), pg_sleep(5), benchmark(1e7,...), waitfor delay '0:0:5'
    Rule(
        "demo-sqli-time",
        r"\b(?:sleep|pg_sleep|benchmark) *\( *\d|\bwaitfor +delay +['\"]",
    ),
    Rule("demo-xss-script", r"<script\b|</script\b"),
    # An event-handler attribute inside a tag: <img src=x onerror=alert(1)>
    Rule("demo-xss-handler", r"<[a-z][^>]{0,200}\bon[a-z]{3,} *="),
    # A script URL that calls something: javascript:alert(1), vbscript:msgbox`1`
    Rule("demo-xss-js-uri", r"\b(?:java|vb)script *: *[\w.$\[\]'\"]+ *[(`]"),
    Rule("demo-path-traversal", r"(?:\.\.[/\\]){2}|/etc/(?:passwd|shadow)\b"),
]



def for_normalised(pattern: str) -> str:
    """`pattern` with each literal ` *` written ` ?` and each ` +` written ` ` (outside character
    classes; lazy or possessive forms are left alone). Normalised text never holds two spaces in
    a row (stage S collapses every run, comments and decoded spaces included), so both forms
    match the same there; hyperscan scans the bounded form faster (it can expand it into
    literals instead of running a loop: the seven sets scan a 10 KiB JSON body ~15% faster)."""
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            out.append(c)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":  # a leading ']' is a member
                out.append("]")
                i += 1
            continue
        elif (c == " " and i + 1 < n and pattern[i + 1] in "*+"
              and (i + 2 >= n or pattern[i + 2] not in "?+")):
            out.append(" ?" if pattern[i + 1] == "*" else " ")
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _compiled_form(rules: list[Rule]) -> list[Rule]:
    return [Rule(rule.id, for_normalised(rule.pattern)) for rule in rules]


# The sets as the scanner compiles them (for_normalised); fastgate.rules keeps the readable form.
RULE_SETS: dict[str, list[Rule]] = {
    name: _compiled_form(rules)
    for name, rules in {
        "demo": DEMO,
        "sql": SQL,
        "javascript": JAVASCRIPT,
        "ssi": SSI,
        "xpath": XPATH,
        "java_exception": JAVA_EXCEPTION,
        "path_traversal": PATH_TRAVERSAL,
        "command": COMMAND,
    }.items()
}


def select_rules(
    names: Iterable[str] = (), custom: Iterable[tuple[str, str]] = ()
) -> list[Rule]:
    """The rules of the named sets, in the order named, then the custom (id, pattern) pairs.

    Raises ValueError for an unknown set name or a rule id used twice (custom ids keep their own
    names, so they must not collide with a set's)."""
    out: list[Rule] = []
    seen: set[str] = set()
    for name in names:
        try:
            rules = RULE_SETS[name]
        except KeyError:
            known = ", ".join(sorted(RULE_SETS))
            raise ValueError(f"unknown rule set {name!r} (known: {known})") from None
        out.extend(rules)
    out.extend(Rule(rid, pattern) for rid, pattern in custom)
    for rule in out:
        if rule.id in seen:
            raise ValueError(f"rule id {rule.id!r} used twice")
        seen.add(rule.id)
    return out

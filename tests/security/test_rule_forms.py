"""The rule sets as compiled (regex_rules.for_normalised: ` *` -> ` ?`, ` +` -> ` `) match exactly
what the readable forms in fastgate.rules match, on every normalised input: normalised text never
holds two spaces in a row, so the two forms cannot differ there."""

from __future__ import annotations

import hyperscan as hs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fastgate._native.regexscan import KINDS, normalise
from fastgate.regex_rules import DEMO, RULE_SETS, Rule, for_normalised
from fastgate.rules import COMMAND, JAVA_EXCEPTION, JAVASCRIPT, PATH_TRAVERSAL, SQL, SSI, XPATH

READABLE = {"demo": DEMO, "sql": SQL, "javascript": JAVASCRIPT, "ssi": SSI, "xpath": XPATH,
            "java_exception": JAVA_EXCEPTION, "path_traversal": PATH_TRAVERSAL, "command": COMMAND}
FLAGS = hs.HS_FLAG_DOTALL | hs.HS_FLAG_CASELESS  # every match, not only the first per rule


@pytest.mark.parametrize(("pattern", "want"), [
    (r"a *b", r"a ?b"), (r"a +b", r"a b"), (r"a *\( *b", r"a ?\( ?b"),
    (r"[ *]x", r"[ *]x"), (r"[^ +] *", r"[^ +] ?"), (r"[] *] *", r"[] *] ?"),
    (r"\ *", r"\ *"), (r"a *?b", r"a *?b"), (r"a +?b", r"a +?b"), (r"a ++b", r"a ++b"),
    (r"a {2,}", r"a {2,}"), (r"\\ *", r"\\ ?"), (r"x *", r"x ?"),
])
def test_for_normalised_rewrites_only_space_loops(pattern, want):
    assert for_normalised(pattern) == want
    assert for_normalised(want) == want


def test_rule_sets_are_the_readable_rules_rewritten():
    assert set(RULE_SETS) == set(READABLE)
    for name, rules in READABLE.items():
        assert [r.id for r in RULE_SETS[name]] == [r.id for r in rules]
        assert [r.pattern for r in RULE_SETS[name]] == [for_normalised(r.pattern) for r in rules]


def _db(rules):
    db = hs.Database(mode=hs.HS_MODE_BLOCK)
    db.compile(expressions=[r.pattern.encode() for r in rules], ids=list(range(len(rules))),
               flags=FLAGS)
    return db


DBS = {name: (_db(READABLE[name]), _db(RULE_SETS[name])) for name in READABLE}


def _matches(db, data: bytes) -> set[tuple[int, int]]:
    got: set[tuple[int, int]] = set()
    db.scan(data, match_event_handler=lambda i, frm, to, flags, ctx: got.add((i, to)))
    return got


PIECES = [b" ", b"  ", b"\t", b"\n", b"/**/", b"%20", b"+", b"'", b'"', b"(", b")", b"=", b";",
          b"|", b"&", b"`", b"--", b"#", b"1", b"a", b"or", b"and", b"union", b"select", b"all",
          b"drop", b"table", b"<script", b"<img", b"src=x", b"onerror", b"alert", b"javascript:",
          b"../", b"etc/passwd", b"<!--#exec", b"cmd=", b"count(", b"/*", b"//", b"::", b"at",
          b"java.lang.", b"exception:", b"${jndi:", b"cat", b"/etc", b"sleep", b"wget", b"http://",
          b"x.com", b"$(", b"id", b"-la", b"\\", b"%27", b"&#39;", b"select 1,2", b"waitfor",
          b"delay", b"user", b"from", b"where", b"order by", b"having", b"1=1", b"not"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=30).map(b"".join), st.sampled_from(KINDS))
@example(b"' or  1 = 1 --", "query")
@example(b"union  /**/ all   select 1", "body")
def test_both_forms_match_the_same_on_normalised_text(data: bytes, kind: str):
    norm = normalise(data, kind)
    assert b"  " not in norm  # what makes the rewrite exact
    for readable, compiled in DBS.values():
        assert _matches(readable, norm) == _matches(compiled, norm)


# The folded forms quote_then() writes out (fastgate/rules/_base.py), as the rules had them.
FOLDED = {
    "sql-tautology": r"['\"`] *\)* *(?:\b(?:or|and|xor|div)\b|\|\||&&) *\(* *(?:not +)?\(* *['\"]?[\w.@]*['\"]? *\)* *"
                     r"(?:=|<>|!=|<=>|<|>|\blike *['\"]|\bin *\( *(?:select\b|\d|['\"])|\bis +(?:not +)?null\b"
                     r"|\b(?:r?like|regexp|sounds +like) +['\"]|\bbetween +\d)",
    "sql-tautology-const": r"['\"`] *\)* *(?:\b(?:or|and|xor|div)\b|\|\||&&) *\(* *(?:not +)?"
                           r"(?:true|false|null|\d+) *\)* *(?:--|#|;|/\*)",
    "xpath-tautology": r"['\"] *\)* *\b(?:or|and)\b *\(* *(?:['\"][^'\"]{0,40}['\"]|\d+|[\w-]+ *\( *\)|\w+)"
                       r" *(?:!?=|<|>) *(?:['\"]|\d|[\w-]+ *\()",
    "xpath-boolean-fn": r"['\"] *\)* *\b(?:or|and)\b +(?:true|false|not) *\( *\)",
}
_BY_ID = {r.id: r for rules in READABLE.values() for r in rules}
WRITTEN_OUT = (_db([Rule(i, p) for i, p in FOLDED.items()]), _db([_BY_ID[i] for i in FOLDED]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES + [b"xor", b"div", b"||", b"&&", b"true", b"null", b"ORDER", b"Or",
                                          b"x", b"_", b"true()", b"''", b'""']), max_size=24).map(b"".join))
@example(b"' or 1=1")
@example(b"') or ('a'='a")
@example(b"'or'1'='1")
@example(b"\"  and true()")
@example(b"'oracle=1")
def test_quote_then_matches_what_the_folded_form_matched_on_any_text(data: bytes):
    # not only normalised text: the written-out form is exact everywhere
    folded, written = WRITTEN_OUT
    assert _matches(folded, data) == _matches(written, data)

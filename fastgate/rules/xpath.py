"""XPath injection rules (set `xpath`): predicate breakouts, string tautologies, node-set
functions on the document root, axes and path unions.

Invariant: ordinary paths (/api/v1/users), URLs, and prose saying "count", "name" or "contains"
match nothing here.
"""

from __future__ import annotations

from fastgate.rules._base import Rule, quote_then

__all__ = ["XPATH"]

_FUNCS = (
    r"(?:count|name|local-name|string-length|string|substring|substring-before|substring-after"
    r"|normalize-space|contains|starts-with|translate|concat|boolean|number|not|sum|lang"
    r"|namespace-uri|string-join|codepoints-to-string|doc|unparsed-text|document)"
)

XPATH: list[Rule] = [
    # ' or '1'='1, " or ""=", ' or 'a'='a' and ''=', x' or name()='x
    Rule(
        "xpath-tautology",
        quote_then(r"['\"]", "or|and") + r" *\(* *(?:['\"][^'\"]{0,40}['\"]|\d+|[\w-]+ *\( *\)|\w+)"
        r" *(?:!?=|<|>) *(?:['\"]|\d|[\w-]+ *\()",
    ),
    # ' or true() or ', ' and false() and '
    Rule("xpath-boolean-fn", quote_then(r"['\"]", "or|and") + r" +(?:true|false|not) *\( *\)"),
    # Functions applied to the document structure: count(/*), name(/*[1]), string-length(name(..))
    Rule(
        "xpath-function",
        rf"\b{_FUNCS} *\( *(?:/|\.\.?/|\.\.? *\)|@\*|\*\[|name *\(|local-name *\(|//)",
    ),
    # Node tests compared in a predicate: text()='x', position()=1, last()>0
    Rule(
        "xpath-node-test",
        r"\b(?:text|position|last|node|comment|processing-instruction) *\( *\) *(?:!?=|<|>)"
        r" *['\"\d]|\[ *(?:position|last) *\( *\)",
    ),
    # Axes after a step: /child::*, //descendant-or-self::node(), /ancestor::*
    Rule(
        "xpath-axis",
        r"/ *(?:ancestor|ancestor-or-self|attribute|child|descendant|descendant-or-self|following"
        r"|following-sibling|namespace|parent|preceding|preceding-sibling|self) *::",
    ),
    # Breaking out of a predicate into a path union: '] | //*, ')] | //user/*
    Rule(
        "xpath-union",
        r"['\"] *\)* *\] *(?:\| *(?:/|\w)|/ *\.\.|\[)|\] *\| *//|//\* *\[|\| *//\*|/\*\[ *\d+ *\]",
    ),
]

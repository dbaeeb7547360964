"""SQL injection rules (set `sql`): each rule needs SQL structure, never a lone keyword or quote.

Invariant: a name with an apostrophe (O'Brien), prose saying select/drop/union/order by, and JSON
bodies (a `"` before every key and string) match nothing here; see config/threat-rules.md.
"""

from __future__ import annotations

from fastgate.rules._base import Rule, kw, quote_then

__all__ = ["SQL"]

_U, _ALL, _DIST, _SEL = kw("union"), kw("all"), kw("distinct"), kw("select")
# What a comparison looks like after the operand of OR/AND.
_CMP = r"(?:=|<>|!=|<=>|<|>|\blike *['\"]|\bin *\( *(?:select\b|\d|['\"])|\bis +(?:not +)?null\b" \
       r"|\b(?:r?like|regexp|sounds +like) +['\"]|\bbetween +\d)"
_BOOL = r"(?:\b(?:or|and|xor|div)\b|\|\||&&)"
# A quote closing a string, closing parens, then _BOOL: ['"`] *\)* *{_BOOL}, written out
_QUOTE_BOOL = quote_then(r"['\"`]", "or|and|xor|div", r"\|\||&&")
_IDENT = r"[\w.\[\]`\"$]+"

SQL: list[Rule] = [
    # UNION [ALL|DISTINCT] SELECT followed by what a column list starts with.
    Rule(
        "sql-union",
        rf"\b{_U}(?: +(?:{_ALL}|{_DIST}))? *\(* *{_SEL}\b"
        r" *(?:\d|null\b|@@|\*|\(|0x|[a-z_][\w.$]* *(?:[,(]|\bfrom\b)| ?$"
        r"|(?:'[^'\"]{0,40}'|\"[^'\"]{0,40}\") *(?:,|\bfrom\b|--|#|;| ?$))",
    ),
    # A quote closing a string, then a boolean operator, an operand and a comparison:
    # ' or 1=1, " OR "a"="a, ') or ('x'='x, ' and 'a' like 'a, admin' || 1=1
    Rule(
        "sql-tautology",
        rf"{_QUOTE_BOOL} *\(* *(?:not +)?\(* *['\"]?[\w.@]*['\"]? *\)* *{_CMP}",
    ),
    # A quote, a boolean operator and a bare constant ended by a comment or statement end:
    # ' or true--, ' or 1#, ') or 1 --
    Rule(
        "sql-tautology-const",
        rf"{_QUOTE_BOOL} *\(* *(?:not +)?(?:true|false|null|\d+) *\)* *(?:--|#|;|/\*)",
    ),
    # Numeric tautology without a quote: 1 or 1=1, 1 and 1=2, id=5 and 3=3
    Rule(
        "sql-tautology-numeric",
        rf"{_BOOL} +\(* *(?:not +)?-?\d+ *\)* *(?:=|<>|!=|<=>) *\(* *-?\d+\b"
        rf"|{_BOOL} +\(* *(?:not +)?-?\d+ *\)* *[<>] *\(* *-?\d+ *\)* *(?:--|#|;|/\*)",
    ),
    # A single quote that ends the statement with a comment: admin'--, admin' #, 1')/*
    # (an em-dash after a quoted word, "'Hello' -- said Bob", is prose: a spaced `--` must end
    # the value)
    Rule(
        "sql-comment-end",
        r"[\w)]'\)*(?:--|#)|[\w)]' *\)* *(?:--(?: ?$|[+\-\"])|#(?:[ \"]|$)|/\*)",
    ),
    Rule("sql-comment-end-dq", r"\w\" *\)* *--(?: ?$|[+\-\"])"),
    # A stacked statement that changes, destroys or executes: '; DROP TABLE users --
    Rule(
        "sql-stacked",
        r"; *\)* *(?:(?:drop|truncate|alter) +(?:table|database|schema|user|procedure|function"
        r"|view|index|trigger)\b"
        r"|create +(?:table|procedure|function|trigger) +[\w.\[\]`\"]+ *(?:\(|as\b)"
        r"|create +(?:user|login) +[\w.\[\]`\"'@]+ +(?:identified|with)\b"
        r"|shutdown *(?:--|;|#|$| ?$|with\b)"
        r"|exec(?:ute)? *(?:\(|xp_|sp_|master\.|@|immediate\b)"
        r"|declare +@"
        rf"|insert +into +{_IDENT} *(?:\(|values\b|select\b)"
        rf"|delete +from +{_IDENT} *(?:where\b|;|--|#|$| ?$)"
        rf"|update +{_IDENT} +set +{_IDENT} *="
        r"|select +(?:\* +from\b|@@\w|(?:user|version|database|current_user|sleep|pg_sleep"
        r"|load_file|benchmark|char|concat) *\()"
        r"|waitfor +(?:delay|time)\b"
        r"|grant +\w+ +(?:on|to)\b)",
    ),
    # Time-based blind probes: sleep(5), pg_sleep(5), benchmark(1e7,...), waitfor delay '0:0:5'
    Rule(
        "sql-time",
        r"\bsleep *\( *\d+ *\)|\bpg_sleep *\(|\bbenchmark *\( *\d+ *,|\bdbms_lock *\. *sleep\b"
        r"|\bwaitfor +(?:delay|time) +['\"]|\brandomblob *\( *\d{5,}",
    ),
    # Boolean-blind probes: AND ASCII(SUBSTRING((SELECT ...)), OR LENGTH(DATABASE())=5
    Rule(
        "sql-blind",
        rf"{_BOOL} +\(* *(?:not +)?(?:ascii|ord|substr|substring|mid|length|len|char_length"
        r"|hex|unicode|exists|if|elt|bin|char|count|sleep) *\( *\(* *(?:select\b|@@|user *\("
        r"|database *\(|version *\(|schema *\(|current_user\b|substr|substring|mid|\d)",
    ),
    # Catalog, privileged procedures and file access that benign API traffic never names.
    Rule(
        "sql-catalog",
        r"\binformation_schema *\. *\w|\bmysql *\. *(?:user|db)\b|\bsysobjects\b|\bsyscolumns\b"
        r"|\bsys *\. *(?:objects|tables|columns|databases|sql_logins)\b|\bsqlite_master\b"
        r"|\bpg_(?:shadow|user|catalog|tables|database|namespace)\b|\ball_tab(?:les|_columns)\b"
        r"|\bmsysobjects\b|@@(?:version|datadir|hostname|basedir|servername|language)\b",
    ),
    Rule(
        "sql-dangerous-function",
        r"\bxp_(?:cmdshell|regread|regwrite|dirtree|fileexist|servicecontrol)\b"
        r"|\bsp_(?:oacreate|oamethod|executesql|makewebtask|addextendedproc|configure|password)\b"
        r"|\bopen(?:rowset|datasource|query) *\(|\bload_file *\(|\binto +(?:out|dump)file\b"
        r"|\butl_(?:http|inaddr|file)\b|\bdbms_(?:pipe|xmlgen|java|scheduler)\b"
        r"|\b(?:extractvalue|updatexml) *\( *(?:\d|null|rand|'|0x|concat|\(|@)"
        r"|\bchar *\( *\d{2,3} *(?:, *\d{2,3} *){2,}\)|\bchr *\( *\d{2,3} *\) *\|\|"
        r"|\bchar *\( *\d{2,3} *\) *\+ *char *\(",
    ),
    # ORDER BY / GROUP BY column probing: ' ORDER BY 3--, 1 order by 10#
    Rule(
        "sql-order-probe",
        r"(?:['\")]|\d) *\)* *\b(?:order|group) +by +\d+ *(?:--|#|;|/\*|,\s*\d|\bdesc\b|\basc\b)"
        r"|['\")] *\)* *\b(?:order|group) +by +\d+ ?$|\bhaving +\d+ *= *\d+",
    ),
    # A string concatenated with a subquery: '||(SELECT ...)||', '+(select ...)+'
    # (one alternative per operator: the same matches as `['"] *(?:\|\||\+|&) *...`, and
    # hyperscan anchors each on its operator instead of on every quote of a JSON body)
    Rule(
        "sql-concat-subquery",
        "|".join(rf"['\"] *{op} *\(* *{_SEL}\b" for op in (r"\|\|", r"\+", "&")),
    ),
]

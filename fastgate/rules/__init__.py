"""The shipped threat rule sets, one module per set; fastgate.regex_rules.RULE_SETS names them.

Invariant: every pattern is hyperscan-compatible (no backreferences, no lookarounds) and is
written against normalised text (lowercase, one space per whitespace run, encodings undone);
ids are "<set>-<name>" and unique across all sets. config/threat-rules.md documents each set.
"""

from fastgate.rules.command import COMMAND
from fastgate.rules.java_exception import JAVA_EXCEPTION
from fastgate.rules.javascript import JAVASCRIPT
from fastgate.rules.path_traversal import PATH_TRAVERSAL
from fastgate.rules.sql import SQL
from fastgate.rules.ssi import SSI
from fastgate.rules.xpath import XPATH

__all__ = ["COMMAND", "JAVASCRIPT", "JAVA_EXCEPTION", "PATH_TRAVERSAL", "SQL", "SSI", "XPATH"]

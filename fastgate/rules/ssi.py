"""Server-side include rules (set `ssi`): Apache/nginx SSI directives and ESI tags.

Invariant: ordinary HTML comments (`<!-- TODO -->`) and C `#include <stdio.h>` match nothing.
"""

from __future__ import annotations

from fastgate.rules._base import Rule

__all__ = ["SSI"]

_DIRECTIVES = r"(?:exec|include|echo|config|set|printenv|fsize|flastmod|if|elif|else|endif)"

SSI: list[Rule] = [
    # <!--#exec cmd="ls" -->, <!--#include virtual="/etc/passwd" -->, <!-- #echo var=... -->
    Rule("ssi-directive", rf"<!-- *# *{_DIRECTIVES}\b"),
    # The directive without its comment opener (stripped by a filter, or split across fields)
    Rule(
        "ssi-directive-bare",
        r"#(?:exec +(?:cmd|cgi)|include +(?:virtual|file)|echo +(?:var|encoding)|config +"
        r"(?:timefmt|sizefmt|errmsg)|set +var|fsize +(?:virtual|file)|flastmod +(?:virtual|file)"
        r"|if +expr) *=",
    ),
    # Edge Side Includes: <esi:include src=...>, <esi:vars>, <esi:inline ...>
    Rule("ssi-esi", r"<esi *: *(?:include|vars|inline|eval|choose|try|assign|debug|when|remove)\b"),
]

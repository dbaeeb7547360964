"""Path traversal rules (set `path_traversal`): `..` segments (raw, encoded, doubled, overlong),
and sensitive system files named as a value.

Invariant: an ellipsis in prose ("wait..."), one `../` inside text ("see ../README.md"), and a
system path mentioned in prose ("edit /etc/hosts") match nothing here.
"""

from __future__ import annotations

from fastgate.rules._base import Rule

__all__ = ["PATH_TRAVERSAL"]

_DOTDOT = r"\.{2,} ?;?[/\\]+"
_TARGETS = (
    r"(?:etc[/\\]|windows|winnt|boot\.ini|win\.ini|system32|proc[/\\]|\.ssh|\.env\b|\.git[/\\]"
    r"|\.htpasswd|\.htaccess|\.aws|\.bash_history|web-inf|meta-inf|var[/\\](?:log|www|run|lib)"
    r"|root[/\\]|home[/\\]|usr[/\\]|bin[/\\]|tmp[/\\]|dev[/\\]|inetpub|apache|nginx|wp-config"
    r"|config[/\\.]|application\.(?:properties|ya?ml))"
)

PATH_TRAVERSAL: list[Rule] = [
    # Two or more parent steps in a row: ../../, ..\..\, ....//....//, ..;/..;/
    Rule("path_traversal-dotdot-repeat", rf"(?:{_DOTDOT}){{2,}}"),
    # One parent step that reaches a sensitive target: ../etc/passwd, ..\windows\win.ini
    Rule("path_traversal-dotdot-target", rf"{_DOTDOT}(?:[\w.-]+[/\\]+){{0,4}}{_TARGETS}"),
    # A `..` segment inside a path (/a/../b, /static/..) or a value that starts with ../
    Rule(
        "path_traversal-dotdot-segment",
        r"[/\\]\.{2,};?(?:[/\\\"'?#&]|$| ?$)|(?:^ ?|=)\.{2,};?[/\\]",
    ),
    # A sensitive file named as a whole value (file=/etc/passwd, "file:///etc/shadow")
    Rule(
        "path_traversal-sensitive-file",
        r"(?:^ ?|[=:\"'(,<>]|file:/*) *(?:/+etc/+(?:passwd|shadow|group|hosts|issue|sudoers"
        r"|crontab|hostname|fstab|master\.passwd|security/)|/+proc/+(?:self|\d+)/"
        r"|[a-z]: *[/\\]+(?:windows|winnt|boot\.ini|inetpub))"
        r"|/+proc/+self/+(?:environ|cmdline|fd/|maps|status|mem)\b"
        r"|\b(?:cat|more|less|head|tail|type|nl|tac|strings|xxd|od) +/+etc/+(?:passwd|shadow)\b",
    ),
    # Windows' .ini files by name (win.ini, boot.ini, system.ini). A rule of its own: every
    # branch above needs a `/` or `\`, so a body without either skips that rule (regex_gates).
    Rule("path_traversal-ini-file", r"\b(?:win|boot|system)\.ini\b"),
]

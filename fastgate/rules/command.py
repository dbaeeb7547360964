"""OS command injection rules (set `command`): a shell separator or substitution followed by a
known binary with shell-shaped arguments, `${IFS}`, and reverse-shell idioms.

Invariant: "Tom & Jerry", "R&D", "salt & pepper; more later", "| more info", a command named in
prose, and `npm install && npm test` match nothing here.
"""

from __future__ import annotations

from fastgate.rules._base import Rule

__all__ = ["COMMAND"]

_PREFIX = r"(?:(?:/usr)?(?:/local)?/s?bin/)?"
# Binaries no English text puts after `;`, `|` or `&`: the separator is enough.
_UNIQUE = (
    r"(?:whoami|uname|ifconfig|ipconfig|netstat|nslookup|systeminfo|tasklist|certutil|bitsadmin"
    r"|powershell|pwsh|mkfifo|getent|wmic|xterm|ncat|netcat|socat|chmod|chown|lsof)\b"
)
# Short or common names: they need a shell-shaped end or argument.
_STRONG = (
    r"(?:wget|curl|nc|bash|zsh|ksh|dash|sh|cmd(?:\.exe)?|telnet|tftp|id|pwd|ls|python[23]?|perl"
    r"|ruby|php|nmap|dig|base64)\b"
)
_STRONG_END = (
    r"(?: ?$|[;&|`)<>'\"#$]| +-{1,2}[a-z]| +/| +\\| +(?:https?|ftp)://| +[\w-]+\.[a-z]{2,}"
    r"| +\d+\.\d+| +\$)"
)
# Binaries that are also words (cat, find, sleep, more): they need shell-shaped arguments.
_WEAK = (
    r"(?:cat|echo|sleep|ping|find|head|tail|more|less|touch|type|dir|env|printenv|kill|rm|cp|mv"
    r"|awk|sed|tar|reg|sc|sudo|su|passwd|crontab|host|timeout|nl|tac|od|xxd|strings|ps|ver"
    r"|hostname|xargs|sort|grep|rev|cut|expr|export|unset|exec|eval|set)\b"
)
_WEAK_ARGS = (
    r"(?: *\$\{?ifs| *[<>]| +-{1,2}[a-z]| +/+(?: |$|etc|tmp|bin|usr|var|dev|proc|home|root"
    r"|windows)| +[a-z]: *\\| +\$| +%\w+%| +aux\b| +(?:-[nc] +)?\d+ *(?: ?$|[;&|`)#'\"])"
    r"| +[0-7]{3,4} +/)"
)
_SEP = r"(?:;|&&?|\|\|?|`|\$\(|\$\{ifs\}|\$ifs\b)"

COMMAND: list[Rule] = [
    Rule("command-separator-unique", rf"{_SEP} *{_PREFIX}{_UNIQUE}"),
    Rule("command-separator-strong", rf"{_SEP} *{_PREFIX}{_STRONG}{_STRONG_END}"),
    Rule("command-separator-args", rf"{_SEP} *{_PREFIX}{_WEAK}{_WEAK_ARGS}"),
    # A bare command ending the value: ; env, | printenv, & dir
    Rule(
        "command-separator-bare",
        r"(?:;|&&?|\|\|?) *(?:env|printenv|dir|hostname|ver)(?: ?$|[;&|`'\"])"
        r"|(?:;|&&?|\|\|?) *net +(?:user|localgroup|view|share|use|session|accounts)\b",
    ),
    # $(cmd ...) and `cmd` as a whole value or after a separator / quote
    Rule("command-substitution", rf"\$\( *{_PREFIX}(?:{_UNIQUE}|{_STRONG}|{_WEAK})"),
    Rule(
        "command-backtick",
        rf"(?:^ ?|[=;|&'\"(]) *` *{_PREFIX}(?:{_UNIQUE}|{_STRONG}|{_WEAK})[^`]{{0,200}}`",
    ),
    Rule("command-ifs", r"\$\{ifs\}|\$ifs\b|\$\{ifs%"),
    # Reverse shells and downloaders piped into a shell
    Rule(
        "command-reverse-shell",
        r"/dev/(?:tcp|udp)/|\bnc(?:at)? +(?:-[a-z]+ +)*-[a-z]*e +|\b(?:ba)?sh +-i\b"
        r"|\bmkfifo +/|\|\s*(?:/bin/)?(?:ba|z|k|da)?sh\b *(?: ?$|[;&|`-])"
        r"|\b(?:wget|curl)\b[^;|&]{0,200}\| *(?:/bin/)?(?:ba)?sh\b"
        r"|\bpowershell(?:\.exe)? +(?:-[a-z]+ +)*-(?:enc|e|c|command|nop|w)\b",
    ),
]

"""Java exception rules (set `java_exception`): stack traces and exception messages echoed back in
requests (error-handling probes, replayed error pages), plus JNDI lookups and Runtime.exec.

Invariant: an exception class named in prose ("fixed a NullPointerException", "returns
java.lang.String") passes; what needs structure is a frame `at pkg.Class.method(File.java:12)`,
`Exception in thread "`, `Caused by: pkg.X`, or a qualified exception class followed by `:`.
"""

from __future__ import annotations

from fastgate.rules._base import Rule

__all__ = ["JAVA_EXCEPTION"]

_PKG = r"(?:java|javax|jakarta|org|com|net|io|sun|oracle|weblogic|jdk|kotlin|scala|groovy|ch|de)"

JAVA_EXCEPTION: list[Rule] = [
    # A stack frame: at com.acme.Foo.bar(Foo.java:42), at sun.reflect.X.invoke0(Native Method).
    # (Matched by its signature, with or without the leading `at`: the form that required
    # `\bat +` first, with an optional module prefix, matches a subset of this and cost hyperscan
    # ~0.5 µs per 10 KiB of prose, where "at " is common; corpus results unchanged.)
    Rule(
        "java_exception-frame",
        r"[a-z_$][\w$]*(?:\.[\w$<>-]+){2,} *\( *"
        r"(?:[\w$-]+\.(?:java|kt|scala|groovy|clj) *: *\d+|native method|unknown source|[\w$-]+\.(?:java|kt|scala|groovy) *\))",
    ),
    Rule("java_exception-thread", r"\bexception +in +thread +['\"]"),
    Rule("java_exception-caused-by", r"\bcaused +by *: *[a-z_$][\w$]*(?:\.[\w$]+)+"),
    # A qualified exception class followed by its message separator: java.io.IOException: ...
    # (Written as one run of name characters and dots: the form with counted segments,
    # `(?:\.[\w$]+){0,12}?\.[\w$]{0,80}`, matches a subset of this and cost hyperscan a
    # seventh of the whole rule set's scan time on a 10 KiB JSON body.)
    Rule(
        "java_exception-class",
        rf"\b{_PKG}\.[\w$.]*(?:exception|error|throwable) *:",
    ),
    # Log4Shell-style JNDI lookups, also nested: ${jndi:ldap://...}, ${${lower:j}ndi:...}
    Rule("java_exception-jndi", r"\$\{ *(?:jndi *:|\$\{|::-|(?:lower|upper) *:)"),
    # Runtime.exec / ProcessBuilder gadgets in expression-language payloads
    Rule(
        "java_exception-runtime",
        r"\bjava *\. *lang *\. *(?:runtime|processbuilder)\b|\bgetruntime *\( *\) *\. *exec *\(",
    ),
]

"""Path templates (resources) and path globs (rules), compiled once into segment matchers, and the
resource table that finds the most specific resource for a method + path.

Invariant: nothing here compiles or parses per request; a request path is split into segments
once (`split_path`) and every pattern compares those segments. A trailing "/" on the request is
ignored for matching ("/courses/" is "/courses"), so a trailing slash never skips a scope or rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

# Specificity of one pattern segment (higher = more specific). A pattern's key is the tuple of its
# segment ranks followed by END (matches here, no more segments) or REST (a trailing "**").
LITERAL, PARTIAL, PARAM, REST, END = 3, 2, 1, 0, 4

_PARAM_RX = re.compile(r"\{[^{}/]*\}")
# RFC 6749 §3.3 scope-token: 1*( %x21 / %x23-5B / %x5D-7E ); only these go into a header value
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def method_set(methods: Iterable[str]) -> frozenset[bytes] | None:
    """Config methods as the bytes a request carries; () = every method (None). GET also covers
    HEAD (RFC 9110 §9.3.2: the same resource without content; nginx's limit_except does the
    same), so a GET-only scope or deny rule cannot be sidestepped with HEAD."""
    ms = {m.upper().encode("ascii") for m in methods}
    if b"GET" in ms:
        ms.add(b"HEAD")
    return frozenset(ms) or None


def split_path(rest_path: str) -> tuple[str, ...]:
    """'/courses/7/' -> ('courses', '7'); '' and '/' -> (). The path is already normalised (no
    '//', no dot segments), so only a trailing '/' can leave an empty segment: it is dropped."""
    if len(rest_path) <= 1:
        return ()
    segs = rest_path[1:].split("/")
    if not segs[-1]:
        segs.pop()
    return tuple(segs)


class SegmentPattern:
    """`n` fixed segments, then (when `rest`) any number of further segments (zero included).

    Fixed segments are literals (compared with ==), partials (`{name}.json`, `*.json`: one
    compiled regex each) or wildcards (any one non-empty segment: nothing to check, since a
    normalised path has no empty segments)."""

    __slots__ = ("text", "n", "rest", "literals", "partials", "key")

    def __init__(self, text: str, n: int, rest: bool, literals: tuple, partials: tuple, key: tuple) -> None:
        self.text = text
        self.n = n
        self.rest = rest
        self.literals = literals  # ((index, segment), ...)
        self.partials = partials  # ((index, compiled.fullmatch), ...)
        self.key = key

    def match(self, segs: Sequence[str]) -> bool:
        count = len(segs)
        if count != self.n and (not self.rest or count < self.n):
            return False
        for i, lit in self.literals:
            if segs[i] != lit:
                return False
        for i, fullmatch in self.partials:
            if fullmatch(segs[i]) is None:
                return False
        return True

    def __repr__(self) -> str:
        return f"SegmentPattern({self.text!r})"


class RegexPattern:
    """A glob with "**" between other segments ("/a/**/b"): one regex over the joined path."""

    __slots__ = ("text", "fullmatch")

    def __init__(self, text: str, regex: str) -> None:
        self.text = text
        self.fullmatch = re.compile(regex).fullmatch

    def match(self, segs: Sequence[str]) -> bool:
        return self.fullmatch("/" + "/".join(segs)) is not None

    def __repr__(self) -> str:
        return f"RegexPattern({self.text!r})"


def _segments(text: str, what: str) -> list[str]:
    if not isinstance(text, str) or not text.startswith("/"):
        raise ValueError(f"{what} must start with '/': {text!r}")
    return list(split_path(text))


def _partial_regex(seg: str, star: bool) -> str:
    """One segment mixing literal text with `{name}` (and, for globs, `*`) placeholders."""
    out = []
    pos = 0
    token = re.compile(r"\{[^{}/]*\}|\*") if star else _PARAM_RX
    for m in token.finditer(seg):
        out.append(re.escape(seg[pos:m.start()]))
        out.append("[^/]+" if m.group() != "*" else "[^/]*")
        pos = m.end()
    out.append(re.escape(seg[pos:]))
    return "".join(out)


def _is_param(seg: str) -> bool:
    return seg == "*" or (seg.startswith("{") and seg.endswith("}") and _PARAM_RX.fullmatch(seg) is not None)


def compile_template(text: str) -> SegmentPattern:
    """A resource template: literal segments, `{name}` = exactly one segment, `*` = the same,
    `{a}.{b}` / `v{n}` = one segment with literal parts, and an optional trailing `/**` = zero or
    more segments. Raises ValueError for anything else ("**" elsewhere, unbalanced braces)."""
    segs = _segments(text, "resource path")
    rest = bool(segs) and segs[-1] == "**"
    if rest:
        segs.pop()
    literals, partials, ranks = [], [], []
    for i, seg in enumerate(segs):
        if "**" in seg:
            raise ValueError(f"'**' is only allowed as the last segment of a resource path: {text!r}")
        if _is_param(seg):
            ranks.append(PARAM)
        elif "{" in seg or "}" in seg:
            if _PARAM_RX.sub("", seg).count("{") or _PARAM_RX.sub("", seg).count("}"):
                raise ValueError(f"unbalanced '{{' or '}}' in resource path: {text!r}")
            partials.append((i, re.compile(_partial_regex(seg, star=False)).fullmatch))
            ranks.append(PARTIAL)
        elif "*" in seg:
            raise ValueError(f"'*' must be a whole segment in a resource path: {text!r}")
        else:
            literals.append((i, seg))
            ranks.append(LITERAL)
    ranks.append(REST if rest else END)
    return SegmentPattern(text, len(segs), rest, tuple(literals), tuple(partials), tuple(ranks))


def compile_glob(text: str) -> SegmentPattern | RegexPattern:
    """A rule path glob: `*` (or `{name}`) = exactly one segment, `**` = any number of segments
    including none, anywhere; `*` inside a segment ("*.json") = any characters but '/'."""
    segs = _segments(text, "rule path")
    if "**" in segs[:-1]:
        # "**" in the middle needs backtracking: one regex, compiled now
        parts = []
        for seg in segs:
            if seg == "**":
                parts.append("(?:/[^/]+)*")
            elif _is_param(seg):
                parts.append("/[^/]+")
            else:
                if "**" in seg:
                    raise ValueError(f"'**' must be a whole segment in a rule path: {text!r}")
                parts.append("/" + _partial_regex(seg, star=True))
        return RegexPattern(text, "".join(parts) or "/")
    rest = bool(segs) and segs[-1] == "**"
    if rest:
        segs.pop()
    literals, partials, ranks = [], [], []
    for i, seg in enumerate(segs):
        if "**" in seg:
            raise ValueError(f"'**' must be a whole segment in a rule path: {text!r}")
        if _is_param(seg):
            ranks.append(PARAM)
        elif "*" in seg or "{" in seg:
            partials.append((i, re.compile(_partial_regex(seg, star=True)).fullmatch))
            ranks.append(PARTIAL)
        else:
            literals.append((i, seg))
            ranks.append(LITERAL)
    ranks.append(REST if rest else END)
    return SegmentPattern(text, len(segs), rest, tuple(literals), tuple(partials), tuple(ranks))


def scope_challenge(scopes: Iterable[str]) -> str:
    """RFC 6750 §3: the WWW-Authenticate value for a missing scope (config-supplied scope names
    outside the RFC 6749 §3.3 charset are left out, so a header value can never be broken)."""
    listed = " ".join(s for s in scopes if _SCOPE_TOKEN.fullmatch(s))
    return f'Bearer realm="fastgate", error="insufficient_scope", scope="{listed}"'


class Resource:
    """One resource entry: method set (None = every method), template, the scopes it needs."""

    __slots__ = ("pattern", "methods", "scopes", "source", "challenge", "order", "decision", "log_detail")

    def __init__(self, pattern: SegmentPattern, methods: frozenset[bytes] | None,
                 scopes: tuple[str, ...], source: str, order: int) -> None:
        self.pattern = pattern
        self.methods = methods
        self.scopes = frozenset(scopes)
        self.source = source  # "resources[3]", or e.g. "openapi:GET /x" for merged entries
        self.challenge = scope_challenge(dict.fromkeys(scopes))
        self.order = order
        self.decision = f"authorization.{source}"
        self.log_detail = f"{source} {pattern.text} needs {' '.join(sorted(self.scopes))}"


def _first_literal(pattern: SegmentPattern | RegexPattern) -> str | None:
    """The literal a path's first segment must equal for `pattern` to match, if there is one."""
    if isinstance(pattern, SegmentPattern) and pattern.literals and pattern.literals[0][0] == 0:
        return pattern.literals[0][1]
    return None


def _merged(group: list[Resource]) -> Resource:
    """Entries of the same shape (same literals and partials, parameter names aside) always
    match together: one entry needing the union of their scopes, in config order."""
    if len(group) == 1:
        return group[0]
    first = group[0]
    scopes = tuple(dict.fromkeys(s for e in group for s in sorted(e.scopes)))
    return Resource(first.pattern, first.methods, scopes, first.source, first.order)


# A candidate list for one (method, segment count): per first segment, and for any other first segment
_Bucket = tuple[dict[str, list[tuple[Resource, bool]]], list[tuple[Resource, bool]]]


class ResourceTable:
    """The most specific resource for (method, path); add() entries, then freeze() once.

    Specificity: templates are compared segment by segment from the left: literal > partial
    (`{id}.json`) > parameter (`{id}`, `*`) > a trailing `/**`; a template that ends where the
    path ends beats one whose `/**` matches nothing. Only entries whose methods include the
    request's method compete. Equally specific matches (same shape: e.g. the same template listed
    twice, once for every method and once for POST) all apply: their scopes are unioned.

    Lookup: per method, per segment count, per first path segment, one list of candidates sorted
    by specificity, so the first pattern that matches is the answer; a table of 20 resources
    costs ~1 µs per lookup.
    """

    __slots__ = ("_entries", "_by_method", "_any", "_frozen")

    def __init__(self) -> None:
        self._entries: list[Resource] = []
        self._by_method: dict[bytes, list[_Bucket]] = {}
        self._any: list[_Bucket] = [({}, [])]
        self._frozen = False

    def add(self, path: str, methods: Iterable[str], scopes: Iterable[str], source: str) -> None:
        if self._frozen:
            raise RuntimeError("ResourceTable is frozen")
        self._entries.append(Resource(compile_template(path), method_set(methods), tuple(scopes), source, len(self._entries)))

    def __len__(self) -> int:
        return len(self._entries)

    def freeze(self) -> ResourceTable:
        self._frozen = True
        entries = self._entries
        width = max((e.pattern.n for e in entries), default=0) + 2  # last slot: longer paths
        methods: set[bytes] = set()
        for e in entries:
            methods |= e.methods or set()

        def candidates(cands: list[Resource]) -> list[tuple[Resource, bool]]:
            cands.sort(key=lambda e: (tuple(-r for r in e.pattern.key), e.order))
            groups: dict[tuple, list[Resource]] = {}
            for e in cands:
                p = e.pattern
                sig = (p.key, p.literals, tuple(f.__self__.pattern for _, f in p.partials))
                groups.setdefault(sig, []).append(e)
            merged = [_merged(g) for g in groups.values()]  # dicts keep the sorted order
            # left: same specificity, different partials ("{a}.json", "x{b}"): may match together
            return [(e, i + 1 < len(merged) and bool(e.pattern.partials)
                     and merged[i + 1].pattern.key == e.pattern.key) for i, e in enumerate(merged)]

        def tables(method: bytes | None) -> list[_Bucket]:
            mine = [e for e in entries if e.methods is None or (method is not None and method in e.methods)]
            out: list[_Bucket] = []
            for count in range(width):
                fits = [e for e in mine if e.pattern.n == count or (e.pattern.rest and e.pattern.n <= count)]
                firsts = {f for e in fits if (f := _first_literal(e.pattern)) is not None}
                anyfirst = [e for e in fits if _first_literal(e.pattern) is None]
                buckets = {f: candidates([e for e in fits if _first_literal(e.pattern) in (None, f)])
                           for f in firsts}
                out.append((buckets, candidates(anyfirst)))
            return out

        self._by_method = {m: tables(m) for m in methods}
        self._any = tables(None)
        return self

    def lookup(self, method: bytes, segs: Sequence[str]) -> Resource | None:
        """The most specific matching resource (a merged one when several tie), or None."""
        tables = self._by_method.get(method, self._any)
        count = len(segs)
        buckets, cands = tables[count] if count < len(tables) else tables[-1]
        if count and buckets:
            cands = buckets.get(segs[0], cands)
        for i, (entry, tied) in enumerate(cands):
            if entry.pattern.match(segs):
                if tied:
                    return self._merge_ties(cands, i, segs)
                return entry
        return None

    @staticmethod
    def _merge_ties(cands: list[tuple[Resource, bool]], i: int, segs: Sequence[str]) -> Resource:
        group = [cands[i][0]]
        while cands[i][1]:
            i += 1
            if cands[i][0].pattern.match(segs):
                group.append(cands[i][0])
        return _merged(group)

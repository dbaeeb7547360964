"""The built-in policy engine's conditions, compiled once: CIDR sets, claim matchers, time windows
and whole rules (`authorization.rules[]`).

Invariant: a condition that cannot be evaluated (no identity, a missing claim, an unparsable
client address) does not hold, so the rule does not match; the caller's default (deny) then
applies. Nothing here parses configuration per request.
"""

from __future__ import annotations

import ipaddress
import socket
from datetime import datetime
from zoneinfo import ZoneInfo

from ...config.model import PolicyRule, TimeWindow
from .templates import RegexPattern, SegmentPattern, compile_glob, method_set

_V4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


# ---------------------------------------------------------------- client addresses
def parse_ip(text: str) -> tuple[int, int] | None:
    """'192.0.2.7' -> (4, int); '2001:db8::1' -> (6, int); '::ffff:192.0.2.7' -> (4, int), so a
    v4 client reached over a dual-stack socket matches v4 CIDRs. A zone ('%eth0') is dropped."""
    try:
        if ":" not in text:
            return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
        if "%" in text:
            text = text.partition("%")[0]
        n = int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except (OSError, ValueError, TypeError):
        return None
    if n >> 32 == 0xFFFF:
        return 4, n & 0xFFFFFFFF
    return 6, n


class NetSet:
    """Any-of a list of CIDRs; v4 and v6 kept apart, IPv4-mapped v6 networks become v4."""

    __slots__ = ("v4", "v6")

    def __init__(self, cidrs: tuple[str, ...]) -> None:
        v4: list[tuple[int, int]] = []
        v6: list[tuple[int, int]] = []
        for cidr in cidrs:
            net = ipaddress.ip_network(cidr, strict=False)  # "192.0.2.7" = /32, host bits ignored
            if net.version == 6 and net.prefixlen >= 96 and net.subnet_of(_V4_MAPPED):
                net = ipaddress.IPv4Network((int(net.network_address) & 0xFFFFFFFF, net.prefixlen - 96))
            mask = int(net.netmask)
            (v4 if net.version == 4 else v6).append((int(net.network_address) & mask, mask))
        self.v4 = tuple(v4)
        self.v6 = tuple(v6)

    def contains(self, ip: tuple[int, int] | None) -> bool:
        if ip is None:
            return False
        version, n = ip
        for net, mask in self.v4 if version == 4 else self.v6:
            if n & mask == net:
                return True
        return False


# ---------------------------------------------------------------- claims
def _same(a, b) -> bool:
    """JSON equality without Python's True == 1: a boolean claim only equals a boolean."""
    return a == b and (type(a) is bool) == (type(b) is bool)


class ClaimsMatch:
    """Every named claim must match. Config value scalar = equals, list = one of (in). A claim
    whose value is a list (e.g. `groups`) matches when any of its elements does."""

    __slots__ = ("items",)

    def __init__(self, claims: dict) -> None:
        items = []
        for name, want in claims.items():
            allowed = tuple(want) if isinstance(want, (list, tuple)) else (want,)
            strs = frozenset(a for a in allowed if type(a) is str)
            others = tuple(a for a in allowed if type(a) is not str)
            items.append((str(name), strs, others))
        self.items = tuple(items)

    @staticmethod
    def _one(v, strs: frozenset, others: tuple) -> bool:
        if type(v) is str:
            return v in strs
        for a in others:
            if _same(v, a):
                return True
        return False

    def matches(self, claims: dict) -> bool:
        one = self._one
        for name, strs, others in self.items:
            value = claims.get(name, _MISSING)
            if value is _MISSING:
                return False
            if type(value) is str:
                if value not in strs:
                    return False
            elif isinstance(value, (list, tuple)):
                for v in value:
                    if one(v, strs, others):
                        break
                else:
                    return False
            elif not one(value, strs, others):
                return False
        return True


_MISSING = object()


# ---------------------------------------------------------------- time windows
def _minutes(hhmm: str, what: str) -> int:
    h, sep, m = str(hhmm).partition(":")
    if not (sep and h.isdigit() and m.isdigit() and len(m) == 2 and len(h) in (1, 2)):
        raise ValueError(f"time window {what} must be HH:MM: {hhmm!r}")
    value = int(h) * 60 + int(m)
    if int(m) > 59 or value > 24 * 60:
        raise ValueError(f"time window {what} out of range: {hhmm!r}")
    return value


class Window:
    """Local wall-clock window in an IANA zone: start inclusive, end exclusive, minute precision.

    end <= start wraps past midnight (22:00-06:00 is the night); start == end is the whole day.
    "24:00" is accepted as an end. Local time is the zone's real wall clock, so on a DST change
    day a 01:00-03:00 window is one hour long in spring and three in autumn. The local minute is
    cached per epoch minute (offsets are whole minutes), so a window costs ~2 µs once a minute
    and a compare the rest of the time.
    """

    __slots__ = ("start", "end", "zone", "text", "_key", "_minute")

    def __init__(self, tw: TimeWindow) -> None:
        self.start = _minutes(tw.start, "from")
        self.end = _minutes(tw.end, "to")
        if self.start >= 24 * 60:
            raise ValueError(f"time window from out of range: {tw.start!r}")
        self.zone = ZoneInfo(tw.timezone)  # raises for an unknown zone
        self.text = f"{tw.start}-{tw.end} {tw.timezone}"
        self._key = None
        self._minute = 0

    def local_minute(self, now: float) -> int:
        key = int(now // 60)
        if key == self._key:
            return self._minute
        dt = datetime.fromtimestamp(now, self.zone)
        minute = dt.hour * 60 + dt.minute
        off = dt.utcoffset()
        if off is not None and off.seconds % 60 == 0 and not off.microseconds:
            self._key, self._minute = key, minute
        return minute

    def contains(self, now: float) -> bool:
        m = self.local_minute(now)
        if self.start < self.end:
            return self.start <= m < self.end
        return m >= self.start or m < self.end


# ---------------------------------------------------------------- rules
class Rule:
    """One compiled rule; `None` = condition absent. Evaluated by Authorizer in a fixed order,
    cheapest first: methods, path, roles, applications, scopes, claims, client_ips, time."""

    __slots__ = ("id", "allow", "decision", "methods", "path", "roles", "applications", "scopes",
                 "claims", "nets", "window")

    def __init__(self, rule: PolicyRule) -> None:
        self.id = rule.id
        self.allow = bool(rule.allow)
        self.decision = f"authorization.{rule.id}"
        self.methods = method_set(rule.methods)
        self.path: SegmentPattern | RegexPattern | None = (
            compile_glob(rule.path) if rule.path is not None else None)
        self.roles = frozenset(rule.roles) or None
        self.applications = frozenset(rule.applications) or None
        self.scopes = frozenset(rule.scopes) or None
        self.claims = ClaimsMatch(rule.claims) if rule.claims else None
        self.nets = NetSet(tuple(rule.client_ips)) if rule.client_ips else None
        self.window = Window(rule.time) if rule.time is not None else None

    def __repr__(self) -> str:
        return f"Rule({self.id}, allow={self.allow})"


class RuleIndex:
    """The rules that can match a (method, first path segment), in config order: a pre-filter so
    a request skips the rules whose method or leading literal rules it out (the rest of every
    condition is still checked). Built once; a lookup is two dict gets."""

    __slots__ = ("rules", "_table", "_default")

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        firsts = {f for r in rules if (f := _first_literal(r)) is not None}
        methods = {m for r in rules if r.methods is not None for m in r.methods}

        def could(r: Rule, method: bytes | None, first: str | None) -> bool:
            if r.methods is not None and (method is None or method not in r.methods):
                return False
            lit = _first_literal(r)
            return lit is None or lit == first

        def row(method: bytes | None) -> tuple[dict[str, tuple[Rule, ...]], tuple[Rule, ...]]:
            return ({f: tuple(r for r in rules if could(r, method, f)) for f in firsts},
                    tuple(r for r in rules if could(r, method, None)))

        self._table = {m: row(m) for m in methods}
        self._default = row(None)

    def candidates(self, method: bytes, segs) -> tuple[Rule, ...]:
        by_first, other = self._table.get(method, self._default)
        if segs and by_first:
            return by_first.get(segs[0], other)
        return other


def _first_literal(r: Rule) -> str | None:
    p = r.path
    if isinstance(p, SegmentPattern) and p.literals and p.literals[0][0] == 0:
        return p.literals[0][1]
    return None

"""Plain-Python reference model (the oracle) for fastgate._native.ratelimit: GCRA and a sliding window.

Invariant: same interface and bit-for-bit the same arithmetic as the native module: time is cut to
whole nanoseconds and every decision is exact integer arithmetic; only results are floats.
Tests drive both with the same inputs and require identical Decisions, table sizes and counters.

Why integers rather than doubles: with doubles T = per/requests is rarely exact (60 per 7 s, 10 per
1 s ...), so a TAT built by repeated `+= T` drifts by an ulp and the last request of a burst at one
instant is admitted or denied depending on the rate and the clock's magnitude. On a time line of
1/requests ns, T is exactly `per_ns` units, so `requests` at once is always exactly admissible.
"""

from __future__ import annotations

import math
import operator
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

__all__ = ["Decision", "GcraLimiter", "SlidingWindow"]

#: Largest `requests`/`burst`: keeps every intermediate of the native code inside 128 bits.
MAX_REQUESTS = 2**32
#: Longest `per` in nanoseconds (about 146 years).
MAX_PER_NS = 2**62
#: Largest table (slots are C ints in the native module).
MAX_KEYS = 2**31 - 1
#: A clock reading must satisfy abs(now * 1e9) <= this to fit a signed 64-bit nanosecond count.
_NS_LIMIT = 9.2e18


@dataclass(frozen=True, slots=True)
class Decision:
    """Outcome of one check; the numbers the RateLimit-* / Retry-After headers are made from."""

    allowed: bool
    limit: int  # = requests
    remaining: int  # whole cost-1 requests still admissible now (>= 0)
    reset_after: float  # seconds until the key is back to its idle (full) state (>= 0)
    retry_after: float  # 0 if allowed; seconds until this request would be admitted; inf = never


def _to_ns(now: float) -> int:
    """Seconds (float or int) -> nearest whole nanosecond, with the same double ops as the native
    code. Nearest, not floor: 1.005 * 1e9 is 1004999999.9999999, and a monotonic reading (ns / 1e9)
    must map back to its own ns."""
    x = now * 1e9
    if not (-_NS_LIMIT <= x <= _NS_LIMIT):
        raise ValueError(f"now must be a finite time in seconds, got {now!r}")
    return math.floor(x + 0.5)


def _check_count(name: str, value: int, upper: int) -> int:
    value = operator.index(value)
    if not 1 <= value <= upper:
        raise ValueError(f"{name} must be an integer in [1, {upper}], got {value!r}")
    return value


def _per_ns(per: float) -> int:
    per = float(per)
    if not (math.isfinite(per) and per > 0):
        raise ValueError(f"per must be a positive number of seconds, got {per!r}")
    per_ns = math.floor(per * 1e9 + 0.5)
    if not 1 <= per_ns <= MAX_PER_NS:
        raise ValueError(f"per must be between 1 ns and {MAX_PER_NS} ns, got {per!r}")
    return per_ns


class _KeyTable:
    """At most max_keys keys in LRU order (first = least recently checked).

    When a new key needs room: drop the LRU key if it is expired (idle again, so nothing is lost);
    else sweep every expired key, but only once per `max_keys // 8` live evictions (amortised
    O(1)); else evict the LRU key although its bucket is not full, which forgets its debt and makes
    that key more permissive. Those are counted in `evictions`; harmless drops in `reclaimed`.
    """

    def __init__(self, requests: int, per: float, max_keys: int, clock: Callable[[], float]):
        self.requests = _check_count("requests", requests, MAX_REQUESTS)
        self._per_ns = _per_ns(per)
        self.per = float(per)
        self.max_keys = _check_count("max_keys", max_keys, MAX_KEYS)
        if not callable(clock):
            raise TypeError("clock must be a callable returning seconds as a float")
        self.clock = clock
        self.evictions = 0
        self.reclaimed = 0
        self._sweep_every = max(1, self.max_keys // 8)
        self._since_sweep = self._sweep_every  # the first time the table is full, sweep
        self._entries: OrderedDict[Hashable, object] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def _now_ns(self, now: float | None) -> int:
        return _to_ns(self.clock() if now is None else now)

    def _expired(self, state: object, now_ns: int) -> bool:
        raise NotImplementedError

    def sweep(self, now: float | None = None) -> int:
        """Drop every expired key; returns how many (also added to `reclaimed`)."""
        return self._sweep(self._now_ns(now))

    def _sweep(self, now_ns: int) -> int:
        dead = [k for k, st in self._entries.items() if self._expired(st, now_ns)]
        for k in dead:
            del self._entries[k]
        self.reclaimed += len(dead)
        return len(dead)

    def _insert(self, key: Hashable, state: object, now_ns: int) -> None:
        if len(self._entries) >= self.max_keys:
            self._make_room(now_ns)
        self._entries[key] = state

    def _make_room(self, now_ns: int) -> None:
        lru = next(iter(self._entries))
        if self._expired(self._entries[lru], now_ns):
            del self._entries[lru]
            self.reclaimed += 1
            return
        if self._since_sweep >= self._sweep_every:
            self._since_sweep = 0
            if self._sweep(now_ns):
                return
        self._since_sweep += 1
        del self._entries[lru]
        self.evictions += 1


class GcraLimiter(_KeyTable):
    """GCRA (token bucket without a timer): `requests` per `per` seconds, burst `burst`.

    Integer time line: 1 unit = 1/requests ns, so the emission interval T = per/requests is exactly
    per_ns units, and the delay-variation tolerance dvt = tau + T = burst * T (tau = burst*T - T;
    with the default burst = requests, tau = per - T). Per key: tat (theoretical arrival time).

        base     = max(tat, now)                  # an unknown key has tat = now (idle, full)
        new_tat  = base + cost * T
        allowed  = new_tat - dvt <= now           # tat only changes when allowed
        used     = new_tat if allowed else base   # peek: always base
        remaining   = max(0, floor((now + dvt - used) / T))
        reset_after = max(0, used - now)
        retry_after = 0 if allowed else (inf if cost > burst else new_tat - dvt - now)

    Note the condition is `new_tat - dvt <= now`, i.e. `tat_before - tau <= now` of textbook GCRA
    generalised to cost; `new_tat - tau <= now` would admit only requests - 1 at once.
    A fresh key takes `burst` at once, then one every T. Over any closed window of length W it
    admits at most burst + W/T (so up to 2*requests within one `per`: that is a token bucket,
    not "at most `requests` in any `per`"; use burst=1 for strict spacing).
    """

    def __init__(
        self,
        requests: int,
        per: float,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        *,
        burst: int | None = None,
    ):
        super().__init__(requests, per, max_keys, clock)
        self.burst = self.requests if burst is None else _check_count("burst", burst, MAX_REQUESTS)
        self._dvt = self.burst * self._per_ns
        self._scale = self.requests * 1e9  # units per second

    def _expired(self, state: object, now_ns: int) -> bool:
        return state <= now_ns * self.requests

    def check(self, key: Hashable, cost: int = 1, now: float | None = None) -> Decision:
        cost = operator.index(cost)
        if cost < 1:
            raise ValueError(f"cost must be >= 1, got {cost!r}")
        now_ns = self._now_ns(now)
        entries = self._entries
        if key in entries:
            entries.move_to_end(key)  # checked = used, allowed or not
            d, tat = self._decide(entries[key], now_ns, cost, True)
            if d.allowed:  # a denied request changes nothing
                entries[key] = tat
        else:
            d, tat = self._decide(None, now_ns, cost, True)
            if d.allowed:
                self._insert(key, tat, now_ns)
        return d

    def peek(self, key: Hashable, now: float | None = None) -> Decision:
        return self._decide(self._entries.get(key), self._now_ns(now), 1, False)[0]

    def _decide(self, tat: int | None, now_ns: int, cost: int, commit: bool) -> tuple[Decision, int]:
        t, dvt, scale = self._per_ns, self._dvt, self._scale
        now = now_ns * self.requests
        base = now if tat is None or tat < now else tat
        new_tat = base + cost * t
        used = base
        if new_tat - dvt <= now:
            allowed, retry = True, 0.0
            if commit:
                used = new_tat
        else:
            allowed = False
            retry = math.inf if cost > self.burst else float(new_tat - dvt - now) / scale
        room = now + dvt - used
        remaining = room // t if room > 0 else 0
        reset = float(used - now) / scale if used > now else 0.0
        return Decision(allowed, self.requests, remaining, reset, retry), used


class SlidingWindow(_KeyTable):
    """Two-bucket sliding window counter: `requests` per `per`, windows aligned to multiples of per.

    Per key: window index, count of the previous window, count of the current one. With e = time
    into the current window (ns) and P = per_ns, the estimate of the trailing `per` is
        est = prev * (P - e) / P + curr
    and a request is allowed iff est + cost <= requests (compared as est*P, exact integers).
    remaining = floor(requests - est_after); reset_after = until est is 0 (end of the next window
    if curr > 0, of this one if only prev > 0); retry_after = first ns at which est + cost fits,
    assuming nothing else is admitted (inf if cost > requests).

    Worst-case error: the estimate assumes the previous window's requests were spread evenly. With
    f = e/P, est - true_trailing_count lies in [-prev*f, +prev*(1-f)]: it can admit up to
    requests + prev*f (< 2*requests) in a trailing window of length per, and can deny while the
    true trailing count is as low as requests - prev*(1-f). Any window of length W <= per holds at
    most requests*(1 + W/per) -- the same envelope as GCRA, which has no false denials.
    A clock that steps back into an earlier window is treated as the start of the stored window.
    """

    def __init__(
        self,
        requests: int,
        per: float,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__(requests, per, max_keys, clock)

    def _expired(self, state: object, now_ns: int) -> bool:
        win, prev, curr = state
        idx = now_ns // self._per_ns
        return idx >= win + 2 if curr else (idx >= win + 1 if prev else True)

    def check(self, key: Hashable, cost: int = 1, now: float | None = None) -> Decision:
        cost = operator.index(cost)
        if cost < 1:
            raise ValueError(f"cost must be >= 1, got {cost!r}")
        now_ns = self._now_ns(now)
        entries = self._entries
        if key in entries:
            entries.move_to_end(key)
            d, state = self._decide(entries[key], now_ns, cost, True)
            if d.allowed:
                entries[key] = state
        else:
            d, state = self._decide(None, now_ns, cost, True)
            if d.allowed:
                self._insert(key, state, now_ns)
        return d

    def peek(self, key: Hashable, now: float | None = None) -> Decision:
        return self._decide(self._entries.get(key), self._now_ns(now), 1, False)[0]

    def _decide(
        self, state: tuple[int, int, int] | None, now_ns: int, cost: int, commit: bool
    ) -> tuple[Decision, tuple[int, int, int]]:
        big_p, r = self._per_ns, self.requests
        idx = now_ns // big_p
        win, prev, curr = state if state is not None else (idx, 0, 0)
        if win > idx:  # clock stepped back: stay at the start of the stored window
            idx, e, p, c = win, 0, prev, curr
        else:
            e = now_ns - idx * big_p
            if win == idx:
                p, c = prev, curr
            elif win == idx - 1:
                p, c = curr, 0
            else:
                p, c = 0, 0
        w = big_p - e
        cap = r * big_p
        c_used = c
        if p * w + (c + cost) * big_p <= cap:
            allowed, retry = True, 0.0
            if commit:
                c_used = c + cost
        else:
            allowed = False
            if cost > r:
                retry = math.inf
            else:
                need = r - cost - c
                if need >= 0:  # fits later in this window (p > 0 here)
                    wait = big_p - (need * big_p) // p - e
                else:  # only after the boundary, when curr becomes prev (c > 0 here)
                    e2 = max(0, big_p - ((r - cost) * big_p) // c)
                    wait = big_p - e + e2
                retry = float(wait) / 1e9
        room = cap - p * w - c_used * big_p
        remaining = room // big_p if room > 0 else 0
        if c_used:
            reset = float(2 * big_p - e) / 1e9
        elif p:
            reset = float(big_p - e) / 1e9
        else:
            reset = 0.0
        return Decision(allowed, r, remaining, reset, retry), (idx, p, c_used)

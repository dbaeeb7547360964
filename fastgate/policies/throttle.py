"""Failed-attempt throttling for password methods (Basic, Digest): per user and per client IP.

Invariant: a key (user name or client network) that failed `threshold` times inside `window`
seconds is refused for a block that doubles with each repeat (base_block, 2x, 4x, ... capped
at max_block). While a key is blocked, callers answer 429 `rate_limited` with Retry-After and
run no password check (no scrypt). Attempts still in flight count against the threshold, so a
burst of concurrent guesses cannot slip past it. Each table is an LRU bounded by `max_keys`.

Policy (the numbers are the named defaults below):
- per user: 5 failures in 5 minutes -> blocked 30 s, then 60 s, 120 s, ... at most 15 minutes;
  a success resets the user's record. Unknown user names are throttled exactly like known
  ones, so the throttle reveals nothing about which names exist.
- per client IP (IPv6 by /64, since one host usually owns a whole /64): 20 failures in
  5 minutes -> the same ladder. A success never resets an IP's record, so an attacker holding
  one valid account cannot launder guesses at other accounts through it.
- a record's block ladder (its "strikes") starts over after `window` seconds without failures.

Known limits: state is per process (every worker and node counts on its own); an attacker who
sprays more than `max_keys` distinct user names can evict a victim's per-user record (the per-IP
record still holds them back); per-user blocks let anyone lock a user out of *uncached* logins
for a while (the Basic cache still admits a client whose credentials were verified recently).
"""

from __future__ import annotations

import functools
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

USER_THRESHOLD = 5  # failures per user within WINDOW before a block
IP_THRESHOLD = 20  # failures per client IP (/64 for IPv6) within WINDOW before a block
WINDOW = 300.0  # seconds over which failures are counted
BASE_BLOCK = 30.0  # first block, seconds; doubles on each further block
MAX_BLOCK = 900.0  # cap on one block, seconds
MAX_KEYS = 100_000  # records per table (LRU beyond that)
IN_FLIGHT_RETRY = 1.0  # Retry-After when only attempts still in flight hold a key back


class _Record:
    __slots__ = ("start", "failures", "inflight", "strikes", "until", "last")

    def __init__(self, now: float) -> None:
        self.start = now  # start of the current counting window
        self.failures = 0
        self.inflight = 0
        self.strikes = 0  # blocks so far (the ladder's rung)
        self.until = 0.0  # blocked until (clock time)
        self.last = now  # last failure or block end, for the ladder's decay


class FailureThrottle:
    """One table of failure records (one per user name, or one per client network)."""

    def __init__(
        self,
        threshold: int,
        *,
        window: float = WINDOW,
        base_block: float = BASE_BLOCK,
        max_block: float = MAX_BLOCK,
        max_keys: int = MAX_KEYS,
        reset_on_success: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1 or max_keys < 1:
            raise ValueError("threshold and max_keys must be >= 1")
        self.threshold = threshold
        self.window = window
        self.base_block = base_block
        self.max_block = max_block
        self.max_keys = max_keys
        self.reset_on_success = reset_on_success
        self.clock = clock
        self._records: OrderedDict[Hashable, _Record] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def retry_after(self, key: Hashable) -> float:
        """Seconds until `key` may try again; 0.0 = it may try now."""
        rec = self._records.get(key)
        if rec is None:
            return 0.0
        now = self.clock()
        if now < rec.until:
            return rec.until - now
        self._age(rec, now)
        if rec.failures + rec.inflight >= self.threshold:
            return IN_FLIGHT_RETRY  # the attempts in flight decide; come back in a moment
        return 0.0

    def begin(self, key: Hashable) -> None:
        """Register an attempt in flight (call only after retry_after(key) returned 0)."""
        rec = self._touch(key)
        rec.inflight += 1

    def end(self, key: Hashable, ok: bool) -> None:
        """Close an attempt started with begin(): a success or a failure."""
        rec = self._records.get(key)
        if rec is None:  # evicted meanwhile
            if ok:
                return
            rec = self._touch(key)
        elif rec.inflight:
            rec.inflight -= 1
        now = self.clock()
        if ok:
            if self.reset_on_success:
                if rec.inflight:
                    rec.failures = rec.strikes = 0
                    rec.until = 0.0
                else:
                    del self._records[key]
            return
        self._age(rec, now)
        rec.failures += 1
        rec.last = now
        if rec.failures >= self.threshold:
            block = min(self.base_block * (2 ** min(rec.strikes, 32)), self.max_block)
            rec.strikes += 1
            rec.until = now + block
            rec.last = rec.until
            rec.failures = 0
            rec.start = rec.until

    def abandon(self, key: Hashable) -> None:
        """Close an attempt that reached no verdict (cancelled, or refused for load)."""
        rec = self._records.get(key)
        if rec is not None and rec.inflight:
            rec.inflight -= 1

    def failure(self, key: Hashable) -> None:
        """A failure that had no begin() (e.g. a malformed credential)."""
        self.end(key, False)

    def _age(self, rec: _Record, now: float) -> None:
        if now - rec.start > self.window:
            rec.start = now
            rec.failures = 0
        if rec.strikes and now - rec.last > self.window:
            rec.strikes = 0

    def _touch(self, key: Hashable) -> _Record:
        records = self._records
        rec = records.get(key)
        if rec is None:
            rec = records[key] = _Record(self.clock())
            while len(records) > self.max_keys:
                records.popitem(last=False)
        else:
            records.move_to_end(key)
        return rec


@functools.lru_cache(maxsize=4096)
def ip_key(client_ip: str) -> str:
    """The throttling key of a client address: the IPv4 address, or the IPv6 /64."""
    try:
        addr = ipaddress.ip_address(client_ip.split("%", 1)[0])
    except ValueError:
        return client_ip
    if addr.version == 6:
        mapped = addr.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.IPv6Network((int(addr) >> 64 << 64, 64)))
    return str(addr)


class LoginThrottle:
    """Per-user and per-IP tables together; shared by Basic and Digest (one budget for both)."""

    def __init__(
        self,
        *,
        user_threshold: int = USER_THRESHOLD,
        ip_threshold: int = IP_THRESHOLD,
        window: float = WINDOW,
        base_block: float = BASE_BLOCK,
        max_block: float = MAX_BLOCK,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        common = dict(window=window, base_block=base_block, max_block=max_block,
                      max_keys=max_keys, clock=clock)
        self.users = FailureThrottle(user_threshold, reset_on_success=True, **common)
        self.ips = FailureThrottle(ip_threshold, reset_on_success=False, **common)

    def begin(self, user: str | None, client_ip: str) -> float:
        """0.0 = go ahead (an attempt is now in flight for both keys; call end()), else the
        seconds to wait (nothing registered; refuse without checking the password)."""
        ip = ip_key(client_ip)
        wait = self.ips.retry_after(ip)
        if user is not None:
            wait = max(wait, self.users.retry_after(user))
        if wait > 0:
            return wait
        self.ips.begin(ip)
        if user is not None:
            self.users.begin(user)
        return 0.0

    def end(self, user: str | None, client_ip: str, ok: bool) -> None:
        self.ips.end(ip_key(client_ip), ok)
        if user is not None:
            self.users.end(user, ok)

    def abandon(self, user: str | None, client_ip: str) -> None:
        """An attempt begun and ended without a verdict: release it, count nothing."""
        self.ips.abandon(ip_key(client_ip))
        if user is not None:
            self.users.abandon(user)

    def ip_failure(self, client_ip: str) -> None:
        """A malformed attempt: counts against the client IP only (no user to blame)."""
        self.ips.failure(ip_key(client_ip))

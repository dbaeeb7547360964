# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Native per-key rate limiting for the hot path: GCRA (GcraLimiter) and a two-bucket SlidingWindow.

Invariant: decisions are exact integer arithmetic on a nanosecond time line and equal, bit for bit,
those of the plain-Python oracle fastgate.ratelimit_model; the key table never holds more than
max_keys keys, whatever the number of distinct keys seen.

The formulas are documented once, on the model's classes; the C below is a line-by-line copy.
Per-key state lives in C arrays indexed by a slot number (dict key -> slot, a C doubly linked list
in LRU order), so a check on a known key is one dict lookup, a few integer ops and one Decision.
Not for free-threaded builds: each call relies on the GIL to be atomic.
"""

cimport cython
from cpython.dict cimport PyDict_GetItemWithError
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_CheckExact
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.object cimport PyObject
from libc.math cimport floor

import operator
import sys
import time

__all__ = ["Decision", "GcraLimiter", "SlidingWindow"]

cdef extern from *:
    """
    #include <math.h>
    #include <limits.h>
    #include <time.h>
    #ifndef __SIZEOF_INT128__
    #error "fastgate._native.ratelimit needs a 64-bit GCC or Clang (__int128)"
    #endif
    typedef __int128 fg_i128;
    #define FG_NEVER (-(((fg_i128)1) << 120))  /* older than any clock reading: "idle" */
    #define FG_NO_WINDOW LLONG_MIN             /* a window older than any: counts are 0 */
    /* Bounds shared with fastgate.ratelimit_model (literal: this module must not import it). */
    #define FG_MAX_REQUESTS 4294967296LL       /* 2**32: with per_ns <= 2**62 all fits 128 bits */
    #define FG_MAX_PER_NS 4611686018427387904LL /* 2**62 ns, about 146 years */
    #define FG_MAX_KEYS 2147483647LL           /* slots are C ints */
    #define FG_NS_LIMIT 9.2e18                 /* |now * 1e9| must fit signed 64-bit ns */

    typedef struct {
        int allowed;
        long long remaining;
        double reset_after;
        double retry_after;
    } fg_decision;

    /* CLOCK_MONOTONIC in whole ns: what time.monotonic() reads on Linux, without a float box. */
    static int fg_monotonic_ns(long long *out) {
    #if defined(__linux__) && defined(CLOCK_MONOTONIC)
        struct timespec ts;
        if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return -1;
        *out = (long long)ts.tv_sec * 1000000000LL + (long long)ts.tv_nsec;
        return 0;
    #else
        (void)out;
        return -1;
    #endif
    }

    /* Exact int -> double; same rounding as Python's float(int) (round half to even). */
    static inline double fg_to_double(fg_i128 x) {
        if (x >= LLONG_MIN && x <= LLONG_MAX) return (double)(long long)x;
        return (double)x;
    }

    static inline long long fg_div(fg_i128 a, long long b) {  /* a >= 0, b > 0 */
        if (a <= LLONG_MAX) return (long long)a / b;
        return (long long)(a / b);
    }

    /* GCRA on a line of 1/requests ns: T = per_ns units, dvt = burst * per_ns. See the model. */
    static inline void fg_gcra(fg_i128 *tat, long long now_ns, long long requests, long long per_ns,
                               long long burst, long long cost, int commit, double scale,
                               fg_decision *d) {
        fg_i128 now = (fg_i128)now_ns * requests;
        fg_i128 dvt = (fg_i128)burst * per_ns;
        fg_i128 base = *tat > now ? *tat : now;
        fg_i128 new_tat = base + (fg_i128)cost * per_ns;
        fg_i128 used = base;
        fg_i128 room;
        if (new_tat - dvt <= now) {
            d->allowed = 1;
            d->retry_after = 0.0;
            if (commit) { used = new_tat; *tat = new_tat; }
        } else {
            d->allowed = 0;
            d->retry_after = cost > burst ? INFINITY : fg_to_double(new_tat - dvt - now) / scale;
        }
        room = now + dvt - used;
        d->remaining = room > 0 ? fg_div(room, per_ns) : 0;
        d->reset_after = used > now ? fg_to_double(used - now) / scale : 0.0;
    }

    /* A key's backlog (TAT - now) in whole ns, rounded up; 0 when idle. */
    static inline long long fg_backlog_ns(fg_i128 tat, long long now_ns, long long requests) {
        fg_i128 now = (fg_i128)now_ns * requests;
        fg_i128 b;
        if (tat <= now) return 0;
        b = (tat - now + requests - 1) / requests;
        return b > LLONG_MAX ? LLONG_MAX : (long long)b;
    }

    static inline fg_i128 fg_tat_after(long long now_ns, long long backlog_ns, long long requests) {
        return ((fg_i128)now_ns + backlog_ns) * requests;
    }

    static inline int fg_gcra_expired(fg_i128 tat, long long now_ns, long long requests) {
        return tat <= (fg_i128)now_ns * requests;
    }

    static inline long long fg_floordiv(long long a, long long b) {  /* b > 0 */
        long long q = a / b;
        if ((a % b) < 0) q -= 1;
        return q;
    }

    /* Two-bucket sliding window; state = (win, prev, curr). See the model. */
    static inline void fg_sliding(long long *win, long long *prev, long long *curr,
                                  long long now_ns, long long requests, long long per_ns,
                                  long long cost, int commit, fg_decision *d) {
        long long idx = fg_floordiv(now_ns, per_ns);
        long long e, p, c, c_used, need;
        fg_i128 big_p = per_ns, w, cap, room, wait, e2;
        if (*win > idx) {  /* clock stepped back: stay at the start of the stored window */
            idx = *win; e = 0; p = *prev; c = *curr;
        } else {
            e = now_ns - idx * per_ns;
            if (*win == idx) { p = *prev; c = *curr; }
            else if (*win == idx - 1) { p = *curr; c = 0; }
            else { p = 0; c = 0; }
        }
        w = big_p - e;
        cap = (fg_i128)requests * big_p;
        c_used = c;
        if ((fg_i128)p * w + ((fg_i128)c + cost) * big_p <= cap) {
            d->allowed = 1;
            d->retry_after = 0.0;
            if (commit) { c_used = c + cost; *win = idx; *prev = p; *curr = c_used; }
        } else {
            d->allowed = 0;
            if (cost > requests) {
                d->retry_after = INFINITY;
            } else {
                need = requests - cost - c;
                if (need >= 0) {
                    wait = big_p - ((fg_i128)need * big_p) / p - e;
                } else {
                    e2 = big_p - ((fg_i128)(requests - cost) * big_p) / c;
                    if (e2 < 0) e2 = 0;
                    wait = big_p - e + e2;
                }
                d->retry_after = fg_to_double(wait) / 1e9;
            }
        }
        room = cap - (fg_i128)p * w - (fg_i128)c_used * big_p;
        d->remaining = room > 0 ? fg_div(room, per_ns) : 0;
        if (c_used) d->reset_after = fg_to_double(2 * big_p - e) / 1e9;
        else if (p) d->reset_after = fg_to_double(big_p - e) / 1e9;
        else d->reset_after = 0.0;
    }

    static inline int fg_sliding_expired(long long win, long long prev, long long curr,
                                         long long now_ns, long long per_ns) {
        long long idx = fg_floordiv(now_ns, per_ns);
        if (curr) return idx >= win + 2;
        if (prev) return idx >= win + 1;
        return 1;
    }
    """
    # Really __int128; Cython only stores, copies and passes it to the C helpers above.
    ctypedef long long fg_i128
    fg_i128 FG_NEVER
    long long FG_NO_WINDOW
    long long FG_MAX_REQUESTS
    long long FG_MAX_PER_NS
    long long FG_MAX_KEYS
    double FG_NS_LIMIT
    ctypedef struct fg_decision:
        int allowed
        long long remaining
        double reset_after
        double retry_after
    int fg_monotonic_ns(long long *out) noexcept
    void fg_gcra(fg_i128 *tat, long long now_ns, long long requests, long long per_ns,
                 long long burst, long long cost, int commit, double scale,
                 fg_decision *d) noexcept
    bint fg_gcra_expired(fg_i128 tat, long long now_ns, long long requests) noexcept
    long long fg_backlog_ns(fg_i128 tat, long long now_ns, long long requests) noexcept
    fg_i128 fg_tat_after(long long now_ns, long long backlog_ns, long long requests) noexcept
    void fg_sliding(long long *win, long long *prev, long long *curr, long long now_ns,
                    long long requests, long long per_ns, long long cost, int commit,
                    fg_decision *d) noexcept
    bint fg_sliding_expired(long long win, long long prev, long long curr, long long now_ns,
                            long long per_ns) noexcept


@cython.final
@cython.freelist(64)
cdef class Decision:
    """Outcome of one check; the numbers the RateLimit-* / Retry-After headers are made from.

    remaining: whole cost-1 requests still admissible now; reset_after: seconds until the key is
    idle (full) again; retry_after: 0 if allowed, else seconds until this request would be
    admitted, math.inf if it never can be (cost larger than the burst).
    """

    cdef readonly bint allowed
    cdef readonly long long limit
    cdef readonly long long remaining
    cdef readonly double reset_after
    cdef readonly double retry_after

    def __init__(self, bint allowed, long long limit, long long remaining, double reset_after,
                 double retry_after):
        self.allowed = allowed
        self.limit = limit
        self.remaining = remaining
        self.reset_after = reset_after
        self.retry_after = retry_after

    def __repr__(self):
        return (
            f"Decision(allowed={bool(self.allowed)}, limit={self.limit}, "
            f"remaining={self.remaining}, reset_after={self.reset_after!r}, "
            f"retry_after={self.retry_after!r})"
        )


cdef long long _count(str name, object value, long long upper) except -1:
    # Same checks and messages as the model, so both reject the same configs the same way.
    cdef object v = operator.index(value)
    if not 1 <= v <= upper:
        raise ValueError(f"{name} must be an integer in [1, {upper}], got {v!r}")
    return v


cdef inline long long _cost(object cost) except -1:
    # operator.index semantics like the model (a typed `long long` arg would truncate 1.5 to 1).
    # Any cost above the burst is denied with retry_after inf whatever its size, so a cost too big
    # for C is clamped to FG_MAX_REQUESTS + 1: same Decision as the model's, no overflow.
    cdef int overflow = 0
    cdef long long c
    if not PyLong_CheckExact(cost):
        cost = operator.index(cost)
    c = PyLong_AsLongLongAndOverflow(cost, &overflow)
    if overflow > 0 or c > FG_MAX_REQUESTS:
        return FG_MAX_REQUESTS + 1
    if overflow < 0 or c < 1:
        raise ValueError(f"cost must be >= 1, got {cost!r}")
    return c


cdef long long _per_ns(object per) except -1:
    cdef double p = float(per)
    cdef double ns
    if not (p > 0 and p < float("inf")):
        raise ValueError(f"per must be a positive number of seconds, got {p!r}")
    ns = floor(p * 1e9 + 0.5)
    if not (ns >= 1 and ns <= <double>FG_MAX_PER_NS):
        raise ValueError(f"per must be between 1 ns and {FG_MAX_PER_NS} ns, got {p!r}")
    return <long long>ns


@cython.no_gc_clear  # never leave _index None under a live object: check() would crash
cdef class _KeyTable:
    """Bounded key -> slot table, LRU-ordered; subclasses own the per-slot state arrays.

    When a new key needs room: drop the LRU key if it is expired (idle again, nothing lost); else
    sweep all expired keys, at most once per max_keys // 8 live evictions (amortised O(1)); else
    evict the LRU key although its bucket is not full -- that forgets its debt and makes the key
    more permissive, which is why those are counted in `evictions` (harmless drops: `reclaimed`).
    """

    cdef dict _index        # key -> slot (int)
    cdef list _keys         # slot -> key, None while free
    cdef int *_prev         # LRU links; _head = most recently checked, _tail = least
    cdef int *_next
    cdef int *_free         # stack of free slots below _hwm
    cdef int _head, _tail, _nfree, _hwm, _cap
    cdef long long _since_sweep, _sweep_every
    cdef long long _per_ns
    cdef bint _c_clock
    cdef readonly long long requests
    cdef readonly double per
    cdef readonly long long max_keys
    cdef readonly unsigned long long evictions
    cdef readonly unsigned long long reclaimed
    cdef readonly object clock

    def __cinit__(self):
        # Valid (if useless) state even when __init__ is skipped: no NULL dict, no division by 0.
        self._head = self._tail = -1
        self._index = {}
        self._keys = []
        self.requests = self.max_keys = self._per_ns = 1
        self._sweep_every = self._since_sweep = 1
        self.clock = time.monotonic

    def __init__(self, requests, per, max_keys, clock):
        if self._cap:  # the C arrays are sized and indexed for the first config
            raise TypeError(f"{type(self).__name__} cannot be re-initialised once it holds keys")
        self.requests = _count("requests", requests, FG_MAX_REQUESTS)
        self._per_ns = _per_ns(per)
        self.per = float(per)
        self.max_keys = _count("max_keys", max_keys, FG_MAX_KEYS)
        if not callable(clock):
            raise TypeError("clock must be a callable returning seconds as a float")
        self.clock = clock
        # Same clock, read in C: saves a Python call and a float box per check.
        self._c_clock = clock is time.monotonic and sys.platform.startswith("linux")
        self._sweep_every = max(1, self.max_keys // 8)
        self._since_sweep = self._sweep_every  # the first time the table is full, sweep
        self._index = {}
        self._keys = []

    def __dealloc__(self):
        PyMem_Free(self._prev)
        PyMem_Free(self._next)
        PyMem_Free(self._free)

    def __len__(self):
        return len(self._index)

    def __contains__(self, key):
        return key in self._index

    def sweep(self, now=None):
        """Drop every expired key now; returns how many (also added to `reclaimed`).

        Optional: the table reclaims lazily when it is full. Call it from a timer to keep memory
        low between floods.
        """
        cdef long long now_ns
        self._read_now(now, &now_ns)
        return self._sweep(now_ns)

    # -- subclass hooks -------------------------------------------------------------------------
    cdef int _grow_state(self, int cap) except -1:
        return 0

    cdef bint _expired(self, int s, long long now_ns) noexcept:
        return True

    # -- clock ----------------------------------------------------------------------------------
    @cython.final
    cdef int _read_now(self, object now, long long *out) except -1:
        cdef double x
        if now is None:
            if self._c_clock and fg_monotonic_ns(out) == 0:
                return 0
            now = self.clock()
        x = now
        x = x * 1e9
        if not (x >= -FG_NS_LIMIT and x <= FG_NS_LIMIT):
            raise ValueError(f"now must be a finite time in seconds, got {now!r}")
        out[0] = <long long>floor(x + 0.5)  # nearest ns: 1.005 s is 1_005_000_000 ns, not ..._999
        return 0

    # -- LRU list -------------------------------------------------------------------------------
    @cython.final
    cdef inline void _unlink(self, int s) noexcept:
        cdef int p = self._prev[s]
        cdef int n = self._next[s]
        if p >= 0:
            self._next[p] = n
        else:
            self._head = n
        if n >= 0:
            self._prev[n] = p
        else:
            self._tail = p

    @cython.final
    cdef inline void _push_head(self, int s) noexcept:
        self._prev[s] = -1
        self._next[s] = self._head
        if self._head >= 0:
            self._prev[self._head] = s
        else:
            self._tail = s
        self._head = s

    @cython.final
    cdef inline void _touch(self, int s) noexcept:
        if s != self._head:
            self._unlink(s)
            self._push_head(s)

    # -- slots ----------------------------------------------------------------------------------
    @cython.final
    cdef int _lookup(self, object key) except -2:
        """Slot of key, or -1."""
        cdef PyObject *hit = PyDict_GetItemWithError(self._index, key)
        if hit is NULL:
            return -1
        return <int><object>hit

    @cython.final
    cdef int _drop(self, int s) except -1:
        key = self._keys[s]
        self._keys[s] = None
        self._unlink(s)
        self._free[self._nfree] = s
        self._nfree += 1
        del self._index[key]
        return 0

    @cython.final
    cdef long long _sweep(self, long long now_ns) except -1:
        cdef int s = self._tail
        cdef int p
        cdef long long n = 0
        while s >= 0:
            p = self._prev[s]
            if self._expired(s, now_ns):
                self._drop(s)
                n += 1
            s = p
        self.reclaimed += n
        return n

    @cython.final
    cdef int _grow(self) except -1:
        cdef long long cap = min(max(16, <long long>self._cap * 2), self.max_keys)
        cdef void *p
        p = PyMem_Realloc(self._prev, cap * sizeof(int))
        if p is NULL:
            raise MemoryError()
        self._prev = <int *>p
        p = PyMem_Realloc(self._next, cap * sizeof(int))
        if p is NULL:
            raise MemoryError()
        self._next = <int *>p
        p = PyMem_Realloc(self._free, cap * sizeof(int))
        if p is NULL:
            raise MemoryError()
        self._free = <int *>p
        self._grow_state(<int>cap)
        self._keys.extend([None] * <Py_ssize_t>(cap - self._cap))
        self._cap = <int>cap
        return 0

    @cython.final
    cdef int _alloc(self, long long now_ns) except -1:
        """A free, unlinked slot; makes room (see the class docstring) when the table is full."""
        cdef int s
        if self._nfree == 0:
            if self._hwm < self._cap:
                s = self._hwm
                self._hwm += 1
                return s
            if self._cap < self.max_keys:
                self._grow()
                s = self._hwm
                self._hwm += 1
                return s
            self._make_room(now_ns)
        self._nfree -= 1
        return self._free[self._nfree]

    @cython.final
    cdef int _make_room(self, long long now_ns) except -1:
        cdef int lru = self._tail
        if self._expired(lru, now_ns):
            self._drop(lru)
            self.reclaimed += 1
            return 0
        if self._since_sweep >= self._sweep_every:
            self._since_sweep = 0
            if self._sweep(now_ns):
                return 0
        self._since_sweep += 1
        self._drop(lru)
        self.evictions += 1
        return 0

    @cython.final
    cdef int _link_new(self, object key, int s) except -1:
        self._keys[s] = key
        self._index[key] = s
        self._push_head(s)
        return 0


cdef inline Decision _decision(fg_decision *d, long long limit):
    cdef Decision out = Decision.__new__(Decision)
    out.allowed = d.allowed
    out.limit = limit
    out.remaining = d.remaining
    out.reset_after = d.reset_after
    out.retry_after = d.retry_after
    return out


@cython.no_gc_clear
cdef class GcraLimiter(_KeyTable):
    """GCRA limiter: `requests` per `per` seconds for many keys; a fresh key may take `burst`
    (default `requests`) at once, then one every T = per/requests. Formulas: see
    fastgate.ratelimit_model.GcraLimiter; the state per key is one 128-bit TAT.
    """

    cdef fg_i128 *_tat
    cdef readonly long long burst
    cdef double _scale

    def __cinit__(self):
        self.burst = 1
        self._scale = 1e9

    def __init__(self, requests, per, max_keys=100_000, clock=time.monotonic, *, burst=None):
        _KeyTable.__init__(self, requests, per, max_keys, clock)
        self.burst = self.requests if burst is None else _count("burst", burst, FG_MAX_REQUESTS)
        self._scale = self.requests * 1e9

    def __dealloc__(self):
        PyMem_Free(self._tat)

    cdef int _grow_state(self, int cap) except -1:
        cdef void *p = PyMem_Realloc(self._tat, cap * sizeof(fg_i128))
        if p is NULL:
            raise MemoryError()
        self._tat = <fg_i128 *>p
        return 0

    cdef bint _expired(self, int s, long long now_ns) noexcept:
        return fg_gcra_expired(self._tat[s], now_ns, self.requests)

    def check(self, key, cost=1, now=None):
        """Admit `cost` requests for key now, or not; a denied request changes nothing."""
        cdef long long now_ns
        cdef fg_decision d
        cdef fg_i128 tat
        cdef int s
        cdef long long cost_ = _cost(cost)
        self._read_now(now, &now_ns)
        s = self._lookup(key)
        if s >= 0:
            fg_gcra(&self._tat[s], now_ns, self.requests, self._per_ns, self.burst, cost_, 1,
                    self._scale, &d)
            self._touch(s)  # checked = used, allowed or not
        else:
            tat = FG_NEVER
            fg_gcra(&tat, now_ns, self.requests, self._per_ns, self.burst, cost_, 1,
                    self._scale, &d)
            if d.allowed:
                s = self._alloc(now_ns)
                self._tat[s] = tat
                self._link_new(key, s)
        return _decision(&d, self.requests)

    def peek(self, key, now=None):
        """The Decision a cost-1 check would get now, with remaining/reset_after of the current
        state (nothing consumed, LRU order untouched, unknown keys not added)."""
        cdef long long now_ns
        cdef fg_decision d
        cdef fg_i128 tat
        cdef int s
        self._read_now(now, &now_ns)
        s = self._lookup(key)
        tat = self._tat[s] if s >= 0 else FG_NEVER
        fg_gcra(&tat, now_ns, self.requests, self._per_ns, self.burst, 1, 0, self._scale, &d)
        return _decision(&d, self.requests)

    def backlog_ns(self, key, now=None):
        """How far (ns, rounded up) key's TAT lies ahead of now: spent requests x T. 0 = idle or
        unknown. With set_backlog_ns, carries a key's count over to a limiter of other numbers."""
        cdef long long now_ns
        cdef int s
        self._read_now(now, &now_ns)
        s = self._lookup(key)
        if s < 0:
            return 0
        return fg_backlog_ns(self._tat[s], now_ns, self.requests)

    def set_backlog_ns(self, key, backlog_ns, now=None):
        """Make key's TAT now + backlog_ns (adding the key if needed; 0 forgets it)."""
        cdef long long now_ns
        cdef long long b = backlog_ns
        cdef int s
        if b < 0:
            raise ValueError("backlog_ns must be >= 0")
        self._read_now(now, &now_ns)
        s = self._lookup(key)
        if b == 0:
            if s >= 0:
                self._drop(s)
            return
        if s < 0:
            s = self._alloc(now_ns)
            self._link_new(key, s)
        else:
            self._touch(s)
        self._tat[s] = fg_tat_after(now_ns, b, self.requests)


@cython.no_gc_clear
cdef class SlidingWindow(_KeyTable):
    """Two-bucket sliding window counter: `requests` per `per`, windows aligned to multiples of
    per. Formulas and worst-case error: see fastgate.ratelimit_model.SlidingWindow.
    """

    cdef long long *_win
    cdef long long *_prevc
    cdef long long *_currc

    def __init__(self, requests, per, max_keys=100_000, clock=time.monotonic):
        _KeyTable.__init__(self, requests, per, max_keys, clock)

    def __dealloc__(self):
        PyMem_Free(self._win)
        PyMem_Free(self._prevc)
        PyMem_Free(self._currc)

    cdef int _grow_state(self, int cap) except -1:
        cdef void *p
        p = PyMem_Realloc(self._win, cap * sizeof(long long))
        if p is NULL:
            raise MemoryError()
        self._win = <long long *>p
        p = PyMem_Realloc(self._prevc, cap * sizeof(long long))
        if p is NULL:
            raise MemoryError()
        self._prevc = <long long *>p
        p = PyMem_Realloc(self._currc, cap * sizeof(long long))
        if p is NULL:
            raise MemoryError()
        self._currc = <long long *>p
        return 0

    cdef bint _expired(self, int s, long long now_ns) noexcept:
        return fg_sliding_expired(self._win[s], self._prevc[s], self._currc[s], now_ns,
                                  self._per_ns)

    def check(self, key, cost=1, now=None):
        """Admit `cost` requests for key now, or not; a denied request changes nothing."""
        cdef long long now_ns
        cdef fg_decision d
        cdef long long win, prev = 0, curr = 0
        cdef int s
        cdef long long cost_ = _cost(cost)
        self._read_now(now, &now_ns)
        s = self._lookup(key)
        if s >= 0:
            fg_sliding(&self._win[s], &self._prevc[s], &self._currc[s], now_ns, self.requests,
                       self._per_ns, cost_, 1, &d)
            self._touch(s)
        else:
            win = FG_NO_WINDOW
            fg_sliding(&win, &prev, &curr, now_ns, self.requests, self._per_ns, cost_, 1, &d)
            if d.allowed:
                s = self._alloc(now_ns)
                self._win[s] = win
                self._prevc[s] = prev
                self._currc[s] = curr
                self._link_new(key, s)
        return _decision(&d, self.requests)

    def peek(self, key, now=None):
        """The Decision a cost-1 check would get now, with remaining/reset_after of the current
        state (nothing consumed, LRU order untouched, unknown keys not added)."""
        cdef long long now_ns
        cdef fg_decision d
        cdef long long win, prev = 0, curr = 0
        cdef int s
        self._read_now(now, &now_ns)
        s = self._lookup(key)
        if s >= 0:
            win, prev, curr = self._win[s], self._prevc[s], self._currc[s]
        else:
            win = FG_NO_WINDOW
        fg_sliding(&win, &prev, &curr, now_ns, self.requests, self._per_ns, 1, 0, &d)
        return _decision(&d, self.requests)

# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Streaming JSON threat scanner: RFC 8259 grammar, strict UTF-8 and per-container limits.

Invariant: any split of the input into feed() calls gives the same verdict, limit and offset as
one whole feed; state is O(max_depth) plus the decoded keys of the objects still open, never a tree.

Decisions (tests/native/test_jsonscan.py holds the full i_* table):
- limits: None = unlimited; 0 is a real limit. Depth counts arrays and objects (`[]` is depth 1).
  Array elements / object entries are counted per container; string and key lengths are in code
  points after decoding (`\\u00e9`, a surrogate-pair escape and a 4-byte UTF-8 char each count 1);
  keys obey max_key_length only. Duplicate keys (compared decoded) -> limit "duplicate_key".
- rejected, "malformed": lone or inverted surrogate escapes (Python's json accepts them; they
  cannot be re-encoded as UTF-8 and parsers disagree on them), any invalid UTF-8 including encoded
  surrogates ED A0..BF (Python accepts those too, via surrogatepass), a BOM (RFC 8259 §8.1: MUST
  NOT be sent, MAY be ignored; we do not ignore it), UTF-16/32 input (§8.1: MUST be UTF-8).
- accepted: numbers of any size (grammar only, O(n), no conversion); nesting up to max_depth.
- offset: byte offset in the whole stream where the violation became certain (a limit: the first
  byte of the code point / element / entry / container that exceeds it; a duplicate key: its
  closing quote; max_bytes: max_bytes itself; truncated input: the stream length, at finish()).
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.stdint cimport uint64_t
from libc.string cimport memcmp, memcpy, memset

import operator
import os

from fastgate.errors import PayloadRejected

__all__ = [
    "DEFAULT_MAX_ARRAY_ELEMENTS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_KEY_LENGTH",
    "DEFAULT_MAX_OBJECT_ENTRIES",
    "DEFAULT_MAX_STRING_LENGTH",
    "LIMIT_NAMES",
    "JsonLimits",
    "JsonScanner",
    "scan_json",
]

DEFAULT_MAX_DEPTH = 20
DEFAULT_MAX_STRING_LENGTH = 10_000
DEFAULT_MAX_KEY_LENGTH = 256
DEFAULT_MAX_ARRAY_ELEMENTS = 1000
DEFAULT_MAX_OBJECT_ENTRIES = 1000
DEFAULT_MAX_BYTES = 1 << 20

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif
    #ifndef __SIZEOF_INT128__
    #error "fastgate._native.jsonscan needs a 64-bit GCC or Clang (__int128)"
    #endif

    static unsigned char fg_js_plain[256];  /* string byte needing no attention: 0x20-0x7F minus quote, backslash */
    static unsigned char fg_js_ws[256];     /* RFC 8259 section 2: SP HTAB LF CR */
    static unsigned char fg_js_digit[256];
    static unsigned char fg_js_hex[256];    /* nibble value, 0xFF if not a hex digit */
    static unsigned char fg_js_esc[256];    /* decoded byte of a one-letter escape, 0 if invalid */
    static unsigned char fg_js_vstart[256]; /* what a value starting with this byte is, 0: none */
    static unsigned char fg_js_u8need[256]; /* continuation bytes after a valid lead, 0: invalid lead */
    static unsigned char fg_js_u8lo[256];   /* allowed range of the first continuation byte */
    static unsigned char fg_js_u8hi[256];

    /* First byte at or after p that is a quote, a backslash, a control byte or >= 0x80. */
    static inline const unsigned char *fg_js_skip_plain(const unsigned char *p, const unsigned char *end) {
    #if defined(__SSE2__)
        const __m128i quote = _mm_set1_epi8(0x22);
        const __m128i bslash = _mm_set1_epi8(0x5C);
        const __m128i space = _mm_set1_epi8(0x20);
        while (end - p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)p);
            /* signed compare: v < 0x20 holds for 0x00-0x1F and for 0x80-0xFF */
            __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                     _mm_cmplt_epi8(v, space));
            unsigned mask = (unsigned)_mm_movemask_epi8(m);
            if (mask) return p + __builtin_ctz(mask);
            p += 16;
        }
    #endif
        while (p < end && fg_js_plain[*p]) p++;
        return p;
    }

    /* p holds the whole literal of kind k (0 true, 1 false, 2 null): byte compares the compiler
       merges, instead of a memcmp call per literal. */
    static inline int fg_js_lit_eq(const unsigned char *p, int k) {
        if (k == 0) return p[0] == 't' && p[1] == 'r' && p[2] == 'u' && p[3] == 'e';
        if (k == 1) return p[0] == 'f' && p[1] == 'a' && p[2] == 'l' && p[3] == 's' && p[4] == 'e';
        return p[0] == 'n' && p[1] == 'u' && p[2] == 'l' && p[3] == 'l';
    }

    static inline const unsigned char *fg_js_skip_ws(const unsigned char *p, const unsigned char *end) {
        while (p < end && fg_js_ws[*p]) p++;
        return p;
    }

    static inline const unsigned char *fg_js_skip_digits(const unsigned char *p, const unsigned char *end) {
        while (p < end && fg_js_digit[*p]) p++;
        return p;
    }

    /* Seeded 64-bit hash of a decoded key (wyhash-style multiply-fold); the seeds are random per
       process, so collisions cannot be precomputed; equal hashes are always confirmed by memcmp. */
    static inline uint64_t fg_js_mum(uint64_t a, uint64_t b) {
        __uint128_t r = (__uint128_t)a * b;
        return (uint64_t)r ^ (uint64_t)(r >> 64);
    }
    static inline uint64_t fg_js_hash(const unsigned char *p, size_t n, uint64_t s0, uint64_t s1) {
        /* Tail loads are overlapping fixed-size loads, never a variable-length memcpy into a
           stack word (a store-forwarding stall that once cost a third of the scan time). */
        uint64_t h = s0 ^ ((uint64_t)n * 0x9E3779B97F4A7C15ULL);
        uint64_t a, b = 0;
        if (n <= 8) {
            if (n >= 4) {
                uint32_t x, y;
                memcpy(&x, p, 4);
                memcpy(&y, p + n - 4, 4);
                a = x;
                b = y;
            } else if (n > 0) {
                a = ((uint64_t)p[0] << 16) | ((uint64_t)p[n >> 1] << 8) | p[n - 1];
            } else {
                a = 0;
            }
        } else {
            const unsigned char *end = p + n;
            while (end - p > 8) {
                memcpy(&a, p, 8);
                h = fg_js_mum(a ^ s1, h ^ 0xA0761D6478BD642FULL);
                p += 8;
            }
            memcpy(&a, end - 8, 8);
        }
        return fg_js_mum(a ^ s1, b ^ h ^ 0xE7037ED1A0B428DBULL) ^ h;
    }
    """
    unsigned char fg_js_plain[256]
    unsigned char fg_js_ws[256]
    unsigned char fg_js_digit[256]
    unsigned char fg_js_hex[256]
    unsigned char fg_js_esc[256]
    unsigned char fg_js_vstart[256]
    unsigned char fg_js_u8need[256]
    unsigned char fg_js_u8lo[256]
    unsigned char fg_js_u8hi[256]
    const unsigned char *fg_js_skip_plain(const unsigned char *p, const unsigned char *end) noexcept nogil
    const unsigned char *fg_js_skip_ws(const unsigned char *p, const unsigned char *end) noexcept nogil
    int fg_js_lit_eq(const unsigned char *p, int k) noexcept nogil
    const unsigned char *fg_js_skip_digits(const unsigned char *p, const unsigned char *end) noexcept nogil
    uint64_t fg_js_hash(const unsigned char *p, size_t n, uint64_t s0, uint64_t s1) noexcept nogil
    Py_ssize_t PY_SSIZE_T_MAX

# What a value starting with a byte is (fg_js_vstart).
cdef enum:
    V_NONE = 0
    V_STRING = 1
    V_OBJECT = 2
    V_ARRAY = 3
    V_MINUS = 4
    V_ZERO = 5
    V_DIGIT = 6
    V_TRUE = 7
    V_FALSE = 8
    V_NULL = 9

cdef void _init_tables() noexcept:
    cdef int c
    for c in range(256):
        fg_js_plain[c] = 1 if 0x20 <= c < 0x80 and c != 0x22 and c != 0x5C else 0
        fg_js_ws[c] = 1 if c in (0x20, 0x09, 0x0A, 0x0D) else 0
        fg_js_digit[c] = 1 if 0x30 <= c <= 0x39 else 0
        fg_js_esc[c] = 0
        fg_js_vstart[c] = V_NONE
        fg_js_u8need[c] = 0
        fg_js_u8lo[c] = 0x80
        fg_js_u8hi[c] = 0xBF
        if 0x30 <= c <= 0x39:
            fg_js_hex[c] = c - 0x30
        elif 0x41 <= c <= 0x46:
            fg_js_hex[c] = c - 0x41 + 10
        elif 0x61 <= c <= 0x66:
            fg_js_hex[c] = c - 0x61 + 10
        else:
            fg_js_hex[c] = 0xFF
    # RFC 8259 §7: the two-character escapes and what they decode to.
    fg_js_esc[0x22] = 0x22  # \"
    fg_js_esc[0x5C] = 0x5C  # \\
    fg_js_esc[0x2F] = 0x2F  # \/
    fg_js_esc[0x62] = 0x08  # \b
    fg_js_esc[0x66] = 0x0C  # \f
    fg_js_esc[0x6E] = 0x0A  # \n
    fg_js_esc[0x72] = 0x0D  # \r
    fg_js_esc[0x74] = 0x09  # \t
    fg_js_vstart[0x22] = V_STRING
    fg_js_vstart[0x7B] = V_OBJECT
    fg_js_vstart[0x5B] = V_ARRAY
    fg_js_vstart[0x2D] = V_MINUS
    fg_js_vstart[0x30] = V_ZERO
    for c in range(0x31, 0x3A):
        fg_js_vstart[c] = V_DIGIT
    fg_js_vstart[0x74] = V_TRUE
    fg_js_vstart[0x66] = V_FALSE
    fg_js_vstart[0x6E] = V_NULL
    # RFC 3629 §4 (Unicode Table 3-7): well-formed UTF-8. No overlongs (C0, C1, E0 80-9F,
    # F0 80-8F), no surrogates (ED A0-BF), nothing above U+10FFFF (F4 90-BF, F5-FF).
    for c in range(0xC2, 0xE0):
        fg_js_u8need[c] = 1
    for c in range(0xE0, 0xF0):
        fg_js_u8need[c] = 2
    for c in range(0xF0, 0xF5):
        fg_js_u8need[c] = 3
    fg_js_u8lo[0xE0] = 0xA0
    fg_js_u8hi[0xED] = 0x9F
    fg_js_u8lo[0xF0] = 0x90
    fg_js_u8hi[0xF4] = 0x8F


_init_tables()

cdef uint64_t SEED0
cdef uint64_t SEED1
SEED0 = int.from_bytes(os.urandom(8), "little")
SEED1 = int.from_bytes(os.urandom(8), "little") | 1

# Scanner states: where in the grammar the next byte falls.
cdef enum:
    S_VALUE = 0      # a value must start (skipping whitespace)
    S_ARR_FIRST = 1  # just after '[': a value or ']'
    S_OBJ_FIRST = 2  # just after '{': a key or '}'
    S_OBJ_KEY = 3    # after ',' in an object: a key
    S_COLON = 4      # after a key
    S_AFTER = 5      # after a value: ',' or the closing bracket; at depth 0 only whitespace
    S_STR = 6        # inside a string or key
    S_ESC = 7        # after a backslash
    S_HEX = 8        # \uXXXX digits
    S_LOW_BS = 9     # after a high-surrogate escape: '\' must follow
    S_LOW_U = 10     # ... then 'u'
    S_LOW_HEX = 11   # ... then the low surrogate's 4 hex digits
    S_UTF8 = 12      # inside a multi-byte UTF-8 sequence split by a chunk boundary
    S_N_MINUS = 13   # number states follow RFC 8259 §6: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?
    S_N_ZERO = 14
    S_N_INT = 15
    S_N_DOT = 16
    S_N_FRAC = 17
    S_N_E = 18
    S_N_ESIGN = 19
    S_N_EXP = 20
    S_LIT = 21       # inside true / false / null
    S_FAILED = 22
    S_FINISHED = 23

cdef enum:
    K_TOP = 0
    K_ARRAY = 1
    K_OBJECT = 2

# Error codes index LIMIT_NAMES; E_NOMEM raises MemoryError instead.
cdef enum:
    E_MALFORMED = 0
    E_DEPTH = 1
    E_STRING = 2
    E_KEY = 3
    E_ARRAY = 4
    E_OBJECT = 5
    E_BYTES = 6
    E_DUPLICATE = 7
    E_NOMEM = 8

LIMIT_NAMES = (
    "malformed",
    "max_depth",
    "max_string_length",
    "max_key_length",
    "max_array_elements",
    "max_object_entries",
    "max_bytes",
    "duplicate_key",
)
_DETAILS = (
    "malformed JSON",
    "JSON nested too deeply",
    "JSON string too long",
    "JSON object key too long",
    "JSON array has too many elements",
    "JSON object has too many entries",
    "JSON document too large",
    "JSON object has a duplicate key",
)

# Objects with at most this many keys check duplicates by a linear scan of their (hash, length)
# pairs; past it they get an open-addressing table (load <= 1/2) in a stack-shaped arena.
cdef enum:
    LINEAR_KEYS = 16
    INLINE_FRAMES = 8

cdef const char *LIT_TEXT[3]
LIT_TEXT[0] = b"true"
LIT_TEXT[1] = b"false"
LIT_TEXT[2] = b"null"
cdef int LIT_LEN[3]
LIT_LEN[0] = 4
LIT_LEN[1] = 5
LIT_LEN[2] = 4


cdef struct Frame:
    Py_ssize_t count      # elements (array) or entries (object) so far
    Py_ssize_t ent_start  # objects: first KeyEnt of this object
    Py_ssize_t key_start  # objects: arena offset of its first key
    Py_ssize_t tab_start  # objects: offset of its hash table in the table arena
    Py_ssize_t tab_mask   # objects: table size - 1, 0 while it uses the linear scan
    uint64_t seen         # objects in the linear scan: one bit (of 64, by hash) per key so far
    int kind


cdef struct KeyEnt:
    Py_ssize_t off
    Py_ssize_t len
    uint64_t h


cdef Py_ssize_t _limit_value(str name, object v) except -2:
    if v is None:
        return -1
    if isinstance(v, bool):
        raise TypeError(f"{name}: expected an int or None, got a bool")
    n = operator.index(v)
    if n < 0:
        raise ValueError(f"{name}: must be >= 0 or None (unlimited), got {n}")
    if n > PY_SSIZE_T_MAX:
        raise ValueError(f"{name}: too large: {n}")
    return n


@cython.final
cdef class JsonLimits:
    """Per-document JSON limits; each is an int >= 0 or None (unlimited). Immutable."""

    cdef readonly object max_depth
    cdef readonly object max_string_length
    cdef readonly object max_key_length
    cdef readonly object max_array_elements
    cdef readonly object max_object_entries
    cdef readonly object max_bytes
    # Effective C values: PY_SSIZE_T_MAX for None.
    cdef Py_ssize_t c_depth, c_string, c_key, c_array, c_object, c_bytes

    def __cinit__(
        self,
        max_depth=DEFAULT_MAX_DEPTH,
        max_string_length=DEFAULT_MAX_STRING_LENGTH,
        max_key_length=DEFAULT_MAX_KEY_LENGTH,
        max_array_elements=DEFAULT_MAX_ARRAY_ELEMENTS,
        max_object_entries=DEFAULT_MAX_OBJECT_ENTRIES,
        max_bytes=DEFAULT_MAX_BYTES,
    ):
        cdef Py_ssize_t v
        v = _limit_value("max_depth", max_depth)
        self.c_depth = PY_SSIZE_T_MAX if v < 0 else v
        self.max_depth = None if v < 0 else v
        v = _limit_value("max_string_length", max_string_length)
        self.c_string = PY_SSIZE_T_MAX if v < 0 else v
        self.max_string_length = None if v < 0 else v
        v = _limit_value("max_key_length", max_key_length)
        self.c_key = PY_SSIZE_T_MAX if v < 0 else v
        self.max_key_length = None if v < 0 else v
        v = _limit_value("max_array_elements", max_array_elements)
        self.c_array = PY_SSIZE_T_MAX if v < 0 else v
        self.max_array_elements = None if v < 0 else v
        v = _limit_value("max_object_entries", max_object_entries)
        self.c_object = PY_SSIZE_T_MAX if v < 0 else v
        self.max_object_entries = None if v < 0 else v
        v = _limit_value("max_bytes", max_bytes)
        self.c_bytes = PY_SSIZE_T_MAX if v < 0 else v
        self.max_bytes = None if v < 0 else v

    @staticmethod
    def unlimited():
        """Every limit None: only the grammar, UTF-8 and duplicate keys decide. Not for untrusted input."""
        return JsonLimits(None, None, None, None, None, None)

    def _astuple(self):
        return (self.max_depth, self.max_string_length, self.max_key_length,
                self.max_array_elements, self.max_object_entries, self.max_bytes)

    def __eq__(self, other):
        if not isinstance(other, JsonLimits):
            return NotImplemented
        return self._astuple() == (<JsonLimits>other)._astuple()

    def __hash__(self):
        return hash(self._astuple())

    def __reduce__(self):
        return (JsonLimits, self._astuple())

    def __repr__(self):
        return (
            f"JsonLimits(max_depth={self.max_depth!r}, max_string_length={self.max_string_length!r}, "
            f"max_key_length={self.max_key_length!r}, max_array_elements={self.max_array_elements!r}, "
            f"max_object_entries={self.max_object_entries!r}, max_bytes={self.max_bytes!r})"
        )


cdef JsonLimits _DEFAULT_LIMITS = JsonLimits()


@cython.final
cdef class JsonScanner:
    """Sans-IO JSON scanner: feed() bytes in any split, then finish(); both raise PayloadRejected."""

    cdef readonly JsonLimits limits
    cdef Py_ssize_t lim_depth, lim_string, lim_key, lim_array, lim_object, lim_bytes
    cdef Py_ssize_t _bytes_seen, _max_depth_seen
    # Resumable grammar state.
    cdef int state, kind, in_key, lit_kind, lit_i, u_need, hex_n
    cdef unsigned int u_lo, u_hi, hex_v, hi_sur
    cdef Py_ssize_t depth, cnt, slen, smax, kstart
    # Failure.
    cdef int err_code
    cdef Py_ssize_t err_off
    # Container stack: frames[0] is the top level, frames[d] the container at depth d.
    cdef Frame *frames
    cdef Py_ssize_t frames_cap
    cdef Frame inline_frames[INLINE_FRAMES]
    # Decoded keys of the open objects (stack-shaped: an object's keys sit above its parent's).
    cdef unsigned char *arena
    cdef Py_ssize_t arena_len, arena_cap
    cdef KeyEnt *ents
    cdef Py_ssize_t n_ent, ents_cap
    cdef Py_ssize_t *tabs  # slots hold KeyEnt index + 1; 0 is empty
    cdef Py_ssize_t tabs_len, tabs_cap

    def __cinit__(self, JsonLimits limits=None):
        self.frames = &self.inline_frames[0]
        self.frames_cap = INLINE_FRAMES
        self.arena = NULL
        self.ents = NULL
        self.tabs = NULL
        self.arena_cap = self.ents_cap = self.tabs_cap = 0
        if limits is None:
            limits = _DEFAULT_LIMITS
        self.limits = limits
        self.lim_depth = limits.c_depth
        self.lim_string = limits.c_string
        self.lim_key = limits.c_key
        self.lim_array = limits.c_array
        self.lim_object = limits.c_object
        self.lim_bytes = limits.c_bytes
        self._reset()

    def __dealloc__(self):
        if self.frames != &self.inline_frames[0]:
            PyMem_Free(self.frames)
        PyMem_Free(self.arena)
        PyMem_Free(self.ents)
        PyMem_Free(self.tabs)

    cdef void _reset(self) noexcept:
        self._bytes_seen = 0
        self._max_depth_seen = 0
        self.state = S_VALUE
        self.kind = K_TOP
        self.in_key = 0
        self.lit_kind = self.lit_i = self.u_need = self.hex_n = 0
        self.u_lo = self.u_hi = self.hex_v = self.hi_sur = 0
        self.depth = self.cnt = self.slen = self.smax = self.kstart = 0
        self.err_code = E_MALFORMED
        self.err_off = -1
        self.frames[0].kind = K_TOP
        self.frames[0].count = 0
        self.arena_len = self.n_ent = self.tabs_len = 0

    @property
    def bytes_seen(self):
        """Bytes given to feed() so far (including the chunk that was rejected, if any)."""
        return self._bytes_seen

    @property
    def max_depth_seen(self):
        """Deepest container nesting reached so far (0: no array or object opened)."""
        return self._max_depth_seen

    def reset(self):
        """Forget the document (keeps the limits and the allocated memory) to scan another."""
        self._reset()

    # -----------------------------------------------------------------------------------------
    # Memory: every growth is bounded by the limits (frames <= max_depth + 1, keys <= the keys
    # of the open objects) and fails as E_NOMEM, never as a crash.
    # -----------------------------------------------------------------------------------------
    cdef int _grow_frames(self, Py_ssize_t need) noexcept:
        cdef Py_ssize_t cap = self.frames_cap * 2
        cdef Frame *nf
        if cap < need:
            cap = need
        if self.lim_depth < PY_SSIZE_T_MAX and cap > self.lim_depth + 1:
            cap = self.lim_depth + 1
        if cap > PY_SSIZE_T_MAX // <Py_ssize_t>sizeof(Frame):
            return -1
        if self.frames == &self.inline_frames[0]:
            nf = <Frame *>PyMem_Realloc(NULL, cap * sizeof(Frame))
            if nf == NULL:
                return -1
            memcpy(nf, self.inline_frames, self.frames_cap * sizeof(Frame))
        else:
            nf = <Frame *>PyMem_Realloc(self.frames, cap * sizeof(Frame))
            if nf == NULL:
                return -1
        self.frames = nf
        self.frames_cap = cap
        return 0

    cdef int _grow_arena(self, Py_ssize_t need) noexcept:
        cdef Py_ssize_t cap = self.arena_cap * 2
        cdef unsigned char *na
        if cap < 256:
            cap = 256
        if cap < need:
            cap = need
        na = <unsigned char *>PyMem_Realloc(self.arena, cap)
        if na == NULL:
            return -1
        self.arena = na
        self.arena_cap = cap
        return 0

    cdef inline int _key_append(self, const unsigned char *s, Py_ssize_t k) noexcept:
        if self.arena_len + k > self.arena_cap:
            if self._grow_arena(self.arena_len + k) < 0:
                return -1
        memcpy(self.arena + self.arena_len, s, k)
        self.arena_len += k
        return 0

    cdef inline int _key_append_run(self, const unsigned char *s, Py_ssize_t k,
                                    const unsigned char *end) noexcept:
        """_key_append for a run of plain key bytes at s (end: the end of the readable input):
        a short run is copied as one fixed 16-byte block (the arena keeps 16 bytes of room past
        its length), not through a memcpy call of variable size."""
        if self.arena_len + 16 + k > self.arena_cap:
            if self._grow_arena(self.arena_len + 16 + k) < 0:
                return -1
        if k <= 16 and end - s >= 16:
            memcpy(self.arena + self.arena_len, s, 16)
        else:
            memcpy(self.arena + self.arena_len, s, k)
        self.arena_len += k
        return 0

    cdef int _key_append_cp(self, unsigned int cp) noexcept:
        cdef unsigned char b[4]
        if cp < 0x80:
            b[0] = <unsigned char>cp
            return self._key_append(b, 1)
        if cp < 0x800:
            b[0] = <unsigned char>(0xC0 | (cp >> 6))
            b[1] = <unsigned char>(0x80 | (cp & 0x3F))
            return self._key_append(b, 2)
        if cp < 0x10000:
            b[0] = <unsigned char>(0xE0 | (cp >> 12))
            b[1] = <unsigned char>(0x80 | ((cp >> 6) & 0x3F))
            b[2] = <unsigned char>(0x80 | (cp & 0x3F))
            return self._key_append(b, 3)
        b[0] = <unsigned char>(0xF0 | (cp >> 18))
        b[1] = <unsigned char>(0x80 | ((cp >> 12) & 0x3F))
        b[2] = <unsigned char>(0x80 | ((cp >> 6) & 0x3F))
        b[3] = <unsigned char>(0x80 | (cp & 0x3F))
        return self._key_append(b, 4)

    cdef int _rebuild_table(self, Frame *f, Py_ssize_t size) noexcept:
        """(Re)build the object's table with `size` slots (a power of two); it is the top table."""
        cdef Py_ssize_t need = f.tab_start + size
        cdef Py_ssize_t cap, e, slot, mask = size - 1
        cdef Py_ssize_t *nt
        cdef Py_ssize_t *t
        if need > self.tabs_cap:
            cap = self.tabs_cap * 2
            if cap < need:
                cap = need
            if cap > PY_SSIZE_T_MAX // <Py_ssize_t>sizeof(Py_ssize_t):
                return -1
            nt = <Py_ssize_t *>PyMem_Realloc(self.tabs, cap * sizeof(Py_ssize_t))
            if nt == NULL:
                return -1
            self.tabs = nt
            self.tabs_cap = cap
        t = self.tabs + f.tab_start
        memset(t, 0, size * sizeof(Py_ssize_t))
        for e in range(f.ent_start, self.n_ent):
            slot = <Py_ssize_t>(self.ents[e].h & <uint64_t>mask)
            while t[slot] != 0:
                slot = (slot + 1) & mask
            t[slot] = e + 1
        f.tab_mask = mask
        self.tabs_len = need
        return 0

    cdef int _key_insert(self, Frame *f) noexcept:
        """Add the key just closed (arena[kstart:arena_len]) to object f: 1 duplicate, 0 ok, -1 nomem."""
        cdef Py_ssize_t kstart = self.kstart
        cdef Py_ssize_t klen = self.arena_len - kstart
        cdef const unsigned char *key = self.arena + kstart
        cdef uint64_t h = fg_js_hash(key, <size_t>klen, SEED0, SEED1)
        cdef Py_ssize_t i, e, slot = 0, mask = f.tab_mask, nobj, cap
        cdef KeyEnt *ents = self.ents
        cdef KeyEnt *ne
        if mask == 0:
            # a key whose bit no earlier key set is new: the linear scan only runs on a bit
            # collision (or a real duplicate)
            if f.seen & (<uint64_t>1 << (h >> 58)):
                for i in range(f.ent_start, self.n_ent):
                    if ents[i].h == h and ents[i].len == klen and memcmp(self.arena + ents[i].off, key, klen) == 0:
                        return 1
            f.seen |= <uint64_t>1 << (h >> 58)
        else:
            slot = <Py_ssize_t>(h & <uint64_t>mask)
            while True:
                e = self.tabs[f.tab_start + slot]
                if e == 0:
                    break
                e -= 1
                if ents[e].h == h and ents[e].len == klen and memcmp(self.arena + ents[e].off, key, klen) == 0:
                    return 1
                slot = (slot + 1) & mask
        if self.n_ent == self.ents_cap:
            cap = self.ents_cap * 2
            if cap < 64:
                cap = 64
            if cap > PY_SSIZE_T_MAX // <Py_ssize_t>sizeof(KeyEnt):
                return -1
            ne = <KeyEnt *>PyMem_Realloc(self.ents, cap * sizeof(KeyEnt))
            if ne == NULL:
                return -1
            self.ents = ne
            self.ents_cap = cap
        self.ents[self.n_ent].off = kstart
        self.ents[self.n_ent].len = klen
        self.ents[self.n_ent].h = h
        self.n_ent += 1
        nobj = self.n_ent - f.ent_start
        if mask == 0:
            if nobj > LINEAR_KEYS:
                return self._rebuild_table(f, 64)
        else:
            self.tabs[f.tab_start + slot] = self.n_ent
            if nobj * 2 > mask + 1:
                return self._rebuild_table(f, (mask + 1) * 2)
        return 0

    cdef int _fail(self, int code, Py_ssize_t off) noexcept:
        self.state = S_FAILED
        self.err_code = code
        self.err_off = off
        return -1

    # -----------------------------------------------------------------------------------------
    # The scanner proper. Locals mirror the resumable fields; they are written back on return.
    # Every state consumes at least one byte or changes state without consuming (numbers ending,
    # S_ARR_FIRST -> S_VALUE), so the loop ends; every per-byte step is O(1) amortized, except a
    # key's duplicate check (O(1) expected with the table, O(LINEAR_KEYS) without).
    # -----------------------------------------------------------------------------------------
    cdef int _scan(self, const unsigned char *buf, Py_ssize_t n) noexcept:
        cdef const unsigned char *p = buf
        cdef const unsigned char *end = buf + n
        cdef const unsigned char *q
        cdef Py_ssize_t base = self._bytes_seen
        cdef int state = self.state
        cdef int kind = self.kind
        cdef int in_key = self.in_key
        cdef Py_ssize_t depth = self.depth
        cdef Py_ssize_t cnt = self.cnt
        cdef Py_ssize_t slen = self.slen
        cdef Py_ssize_t smax = self.smax
        cdef unsigned int u_need = self.u_need
        cdef unsigned int u_lo = self.u_lo
        cdef unsigned int u_hi = self.u_hi
        cdef unsigned int hex_n = self.hex_n
        cdef unsigned int hex_v = self.hex_v
        cdef int lit_kind = self.lit_kind
        cdef int lit_i = self.lit_i
        cdef const unsigned char *lit
        cdef unsigned int c, need, lo, hi, d, cp
        cdef unsigned char eb
        cdef Py_ssize_t run, room
        cdef Frame *f
        cdef int vs, r

        while p < end:
            if state == S_STR:
                while True:
                    q = fg_js_skip_plain(p, end)
                    run = q - p
                    if run != 0:
                        room = smax - slen
                        if run > room:
                            return self._fail(E_KEY if in_key else E_STRING, base + (p - buf) + room)
                        slen += run
                        if in_key and self._key_append_run(p, run, end) < 0:
                            return self._fail(E_NOMEM, base + (p - buf))
                        p = q
                    if p == end:
                        break
                    c = p[0]
                    if c == 0x22:  # closing quote
                        p += 1
                        # Compact JSON chains strings: `"key":"value"`, `"value","key"` and
                        # `"item","item"` are taken here, with the checks S_COLON, S_AFTER,
                        # S_OBJ_KEY and S_VALUE make (same limits, same offsets); anything
                        # else (whitespace, numbers, brackets) goes through those states.
                        if in_key:
                            in_key = 0
                            r = self._key_insert(&self.frames[depth])
                            if r != 0:
                                return self._fail(E_DUPLICATE if r > 0 else E_NOMEM, base + (p - 1 - buf))
                            state = S_COLON
                            if p < end and p[0] == 0x3A:  # ':'
                                p += 1
                                state = S_VALUE
                                if p < end and p[0] == 0x22:  # a string value (objects count keys)
                                    p += 1
                                    slen = 0
                                    smax = self.lim_string
                                    state = S_STR
                                    continue
                        else:
                            state = S_AFTER
                            if end - p >= 2 and p[0] == 0x2C and p[1] == 0x22:  # ',"'
                                if kind == K_OBJECT:
                                    if cnt >= self.lim_object:
                                        return self._fail(E_OBJECT, base + (p + 1 - buf))
                                    in_key = 1
                                    smax = self.lim_key
                                    self.kstart = self.arena_len
                                elif kind == K_ARRAY:
                                    if cnt >= self.lim_array:
                                        return self._fail(E_ARRAY, base + (p + 1 - buf))
                                    smax = self.lim_string
                                else:  # a ',' after the top-level value: S_AFTER refuses it
                                    break
                                cnt += 1
                                slen = 0
                                p += 2
                                state = S_STR
                                continue
                        break
                    if c == 0x5C:
                        if slen >= smax:
                            return self._fail(E_KEY if in_key else E_STRING, base + (p - buf))
                        slen += 1
                        p += 1
                        state = S_ESC
                        break
                    need = fg_js_u8need[c]
                    if need == 0:  # RFC 8259 §7: control characters must be escaped; bad UTF-8
                        return self._fail(E_MALFORMED, base + (p - buf))
                    if slen >= smax:
                        return self._fail(E_KEY if in_key else E_STRING, base + (p - buf))
                    slen += 1
                    lo = fg_js_u8lo[c]
                    hi = fg_js_u8hi[c]
                    if end - p > <Py_ssize_t>need:  # the whole sequence is here
                        if p[1] < lo or p[1] > hi:
                            return self._fail(E_MALFORMED, base + (p + 1 - buf))
                        if need >= 2:
                            if (p[2] & 0xC0) != 0x80:
                                return self._fail(E_MALFORMED, base + (p + 2 - buf))
                            if need == 3 and (p[3] & 0xC0) != 0x80:
                                return self._fail(E_MALFORMED, base + (p + 3 - buf))
                        if in_key and self._key_append(p, need + 1) < 0:
                            return self._fail(E_NOMEM, base + (p - buf))
                        p += need + 1
                    else:
                        if in_key and self._key_append(p, 1) < 0:
                            return self._fail(E_NOMEM, base + (p - buf))
                        p += 1
                        u_need = need
                        u_lo = lo
                        u_hi = hi
                        state = S_UTF8
                        break

            elif state == S_AFTER:
                c = p[0]
                if fg_js_ws[c]:
                    p = fg_js_skip_ws(p, end)
                    if p == end:
                        break
                    c = p[0]
                if c == 0x2C:  # ','
                    if kind == K_ARRAY:
                        state = S_VALUE
                    elif kind == K_OBJECT:
                        state = S_OBJ_KEY
                        if end - p >= 2 and p[1] == 0x22:  # ',"': the next key, as S_OBJ_KEY does
                            if cnt >= self.lim_object:
                                return self._fail(E_OBJECT, base + (p + 1 - buf))
                            cnt += 1
                            in_key = 1
                            slen = 0
                            smax = self.lim_key
                            self.kstart = self.arena_len
                            p += 1
                            state = S_STR
                    else:
                        return self._fail(E_MALFORMED, base + (p - buf))
                    p += 1
                elif (c == 0x5D and kind == K_ARRAY) or (c == 0x7D and kind == K_OBJECT):
                    if kind == K_OBJECT:
                        f = &self.frames[depth]
                        self.n_ent = f.ent_start
                        self.arena_len = f.key_start
                        self.tabs_len = f.tab_start
                    depth -= 1
                    cnt = self.frames[depth].count
                    kind = self.frames[depth].kind
                    p += 1
                else:  # includes anything after the top-level value (RFC 8259 §2: one value)
                    return self._fail(E_MALFORMED, base + (p - buf))

            elif state == S_VALUE or state == S_ARR_FIRST:
                c = p[0]
                if fg_js_ws[c]:
                    p = fg_js_skip_ws(p, end)
                    if p == end:
                        break
                    c = p[0]
                if state == S_ARR_FIRST and c == 0x5D:  # empty array
                    depth -= 1
                    cnt = self.frames[depth].count
                    kind = self.frames[depth].kind
                    p += 1
                    state = S_AFTER
                    continue
                vs = fg_js_vstart[c]
                if vs == V_NONE:
                    return self._fail(E_MALFORMED, base + (p - buf))
                if kind == K_ARRAY:
                    if cnt >= self.lim_array:
                        return self._fail(E_ARRAY, base + (p - buf))
                    cnt += 1
                if vs == V_STRING:
                    in_key = 0
                    slen = 0
                    smax = self.lim_string
                    p += 1
                    state = S_STR
                elif vs == V_OBJECT or vs == V_ARRAY:
                    if depth >= self.lim_depth:
                        return self._fail(E_DEPTH, base + (p - buf))
                    if depth + 1 >= self.frames_cap and self._grow_frames(depth + 2) < 0:
                        return self._fail(E_NOMEM, base + (p - buf))
                    self.frames[depth].count = cnt
                    depth += 1
                    if depth > self._max_depth_seen:
                        self._max_depth_seen = depth
                    cnt = 0
                    f = &self.frames[depth]
                    f.count = 0
                    if vs == V_OBJECT:
                        kind = K_OBJECT
                        f.ent_start = self.n_ent
                        f.key_start = self.arena_len
                        f.tab_start = self.tabs_len
                        f.tab_mask = 0
                        f.seen = 0
                        state = S_OBJ_FIRST
                    else:
                        kind = K_ARRAY
                        state = S_ARR_FIRST
                    f.kind = kind
                    p += 1
                elif vs == V_MINUS:
                    p += 1
                    state = S_N_MINUS
                elif vs == V_ZERO:
                    p += 1
                    state = S_N_ZERO
                elif vs == V_DIGIT:
                    p += 1
                    state = S_N_INT
                else:
                    lit_kind = vs - V_TRUE
                    lit = <const unsigned char *>LIT_TEXT[lit_kind]
                    if end - p >= LIT_LEN[lit_kind] and fg_js_lit_eq(p, lit_kind):
                        p += LIT_LEN[lit_kind]
                        state = S_AFTER
                    else:
                        lit_i = 1
                        p += 1
                        state = S_LIT

            elif state == S_OBJ_FIRST or state == S_OBJ_KEY:
                c = p[0]
                if fg_js_ws[c]:
                    p = fg_js_skip_ws(p, end)
                    if p == end:
                        break
                    c = p[0]
                if c == 0x22:
                    if cnt >= self.lim_object:
                        return self._fail(E_OBJECT, base + (p - buf))
                    cnt += 1
                    in_key = 1
                    slen = 0
                    smax = self.lim_key
                    self.kstart = self.arena_len
                    p += 1
                    state = S_STR
                elif c == 0x7D and state == S_OBJ_FIRST:  # empty object
                    depth -= 1
                    cnt = self.frames[depth].count
                    kind = self.frames[depth].kind
                    p += 1
                    state = S_AFTER
                else:
                    return self._fail(E_MALFORMED, base + (p - buf))

            elif state == S_COLON:
                c = p[0]
                if fg_js_ws[c]:
                    p = fg_js_skip_ws(p, end)
                    if p == end:
                        break
                    c = p[0]
                if c != 0x3A:
                    return self._fail(E_MALFORMED, base + (p - buf))
                p += 1
                state = S_VALUE

            elif state == S_N_INT or state == S_N_FRAC or state == S_N_EXP:
                p = fg_js_skip_digits(p, end)
                if p == end:
                    break
                c = p[0]
                if c == 0x2E and state == S_N_INT:
                    p += 1
                    state = S_N_DOT
                elif (c == 0x65 or c == 0x45) and state != S_N_EXP:
                    p += 1
                    state = S_N_E
                else:  # the number ended; this byte belongs to what follows
                    state = S_AFTER

            elif state == S_N_ZERO:
                c = p[0]
                if c == 0x2E:
                    p += 1
                    state = S_N_DOT
                elif c == 0x65 or c == 0x45:
                    p += 1
                    state = S_N_E
                else:  # a digit here ("01") is then rejected in S_AFTER
                    state = S_AFTER

            elif state == S_N_MINUS:
                c = p[0]
                if c == 0x30:
                    state = S_N_ZERO
                elif fg_js_digit[c]:
                    state = S_N_INT
                else:
                    return self._fail(E_MALFORMED, base + (p - buf))
                p += 1

            elif state == S_N_DOT or state == S_N_ESIGN:
                if not fg_js_digit[p[0]]:
                    return self._fail(E_MALFORMED, base + (p - buf))
                p += 1
                state = S_N_FRAC if state == S_N_DOT else S_N_EXP

            elif state == S_N_E:
                c = p[0]
                if c == 0x2B or c == 0x2D:
                    p += 1
                    state = S_N_ESIGN
                elif fg_js_digit[c]:
                    p += 1
                    state = S_N_EXP
                else:
                    return self._fail(E_MALFORMED, base + (p - buf))

            elif state == S_ESC:
                c = p[0]
                if c == 0x75:  # \uXXXX
                    p += 1
                    hex_n = 0
                    hex_v = 0
                    state = S_HEX
                else:
                    eb = fg_js_esc[c]
                    if eb == 0:
                        return self._fail(E_MALFORMED, base + (p - buf))
                    if in_key and self._key_append(&eb, 1) < 0:
                        return self._fail(E_NOMEM, base + (p - buf))
                    p += 1
                    state = S_STR

            elif state == S_HEX or state == S_LOW_HEX:
                while hex_n < 4 and p < end:
                    d = fg_js_hex[p[0]]
                    if d == 0xFF:
                        return self._fail(E_MALFORMED, base + (p - buf))
                    hex_v = (hex_v << 4) | d
                    hex_n += 1
                    p += 1
                if hex_n < 4:
                    break
                if state == S_HEX:
                    if 0xD800 <= hex_v <= 0xDBFF:
                        self.hi_sur = hex_v
                        state = S_LOW_BS
                        continue
                    if 0xDC00 <= hex_v <= 0xDFFF:  # a lone low surrogate
                        return self._fail(E_MALFORMED, base + (p - 1 - buf))
                    cp = hex_v
                else:
                    if not (0xDC00 <= hex_v <= 0xDFFF):  # high surrogate not followed by a low one
                        return self._fail(E_MALFORMED, base + (p - 1 - buf))
                    cp = 0x10000 + ((self.hi_sur - 0xD800) << 10) + (hex_v - 0xDC00)
                if in_key and self._key_append_cp(cp) < 0:
                    return self._fail(E_NOMEM, base + (p - buf))
                state = S_STR

            elif state == S_LOW_BS:
                if p[0] != 0x5C:  # a lone high surrogate
                    return self._fail(E_MALFORMED, base + (p - buf))
                p += 1
                state = S_LOW_U

            elif state == S_LOW_U:
                if p[0] != 0x75:
                    return self._fail(E_MALFORMED, base + (p - buf))
                p += 1
                hex_n = 0
                hex_v = 0
                state = S_LOW_HEX

            elif state == S_UTF8:
                while u_need > 0 and p < end:
                    c = p[0]
                    if c < u_lo or c > u_hi:
                        return self._fail(E_MALFORMED, base + (p - buf))
                    if in_key and self._key_append(p, 1) < 0:
                        return self._fail(E_NOMEM, base + (p - buf))
                    p += 1
                    u_need -= 1
                    u_lo = 0x80
                    u_hi = 0xBF
                if u_need == 0:
                    state = S_STR

            elif state == S_LIT:
                lit = <const unsigned char *>LIT_TEXT[lit_kind]
                while lit_i < LIT_LEN[lit_kind] and p < end:
                    if p[0] != lit[lit_i]:
                        return self._fail(E_MALFORMED, base + (p - buf))
                    p += 1
                    lit_i += 1
                if lit_i == LIT_LEN[lit_kind]:
                    state = S_AFTER

            else:  # S_FAILED / S_FINISHED never reach here (feed checks first)
                return self._fail(E_MALFORMED, base + (p - buf))

        self.state = state
        self.kind = kind
        self.in_key = in_key
        self.depth = depth
        self.cnt = cnt
        self.slen = slen
        self.smax = smax
        self.u_need = u_need
        self.u_lo = u_lo
        self.u_hi = u_hi
        self.hex_n = hex_n
        self.hex_v = hex_v
        self.lit_kind = lit_kind
        self.lit_i = lit_i
        return 0

    cdef object _error(self):
        if self.err_code == E_NOMEM:
            return MemoryError("JSON scanner: out of memory")
        limit = LIMIT_NAMES[self.err_code]
        return PayloadRejected(
            limit,
            offset=self.err_off,
            detail=_DETAILS[self.err_code],
            log_detail=f"json: {limit} at byte {self.err_off}",
        )

    cdef int _feed(self, const unsigned char *buf, Py_ssize_t n) noexcept:
        cdef Py_ssize_t allowed = self.lim_bytes - self._bytes_seen
        cdef Py_ssize_t m = n if n <= allowed else allowed
        cdef int r = self._scan(buf, m)
        self._bytes_seen += n
        if r == 0 and m < n:
            return self._fail(E_BYTES, self.lim_bytes)
        return r

    def feed(self, data):
        """Scan the next chunk (bytes, bytearray or a contiguous memoryview); raises on a violation."""
        cdef Py_buffer view
        cdef int r
        if self.state >= S_FAILED:
            if self.state == S_FAILED:
                raise self._error()
            raise RuntimeError("JsonScanner.feed() after finish()")
        if PyBytes_CheckExact(data):
            r = self._feed(<const unsigned char *>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
        else:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            try:
                r = self._feed(<const unsigned char *>view.buf, view.len)
            finally:
                PyBuffer_Release(&view)
        if r != 0:
            raise self._error()

    def finish(self):
        """End of input: raises unless exactly one complete value (and whitespace) was fed."""
        cdef int st = self.state
        if st == S_FAILED:
            raise self._error()
        if st == S_FINISHED:
            return
        if self.depth != 0 or not (
            st == S_AFTER or st == S_N_ZERO or st == S_N_INT or st == S_N_FRAC or st == S_N_EXP
        ):
            self._fail(E_MALFORMED, self._bytes_seen)
            raise self._error()
        self.state = S_FINISHED


# scan_json's scanner, kept for the next document with the same limits (allocation and the
# key arena's growth are paid once, not per request). A scan holds the GIL from start to end,
# so no two calls ever share it; one that grew past _REUSE_MAX_BYTES of memory is not kept.
cdef JsonScanner _spare = None
cdef Py_ssize_t _REUSE_MAX_BYTES = 64 * 1024


def scan_json(data, JsonLimits limits=None):
    """Scan one whole JSON document (feed + finish); raises PayloadRejected on any violation."""
    global _spare
    cdef JsonScanner s = _spare
    if limits is None:
        limits = _DEFAULT_LIMITS
    if s is not None and s.limits is limits:
        _spare = None
        s._reset()
    else:
        s = JsonScanner(limits)
    s.feed(data)
    s.finish()
    if s.arena_cap + s.ents_cap * <Py_ssize_t>sizeof(KeyEnt) + s.tabs_cap * <Py_ssize_t>sizeof(Py_ssize_t) \
            <= _REUSE_MAX_BYTES and s.frames == &s.inline_frames[0]:
        _spare = s

# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
r"""Regex scanning: a native normaliser that undoes common evasions, in front of a hyperscan
database compiled once from (rule_id, pattern) pairs; block mode for buffered data, stream mode
for bodies that arrive in pieces.

Invariants: normalisation is one left-to-right pass per stage in C, linear in the input, and its
output is never longer than its input; the streaming normaliser yields exactly the bytes of the
block one for every split of the input (each stage keeps a bounded carry); hyperscan matches in
linear time, and a pattern it cannot compile is refused when the PatternSet is built.

Normalisation, in stage order (`kind` selects the stages; every stage is one pass):

  kind    stages
  path    P1 P2 H P3 S              P = percent, H = HTML entities, E = backslash escapes,
  header  P1 P2 H P3 S              S = squeeze (comments, NUL, whitespace, case)
  query   P1+ P2 H P3 S             P1+ = P1 that also turns '+' into a space
  body    P1 P2 H P3 Ejs S
  json    Ejson P1 P2 H P3 S        (JSON escapes are the outermost encoding of a JSON body)

P  `%HH` -> that byte; `%uHHHH` (IIS) -> the code point in UTF-8; anything else after `%` is left
   as it is. Three passes, so up to triple encoding is undone (`%252527` -> `'`); a fourth layer
   is left as `%XX`. In P1 of kind "query" a raw `+` is a space (`%2B` stays `+`).
H  `&#DDD` / `&#xHHH` (any number of leading zeros, `;` optional) -> the code point in UTF-8
   (0, surrogates and > U+10FFFF -> U+FFFD, as HTML5); `&name;` for the names in _ENTITIES
   (ASCII case-insensitive; `&nbsp;` -> space); `&lt` `&gt` `&amp` `&quot` also without `;` and
   as a prefix (`&ltscript` -> `<script`), as HTML5 does in text. A name is at most
   _NAME_MAX (8) letters/digits. One pass: `&amp;lt;` -> `&lt;`.
E  `\uHHHH` -> UTF-8 (each escape alone: a surrogate pair gives two 3-byte sequences);
   `\xHH` -> U+00HH in UTF-8. Kind "json" also decodes `\"` `\\` `\/` `\b` `\f` `\n` `\r` `\t`
   (so `\\u0041` gives `\u0041` there; kind "body" gives `\A`: `\` is not an escape there).
S  a) overlong 2-byte UTF-8 for ASCII (`C0`/`C1` + continuation, e.g. `%c0%af`) -> that ASCII
      byte, processed like any other;
   b) SQL comments: `/*...*/` -> one space when the content is at most _COMMENT_MAX (32)
      bytes, all of them inert (ASCII letters, digits, whitespace, NUL, `_` `.` `*` `/`);
      otherwise the `/*` is ordinary text and scanning resumes right after the `/`. So `/**/`
      used as a space and short junk comments vanish, but a comment can never hide markup,
      quotes or the fields of a JSON or form body. MySQL/MariaDB executable comments: `/*!` or
      `/*M!` plus up to six digits -> one space, the content stays visible, and the `*/` that
      closes it -> one space;
   c) NUL bytes dropped; d) runs of whitespace (HT LF VT FF CR SP) -> one space (leading and
      trailing kept as one space); e) ASCII A-Z -> a-z. Bytes >= 0x80 are kept as they are.
"""

cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_Check, PyByteArray_GET_SIZE
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_Check,
    PyBytes_CheckExact,
    PyBytes_GET_SIZE,
)
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcmp, memcpy

import threading as _threading

import hyperscan as _hs


cdef extern from "Python.h":
    PyObject* _bytes_new "PyBytes_FromStringAndSize"(const char* s, Py_ssize_t n)
    char* _bytes_ptr "PyBytes_AS_STRING"(PyObject* o)
    int _PyBytes_Resize(PyObject** bytes, Py_ssize_t newsize)
    void Py_DECREF(PyObject* o)
    Py_ssize_t Py_REFCNT(object o)


__all__ = [
    "ENTITIES",
    "KINDS",
    "Match",
    "Normaliser",
    "PatternError",
    "PatternSet",
    "ScanStream",
    "normalise",
    "COMMENT_MAX",
    "MAX_CARRY",
]

KINDS = ("path", "query", "header", "body", "json")

cdef enum:
    _COMMENT_MAX = 32   # longest /*...*/ content that is stripped
    _NAME_MAX = 8       # longest entity name collected after '&'
    _STAGE_SLACK = 256  # >= what all stages may hold back and release in one call
COMMENT_MAX = _COMMENT_MAX

cdef enum:
    K_PATH = 0
    K_QUERY = 1
    K_HEADER = 2
    K_BODY = 3
    K_JSON = 4

cdef enum:
    ST_P1 = 0
    ST_P2 = 1
    ST_P3 = 2
    ST_H = 3
    ST_E = 4

# ---------------------------------------------------------------------------------------------
# Byte tables
# ---------------------------------------------------------------------------------------------
cdef signed char HEXV[256]        # hex digit value or -1
cdef unsigned char ALNUM[256]
cdef unsigned char LOWER[256]
cdef unsigned char INERT[256]     # may appear inside a stripped /*...*/
cdef unsigned char SQ_N[256]      # squeeze class outside an executable comment
cdef unsigned char SQ_X[256]      # ... inside one ('*' may close it)
cdef unsigned char JSON_ESC[256]  # value of \c in kind json, 0 = not an escape

cdef enum:
    SQ_ORD = 0
    SQ_WS = 1
    SQ_NUL = 2
    SQ_SPECIAL = 3


cdef void _init_tables():
    cdef int c
    for c in range(256):
        HEXV[c] = -1
        ALNUM[c] = 0
        LOWER[c] = <unsigned char>(c + 32 if 65 <= c <= 90 else c)
        INERT[c] = 0
        SQ_N[c] = SQ_ORD
        JSON_ESC[c] = 0
    for c in range(48, 58):
        HEXV[c] = c - 48
        ALNUM[c] = 1
        INERT[c] = 1
    for c in range(65, 71):
        HEXV[c] = c - 55
        HEXV[c + 32] = c - 55
    for c in range(65, 91):
        ALNUM[c] = 1
        ALNUM[c + 32] = 1
        INERT[c] = 1
        INERT[c + 32] = 1
    for c in b"_.*/\t\n\x0b\x0c\r \x00":
        INERT[c] = 1
    for c in b"\t\n\x0b\x0c\r ":
        SQ_N[c] = SQ_WS
    SQ_N[0] = SQ_NUL
    SQ_N[0x2F] = SQ_SPECIAL   # '/'
    SQ_N[0xC0] = SQ_SPECIAL   # overlong lead bytes
    SQ_N[0xC1] = SQ_SPECIAL
    for c in range(256):
        SQ_X[c] = SQ_N[c]
    SQ_X[0x2A] = SQ_SPECIAL   # '*'
    JSON_ESC[0x22] = 0x22     # \"
    JSON_ESC[0x5C] = 0x5C     # \\
    JSON_ESC[0x2F] = 0x2F     # \/
    JSON_ESC[0x62] = 0x08     # \b
    JSON_ESC[0x66] = 0x0C     # \f
    JSON_ESC[0x6E] = 0x0A     # \n
    JSON_ESC[0x72] = 0x0D     # \r
    JSON_ESC[0x74] = 0x09     # \t


_init_tables()

# HTML named character references decoded by stage H (value: one ASCII byte). HTML5 names;
# matched ASCII case-insensitively (a scanner may over-decode, never under-decode).
_ENTITIES = {
    b"lt": b"<", b"gt": b">", b"amp": b"&", b"quot": b'"', b"apos": b"'", b"nbsp": b" ",
    b"lpar": b"(", b"rpar": b")", b"colon": b":", b"sol": b"/", b"bsol": b"\\",
    b"semi": b";", b"comma": b",", b"period": b".", b"excl": b"!", b"quest": b"?",
    b"num": b"#", b"percnt": b"%", b"equals": b"=", b"plus": b"+", b"lsqb": b"[",
    b"rsqb": b"]", b"lbrack": b"[", b"rbrack": b"]", b"lcub": b"{", b"rcub": b"}",
    b"lbrace": b"{", b"rbrace": b"}", b"grave": b"`", b"ast": b"*", b"midast": b"*",
    b"dollar": b"$", b"commat": b"@", b"lowbar": b"_", b"verbar": b"|", b"vert": b"|",
    b"hat": b"^", b"tab": b"\t", b"newline": b"\n", b"dash": b"-", b"hyphen": b"-",
}
ENTITIES = dict(_ENTITIES)
# Decoded without ';' and as the prefix of a longer name (HTML5 "legacy" references).
_LEGACY = (b"quot", b"amp", b"lt", b"gt")

cdef enum:
    _MAX_ENT = 64
cdef unsigned char ENT_NAME[_MAX_ENT][_NAME_MAX]
cdef int ENT_LEN[_MAX_ENT]
cdef unsigned char ENT_VAL[_MAX_ENT]
cdef int N_ENT = 0
cdef unsigned char LEG_NAME[4][_NAME_MAX]
cdef int LEG_LEN[4]
cdef unsigned char LEG_VAL[4]


cdef void _init_entities() except *:
    global N_ENT
    cdef int i = 0, j
    cdef bytes k, v
    for k, v in _ENTITIES.items():
        if len(k) > _NAME_MAX or len(v) != 1 or i >= _MAX_ENT:
            raise RuntimeError("regexscan: bad entity table")
        for j in range(len(k)):
            ENT_NAME[i][j] = k[j]
        ENT_LEN[i] = len(k)
        ENT_VAL[i] = v[0]
        i += 1
    N_ENT = i
    for i, k in enumerate(_LEGACY):
        for j in range(len(k)):
            LEG_NAME[i][j] = k[j]
        LEG_LEN[i] = len(k)
        LEG_VAL[i] = _ENTITIES[k][0]


_init_entities()


cdef inline Py_ssize_t put_cp(unsigned char* d, Py_ssize_t o, unsigned int cp) noexcept nogil:
    """Write code point cp as UTF-8 (surrogates as 3-byte sequences, as WTF-8 does)."""
    if cp < 0x80:
        d[o] = <unsigned char>cp
        return o + 1
    if cp < 0x800:
        d[o] = <unsigned char>(0xC0 | (cp >> 6))
        d[o + 1] = <unsigned char>(0x80 | (cp & 0x3F))
        return o + 2
    if cp < 0x10000:
        d[o] = <unsigned char>(0xE0 | (cp >> 12))
        d[o + 1] = <unsigned char>(0x80 | ((cp >> 6) & 0x3F))
        d[o + 2] = <unsigned char>(0x80 | (cp & 0x3F))
        return o + 3
    d[o] = <unsigned char>(0xF0 | (cp >> 18))
    d[o + 1] = <unsigned char>(0x80 | ((cp >> 12) & 0x3F))
    d[o + 2] = <unsigned char>(0x80 | ((cp >> 6) & 0x3F))
    d[o + 3] = <unsigned char>(0x80 | (cp & 0x3F))
    return o + 4


# ---------------------------------------------------------------------------------------------
# Stage P: percent-decoding. Carry: '%', '%H', '%u', '%uH', '%uHH', '%uHHH' (<= 5 bytes).
# ---------------------------------------------------------------------------------------------
cdef struct PctSt:
    int plus
    int n
    unsigned char pend[8]


cdef Py_ssize_t pct_run(PctSt* st, const unsigned char* s, Py_ssize_t n, unsigned char* d,
                        bint final) noexcept nogil:
    cdef Py_ssize_t i = 0, o = 0, j
    cdef const unsigned char* q
    cdef unsigned char c
    cdef unsigned int cp
    while i < n:
        if st.n == 0:
            if not st.plus:
                q = <const unsigned char*>memchr(s + i, 0x25, n - i)
                j = (q - s) if q != NULL else n
                if j > i:
                    memcpy(d + o, s + i, j - i)
                    o += j - i
                    i = j
                if i >= n:
                    break
                st.pend[0] = 0x25
                st.n = 1
                i += 1
                continue
            c = s[i]
            i += 1
            if c == 0x25:
                st.pend[0] = c
                st.n = 1
            elif c == 0x2B:
                d[o] = 0x20
                o += 1
            else:
                d[o] = c
                o += 1
            continue
        c = s[i]
        if st.n == 1:
            if HEXV[c] >= 0 or c == 0x75 or c == 0x55:
                st.pend[1] = c
                st.n = 2
                i += 1
                continue
        elif st.pend[1] != 0x75 and st.pend[1] != 0x55:
            # '%H' + c
            if HEXV[c] >= 0:
                d[o] = <unsigned char>(HEXV[st.pend[1]] * 16 + HEXV[c])
                o += 1
                st.n = 0
                i += 1
                continue
        elif HEXV[c] >= 0:
            # '%u' + (st.n - 2) hex digits + c
            if st.n == 5:
                cp = ((<unsigned int>HEXV[st.pend[2]] << 12) | (<unsigned int>HEXV[st.pend[3]] << 8)
                      | (<unsigned int>HEXV[st.pend[4]] << 4) | <unsigned int>HEXV[c])
                o = put_cp(d, o, cp)
                st.n = 0
            else:
                st.pend[st.n] = c
                st.n += 1
            i += 1
            continue
        # Not a sequence: the held bytes are literal (none of them can start one); c is
        # looked at again from the idle state.
        memcpy(d + o, st.pend, st.n)
        o += st.n
        st.n = 0
    if final and st.n:
        memcpy(d + o, st.pend, st.n)
        o += st.n
        st.n = 0
    return o


# ---------------------------------------------------------------------------------------------
# Stage H: HTML character references. Carry: '&' + up to _NAME_MAX name bytes, or '&#', '&#x'
# (digits are folded into a saturating value as they arrive and never held).
# ---------------------------------------------------------------------------------------------
cdef enum:
    H_IDLE = 0
    H_AMP = 1
    H_NAME = 2
    H_HASH = 3
    H_HASHX = 4
    H_DEC = 5
    H_HEX = 6

cdef struct HtmlSt:
    int st
    int n
    unsigned int val
    unsigned char name[_NAME_MAX + 4]


cdef inline Py_ssize_t html_numeric(unsigned char* d, Py_ssize_t o, unsigned int v) noexcept nogil:
    if v == 0 or v > 0x10FFFF or (0xD800 <= v <= 0xDFFF):
        v = 0xFFFD  # HTML5: NUL, surrogates and out-of-range references
    return put_cp(d, o, v)


cdef Py_ssize_t html_name(HtmlSt* h, unsigned char* d, Py_ssize_t o, bint semi,
                          bint* consumed) noexcept nogil:
    """Resolve '&' + h.name (terminated by ';' when semi)."""
    cdef unsigned char lb[_NAME_MAX]
    cdef int k, n = h.n, L
    for k in range(n):
        lb[k] = LOWER[h.name[k]]
    consumed[0] = 0
    if semi:
        for k in range(N_ENT):
            if ENT_LEN[k] == n and memcmp(lb, ENT_NAME[k], n) == 0:
                d[o] = ENT_VAL[k]
                consumed[0] = 1
                return o + 1
    for k in range(4):
        L = LEG_LEN[k]
        if n >= L and memcmp(lb, LEG_NAME[k], L) == 0:
            d[o] = LEG_VAL[k]
            o += 1
            memcpy(d + o, h.name + L, n - L)
            return o + n - L
    d[o] = 0x26
    memcpy(d + o + 1, h.name, n)
    return o + 1 + n


cdef Py_ssize_t html_run(HtmlSt* h, const unsigned char* s, Py_ssize_t n, unsigned char* d,
                         bint final) noexcept nogil:
    cdef Py_ssize_t i = 0, o = 0, j
    cdef const unsigned char* q
    cdef unsigned char c
    cdef int v
    cdef bint consumed
    while i < n:
        if h.st == H_IDLE:
            q = <const unsigned char*>memchr(s + i, 0x26, n - i)
            j = (q - s) if q != NULL else n
            if j > i:
                memcpy(d + o, s + i, j - i)
                o += j - i
                i = j
            if i >= n:
                break
            h.st = H_AMP
            i += 1
            continue
        c = s[i]
        if h.st == H_AMP:
            if c == 0x23:  # '#'
                h.st = H_HASH
                i += 1
            elif ALNUM[c]:
                h.name[0] = c
                h.n = 1
                h.st = H_NAME
                i += 1
            else:
                d[o] = 0x26
                o += 1
                h.st = H_IDLE
        elif h.st == H_NAME:
            if ALNUM[c] and h.n < _NAME_MAX:
                h.name[h.n] = c
                h.n += 1
                i += 1
            else:
                o = html_name(h, d, o, c == 0x3B, &consumed)
                h.st = H_IDLE
                if consumed:
                    i += 1
        elif h.st == H_HASH:
            if c == 0x78 or c == 0x58:
                h.name[0] = c
                h.st = H_HASHX
                i += 1
            elif 0x30 <= c <= 0x39:
                h.val = c - 0x30
                h.st = H_DEC
                i += 1
            else:
                d[o] = 0x26
                d[o + 1] = 0x23
                o += 2
                h.st = H_IDLE
        elif h.st == H_HASHX:
            if HEXV[c] >= 0:
                h.val = <unsigned int>HEXV[c]
                h.st = H_HEX
                i += 1
            else:
                d[o] = 0x26
                d[o + 1] = 0x23
                d[o + 2] = h.name[0]
                o += 3
                h.st = H_IDLE
        else:
            if h.st == H_DEC:
                v = (c - 0x30) if 0x30 <= c <= 0x39 else -1
            else:
                v = HEXV[c]
            if v >= 0:
                h.val = h.val * (10 if h.st == H_DEC else 16) + <unsigned int>v
                if h.val > 0x10FFFF:
                    h.val = 0x110000  # saturate; stays out of range
                i += 1
            else:
                o = html_numeric(d, o, h.val)
                h.st = H_IDLE
                if c == 0x3B:
                    i += 1
    if final and h.st != H_IDLE:
        if h.st == H_AMP:
            d[o] = 0x26
            o += 1
        elif h.st == H_NAME:
            o = html_name(h, d, o, 0, &consumed)
        elif h.st == H_HASH:
            d[o] = 0x26
            d[o + 1] = 0x23
            o += 2
        elif h.st == H_HASHX:
            d[o] = 0x26
            d[o + 1] = 0x23
            d[o + 2] = h.name[0]
            o += 3
        else:
            o = html_numeric(d, o, h.val)
        h.st = H_IDLE
    return o


# ---------------------------------------------------------------------------------------------
# Stage E: backslash escapes. Carry: '\', '\u' + up to 3 hex, '\x' + up to 1 hex (<= 5 bytes).
# ---------------------------------------------------------------------------------------------
cdef struct EscSt:
    int json
    int n
    unsigned char pend[8]


cdef Py_ssize_t esc_run(EscSt* st, const unsigned char* s, Py_ssize_t n, unsigned char* d,
                        bint final) noexcept nogil:
    cdef Py_ssize_t i = 0, o = 0, j
    cdef const unsigned char* q
    cdef unsigned char c
    cdef unsigned int cp
    while i < n:
        if st.n == 0:
            q = <const unsigned char*>memchr(s + i, 0x5C, n - i)
            j = (q - s) if q != NULL else n
            if j > i:
                memcpy(d + o, s + i, j - i)
                o += j - i
                i = j
            if i >= n:
                break
            st.pend[0] = 0x5C
            st.n = 1
            i += 1
            continue
        c = s[i]
        if st.n == 1:
            if c == 0x75 or c == 0x78:  # \u \x
                st.pend[1] = c
                st.n = 2
                i += 1
                continue
            if st.json and JSON_ESC[c]:
                d[o] = JSON_ESC[c]
                o += 1
                st.n = 0
                i += 1
                continue
        elif HEXV[c] >= 0:
            if st.pend[1] == 0x78:
                if st.n == 3:
                    cp = (<unsigned int>HEXV[st.pend[2]] << 4) | <unsigned int>HEXV[c]
                    o = put_cp(d, o, cp)
                    st.n = 0
                    i += 1
                    continue
            elif st.n == 5:
                cp = ((<unsigned int>HEXV[st.pend[2]] << 12) | (<unsigned int>HEXV[st.pend[3]] << 8)
                      | (<unsigned int>HEXV[st.pend[4]] << 4) | <unsigned int>HEXV[c])
                o = put_cp(d, o, cp)
                st.n = 0
                i += 1
                continue
            st.pend[st.n] = c
            st.n += 1
            i += 1
            continue
        # Not an escape: the held bytes are literal; c is looked at again (it may be '\').
        memcpy(d + o, st.pend, st.n)
        o += st.n
        st.n = 0
    if final and st.n:
        memcpy(d + o, st.pend, st.n)
        o += st.n
        st.n = 0
    return o


# ---------------------------------------------------------------------------------------------
# Stage S: overlong ASCII, SQL comments, NUL, whitespace, case. Carry: one overlong lead byte,
# plus '/', '*' or '/*' + up to _COMMENT_MAX + 1 comment bytes.
# ---------------------------------------------------------------------------------------------
cdef enum:
    CS_NORMAL = 0
    CS_SLASH = 1    # '/' held
    CS_CSTART = 2   # '/*' held
    CS_CM = 3       # '/*' + 'm' held (MariaDB '/*M!')
    CS_CAND = 4     # '/*' + b[:blen] held: a comment if '*/' comes soon enough
    CS_STAR = 5     # '*' held inside an executable comment
    CS_XDIG = 6     # skipping the version digits after '/*!'

cdef struct SqSt:
    int cs
    int ov          # held overlong lead byte, or -1
    int in_exec
    int xdig
    int last_space
    int blen
    unsigned char b[_COMMENT_MAX + 4]


cdef inline Py_ssize_t sq_emit(SqSt* st, unsigned char c, unsigned char* d,
                               Py_ssize_t o) noexcept nogil:
    cdef unsigned char k = SQ_N[c]
    if k == SQ_NUL:
        return o
    if k == SQ_WS:
        if st.last_space:
            return o
        st.last_space = 1
        d[o] = 0x20
        return o + 1
    st.last_space = 0
    d[o] = LOWER[c]
    return o + 1


cdef Py_ssize_t sq_abort(SqSt* st, unsigned char* d, Py_ssize_t o, int extra) noexcept nogil:
    """The held '/*' + b[:blen] (+ extra if >= 0) is not a comment: emit '/', then look at the
    rest again from the normal state (it may hold another '/*')."""
    cdef unsigned char tmp[_COMMENT_MAX + 8]
    cdef int k, m = 0
    tmp[m] = 0x2A
    m += 1
    for k in range(st.blen):
        tmp[m] = st.b[k]
        m += 1
    if extra >= 0:
        tmp[m] = <unsigned char>extra
        m += 1
    st.cs = CS_NORMAL
    st.blen = 0
    o = sq_emit(st, 0x2F, d, o)
    for k in range(m):
        o = sq_logical(st, tmp[k], d, o)
    return o


cdef Py_ssize_t sq_cand(SqSt* st, unsigned char c, unsigned char* d, Py_ssize_t o) noexcept nogil:
    if c == 0x2F and st.blen > 0 and st.b[st.blen - 1] == 0x2A:
        st.cs = CS_NORMAL
        st.blen = 0
        return sq_emit(st, 0x20, d, o)
    if not INERT[c] or st.blen > _COMMENT_MAX or (st.blen == _COMMENT_MAX and c != 0x2A):
        return sq_abort(st, d, o, c)
    st.b[st.blen] = c
    st.blen += 1
    return o


cdef Py_ssize_t sq_logical(SqSt* st, unsigned char c, unsigned char* d,
                           Py_ssize_t o) noexcept nogil:
    cdef int cs = st.cs
    if cs == CS_NORMAL:
        if c == 0x2F:
            st.cs = CS_SLASH
            return o
        if c == 0x2A and st.in_exec:
            st.cs = CS_STAR
            return o
        return sq_emit(st, c, d, o)
    if cs == CS_SLASH:
        if c == 0x2A:
            st.cs = CS_CSTART
            return o
        st.cs = CS_NORMAL
        o = sq_emit(st, 0x2F, d, o)
        return sq_logical(st, c, d, o)
    if cs == CS_STAR:
        st.cs = CS_NORMAL
        if c == 0x2F:
            st.in_exec = 0
            return sq_emit(st, 0x20, d, o)
        o = sq_emit(st, 0x2A, d, o)
        return sq_logical(st, c, d, o)
    if cs == CS_CSTART or cs == CS_CM:
        if c == 0x21:  # '!': executable comment
            st.in_exec = 1
            st.xdig = 0
            st.blen = 0
            st.cs = CS_XDIG
            return sq_emit(st, 0x20, d, o)
        if cs == CS_CSTART and (c == 0x6D or c == 0x4D):
            st.b[0] = c
            st.blen = 1
            st.cs = CS_CM
            return o
        if cs == CS_CSTART:
            st.blen = 0
        st.cs = CS_CAND
        return sq_cand(st, c, d, o)
    if cs == CS_XDIG:
        if 0x30 <= c <= 0x39 and st.xdig < 6:
            st.xdig += 1
            return o
        st.cs = CS_NORMAL
        return sq_logical(st, c, d, o)
    return sq_cand(st, c, d, o)


cdef inline Py_ssize_t sq_byte(SqSt* st, unsigned char c, unsigned char* d,
                               Py_ssize_t o) noexcept nogil:
    cdef int h
    if st.ov >= 0:
        h = st.ov
        st.ov = -1
        if 0x80 <= c <= 0xBF:
            return sq_logical(st, <unsigned char>(((h & 1) << 6) | (c & 0x3F)), d, o)
        o = sq_logical(st, <unsigned char>h, d, o)
    if c == 0xC0 or c == 0xC1:
        st.ov = c
        return o
    return sq_logical(st, c, d, o)


cdef Py_ssize_t sq_finish(SqSt* st, unsigned char* d, Py_ssize_t o) noexcept nogil:
    cdef int h
    if st.ov >= 0:
        h = st.ov
        st.ov = -1
        o = sq_logical(st, <unsigned char>h, d, o)
    while True:
        if st.cs == CS_SLASH:
            st.cs = CS_NORMAL
            o = sq_emit(st, 0x2F, d, o)
        elif st.cs == CS_STAR:
            st.cs = CS_NORMAL
            o = sq_emit(st, 0x2A, d, o)
        elif st.cs == CS_CSTART:
            st.blen = 0
            o = sq_abort(st, d, o, -1)
        elif st.cs == CS_CM or st.cs == CS_CAND:
            o = sq_abort(st, d, o, -1)
        elif st.cs == CS_XDIG:
            st.cs = CS_NORMAL
        else:
            return o



cdef extern from *:
    """
    #include <string.h>
    #include <stdint.h>
    /* Stage S fast path: 8 bytes at a time while a word needs nothing but ASCII lowercasing,
       i.e. holds no byte < 0x20, no '/', no 0xC0/0xC1 and no space that a run would collapse.
       Returns the new input index; *po and *pls (last output was a space) are updated. */
    static inline Py_ssize_t fg_sq_fast(const unsigned char* s, Py_ssize_t i, Py_ssize_t n,
                                        unsigned char* d, Py_ssize_t* po, int* pls) {
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
        const uint64_t sevens = 0x7F7F7F7F7F7F7F7FULL;
        Py_ssize_t o = *po;
        int ls = *pls;
        while (n - i >= 8) {
            uint64_t w, x, sp, lt, sl, ov, h, gtz, gea, up;
            memcpy(&w, s + i, 8);
            lt = (w - ones * 0x20) & ~w & highs;                 /* any byte < 0x20 */
            x = w ^ (ones * 0x2F);
            sl = (x - ones) & ~x & highs;                        /* any '/' */
            x = (w & (ones * 0xFE)) ^ (ones * 0xC0);
            ov = (x - ones) & ~x & highs;                        /* any 0xC0 / 0xC1 */
            x = w ^ (ones * 0x20);
            sp = ~(((x & sevens) + sevens) | x | sevens);        /* exactly the spaces */
            if (lt | sl | ov | (sp & (sp << 8)) | (ls ? (sp & 0x80) : 0))
                break;
            h = w & sevens;
            gtz = h + ones * (0x7F - 'Z');
            gea = h + ones * (0x80 - 'A');
            up = (gea ^ gtz) & ~w & highs;                       /* ASCII 'A'..'Z' */
            w |= up >> 2;
            memcpy(d + o, &w, 8);
            o += 8;
            i += 8;
            ls = (int)(sp >> 63);
        }
        *po = o;
        *pls = ls;
    #endif
        return i;
    }
    """
    Py_ssize_t fg_sq_fast(const unsigned char* s, Py_ssize_t i, Py_ssize_t n,
                          unsigned char* d, Py_ssize_t* po, int* pls) noexcept nogil

cdef extern from *:
    """
    #include <stdint.h>
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif
    /* 1 when every stage of the normaliser leaves s as it is, except stage S's ASCII lowercasing:
       no byte a stage starts from ('%', '&', '\\', and '+' when plus), no byte < 0x20 (NUL,
       whitespace that S turns into a space), no overlong lead 0xC0/0xC1, no two spaces in a row
       (S collapses runs) and no comment opener slash-star (the only way into stage S's comment
       and executable-comment states, so '*' alone is ordinary text). The vector loops compare
       each byte with the one before it through a second load one byte back. */
    static int fg_rx_identity_tail(const unsigned char* s, Py_ssize_t i, Py_ssize_t n, int plus) {
        unsigned int prev = i > 0 ? s[i - 1] : 0;
        for (; i < n; i++) {
            unsigned int c = s[i];
            if (c < 0x20 || c == 0x25 || c == 0x26 || c == 0x5C || (plus && c == 0x2B)
                    || c == 0xC0 || c == 0xC1 || (c == 0x20 && prev == 0x20) || (c == 0x2A && prev == 0x2F))
                return 0;
            prev = c;
        }
        return 1;
    }
    #if defined(__GNUC__) && defined(__x86_64__)
    #include <immintrin.h>
    __attribute__((target("avx2")))
    static int fg_rx_identity_avx2(const unsigned char* s, Py_ssize_t n, int plus) {
        Py_ssize_t i = 1;
        const __m256i pct = _mm256_set1_epi8(0x25), amp = _mm256_set1_epi8(0x26);
        const __m256i bsl = _mm256_set1_epi8(0x5C), pls = _mm256_set1_epi8(plus ? 0x2B : 0x25);
        const __m256i c1f = _mm256_set1_epi8(0x1F), fe = _mm256_set1_epi8((char)0xFE);
        const __m256i c0 = _mm256_set1_epi8((char)0xC0), sp = _mm256_set1_epi8(0x20);
        const __m256i sl = _mm256_set1_epi8(0x2F), st = _mm256_set1_epi8(0x2A);
        if (n < 33)
            return fg_rx_identity_tail(s, 0, n, plus);
        if (!fg_rx_identity_tail(s, 0, 1, plus))
            return 0;
        for (; n - i >= 32; i += 32) {
            __m256i v = _mm256_loadu_si256((const __m256i*)(s + i));
            __m256i w = _mm256_loadu_si256((const __m256i*)(s + i - 1));
            __m256i bad = _mm256_or_si256(
                _mm256_or_si256(_mm256_cmpeq_epi8(v, pct), _mm256_cmpeq_epi8(v, amp)),
                _mm256_or_si256(_mm256_cmpeq_epi8(v, bsl), _mm256_cmpeq_epi8(v, pls)));
            bad = _mm256_or_si256(bad, _mm256_cmpeq_epi8(_mm256_min_epu8(v, c1f), v));
            bad = _mm256_or_si256(bad, _mm256_cmpeq_epi8(_mm256_and_si256(v, fe), c0));
            bad = _mm256_or_si256(bad, _mm256_and_si256(_mm256_cmpeq_epi8(v, sp), _mm256_cmpeq_epi8(w, sp)));
            bad = _mm256_or_si256(bad, _mm256_and_si256(_mm256_cmpeq_epi8(v, st), _mm256_cmpeq_epi8(w, sl)));
            if (!_mm256_testz_si256(bad, bad))
                return 0;
        }
        return fg_rx_identity_tail(s, i, n, plus);
    }
    #endif
    #if defined(__SSE2__)
    #include <emmintrin.h>
    static int fg_rx_identity_sse2(const unsigned char* s, Py_ssize_t n, int plus) {
        Py_ssize_t i = 1;
        const __m128i pct = _mm_set1_epi8(0x25), amp = _mm_set1_epi8(0x26);
        const __m128i bsl = _mm_set1_epi8(0x5C), pls = _mm_set1_epi8(plus ? 0x2B : 0x25);
        const __m128i c1f = _mm_set1_epi8(0x1F), fe = _mm_set1_epi8((char)0xFE);
        const __m128i c0 = _mm_set1_epi8((char)0xC0), sp = _mm_set1_epi8(0x20);
        const __m128i sl = _mm_set1_epi8(0x2F), st = _mm_set1_epi8(0x2A);
        if (n < 17)
            return fg_rx_identity_tail(s, 0, n, plus);
        if (!fg_rx_identity_tail(s, 0, 1, plus))
            return 0;
        for (; n - i >= 16; i += 16) {
            __m128i v = _mm_loadu_si128((const __m128i*)(s + i));
            __m128i w = _mm_loadu_si128((const __m128i*)(s + i - 1));
            __m128i bad = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, pct), _mm_cmpeq_epi8(v, amp)),
                _mm_or_si128(_mm_cmpeq_epi8(v, bsl), _mm_cmpeq_epi8(v, pls)));
            bad = _mm_or_si128(bad, _mm_cmpeq_epi8(_mm_min_epu8(v, c1f), v));
            bad = _mm_or_si128(bad, _mm_cmpeq_epi8(_mm_and_si128(v, fe), c0));
            bad = _mm_or_si128(bad, _mm_and_si128(_mm_cmpeq_epi8(v, sp), _mm_cmpeq_epi8(w, sp)));
            bad = _mm_or_si128(bad, _mm_and_si128(_mm_cmpeq_epi8(v, st), _mm_cmpeq_epi8(w, sl)));
            if (_mm_movemask_epi8(bad))
                return 0;
        }
        return fg_rx_identity_tail(s, i, n, plus);
    }
    #endif
    #if defined(__GNUC__) && defined(__x86_64__)
    static int fg_rx_avx2 = -1;
    /* 1 when this CPU runs the AVX2 loops (asked once). */
    static int fg_rx_has_avx2(void) {
        if (fg_rx_avx2 < 0) {
            __builtin_cpu_init();
            fg_rx_avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
        }
        return fg_rx_avx2;
    }
    #endif
    static int fg_rx_identity(const unsigned char* s, Py_ssize_t n, int plus) {
    #if defined(__GNUC__) && defined(__x86_64__)
        if (fg_rx_has_avx2())
            return fg_rx_identity_avx2(s, n, plus);
    #endif
    #if defined(__SSE2__)
        return fg_rx_identity_sse2(s, n, plus);
    #else
        return fg_rx_identity_tail(s, 0, n, plus);
    #endif
    }
    """
    int fg_rx_identity(const unsigned char* s, Py_ssize_t n, int plus) noexcept nogil

cdef extern from *:
    """
    #include <stdint.h>
    /* Which of 16 gate bytes (fastgate.regex_gates.GATES, bit i = gate i) occur in s. The AVX2
       loop classifies 32 bytes at a time by nibble tables (a byte is gate i exactly when the
       table of its low nibble and the table of its high nibble both carry bit i: one byte per
       gate, so no other byte can), two tables of 8 gates each; the rest goes by a byte table. */
    static uint16_t fg_rx_gate_bit[256];
    static unsigned char fg_rx_gate_lo[2][16], fg_rx_gate_hi[2][16];
    static void fg_rx_gates_init(const unsigned char* gates, int n) {
        for (int i = 0; i < n && i < 16; i++) {
            unsigned char g = gates[i];
            fg_rx_gate_bit[g] |= (uint16_t)(1u << i);
            fg_rx_gate_lo[i >> 3][g & 15] |= (unsigned char)(1u << (i & 7));
            fg_rx_gate_hi[i >> 3][g >> 4] |= (unsigned char)(1u << (i & 7));
        }
    }
    static unsigned fg_rx_gates_tail(const unsigned char* s, Py_ssize_t i, Py_ssize_t n, unsigned m) {
        for (; i < n; i++)
            m |= fg_rx_gate_bit[s[i]];
        return m;
    }
    #if defined(__GNUC__) && defined(__x86_64__)
    #include <immintrin.h>
    __attribute__((target("avx2")))
    static unsigned fg_rx_gates_avx2(const unsigned char* s, Py_ssize_t n) {
        Py_ssize_t i = 0;
        const __m256i nib = _mm256_set1_epi8(0x0F);
        const __m256i loa = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)fg_rx_gate_lo[0]));
        const __m256i hia = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)fg_rx_gate_hi[0]));
        const __m256i lob = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)fg_rx_gate_lo[1]));
        const __m256i hib = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)fg_rx_gate_hi[1]));
        __m256i acca = _mm256_setzero_si256(), accb = _mm256_setzero_si256();
        for (; n - i >= 32; i += 32) {
            __m256i v = _mm256_loadu_si256((const __m256i*)(s + i));
            __m256i lo = _mm256_and_si256(v, nib);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
            acca = _mm256_or_si256(acca, _mm256_and_si256(_mm256_shuffle_epi8(loa, lo), _mm256_shuffle_epi8(hia, hi)));
            accb = _mm256_or_si256(accb, _mm256_and_si256(_mm256_shuffle_epi8(lob, lo), _mm256_shuffle_epi8(hib, hi)));
        }
        /* fold the 32 lanes of each accumulator into one byte: a in byte 0, b in byte 1 */
        __m128i x = _mm_or_si128(_mm256_castsi256_si128(acca), _mm256_extracti128_si256(acca, 1));
        __m128i y = _mm_or_si128(_mm256_castsi256_si128(accb), _mm256_extracti128_si256(accb, 1));
        x = _mm_or_si128(x, _mm_srli_si128(x, 8));
        y = _mm_or_si128(y, _mm_srli_si128(y, 8));
        x = _mm_or_si128(x, _mm_srli_si128(x, 4));
        y = _mm_or_si128(y, _mm_srli_si128(y, 4));
        x = _mm_or_si128(x, _mm_srli_si128(x, 2));
        y = _mm_or_si128(y, _mm_srli_si128(y, 2));
        x = _mm_or_si128(x, _mm_srli_si128(x, 1));
        y = _mm_or_si128(y, _mm_srli_si128(y, 1));
        unsigned m = ((unsigned)_mm_cvtsi128_si32(x) & 0xFF) | (((unsigned)_mm_cvtsi128_si32(y) & 0xFF) << 8);
        return fg_rx_gates_tail(s, i, n, m);
    }
    #endif
    static unsigned fg_rx_gates(const unsigned char* s, Py_ssize_t n) {
    #if defined(__GNUC__) && defined(__x86_64__)
        if (n >= 64 && fg_rx_has_avx2())
            return fg_rx_gates_avx2(s, n);
    #endif
        return fg_rx_gates_tail(s, 0, n, 0);
    }
    """
    void fg_rx_gates_init(const unsigned char* gates, int n) noexcept nogil
    unsigned fg_rx_gates(const unsigned char* s, Py_ssize_t n) noexcept nogil


from fastgate.regex_gates import GATES as _GATES, gate_masks as _gate_masks

fg_rx_gates_init(<const unsigned char*>PyBytes_AS_STRING(_GATES), <int>len(_GATES))


def _gates_present(data):
    """The presence mask of fastgate.regex_gates.GATES in data (bit i: GATES[i] occurs)."""
    cdef const unsigned char* p
    cdef Py_ssize_t n
    data = _as_bytes(data)
    _view(data, &p, &n)
    return fg_rx_gates(p, n)


def _is_identity(data, str kind="body"):
    """True when normalise(data, kind) is data with ASCII letters lowercased (nothing decoded,
    squeezed or stripped): what PatternSet.scan checks before matching data as it is."""
    cdef const unsigned char* p
    cdef Py_ssize_t n
    data = _as_bytes(data)
    _view(data, &p, &n)
    return bool(fg_rx_identity(p, n, _kind_code(kind) == K_QUERY))


cdef Py_ssize_t sq_run(SqSt* st, const unsigned char* s, Py_ssize_t n, unsigned char* d,
                       bint final) noexcept nogil:
    cdef Py_ssize_t i = 0, o = 0, end
    cdef unsigned char c, k
    cdef const unsigned char* cls
    cdef int ls
    while i < n:
        if st.ov >= 0 or st.cs != CS_NORMAL:
            o = sq_byte(st, s[i], d, o)
            i += 1
            continue
        # Hot loop: normal state, nothing held.
        ls = st.last_space
        if st.in_exec:
            cls = SQ_X
            end = n
        else:
            cls = SQ_N
            i = fg_sq_fast(s, i, n, d, &o, &ls)
            end = i + 8 if n - i > 8 else n  # one word bytewise, then the fast path again
        while i < end:
            c = s[i]
            k = cls[c]
            if k == SQ_ORD:
                d[o] = LOWER[c]
                o += 1
                ls = 0
            elif k == SQ_WS:
                if not ls:
                    d[o] = 0x20
                    o += 1
                    ls = 1
            elif k != SQ_NUL:
                break
            i += 1
        st.last_space = ls
        if i < end:
            o = sq_byte(st, s[i], d, o)
            i += 1
    if final:
        o = sq_finish(st, d, o)
    return o


# ---------------------------------------------------------------------------------------------
# The stage pipeline
# ---------------------------------------------------------------------------------------------
cdef struct Norm:
    int kind
    int nst
    int stages[6]
    PctSt p[3]
    HtmlSt h
    EscSt e
    SqSt s


cdef int _kind_code(str kind) except -1:
    if kind == "body":
        return K_BODY
    if kind == "header":
        return K_HEADER
    if kind == "query":
        return K_QUERY
    if kind == "path":
        return K_PATH
    if kind == "json":
        return K_JSON
    raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")


cdef void norm_init(Norm* nm, int kind) noexcept nogil:
    cdef int k = 0
    memset_norm(nm)
    nm.kind = kind
    if kind == K_JSON:
        nm.stages[k] = ST_E
        k += 1
    nm.stages[k] = ST_P1
    nm.stages[k + 1] = ST_P2
    nm.stages[k + 2] = ST_H
    nm.stages[k + 3] = ST_P3
    k += 4
    if kind == K_BODY:
        nm.stages[k] = ST_E
        k += 1
    nm.nst = k
    nm.p[0].plus = kind == K_QUERY
    nm.e.json = kind == K_JSON
    nm.s.ov = -1


cdef inline void memset_norm(Norm* nm) noexcept nogil:
    cdef char* p = <char*>nm
    cdef size_t k
    for k in range(sizeof(Norm)):
        p[k] = 0


# Two ping-pong buffers for the stages before S, reused across calls (the GIL is held through
# a whole normalisation). Kept while <= _KEEP_BYTES; bigger inputs get buffers for one call.
cdef enum:
    _KEEP_BYTES = 1 << 20
cdef unsigned char* _buf_a = NULL
cdef unsigned char* _buf_b = NULL
cdef Py_ssize_t _buf_cap = 0


cdef bytes norm_run(Norm* nm, const unsigned char* src, Py_ssize_t n, bint final):
    global _buf_a, _buf_b, _buf_cap
    cdef Py_ssize_t cap = n + _STAGE_SLACK, m = n, o
    cdef unsigned char* a = NULL
    cdef unsigned char* b = NULL
    cdef unsigned char* dst
    cdef const unsigned char* cur = src
    cdef bint own = 0
    cdef int k, st
    cdef bytes out
    cdef PyObject* outp
    for k in range(nm.nst):
        st = nm.stages[k]
        # A stage that holds nothing and sees none of its trigger bytes is the identity.
        if st == ST_H:
            if nm.h.st == H_IDLE and memchr(cur, 0x26, m) == NULL:
                continue
        elif st == ST_E:
            if nm.e.n == 0 and memchr(cur, 0x5C, m) == NULL:
                continue
        else:
            if (nm.p[st].n == 0 and memchr(cur, 0x25, m) == NULL
                    and not (nm.p[st].plus and memchr(cur, 0x2B, m) != NULL)):
                continue
        if a == NULL:
            if cap <= _KEEP_BYTES:
                if _buf_cap < cap:
                    _grow(cap if cap > 4096 else 4096)
                a = _buf_a
                b = _buf_b
            else:
                a = <unsigned char*>malloc(cap)
                b = <unsigned char*>malloc(cap)
                own = 1
                if a == NULL or b == NULL:
                    free(a)
                    free(b)
                    raise MemoryError()
        dst = b if cur == a else a
        if st == ST_H:
            m = html_run(&nm.h, cur, m, dst, final)
        elif st == ST_E:
            m = esc_run(&nm.e, cur, m, dst, final)
        else:
            m = pct_run(&nm.p[st], cur, m, dst, final)
        cur = dst
    outp = _bytes_new(NULL, m + _STAGE_SLACK)
    if outp == NULL:
        if own:
            free(a)
            free(b)
        raise MemoryError()
    o = sq_run(&nm.s, cur, m, <unsigned char*>_bytes_ptr(outp), final)
    if own:
        free(a)
        free(b)
    if _PyBytes_Resize(&outp, o) < 0:  # shrinks in place; on failure outp is freed and NULL
        raise MemoryError()
    out = <bytes>outp  # takes a new reference ...
    Py_DECREF(outp)    # ... so drop the one _bytes_new gave us
    return out


cdef void _grow(Py_ssize_t cap) except *:
    global _buf_a, _buf_b, _buf_cap
    cdef unsigned char* a = <unsigned char*>realloc(_buf_a, cap)
    if a == NULL:
        raise MemoryError()
    _buf_a = a
    a = <unsigned char*>realloc(_buf_b, cap)
    if a == NULL:
        raise MemoryError()
    _buf_b = a
    _buf_cap = cap


cdef inline int _view(object data, const unsigned char** p, Py_ssize_t* n) except -1:
    if PyBytes_Check(data):
        p[0] = <const unsigned char*>PyBytes_AS_STRING(data)
        n[0] = PyBytes_GET_SIZE(data)
        return 0
    if PyByteArray_Check(data):
        p[0] = <const unsigned char*>PyByteArray_AS_STRING(data)
        n[0] = PyByteArray_GET_SIZE(data)
        return 0
    raise TypeError(f"expected bytes or bytearray, not {type(data).__name__}")


cdef inline object _as_bytes(object data):
    # memoryview and other buffers are copied once; bytes/bytearray are read in place.
    if isinstance(data, memoryview):
        return bytes(data)
    return data


def normalise(data, str kind="body"):
    """The normalised form of `data` (bytes) that the scanner matches, for one of KINDS."""
    cdef Norm nm
    cdef const unsigned char* p
    cdef Py_ssize_t n
    data = _as_bytes(data)
    _view(data, &p, &n)
    norm_init(&nm, _kind_code(kind))
    return norm_run(&nm, p, n, 1)


@cython.final
cdef class Normaliser:
    """The streaming normaliser: feed() returns what is settled so far, finish() the rest.
    Concatenated, the outputs equal normalise(all input, kind) for every split of the input."""

    cdef Norm nm
    cdef bint done
    cdef readonly str kind

    def __init__(self, str kind="body"):
        norm_init(&self.nm, _kind_code(kind))
        self.kind = kind
        self.done = 0

    def feed(self, data):
        cdef const unsigned char* p
        cdef Py_ssize_t n
        if self.done:
            raise ValueError("Normaliser.feed() after finish()")
        data = _as_bytes(data)
        _view(data, &p, &n)
        return norm_run(&self.nm, p, n, 0)

    def finish(self):
        if self.done:
            return b""
        self.done = 1
        return norm_run(&self.nm, <const unsigned char*>b"", 0, 1)


# Upper bound on what a streaming normaliser holds back between feeds (all stages together).
MAX_CARRY = 3 * 5 + (1 + _NAME_MAX) + 5 + (1 + 2 + _COMMENT_MAX + 1)


# ---------------------------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------------------------
class PatternError(ValueError):
    """A rule the engine refuses (hyperscan cannot run it in linear time, or it is malformed).
    str() is "rule <id>: <why>"; .rule_id is None for a failure of the set as a whole."""

    def __init__(self, rule_id, reason):
        self.rule_id = rule_id
        self.reason = reason
        if rule_id is None:
            super().__init__(f"rule set: {reason}")
        else:
            super().__init__(f"rule {rule_id}: {reason}")


@cython.final
@cython.freelist(8)
cdef class Match:
    """The first match hyperscan reported: rule id and end offset in the normalised data."""

    cdef readonly str rule_id
    cdef readonly Py_ssize_t offset

    def __init__(self, str rule_id, Py_ssize_t offset):
        self.rule_id = rule_id
        self.offset = offset

    def __repr__(self):
        return f"Match(rule_id={self.rule_id!r}, offset={self.offset})"

    def __eq__(self, other):
        if not isinstance(other, Match):
            return NotImplemented
        return self.rule_id == (<Match>other).rule_id and self.offset == (<Match>other).offset

    def __hash__(self):
        return hash((self.rule_id, self.offset))


# Gated block databases one PatternSet compiles at most (each about the size of the rules it
# holds; the full set's is ~0.75 MB for the seven shipped sets).
MAX_GATED_DATABASES = 16
# Shorter buffers (paths, queries, header values: memoised by the threat policy anyway) scan
# with the full database: gating pays off on bodies, and each new combination of gate bytes
# costs a compile.
GATED_MIN_BYTES = 256
cdef object _UNROUTED = object()


@cython.final
cdef class _Subset:
    """A gated block database (None: no rule can match) and its bound scan."""

    cdef readonly object db
    cdef object scan

    def __cinit__(self, db):
        self.db = db
        self.scan = db.scan if db is not None else None


@cython.final
cdef class _Catcher:
    """The match callback: remembers the first match and stops the scan."""

    cdef long long id
    cdef unsigned long long to

    def __cinit__(self):
        self.id = -1

    def __call__(self, unsigned int id, unsigned long long frm, unsigned long long to,
                 unsigned int flags, ctx):
        if self.id < 0:
            self.id = id
            self.to = to
        return True


cdef int _FLAGS = _hs.HS_FLAG_SINGLEMATCH | _hs.HS_FLAG_DOTALL
cdef object _ScanTerminated = _hs.ScanTerminated
cdef object _HsError = _hs.error
cdef object _HsStream = _hs.Stream


cdef object _compile(list pats, list ids, int mode, int flags):
    cdef Py_ssize_t i
    db = _hs.Database(mode=mode)
    try:
        db.compile(expressions=pats, flags=flags)
    except _HsError as e:
        # hyperscan's multi-pattern error does not say which pattern: find it.
        for i in range(len(pats)):
            one = _hs.Database(mode=mode)
            try:
                one.compile(expressions=[pats[i]], flags=flags)
            except _HsError as e1:
                raise PatternError(ids[i], _reason(e1)) from None
        raise PatternError(None, _reason(e)) from None
    return db


cdef str _reason(e):
    s = str(e).strip().rstrip(".")
    if "matches empty buffer" in s:
        return "pattern can match empty input (it would match every request)"
    return s


@cython.final
@cython.no_gc_clear
cdef class PatternSet:
    """Rules compiled once into a block and a stream hyperscan database (caseless by default,
    single match per rule, '.' matches any byte, byte semantics: no UTF-8 mode, since normalised
    input need not be valid UTF-8). A scan reports the first match hyperscan finds and stops.

    Scratch space: block scans use the block database's scratch, stream scans one private
    clone, closing streams the stream database's own (hyperscan.Stream.close cannot take
    another, and runs with the GIL held, so closes never overlap). A thread that finds the
    scan scratch in use (hyperscan releases the GIL while scanning) gets a fresh clone: correct
    under threads, fast without them. A ScanStream itself belongs to one thread at a time."""

    cdef readonly tuple rule_ids
    cdef readonly bint caseless
    cdef object _bdb
    cdef object _sdb
    cdef object _bscan
    cdef object _sscratch
    cdef _Catcher _catcher
    cdef bint _bbusy
    cdef bint _sbusy
    cdef bint _closing
    cdef list _pending   # (hyperscan.Stream, _Catcher) whose close had to wait
    # Gated block scans (fastgate/regex_gates.py): a buffer lacking every byte of one of a
    # rule's clauses cannot match that rule, so it is scanned with a database of the rules it
    # can match. Those databases are compiled in a background thread the first time a set of
    # rules is needed (until then the full database answers: a superset, the same verdict).
    cdef list _pats       # pattern bytes, by rule index
    cdef int _flags
    cdef unsigned short* _cmask   # clauses' presence bitmasks: rule i's are _cmask[_cstart[i]:_cstart[i+1]]
    cdef Py_ssize_t* _cstart
    cdef bint _gated      # some rule has a clause
    cdef Py_ssize_t _gate_min  # shorter buffers use the full database
    cdef dict _route      # presence mask -> _Subset, or None for the full database
    cdef dict _subsets    # alive rule indices (tuple) -> _Subset
    cdef object _compiling  # the thread compiling a subset, or None

    def __init__(self, rules, *, bint caseless=True, bint gates=True, Py_ssize_t gate_min=GATED_MIN_BYTES):
        cdef list ids = [], pats = []
        cdef set seen = set()
        cdef int flags = _FLAGS | (_hs.HS_FLAG_CASELESS if caseless else 0)
        for item in rules:
            try:
                rid, pat = item
            except (TypeError, ValueError):
                raise TypeError(f"a rule is a (rule_id, pattern) pair, not {item!r}") from None
            if not isinstance(rid, str) or not rid:
                raise TypeError(f"rule id must be a non-empty str, not {rid!r}")
            if not isinstance(pat, str):
                raise PatternError(rid, f"pattern must be a str, not {type(pat).__name__}")
            if rid in seen:
                raise PatternError(rid, "duplicate rule id")
            seen.add(rid)
            if not pat:
                raise PatternError(rid, "empty pattern (it would match every request)")
            if "\x00" in pat:
                raise PatternError(rid, "NUL character in pattern (write \\x00)")
            if not pat.isascii():
                raise PatternError(rid, "non-ASCII character in pattern; patterns match bytes: "
                                        "write UTF-8 bytes as \\xHH")
            ids.append(rid)
            pats.append(pat.encode("ascii"))
        self.rule_ids = tuple(ids)
        self.caseless = caseless
        self._catcher = _Catcher()
        self._pending = []
        self._pats = pats
        self._flags = flags
        masks = [_gate_masks(pat.decode("ascii")) for pat in pats] if gates else []
        self._gated = any(masks)
        self._gate_min = gate_min
        if self._gated:
            self._cmask = <unsigned short*>malloc((sum(len(m) for m in masks) + 1) * sizeof(unsigned short))
            self._cstart = <Py_ssize_t*>malloc((len(masks) + 1) * sizeof(Py_ssize_t))
            if self._cmask == NULL or self._cstart == NULL:
                raise MemoryError()
            j = 0
            for i in range(len(masks)):
                self._cstart[i] = j
                for m in masks[i]:
                    self._cmask[j] = <unsigned short>m
                    j += 1
            self._cstart[len(masks)] = j
        self._route = {}
        self._subsets = {}
        self._compiling = None
        if pats:
            self._bdb = _compile(pats, ids, _hs.HS_MODE_BLOCK, flags)
            self._sdb = _compile(pats, ids, _hs.HS_MODE_STREAM, flags)
            self._bscan = self._bdb.scan
            self._sscratch = self._sdb.scratch.clone()
        else:
            self._bdb = self._sdb = self._bscan = self._sscratch = None

    def __len__(self):
        return len(self.rule_ids)

    def __repr__(self):
        return f"<PatternSet {len(self.rule_ids)} rules caseless={bool(self.caseless)}>"

    def scan(self, data, *, str kind="body"):
        """Block mode: normalise(data, kind), then the first match or None. When normalising
        would only lowercase ASCII letters (see _is_identity) a caseless set matches `data` as it
        is: the same verdict and offsets, without the copy."""
        cdef Norm nm
        cdef const unsigned char* p
        cdef Py_ssize_t n
        cdef bytes norm
        cdef _Catcher c
        cdef int k = _kind_code(kind)
        data = _as_bytes(data)
        _view(data, &p, &n)
        if self._bscan is None:
            return None
        if self.caseless and PyBytes_CheckExact(data) and fg_rx_identity(p, n, k == K_QUERY):
            # Normalising would only lowercase ASCII letters, which a caseless database ignores:
            # match the bytes as they are (same length, so the same offsets), with no copy.
            norm = <bytes>data
        else:
            norm_init(&nm, k)
            norm = norm_run(&nm, p, n, 1)
        if PyBytes_GET_SIZE(norm) == 0:
            return None  # no rule matches empty data (hyperscan refuses such patterns)
        db = self._bdb
        bscan = self._bscan
        if self._gated and PyBytes_GET_SIZE(norm) >= self._gate_min:
            present = fg_rx_gates(<const unsigned char*>PyBytes_AS_STRING(norm), PyBytes_GET_SIZE(norm))
            sub = self._route.get(present, _UNROUTED)
            if sub is _UNROUTED:
                sub = self._route_for(present)
            if sub is not None:
                if (<_Subset>sub).db is None:
                    return None  # the buffer lacks a byte every rule needs
                db = (<_Subset>sub).db
                bscan = (<_Subset>sub).scan
        if self._bbusy:
            c = _Catcher()
            try:
                db.scan(norm, c, 0, None, db.scratch.clone())
            except _ScanTerminated:
                pass
        else:
            c = self._catcher
            c.id = -1
            self._bbusy = 1
            try:
                bscan(norm, c)
            except _ScanTerminated:
                pass
            finally:
                self._bbusy = 0
        if c.id < 0:
            return None
        return Match(<str>self.rule_ids[c.id], <Py_ssize_t>c.to)

    cdef object _route_for(self, unsigned present):
        """The _Subset for a presence mask seen for the first time (None: the full database).
        Remembered once its database exists; while it compiles the full database answers."""
        cdef Py_ssize_t i, j, n = len(self.rule_ids)
        cdef list ids = []
        for i in range(n):
            for j in range(self._cstart[i], self._cstart[i + 1]):
                if not (self._cmask[j] & present):
                    break
            else:
                ids.append(i)
        cdef tuple alive = tuple(ids)
        if len(alive) == n:
            self._route[present] = None
            return None
        if not alive:
            sub = _Subset(None)
            self._route[present] = sub
            return sub
        if alive in self._subsets:  # compiled (None: its compile failed; the full set answers)
            sub = self._subsets[alive]
            self._route[present] = sub
            return sub
        if len(self._subsets) >= MAX_GATED_DATABASES:
            self._route[present] = None  # bounded: past the cap these buffers use the full set
            return None
        if self._compiling is None:
            self._compiling = _threading.Thread(target=self._compile_subset, args=(alive,),
                                                name="fastgate-regex-compile", daemon=True)
            self._compiling.start()
        return None

    def _compile_subset(self, tuple alive):
        try:
            db = _hs.Database(mode=_hs.HS_MODE_BLOCK)
            db.compile(expressions=[self._pats[i] for i in alive], ids=list(alive),
                       flags=[self._flags] * len(alive))
            self._subsets[alive] = _Subset(db)
        except BaseException:
            # never expected (a subset of rules that compiled together); the full set answers
            self._subsets[alive] = None
        finally:
            self._compiling = None

    def settle(self, timeout=None):
        """Wait for a gated database being compiled (tests and benchmarks: deterministic)."""
        t = self._compiling
        if t is not None:
            t.join(timeout)

    @property
    def gated_databases(self):
        """How many gated databases exist (each a subset of the rules, compiled on demand)."""
        return sum(1 for v in self._subsets.values() if v is not None)

    def stream(self, *, str kind="body"):
        """Stream mode over the normalised stream (a match split across chunks is found)."""
        return ScanStream(self, kind)

    cdef void _close_hs(self, object hs, _Catcher c):
        """Close a hyperscan stream exactly once (the binding does not guard a second close).
        Inside another close's callback (a collection during it) the close waits in _pending."""
        if self._closing:
            self._pending.append((hs, c))
            return
        self._closing = 1
        try:
            _close_one(hs)
            while self._pending:
                hs, c = self._pending.pop()
                _close_one(hs)
        finally:
            self._closing = 0

    def __dealloc__(self):
        free(self._cmask)
        free(self._cstart)
        # Streams whose close had to wait (see _close_hs) are freed before the database is.
        while self._pending:
            hs, c = self._pending.pop()
            try:
                _close_one(hs)
            except BaseException:
                pass


cdef inline void _close_one(object hs) except *:
    try:
        hs.close()
    except _ScanTerminated:
        pass


@cython.final
@cython.no_gc_clear
cdef class ScanStream:
    """One body being scanned as it arrives: feed(chunk) and close() return the stream's match
    (the same one again once found: the verdict is sticky) or None. The hyperscan stream is
    freed at the first match, at close(), or when this object is collected."""

    cdef PatternSet _ps
    cdef Norm _nm
    cdef object _hs
    cdef _Catcher _catcher
    cdef object _match
    cdef bint _closed
    cdef readonly str kind

    def __init__(self, PatternSet ps not None, str kind="body"):
        norm_init(&self._nm, _kind_code(kind))
        self.kind = kind
        self._ps = ps
        self._catcher = _Catcher()
        self._match = None
        self._closed = 0
        self._hs = None
        if ps._sdb is not None:
            self._hs = _open_stream(ps._sdb, self._catcher)

    @property
    def closed(self):
        return bool(self._closed)

    @property
    def match(self):
        return self._match

    def feed(self, chunk):
        """Scan the next chunk; returns the stream's match so far, or None."""
        cdef const unsigned char* p
        cdef Py_ssize_t n
        cdef bytes norm
        if self._closed:
            raise ValueError("ScanStream.feed() after close()")
        chunk = _as_bytes(chunk)
        _view(chunk, &p, &n)
        if self._hs is None:  # matched already, or no rules
            return self._match
        norm = norm_run(&self._nm, p, n, 0)
        if PyBytes_GET_SIZE(norm):
            self._scan(norm)
        return self._match

    def close(self):
        """End of the body: scan what the normaliser still held; returns the match or None."""
        cdef bytes norm
        if self._closed:
            return self._match
        self._closed = 1
        if self._hs is not None:
            norm = norm_run(&self._nm, <const unsigned char*>b"", 0, 1)
            if PyBytes_GET_SIZE(norm):
                self._scan(norm)
            self._end()  # may report end-of-data matches
        return self._match

    cdef _scan(self, bytes norm):
        cdef PatternSet ps = self._ps
        if ps._sbusy:
            try:
                self._hs.scan(norm, 0, ps._sscratch.clone())
            except _ScanTerminated:
                pass
        else:
            ps._sbusy = 1
            try:
                self._hs.scan(norm, 0, ps._sscratch)
            except _ScanTerminated:
                pass
            finally:
                ps._sbusy = 0
        if self._catcher.id >= 0:
            self._end()

    cdef _end(self):
        cdef _Catcher c = self._catcher
        hs = self._hs
        if hs is None:
            return
        self._hs = None
        self._ps._close_hs(hs, c)
        if c.id >= 0 and self._match is None:
            self._match = Match(<str>self._ps.rule_ids[c.id], <Py_ssize_t>c.to)

    def __dealloc__(self):
        if self._hs is not None:
            try:
                self._end()
            except BaseException:
                pass


cdef object _open_stream(object db, _Catcher catcher):
    """A hyperscan.Stream opened on db with catcher as its callback.

    python-hyperscan 0.9.1's Stream.__enter__ returns self without a new reference (its
    Database.stream() hands out an extra one to balance that, leaking the Stream when used
    otherwise). Build the Stream directly and add the missing reference only if __enter__ did
    not: correct with this binding and with one that fixes it. The Stream borrows db and
    catcher; the ScanStream keeps both alive."""
    s = _HsStream(db, 0, catcher, None)
    before = Py_REFCNT(s)
    r = s.__enter__()
    if r is not s:
        raise RuntimeError("hyperscan.Stream.__enter__ did not return the stream")
    if Py_REFCNT(s) == before:
        Py_INCREF(s)  # r's reference was not counted; releasing r must not free the stream
    del r
    return s

# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Native fast path for HTTP/1.1 heads: request/response head parsing and head serialization.

Invariant: a parse returns a result only for a strict, simple subset of what h11 0.16 accepts,
and then exactly what h11 would produce; anything else (or any doubt) returns None and h11 decides.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_Check, PyByteArray_GET_SIZE
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_Check,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE, PyList_New, PyList_SET_ITEM
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE, PyTuple_New, PyTuple_SET_ITEM
from libc.string cimport memchr, memcmp, memcpy

__all__ = [
    "find_head_end",
    "parse_request_head",
    "parse_response_head",
    "RequestHead",
    "ResponseHead",
    "serialize_request_head",
    "serialize_response_head",
    "MAX_HEADERS",
    "MAX_CONTENT_LENGTH_DIGITS",
]

# Above this many header lines the fast path declines; the caller enforces its own, lower limits.
cdef enum:
    _MAX_HEADERS = 128
MAX_HEADERS = _MAX_HEADERS
# h11 allows 20 digits; 18 always fits in a signed 64-bit integer, so no overflow check is needed.
cdef enum:
    _MAX_CL_DIGITS = 18
MAX_CONTENT_LENGTH_DIGITS = _MAX_CL_DIGITS

# ---------------------------------------------------------------------------------------------
# Byte classes (RFC 9110 §5.6.2 tchar, §5.5 field-vchar; RFC 9112 §3.2 origin-form target).
# Each is deliberately a subset of the corresponding h11 regex in h11/_abnf.py.
# ---------------------------------------------------------------------------------------------
cdef unsigned char TCHAR[256]     # token: "!#$%&'*+-.^_`|~" DIGIT ALPHA
cdef unsigned char VALCH[256]     # field value byte: VCHAR / obs-text / SP / HTAB (no CTL, no DEL)
cdef unsigned char TARGETCH[256]  # request-target byte: VCHAR 0x21-0x7E (h11: vchar+)
cdef unsigned char LOWER[256]     # ASCII lowercase map


cdef void _init_tables():
    cdef int c
    cdef bytes extra = b"!#$%&'*+-.^_`|~"
    for c in range(256):
        TCHAR[c] = 0
        VALCH[c] = 0
        TARGETCH[c] = 0
        LOWER[c] = <unsigned char>(c + 32 if 65 <= c <= 90 else c)
    for c in range(48, 58):
        TCHAR[c] = 1
    for c in range(65, 91):
        TCHAR[c] = 1
    for c in range(97, 123):
        TCHAR[c] = 1
    for c in extra:
        TCHAR[c] = 1
    for c in range(0x21, 0x7F):
        VALCH[c] = 1
        TARGETCH[c] = 1
    for c in range(0x80, 0x100):
        # obs-text: h11's field_vchar ([^\x00\s]) accepts it, so values with it parse the same.
        VALCH[c] = 1
    VALCH[0x20] = 1
    VALCH[0x09] = 1


_init_tables()

# ---------------------------------------------------------------------------------------------
# Interned header names and methods: reusing one bytes object per common name saves an
# allocation per header and gives the caller cheap identity-equal names.
# ---------------------------------------------------------------------------------------------
cdef enum:
    K_OTHER = 0
    K_HOST = 1
    K_CONTENT_LENGTH = 2
    K_TRANSFER_ENCODING = 3
    K_CONNECTION = 4
    K_EXPECT = 5
    K_UPGRADE = 6

cdef struct KnownName:
    const unsigned char* s
    Py_ssize_t n
    PyObject* obj
    int kind

cdef enum:
    _MAX_KNOWN = 96
    _MAX_KNOWN_LEN = 40
cdef KnownName KNOWN[_MAX_KNOWN]
cdef int KNOWN_FIRST[_MAX_KNOWN_LEN + 1]
cdef int KNOWN_COUNT[_MAX_KNOWN_LEN + 1]

_SPECIAL = {
    b"host": K_HOST,
    b"content-length": K_CONTENT_LENGTH,
    b"transfer-encoding": K_TRANSFER_ENCODING,
    b"connection": K_CONNECTION,
    b"expect": K_EXPECT,
    b"upgrade": K_UPGRADE,
}
# Every name in _SPECIAL must be here: classification relies on this table.
_KNOWN_NAMES = tuple(sorted(set([
    b"host", b"content-length", b"transfer-encoding", b"connection", b"expect", b"upgrade",
    b"user-agent", b"accept", b"accept-encoding", b"accept-language", b"accept-charset",
    b"content-type", b"content-encoding", b"content-language", b"content-location",
    b"content-range", b"content-disposition", b"content-security-policy",
    b"cookie", b"set-cookie", b"authorization", b"proxy-authorization", b"referer", b"origin",
    b"cache-control", b"pragma", b"upgrade-insecure-requests", b"priority", b"dnt", b"te",
    b"sec-fetch-site", b"sec-fetch-mode", b"sec-fetch-user", b"sec-fetch-dest",
    b"sec-ch-ua", b"sec-ch-ua-mobile", b"sec-ch-ua-platform",
    b"if-none-match", b"if-modified-since", b"if-match", b"if-unmodified-since", b"if-range",
    b"range", b"keep-alive", b"via", b"forwarded",
    b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port",
    b"x-real-ip", b"x-request-id", b"x-api-key", b"x-requested-with", b"x-correlation-id",
    b"traceparent", b"tracestate",
    b"server", b"date", b"etag", b"last-modified", b"expires", b"age", b"vary", b"location",
    b"accept-ranges", b"retry-after", b"www-authenticate", b"proxy-authenticate", b"allow",
    b"strict-transport-security", b"x-content-type-options", b"x-frame-options",
    b"x-xss-protection", b"referrer-policy", b"access-control-allow-origin",
    b"access-control-allow-credentials", b"access-control-allow-methods",
    b"access-control-allow-headers", b"access-control-expose-headers",
    b"access-control-max-age", b"access-control-request-method",
    b"access-control-request-headers", b"link", b"trailer",
    b"ratelimit-limit", b"ratelimit-remaining", b"ratelimit-reset",
]), key=lambda s: (len(s), s)))


# C-level reference: KNOWN[i].obj borrows from this tuple, which Python code cannot rebind.
cdef tuple _KNOWN_REFS = _KNOWN_NAMES


cdef void _init_known() except *:
    cdef int i, n
    cdef bytes name
    if len(_KNOWN_REFS) > _MAX_KNOWN:
        raise RuntimeError("httpfast: too many known header names")
    for n in range(_MAX_KNOWN_LEN + 1):
        KNOWN_FIRST[n] = 0
        KNOWN_COUNT[n] = 0
    for i, name in enumerate(_KNOWN_REFS):
        n = len(name)
        if n > _MAX_KNOWN_LEN:
            raise RuntimeError("httpfast: known header name too long")
        KNOWN[i].s = <const unsigned char*>PyBytes_AS_STRING(name)
        KNOWN[i].n = n
        KNOWN[i].obj = <PyObject*>name  # kept alive by _KNOWN_REFS
        KNOWN[i].kind = _SPECIAL.get(name, K_OTHER)
        if KNOWN_COUNT[n] == 0:
            KNOWN_FIRST[n] = i
        KNOWN_COUNT[n] += 1


_init_known()


cdef inline int _lookup_name(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """Index into KNOWN of the name p[:n] compared case-insensitively, or -1."""
    cdef int i, end
    cdef Py_ssize_t j
    cdef const unsigned char* s
    if n > _MAX_KNOWN_LEN:
        return -1
    i = KNOWN_FIRST[n]
    end = i + KNOWN_COUNT[n]
    while i < end:
        s = KNOWN[i].s
        if LOWER[p[0]] == s[0]:
            j = 1
            while j < n and LOWER[p[j]] == s[j]:
                j += 1
            if j == n:
                return i
        i += 1
    return -1


cdef bytes M_GET = b"GET"
cdef bytes M_POST = b"POST"
cdef bytes M_PUT = b"PUT"
cdef bytes M_HEAD = b"HEAD"
cdef bytes M_DELETE = b"DELETE"
cdef bytes M_PATCH = b"PATCH"
cdef bytes M_OPTIONS = b"OPTIONS"
cdef bytes V11 = b"1.1"
cdef bytes V10 = b"1.0"
cdef bytes R_OK = b"OK"
cdef bytes EMPTY = b""


cdef inline bytes _method_obj(const unsigned char* p, Py_ssize_t n):
    if n == 3:
        if memcmp(p, b"GET", 3) == 0:
            return M_GET
        if memcmp(p, b"PUT", 3) == 0:
            return M_PUT
    elif n == 4:
        if memcmp(p, b"POST", 4) == 0:
            return M_POST
        if memcmp(p, b"HEAD", 4) == 0:
            return M_HEAD
    elif n == 6:
        if memcmp(p, b"DELETE", 6) == 0:
            return M_DELETE
    elif n == 5:
        if memcmp(p, b"PATCH", 5) == 0:
            return M_PATCH
    elif n == 7:
        if memcmp(p, b"OPTIONS", 7) == 0:
            return M_OPTIONS
    return PyBytes_FromStringAndSize(<char*>p, n)


# ---------------------------------------------------------------------------------------------
# Result types
# ---------------------------------------------------------------------------------------------
cdef class RequestHead:
    """A request head the fast path fully understood (fields have h11's meaning and form)."""

    cdef readonly bytes method
    cdef readonly bytes target
    cdef readonly bytes http_version
    cdef readonly list headers
    cdef readonly long long content_length
    cdef readonly bint keep_alive
    cdef readonly bint expect_continue
    cdef readonly object host

    def __init__(self, bytes method, bytes target, bytes http_version, list headers,
                 long long content_length=-1, bint keep_alive=True,
                 bint expect_continue=False, host=None):
        # Only for Python-side construction (tests, adapters); the parser bypasses __init__.
        self.method = method
        self.target = target
        self.http_version = http_version
        self.headers = headers
        self.content_length = content_length
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.host = host

    def __repr__(self):
        return (
            f"RequestHead(method={self.method!r}, target={self.target!r}, "
            f"http_version={self.http_version!r}, headers={self.headers!r}, "
            f"content_length={self.content_length}, keep_alive={self.keep_alive}, "
            f"expect_continue={self.expect_continue}, host={self.host!r})"
        )


cdef class ResponseHead:
    """A response head the fast path fully understood (not 1xx, no Transfer-Encoding)."""

    cdef readonly int status
    cdef readonly bytes reason
    cdef readonly bytes http_version
    cdef readonly list headers
    cdef readonly long long content_length
    cdef readonly bint keep_alive

    def __init__(self, int status, bytes reason, bytes http_version, list headers,
                 long long content_length=-1, bint keep_alive=True):
        self.status = status
        self.reason = reason
        self.http_version = http_version
        self.headers = headers
        self.content_length = content_length
        self.keep_alive = keep_alive

    def __repr__(self):
        return (
            f"ResponseHead(status={self.status}, reason={self.reason!r}, "
            f"http_version={self.http_version!r}, headers={self.headers!r}, "
            f"content_length={self.content_length}, keep_alive={self.keep_alive})"
        )


# ---------------------------------------------------------------------------------------------
# Head end (h11/_receivebuffer.py ReceiveBuffer.maybe_extract_lines)
# ---------------------------------------------------------------------------------------------
def find_head_end(buf, Py_ssize_t start=0):
    """Index just past the blank line ending the head that begins at `start`, or -1.

    Same rule as h11's ReceiveBuffer: a blank line is b"\\n\\r?\\n"; a head that *begins* with
    b"\\n" or b"\\r\\n" is an empty head ending right there (h11 then fails with "no request
    line received": h11 does not skip leading empty lines, so neither do we). `start` is where
    the head begins in `buf` (e.g. after a pipelined request), not a resume offset.
    """
    cdef const unsigned char* p
    cdef const unsigned char* q
    cdef Py_ssize_t n, i
    if PyBytes_Check(buf):
        p = <const unsigned char*>PyBytes_AS_STRING(buf)
        n = PyBytes_GET_SIZE(buf)
    elif PyByteArray_Check(buf):
        p = <const unsigned char*>PyByteArray_AS_STRING(buf)
        n = PyByteArray_GET_SIZE(buf)
    else:
        raise TypeError(f"find_head_end() expects bytes or bytearray, not {type(buf).__name__}")
    if start < 0:
        raise ValueError("start must be >= 0")
    if start >= n:
        return -1
    if p[start] == 10:  # b"\n"
        return start + 1
    if p[start] == 13 and start + 1 < n and p[start + 1] == 10:  # b"\r\n"
        return start + 2
    i = start
    while True:
        q = <const unsigned char*>memchr(p + i, 10, <size_t>(n - i))
        if q == NULL:
            return -1
        i = q - p
        if i + 1 >= n:
            return -1
        if p[i + 1] == 10:
            return i + 2
        if p[i + 1] == 13:
            if i + 2 >= n:
                return -1
            if p[i + 2] == 10:
                return i + 3
        i += 1


# ---------------------------------------------------------------------------------------------
# Header block scanner shared by requests and responses
# ---------------------------------------------------------------------------------------------
cdef struct Span:
    Py_ssize_t ns      # name start
    Py_ssize_t nl      # name length
    Py_ssize_t vs      # value start (after OWS)
    Py_ssize_t vl      # value length (trailing OWS trimmed)
    int known          # index into KNOWN or -1


cdef struct HeadInfo:
    int nh
    int host_idx           # -1 none; set to -2 when more than one
    int cl_count
    long long content_length
    bint saw_te
    bint saw_upgrade
    bint conn_close
    bint expect_100


cdef inline bint _has_token(const unsigned char* v, Py_ssize_t n,
                            const char* tok, Py_ssize_t tn) noexcept nogil:
    """h11 get_comma_header semantics: lowercase, split on ",", strip, compare."""
    cdef Py_ssize_t i = 0, s, e, j
    while i <= n:
        s = i
        while i < n and v[i] != 44:  # ","
            i += 1
        e = i
        while s < e and (v[s] == 32 or v[s] == 9):
            s += 1
        while e > s and (v[e - 1] == 32 or v[e - 1] == 9):
            e -= 1
        if e - s == tn:
            j = 0
            while j < tn and LOWER[v[s + j]] == <unsigned char>tok[j]:
                j += 1
            if j == tn:
                return True
        i += 1
    return False


cdef int _scan_headers(const unsigned char* p, Py_ssize_t i, Py_ssize_t end,
                       Span* spans, HeadInfo* info) noexcept nogil:
    """Validate the header lines from p[i] to the final CRLF CRLF; 0 if all in the subset.

    The caller has checked p[end-4:end] == CRLF CRLF, so every table-driven loop stops at a
    CR at index <= end-2 at the latest and needs no bounds check of its own.
    """
    cdef Py_ssize_t ns, vs, ve, k
    cdef int nh = 0, known, kind
    cdef long long cl
    cdef const unsigned char* v
    info.host_idx = -1
    info.cl_count = 0
    info.content_length = -1
    info.saw_te = False
    info.saw_upgrade = False
    info.conn_close = False
    info.expect_100 = False
    while True:
        if p[i] == 13:
            # The only blank line allowed is the head's end: nothing may follow it.
            if p[i + 1] == 10 and i + 2 == end:
                info.nh = nh
                return 0
            return -1
        if nh >= _MAX_HEADERS:
            return -1
        # field-name = token, then ":" at once (RFC 9112 §5.1: no whitespace before the colon);
        # a line starting with SP/HTAB (obs-fold, RFC 9112 §5.2) fails here too.
        ns = i
        while TCHAR[p[i]]:
            i += 1
        if i == ns or p[i] != 58:  # ":"
            return -1
        spans[nh].ns = ns
        spans[nh].nl = i - ns
        i += 1
        while p[i] == 32 or p[i] == 9:
            i += 1
        vs = i
        while VALCH[p[i]]:
            i += 1
        # Only CRLF may end a line: a bare CR, a bare LF, NUL or any other CTL means None.
        if p[i] != 13 or p[i + 1] != 10:
            return -1
        ve = i
        while ve > vs and (p[ve - 1] == 32 or p[ve - 1] == 9):
            ve -= 1
        i += 2
        spans[nh].vs = vs
        spans[nh].vl = ve - vs
        known = _lookup_name(p + ns, spans[nh].nl)
        spans[nh].known = known
        if known >= 0:
            kind = KNOWN[known].kind
            if kind != K_OTHER:
                v = p + vs
                if kind == K_HOST:
                    # RFC 9112 §3.2: more than one Host is a 400 (h11 rejects it).
                    info.host_idx = nh if info.host_idx == -1 else -2
                elif kind == K_CONTENT_LENGTH:
                    # RFC 9112 §6.3: plain 1*DIGIT only; lists, signs, repeats go to h11.
                    info.cl_count += 1
                    if info.cl_count > 1 or ve == vs or ve - vs > _MAX_CL_DIGITS:
                        return -1
                    cl = 0
                    for k in range(ve - vs):
                        if v[k] < 48 or v[k] > 57:
                            return -1
                        cl = cl * 10 + (v[k] - 48)
                    info.content_length = cl
                elif kind == K_TRANSFER_ENCODING:
                    return -1  # chunked and every other coding: h11 decides
                elif kind == K_CONNECTION:
                    if not info.conn_close and _has_token(v, ve - vs, b"close", 5):
                        info.conn_close = True
                elif kind == K_EXPECT:
                    if not info.expect_100 and _has_token(v, ve - vs, b"100-continue", 12):
                        info.expect_100 = True
                elif kind == K_UPGRADE:
                    info.saw_upgrade = True
        nh += 1


cdef list _build_headers(const unsigned char* p, Span* spans, int nh):
    cdef list out = PyList_New(nh)
    cdef int h
    cdef Py_ssize_t j, nl
    cdef object name, value
    cdef tuple t
    cdef unsigned char* d
    cdef const unsigned char* s
    for h in range(nh):
        if spans[h].known >= 0:
            name = <object>KNOWN[spans[h].known].obj
        else:
            nl = spans[h].nl
            name = PyBytes_FromStringAndSize(NULL, nl)
            d = <unsigned char*>PyBytes_AS_STRING(name)
            s = p + spans[h].ns
            for j in range(nl):
                d[j] = LOWER[s[j]]
        value = PyBytes_FromStringAndSize(<char*>(p + spans[h].vs), spans[h].vl)
        t = PyTuple_New(2)
        Py_INCREF(name)
        PyTuple_SET_ITEM(t, 0, name)
        Py_INCREF(value)
        PyTuple_SET_ITEM(t, 1, value)
        Py_INCREF(t)
        PyList_SET_ITEM(out, h, t)
    return out


cdef inline int _as_buffer(object data, const unsigned char** pp, Py_ssize_t* pn) except -1:
    if PyBytes_Check(data):
        pp[0] = <const unsigned char*>PyBytes_AS_STRING(data)
        pn[0] = PyBytes_GET_SIZE(data)
        return 0
    raise TypeError(f"expected bytes, not {type(data).__name__}")


cdef inline bint _ci_eq(const unsigned char* p, const char* lower, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        if LOWER[p[j]] != <unsigned char>lower[j]:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Request heads
# ---------------------------------------------------------------------------------------------
def parse_request_head(head):
    """Parse a complete request head (ending in its blank line) or return None.

    None means "not in the strict subset": the caller gives the same bytes to h11, which
    decides. Accepted: origin-form target, HTTP/1.1 or 1.0, CRLF line ends only, token names,
    no obs-fold, no CTL in values, no Transfer-Encoding, at most one plain Content-Length,
    exactly one Host for HTTP/1.1, no Upgrade, not CONNECT, nothing after the blank line.
    """
    cdef const unsigned char* p
    cdef Py_ssize_t n, i, ml, ts, tl
    cdef bint v11
    cdef Span spans[_MAX_HEADERS]
    cdef HeadInfo info
    cdef RequestHead r
    cdef list headers
    if not PyBytes_CheckExact(head):
        if PyByteArray_Check(head) or isinstance(head, memoryview):
            head = bytes(head)  # own a stable copy: object creation below may run Python code
        elif not PyBytes_Check(head):
            raise TypeError(f"parse_request_head() expects bytes, not {type(head).__name__}")
    _as_buffer(head, &p, &n)
    # Shortest: b"A / HTTP/1.0\r\n\r\n" (16 bytes); the head must end in CRLF CRLF.
    if n < 16 or memcmp(p + n - 4, b"\r\n\r\n", 4) != 0:
        return None
    # request-line = method SP request-target SP HTTP-version CRLF (RFC 9112 §3)
    i = 0
    while TCHAR[p[i]]:
        i += 1
    ml = i
    if ml == 0 or p[i] != 32:
        return None
    i += 1
    ts = i
    if p[i] != 47:  # origin-form only (RFC 9112 §3.2.1); absolute/authority/asterisk -> h11
        return None
    i += 1
    while TARGETCH[p[i]]:
        i += 1
    tl = i - ts
    if p[i] != 32 or i + 11 > n:
        return None
    i += 1
    if memcmp(p + i, b"HTTP/1.", 7) != 0 or p[i + 8] != 13 or p[i + 9] != 10:
        return None
    if p[i + 7] == 49:
        v11 = True
    elif p[i + 7] == 48:
        v11 = False
    else:
        return None
    i += 10
    # CONNECT (any case) switches protocols in h11: never on the fast path.
    if ml == 7 and LOWER[p[0]] == 99 and _ci_eq(p, b"connect", 7):
        return None
    if _scan_headers(p, i, n, spans, &info) != 0:
        return None
    if info.host_idx == -2 or (v11 and info.host_idx == -1):
        return None  # RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one in 1.0
    if info.saw_upgrade:
        return None  # h11 proposes a protocol switch; let it own that connection
    headers = _build_headers(p, spans, info.nh)
    r = RequestHead.__new__(RequestHead)
    r.method = _method_obj(p, ml)
    r.target = PyBytes_FromStringAndSize(<char*>(p + ts), tl)
    r.http_version = V11 if v11 else V10
    r.headers = headers
    r.content_length = info.content_length
    # h11 _connection._keep_alive: "close" token closes; HTTP/1.0 always closes.
    r.keep_alive = v11 and not info.conn_close
    # h11 _headers.has_expect_100_continue: ignored below HTTP/1.1 (RFC 9110 §10.1.1).
    r.expect_continue = v11 and info.expect_100
    if info.host_idx >= 0:
        r.host = (<tuple><object>PyList_GET_ITEM(headers, info.host_idx))[1]
    else:
        r.host = None
    return r


# ---------------------------------------------------------------------------------------------
# Response heads (upstream side)
# ---------------------------------------------------------------------------------------------
def parse_response_head(head):
    """Parse a complete response head (ending in its blank line) or return None.

    Accepted: "HTTP/1.1" or "HTTP/1.0", a status 200-599, an optional reason of VCHAR /
    obs-text / SP / HTAB kept byte-exact (h11 does not trim it), and the header rules of
    parse_request_head (no Host requirement, Upgrade allowed). 1xx responses go to h11.
    content_length is the header's value; whether a body follows (HEAD, 204, 304) is the
    caller's decision, as in h11's _body_framing.
    """
    cdef const unsigned char* p
    cdef Py_ssize_t n, i, rs, rl
    cdef bint v11
    cdef int status
    cdef Span spans[_MAX_HEADERS]
    cdef HeadInfo info
    cdef ResponseHead r
    if not PyBytes_CheckExact(head):
        if PyByteArray_Check(head) or isinstance(head, memoryview):
            head = bytes(head)
        elif not PyBytes_Check(head):
            raise TypeError(f"parse_response_head() expects bytes, not {type(head).__name__}")
    _as_buffer(head, &p, &n)
    # Shortest: b"HTTP/1.1 200\r\n\r\n" (16 bytes)
    if n < 16 or memcmp(p + n - 4, b"\r\n\r\n", 4) != 0:
        return None
    # status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 §4);
    # h11 also accepts no SP after the code at all, so we do too.
    if memcmp(p, b"HTTP/1.", 7) != 0 or p[8] != 32:
        return None
    if p[7] == 49:
        v11 = True
    elif p[7] == 48:
        v11 = False
    else:
        return None
    if not (49 <= p[9] <= 57 and 48 <= p[10] <= 57 and 48 <= p[11] <= 57):
        return None
    status = (p[9] - 48) * 100 + (p[10] - 48) * 10 + (p[11] - 48)
    if status < 200 or status > 599:
        return None  # 1xx: h11 (InformationalResponse); 600-999: unusual, h11 decides
    i = 12
    if p[i] == 32:
        i += 1
        rs = i
        while VALCH[p[i]]:
            i += 1
        rl = i - rs
    else:
        rs = i
        rl = 0
    if p[i] != 13 or p[i + 1] != 10:
        return None
    i += 2
    if _scan_headers(p, i, n, spans, &info) != 0:
        return None
    r = ResponseHead.__new__(ResponseHead)
    r.status = status
    if rl == 2 and p[rs] == 79 and p[rs + 1] == 75:
        r.reason = R_OK
    else:
        r.reason = PyBytes_FromStringAndSize(<char*>(p + rs), rl)
    r.http_version = V11 if v11 else V10
    r.headers = _build_headers(p, spans, info.nh)
    r.content_length = info.content_length
    r.keep_alive = v11 and not info.conn_close
    return r


# ---------------------------------------------------------------------------------------------
# Serialization
# ---------------------------------------------------------------------------------------------
cdef inline bint _no_crlf_nul(const unsigned char* s, Py_ssize_t n) noexcept nogil:
    """True when s has no CR, LF or NUL (the bytes that split or end a header line)."""
    cdef Py_ssize_t j
    for j in range(n):
        if s[j] == 13 or s[j] == 10 or s[j] == 0:
            return False
    return True


cdef list _normalize_headers(object headers):
    """A private list of (bytes, bytes) tuples, or TypeError.

    Always a copy: the size pass and the write pass must see the same immutable items even if
    an allocation in between runs a finalizer that mutates the caller's list.
    """
    cdef list items = list(headers)
    cdef Py_ssize_t k, m
    cdef object item
    m = PyList_GET_SIZE(items)
    for k in range(m):
        item = <object>PyList_GET_ITEM(items, k)
        if type(item) is not tuple or PyTuple_GET_SIZE(item) != 2 \
                or not PyBytes_Check(<object>PyTuple_GET_ITEM(item, 0)) \
                or not PyBytes_Check(<object>PyTuple_GET_ITEM(item, 1)):
            break
    else:
        return items
    out = []
    for item in items:
        name, value = item
        if not isinstance(name, bytes) or not isinstance(value, bytes):
            raise TypeError("header names and values must be bytes")
        out.append((name, value))
    return out


cdef Py_ssize_t _headers_size(list items) except -1:
    """Validate every header; return the bytes needed for all "name: value\\r\\n" lines."""
    cdef Py_ssize_t total = 0, k, m, nl, vl, j
    cdef object name, value
    cdef const unsigned char* s
    m = PyList_GET_SIZE(items)
    for k in range(m):
        item = <tuple><object>PyList_GET_ITEM(items, k)
        name = <object>PyTuple_GET_ITEM(item, 0)
        value = <object>PyTuple_GET_ITEM(item, 1)
        s = <const unsigned char*>PyBytes_AS_STRING(name)
        nl = PyBytes_GET_SIZE(name)
        if nl == 0:
            raise ValueError("empty header name")
        for j in range(nl):
            if not TCHAR[s[j]]:
                # RFC 9110 §5.1: names are tokens; CR/LF/NUL/SP/":" here would forge lines
                raise ValueError(f"illegal byte {s[j]:#04x} in header name {name!r}")
        vl = PyBytes_GET_SIZE(value)
        if not _no_crlf_nul(<const unsigned char*>PyBytes_AS_STRING(value), vl):
            # RFC 9110 §5.5: CR, LF and NUL are never allowed in a field value
            raise ValueError(f"CR, LF or NUL in the value of header {name!r}")
        total += nl + vl + 4
    return total


cdef Py_ssize_t _write_headers(unsigned char* d, list items) noexcept:
    cdef Py_ssize_t k, m, nl, vl, o = 0
    cdef object name, value
    m = PyList_GET_SIZE(items)
    for k in range(m):
        item = <tuple><object>PyList_GET_ITEM(items, k)
        name = <object>PyTuple_GET_ITEM(item, 0)
        value = <object>PyTuple_GET_ITEM(item, 1)
        nl = PyBytes_GET_SIZE(name)
        vl = PyBytes_GET_SIZE(value)
        memcpy(d + o, PyBytes_AS_STRING(name), nl)
        o += nl
        d[o] = 58
        d[o + 1] = 32
        o += 2
        memcpy(d + o, PyBytes_AS_STRING(value), vl)
        o += vl
        d[o] = 13
        d[o + 1] = 10
        o += 2
    d[o] = 13
    d[o + 1] = 10
    return o + 2


def serialize_response_head(int status, bytes reason not None, headers):
    """b"HTTP/1.1 <status> <reason>\\r\\n" + "name: value\\r\\n"... + b"\\r\\n".

    ValueError on header injection: CR, LF or NUL in the reason or any value, a name that is
    not a token, or a status outside 100-999. Header order is kept as given.
    """
    cdef list items = _normalize_headers(headers)
    cdef Py_ssize_t rl = PyBytes_GET_SIZE(reason), total, o
    cdef unsigned char* d
    if status < 100 or status > 999:
        raise ValueError(f"status must be 100-999, not {status}")
    if not _no_crlf_nul(<const unsigned char*>PyBytes_AS_STRING(reason), rl):
        raise ValueError("CR, LF or NUL in the reason phrase")
    total = 13 + rl + 2 + _headers_size(items) + 2
    out = PyBytes_FromStringAndSize(NULL, total)
    d = <unsigned char*>PyBytes_AS_STRING(out)
    memcpy(d, b"HTTP/1.1 ", 9)
    d[9] = <unsigned char>(48 + status // 100)
    d[10] = <unsigned char>(48 + (status // 10) % 10)
    d[11] = <unsigned char>(48 + status % 10)
    d[12] = 32
    memcpy(d + 13, PyBytes_AS_STRING(reason), rl)
    o = 13 + rl
    d[o] = 13
    d[o + 1] = 10
    o += 2
    o += _write_headers(d + o, items)
    assert o == total
    return out


def serialize_request_head(bytes method not None, bytes target not None, headers):
    """b"<method> <target> HTTP/1.1\\r\\n" + "name: value\\r\\n"... + b"\\r\\n".

    ValueError when the method is not a token, the target is empty or has a byte outside
    VCHAR (so no SP, CR, LF, NUL), or a header fails the checks of serialize_response_head.
    """
    cdef list items = _normalize_headers(headers)
    cdef Py_ssize_t ml = PyBytes_GET_SIZE(method), tl = PyBytes_GET_SIZE(target)
    cdef Py_ssize_t total, o, j
    cdef const unsigned char* s
    cdef unsigned char* d
    s = <const unsigned char*>PyBytes_AS_STRING(method)
    if ml == 0:
        raise ValueError("empty method")
    for j in range(ml):
        if not TCHAR[s[j]]:
            raise ValueError(f"illegal byte {s[j]:#04x} in method")  # RFC 9110 §9.1: token
    s = <const unsigned char*>PyBytes_AS_STRING(target)
    if tl == 0:
        raise ValueError("empty request target")
    for j in range(tl):
        if not TARGETCH[s[j]]:
            # RFC 9112 §3.2: the target has no whitespace or control bytes
            raise ValueError(f"illegal byte {s[j]:#04x} in request target")
    total = ml + 1 + tl + 11 + _headers_size(items) + 2
    out = PyBytes_FromStringAndSize(NULL, total)
    d = <unsigned char*>PyBytes_AS_STRING(out)
    memcpy(d, PyBytes_AS_STRING(method), ml)
    o = ml
    d[o] = 32
    o += 1
    memcpy(d + o, PyBytes_AS_STRING(target), tl)
    o += tl
    memcpy(d + o, b" HTTP/1.1\r\n", 11)
    o += 11
    o += _write_headers(d + o, items)
    assert o == total
    return out

# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Streaming XML scanner for request bodies: well-formedness (XML 1.0 + Namespaces) and limits.

Sans-IO: ``XmlScanner.feed(chunk)`` takes the body in any split (one byte at a time works) and
raises ``PayloadRejected`` at the first byte where a violation is certain; ``finish()`` checks the
document is complete. Nothing is built or expanded: no tree, no DTD, no entity but the five
predefined ones, so billion-laughs and XXE payloads have nothing to expand.

Invariant: the verdict, the limit name and the offset depend only on the bytes, never on how they
were split (one explicit state machine, no recursion, no look-behind outside fixed fields); memory
is bounded by the open elements' names, the current start tag and the in-scope namespace
declarations, and every name part is at most ``MAX_NAME_LENGTH`` bytes, as in libxml2.
"""

# Decisions (tests/native/test_xmlscan.py pins each; benchmarks/README.md "XML scanner" sums up):
# - Encoding: UTF-8 only. A UTF-8 BOM is skipped. The XML declaration may name UTF-8, UTF8,
#   US-ASCII or ASCII (any case); an ASCII one makes every byte >= 0x80 malformed, unless a BOM
#   came first (libxml2 then ignores the declaration too). Anything else -- UTF-16/32 with or
#   without BOM, ISO-8859-1, EBCDIC, ... -- is malformed, where lxml would convert it.
# - Names: XML 1.0 5th edition NameStartChar/NameChar, non-ASCII included (libxml2's default);
#   Namespaces in XML: QNames (one colon, NCName parts), prefixes bound, namespace names RFC 3986
#   URI references (a port of libxml2's xmlParseURI), the xml/xmlns rules, no two attributes
#   with the same expanded name. Each name part is at most 50,000 bytes (libxml2's cap).
# - DTD: allow_dtd=False refuses "<!D" anywhere (prolog, content, epilog) as "allow_dtd", i.e. at
#   the third byte of "<!DOCTYPE". allow_dtd=True skips one DOCTYPE before the root: the internal
#   subset is tokenized only as far as quotes, comments, PIs and PE references, and not checked
#   further; nothing it declares is used, so "&name;" other than the five predefined entities is
#   still malformed, and DTD attribute defaults / normalization are never applied.
# - Lengths are characters (code points) after decoding: a reference counts one, CR LF counts
#   one -- len() of the string lxml returns. A text node is the character data between two of
#   start tag / end tag / comment / PI, CDATA sections and references included (lxml merges them);
#   whitespace outside the root is no text node. Namespace declarations are attributes for
#   max_attributes and max_attribute_length.
# - Offsets: the byte at which the violation became certain: for a non-ASCII character its last
#   byte, for max_bytes max_bytes, for an incomplete document its length.
# - lxml (libxml2 2.14) differs on DTD-free input only in: the encodings above; its own caps
#   without huge_tree (depth 256, 10,000,000-byte text nodes and attribute values: ours are the
#   configured limits); and namespace errors followed by a warning, which lxml lets through
#   (libxml2 reports them as non-fatal errors; lxml raises only if the last message is one).

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_GET_SIZE
cimport cython
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.stdint cimport uint64_t
from libc.string cimport memcmp, memcpy, memset

from fastgate.errors import PayloadRejected

__all__ = [
    "XmlLimits",
    "XmlScanner",
    "scan_xml",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_ELEMENTS",
    "DEFAULT_MAX_ATTRIBUTES",
    "DEFAULT_MAX_ATTRIBUTE_LENGTH",
    "DEFAULT_MAX_TEXT_LENGTH",
    "DEFAULT_MAX_CHILDREN",
    "DEFAULT_MAX_BYTES",
    "MAX_NAME_LENGTH",
    "LIMIT_NAMES",
]

DEFAULT_MAX_DEPTH = 30
DEFAULT_MAX_ELEMENTS = 10_000
DEFAULT_MAX_ATTRIBUTES = 50
DEFAULT_MAX_ATTRIBUTE_LENGTH = 1000
DEFAULT_MAX_TEXT_LENGTH = 100_000
DEFAULT_MAX_CHILDREN = 1000
DEFAULT_MAX_BYTES = 1 << 20

# libxml2's XML_MAX_NAME_LENGTH (without XML_PARSE_HUGE): a longer name part (the prefix or the
# local part of a QName, a PI target, a DOCTYPE name) is malformed, in bytes of UTF-8.
cdef enum:
    _MAX_NAME = 50000
MAX_NAME_LENGTH = _MAX_NAME

# Error codes: index into LIMIT_NAMES (the config key, or "malformed").
cdef enum:
    E_MALFORMED = 0
    E_DEPTH
    E_ELEMENTS
    E_ATTRIBUTES
    E_ATTR_LEN
    E_TEXT
    E_CHILDREN
    E_BYTES
    E_DTD

LIMIT_NAMES = (
    "malformed",
    "max_depth",
    "max_elements",
    "max_attributes",
    "max_attribute_length",
    "max_text_length",
    "max_children",
    "max_bytes",
    "allow_dtd",
)

cdef enum:
    C_TAB = 9
    C_LF = 10
    C_CR = 13
    C_SP = 32
    C_BANG = 33
    C_DQ = 34
    C_HASH = 35
    C_PCT = 37
    C_AMP = 38
    C_SQ = 39
    C_DASH = 45
    C_SLASH = 47
    C_COLON = 58
    C_SEMI = 59
    C_LT = 60
    C_EQ = 61
    C_GT = 62
    C_QM = 63
    C_D = 68
    C_LBR = 91
    C_RBR = 93
    C_LOWER_E = 101
    C_LOWER_S = 115
    C_LOWER_V = 118
    C_LOWER_X = 120

# Scanner states. Each names the construct being read and what the next byte may be.
cdef enum:
    S_START = 0      # byte 0: a UTF-8 BOM or the document
    S_BOM1           # saw EF
    S_BOM2           # saw EF BB
    S_MISC           # outside the root element: S, or '<'
    S_MISC_LT        # '<' outside the root
    S_MISC_BANG      # '<!' outside the root
    S_LIT            # matching a fixed keyword (self.lit), then self.lit_next
    S_TEXT           # character data in content
    S_LT             # '<' in content
    S_BANG           # '<!' in content
    S_REF            # after '&'
    S_ENT            # inside '&name' (only lt gt amp apos quot can follow)
    S_CREF           # after '&#'
    S_CREF_DEC       # '&#' digits
    S_CREF_HEX       # '&#x' hex digits
    S_NAME           # a name (kind in self.nm_kind)
    S_STAG_WS        # in a start tag after whitespace: attribute, '>' or '/>'
    S_STAG_NOWS      # in a start tag right after an attribute value
    S_STAG_SLASH     # '/' in a start tag
    S_ATTR_EQ        # after an attribute name: S? '='
    S_ATTR_Q         # after '=': S? quote
    S_ATTR_VAL       # inside a quoted attribute value
    S_ETAG           # end-tag name, compared with the open element's name
    S_ETAG_WS        # after the end-tag name: S? '>'
    S_COMMENT        # comment text
    S_COMMENT_D1     # comment text after '-'
    S_COMMENT_D2     # comment text after '--': only '>' may follow
    S_PI_DATA        # processing-instruction data
    S_PI_QM0         # '?' right after a PI target: only '>' may follow
    S_PI_QM          # '?' in PI data
    S_CDATA          # CDATA section text
    S_CDATA_B1       # CDATA text after ']'
    S_CDATA_B2       # CDATA text after ']]'
    S_XD             # XML declaration, between pseudo-attributes
    S_XD_EQ          # after a pseudo-attribute name
    S_XD_Q           # after '=' in the declaration
    S_XD_VAL         # pseudo-attribute value
    S_XD_QM          # '?' ending the declaration
    S_DT_WS1         # after '<!DOCTYPE': whitespace required
    S_DT_WS          # before the DOCTYPE name
    S_DT_BODY        # after the DOCTYPE name: external id, '[' or '>'
    S_DT_BODY_Q      # quoted literal in the DOCTYPE head
    S_DT_SUBSET      # internal subset, between declarations
    S_DT_LT          # '<' in the internal subset
    S_DT_BANG        # '<!' in the internal subset
    S_DT_DECL        # a markup declaration, up to '>'
    S_DT_DECL_Q      # quoted literal in a markup declaration
    S_DT_AFTER       # after ']': S? '>'

# What a name being read is.
cdef enum:
    K_ELEM = 0
    K_ATTR
    K_PI
    K_DT
    K_PEREF

# Attribute kinds.
cdef enum:
    AK_PLAIN = 0
    AK_DEFNS         # xmlns="..."
    AK_PFXNS         # xmlns:p="..."

ctypedef struct Level:
    Py_ssize_t off       # name offset in self.names
    Py_ssize_t qlen      # name length in bytes
    long long children   # child elements seen so far
    Py_ssize_t ns_top    # namespace bindings in scope before this element's own

ctypedef struct Attr:
    Py_ssize_t off       # raw name offset in self.abuf
    Py_ssize_t len       # raw name length
    Py_ssize_t colon     # index of ':' in the name, -1 if none
    uint64_t h           # hash of the raw name
    int kind
    const unsigned char* uri   # resolved namespace (only for prefixed plain attributes)
    Py_ssize_t ulen

ctypedef struct Bind:
    Py_ssize_t off       # prefix then URI bytes in self.nsbuf
    Py_ssize_t plen
    Py_ssize_t ulen
    uint64_t h           # hash of the prefix
    Py_ssize_t prev      # the binding of the same prefix this one shadows, -1 if none
    Py_ssize_t slot      # its slot in self.ns_slots

cdef const char* XML_NS = b"http://www.w3.org/XML/1998/namespace"
cdef const char* XMLNS_NS = b"http://www.w3.org/2000/xmlns/"
cdef enum:
    XML_NS_LEN = 36
    XMLNS_NS_LEN = 29

# ---------------------------------------------------------------------------------------------
# Byte classes (XML 1.0 5th ed. §2.2 Char, §2.3 S / NameStartChar / NameChar, ASCII part).
# ---------------------------------------------------------------------------------------------
cdef unsigned char T_WS[256]       # S: SP TAB CR LF
cdef unsigned char T_CHAR[256]     # an ASCII XML Char: TAB LF CR 0x20-0x7F
cdef unsigned char T_NSTART[256]   # ASCII NameStartChar except ':'
cdef unsigned char T_NAME[256]     # ASCII NameChar except ':'
cdef unsigned char T_TEXT[256]     # content byte needing no attention: not < & ] > CR, no C0
cdef unsigned char T_ATTR[256]     # attribute-value byte needing no attention: not < & " ' CR
cdef unsigned char T_COMMENT[256]  # comment byte needing no attention: not '-'
cdef unsigned char T_PI[256]       # PI byte needing no attention: not '?'
cdef unsigned char T_CDATA[256]    # CDATA byte needing no attention: not ']' CR
cdef unsigned char T_HEX[256]      # hex digit value + 1, 0 if not a hex digit


cdef void _init_tables() noexcept:
    cdef int c
    for c in range(256):
        T_WS[c] = c == C_SP or c == C_TAB or c == C_CR or c == C_LF
        T_CHAR[c] = c == C_TAB or c == C_LF or c == C_CR or (0x20 <= c <= 0x7F)
        T_NSTART[c] = (65 <= c <= 90) or (97 <= c <= 122) or c == 95
        T_NAME[c] = T_NSTART[c] or (48 <= c <= 57) or c == C_DASH or c == 46
        T_TEXT[c] = (T_CHAR[c] and c != C_CR and c != C_LT and c != C_AMP and c != C_RBR
                     and c != C_GT)
        T_ATTR[c] = (T_CHAR[c] and c != C_CR and c != C_LT and c != C_AMP and c != C_DQ
                     and c != C_SQ)
        T_COMMENT[c] = T_CHAR[c] and c != C_DASH
        T_PI[c] = T_CHAR[c] and c != C_QM
        T_CDATA[c] = T_CHAR[c] and c != C_CR and c != C_RBR
        if 48 <= c <= 57:
            T_HEX[c] = c - 48 + 1
        elif 97 <= c <= 102:
            T_HEX[c] = c - 97 + 11
        elif 65 <= c <= 70:
            T_HEX[c] = c - 65 + 11
        else:
            T_HEX[c] = 0


_init_tables()


cdef inline int _u8(const unsigned char* p, Py_ssize_t i, Py_ssize_t n,
                    unsigned int* out) noexcept nogil:
    """p[i] >= 0x80. Length of the UTF-8 sequence if it is a complete XML Char; 0 if it is a
    valid prefix cut by the end of the buffer; -(k + 1) if byte i + k makes it invalid."""
    cdef unsigned int c = p[i]
    cdef unsigned int cp, b
    cdef int need, k
    cdef unsigned int lo = 0x80, hi = 0xBF
    if c < 0xC2:
        return -1
    if c < 0xE0:
        need = 1
        cp = c & 0x1F
    elif c < 0xF0:
        need = 2
        cp = c & 0x0F
        if c == 0xE0:
            lo = 0xA0
        elif c == 0xED:
            hi = 0x9F       # no surrogates
    elif c < 0xF5:
        need = 3
        cp = c & 0x07
        if c == 0xF0:
            lo = 0x90
        elif c == 0xF4:
            hi = 0x8F       # nothing above U+10FFFF
    else:
        return -1
    for k in range(1, need + 1):
        if i + k >= n:
            return 0
        b = p[i + k]
        if b < lo or b > hi:
            return -(k + 1)
        lo = 0x80
        hi = 0xBF
        cp = (cp << 6) | (b & 0x3F)
    if cp == 0xFFFE or cp == 0xFFFF:    # XML 1.0 §2.2: not a Char
        return -(need + 1)
    out[0] = cp
    return need + 1


cdef inline Py_ssize_t _mb_run(const unsigned char* p, Py_ssize_t i, Py_ssize_t n,
                               long long* count, long long limit) noexcept nogil:
    """Skip complete, valid non-ASCII characters from i while `count` stays <= `limit`,
    counting them; returns the first index not consumed. Whatever stops it (ASCII, a cut or
    invalid sequence, the limit) is left to the caller's exact, byte-by-byte path."""
    cdef unsigned int cp
    cdef int r
    while i < n and p[i] >= 0x80 and count[0] < limit:
        r = _u8(p, i, n, &cp)
        if r <= 0:
            break
        count[0] += 1
        i += r
    return i


cdef inline int _u8_len(unsigned char lead) noexcept nogil:
    if lead < 0xE0:
        return 2
    if lead < 0xF0:
        return 3
    return 4


cdef inline bint _xml_char(unsigned int c) noexcept nogil:
    # XML 1.0 §2.2 Char
    return (c == 9 or c == 10 or c == 13 or (0x20 <= c <= 0xD7FF) or (0xE000 <= c <= 0xFFFD)
            or (0x10000 <= c <= 0x10FFFF))


cdef inline bint _name_start(unsigned int c) noexcept nogil:
    # XML 1.0 5th ed. §2.3 NameStartChar, non-ASCII part (what libxml2 uses without OLD10)
    return ((0xC0 <= c <= 0xD6) or (0xD8 <= c <= 0xF6) or (0xF8 <= c <= 0x2FF)
            or (0x370 <= c <= 0x37D) or (0x37F <= c <= 0x1FFF) or (0x200C <= c <= 0x200D)
            or (0x2070 <= c <= 0x218F) or (0x2C00 <= c <= 0x2FEF) or (0x3001 <= c <= 0xD7FF)
            or (0xF900 <= c <= 0xFDCF) or (0xFDF0 <= c <= 0xFFFD) or (0x10000 <= c <= 0xEFFFF))


cdef inline bint _name_char(unsigned int c) noexcept nogil:
    # XML 1.0 5th ed. §2.3 NameChar, non-ASCII part
    return (_name_start(c) or c == 0xB7 or (0x300 <= c <= 0x36F) or (0x203F <= c <= 0x2040))


cdef inline uint64_t _fnv(const unsigned char* s, Py_ssize_t n, uint64_t h) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(n):
        h = (h ^ s[k]) * <uint64_t>0x100000001B3
    return h


cdef uint64_t FNV0 = <uint64_t>0xCBF29CE484222325
cdef long long _NO_LIMIT = 0x7FFFFFFFFFFFFFFF


cdef inline bint _eq(const unsigned char* a, Py_ssize_t alen, const char* b,
                     Py_ssize_t blen) noexcept nogil:
    return alen == blen and memcmp(a, b, blen) == 0


# ---------------------------------------------------------------------------------------------
# Namespace names must be URI references (Namespaces in XML 1.0 §2.2); libxml2 2.14 checks them
# with xmlParseURI (RFC 3986, strict: ASCII only). This is a port of its recognizer, validity only.
# All inputs are NUL-terminated.
# ---------------------------------------------------------------------------------------------
ctypedef const unsigned char* cstr


cdef inline bint _ua(unsigned char c) noexcept nogil:
    return (65 <= c <= 90) or (97 <= c <= 122)


cdef inline bint _ud(unsigned char c) noexcept nogil:
    return 48 <= c <= 57


cdef inline bint _uunres(unsigned char c) noexcept nogil:
    # RFC 3986 §2.3 unreserved
    return _ua(c) or _ud(c) or c == 45 or c == 46 or c == 95 or c == 126


cdef inline bint _usub(unsigned char c) noexcept nogil:
    # RFC 3986 §2.2 sub-delims
    return (c == 33 or c == 36 or c == 38 or c == 39 or c == 40 or c == 41 or c == 42
            or c == 43 or c == 44 or c == 59 or c == 61)


cdef inline bint _upct(cstr p) noexcept nogil:
    return p[0] == C_PCT and T_HEX[p[1]] != 0 and T_HEX[p[2]] != 0


cdef inline bint _upchar(cstr p) noexcept nogil:
    return _uunres(p[0]) or _upct(p) or _usub(p[0]) or p[0] == C_COLON or p[0] == 64


cdef inline cstr _unext(cstr p) noexcept nogil:
    return p + 3 if p[0] == C_PCT else p + 1


cdef int _u_segment(cstr* s, unsigned char forbid, bint empty) noexcept nogil:
    cdef cstr cur = s[0]
    if not _upchar(cur) or cur[0] == forbid:
        return 0 if empty else 1
    cur = _unext(cur)
    while _upchar(cur) and cur[0] != forbid:
        cur = _unext(cur)
    s[0] = cur
    return 0


cdef int _u_path_abempty(cstr* s) noexcept nogil:
    cdef cstr cur = s[0]
    while cur[0] == C_SLASH:
        cur += 1
        _u_segment(&cur, 0, 1)
    s[0] = cur
    return 0


cdef int _u_path_absolute(cstr* s) noexcept nogil:
    cdef cstr cur = s[0]
    if cur[0] != C_SLASH:
        return 1
    cur += 1
    if _u_segment(&cur, 0, 0) == 0:
        while cur[0] == C_SLASH:
            cur += 1
            _u_segment(&cur, 0, 1)
    s[0] = cur
    return 0


cdef int _u_path_rel(cstr* s, unsigned char forbid) noexcept nogil:
    # path-rootless (forbid 0) / path-noscheme (forbid ':')
    cdef cstr cur = s[0]
    if _u_segment(&cur, forbid, 0) != 0:
        return 1
    while cur[0] == C_SLASH:
        cur += 1
        _u_segment(&cur, 0, 1)
    s[0] = cur
    return 0


cdef int _u_authority(cstr* s) noexcept nogil:
    cdef cstr cur = s[0]
    cdef long long port
    # userinfo "@"
    while _uunres(cur[0]) or _upct(cur) or _usub(cur[0]) or cur[0] == C_COLON:
        cur = _unext(cur)
    if cur[0] == 64:
        cur += 1
    else:
        cur = s[0]
    # host: IP-literal (libxml2: anything up to ']') or reg-name (its IPv4 branch never matches)
    if cur[0] == C_LBR:
        cur += 1
        while cur[0] != C_RBR and cur[0] != 0:
            cur += 1
        if cur[0] != C_RBR:
            return 1
        cur += 1
    else:
        while _uunres(cur[0]) or _upct(cur) or _usub(cur[0]):
            cur = _unext(cur)
    if cur[0] == C_COLON:
        cur += 1
        if not _ud(cur[0]):
            return 1
        port = 0
        while _ud(cur[0]):
            port = port * 10 + (cur[0] - 48)
            if port > 2147483647:
                return 1
            cur += 1
    s[0] = cur
    return 0


cdef int _u_tail(cstr s) noexcept nogil:
    # [ "?" query ] [ "#" fragment ] end
    if s[0] == C_QM:
        s += 1
        while _upchar(s) or s[0] == C_SLASH or s[0] == C_QM:
            s = _unext(s)
    if s[0] == C_HASH:
        s += 1
        while _upchar(s) or s[0] == C_SLASH or s[0] == C_QM or s[0] == C_LBR or s[0] == C_RBR:
            s = _unext(s)
    return 0 if s[0] == 0 else 1


cdef int _u_absolute(cstr s) noexcept nogil:
    # scheme ":" hier-part [ "?" query ] [ "#" fragment ]
    if not _ua(s[0]):
        return 1
    s += 1
    while _ua(s[0]) or _ud(s[0]) or s[0] == 43 or s[0] == 45 or s[0] == 46:
        s += 1
    if s[0] != C_COLON:
        return 1
    s += 1
    if s[0] == C_SLASH and s[1] == C_SLASH:
        s += 2
        if _u_authority(&s) != 0:
            return 1
        _u_path_abempty(&s)
    elif s[0] == C_SLASH:
        _u_path_absolute(&s)
    elif _upchar(s):
        if _u_path_rel(&s, 0) != 0:
            return 1
    return _u_tail(s)


cdef int _u_relative(cstr s) noexcept nogil:
    if s[0] == C_SLASH and s[1] == C_SLASH:
        s += 2
        if _u_authority(&s) != 0:
            return 1
        _u_path_abempty(&s)
    elif s[0] == C_SLASH:
        _u_path_absolute(&s)
    elif _upchar(s):
        if _u_path_rel(&s, C_COLON) != 0:
            return 1
    return _u_tail(s)


cdef bint _uri_ok(cstr s) noexcept nogil:
    """RFC 3986 URI-reference, as libxml2's xmlParseURI decides it."""
    return _u_absolute(s) == 0 or _u_relative(s) == 0


def _uri_reference_ok(bytes value) -> bool:
    """Test hook: the namespace-name check on its own (value must not contain NUL)."""
    return _uri_ok(<cstr><const char*>value)


# ---------------------------------------------------------------------------------------------
# Limits
# ---------------------------------------------------------------------------------------------
cdef object _check_limit(str name, object v):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int or None, not {type(v).__name__}")
    if v < 0:
        raise ValueError(f"{name} must be >= 0")
    return int(v)


cdef long long _lim(object v):
    return 0x7FFFFFFFFFFFFFFF if v is None else <long long>v


cdef class XmlLimits:
    """Immutable XML limits; ``None`` means unlimited. Defaults are the safe ones."""

    cdef readonly object max_depth
    cdef readonly object max_elements
    cdef readonly object max_attributes
    cdef readonly object max_attribute_length
    cdef readonly object max_text_length
    cdef readonly object max_children
    cdef readonly object max_bytes
    cdef readonly bint allow_dtd

    def __init__(
        self,
        *,
        max_depth=DEFAULT_MAX_DEPTH,
        max_elements=DEFAULT_MAX_ELEMENTS,
        max_attributes=DEFAULT_MAX_ATTRIBUTES,
        max_attribute_length=DEFAULT_MAX_ATTRIBUTE_LENGTH,
        max_text_length=DEFAULT_MAX_TEXT_LENGTH,
        max_children=DEFAULT_MAX_CHILDREN,
        max_bytes=DEFAULT_MAX_BYTES,
        allow_dtd=False,
    ):
        self.max_depth = _check_limit("max_depth", max_depth)
        self.max_elements = _check_limit("max_elements", max_elements)
        self.max_attributes = _check_limit("max_attributes", max_attributes)
        self.max_attribute_length = _check_limit("max_attribute_length", max_attribute_length)
        self.max_text_length = _check_limit("max_text_length", max_text_length)
        self.max_children = _check_limit("max_children", max_children)
        self.max_bytes = _check_limit("max_bytes", max_bytes)
        if not isinstance(allow_dtd, bool):
            raise TypeError("allow_dtd must be a bool")
        self.allow_dtd = allow_dtd

    def _key(self):
        return (self.max_depth, self.max_elements, self.max_attributes,
                self.max_attribute_length, self.max_text_length, self.max_children,
                self.max_bytes, self.allow_dtd)

    def __eq__(self, other):
        if not isinstance(other, XmlLimits):
            return NotImplemented
        return self._key() == (<XmlLimits>other)._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return (
            f"XmlLimits(max_depth={self.max_depth!r}, max_elements={self.max_elements!r}, "
            f"max_attributes={self.max_attributes!r}, "
            f"max_attribute_length={self.max_attribute_length!r}, "
            f"max_text_length={self.max_text_length!r}, max_children={self.max_children!r}, "
            f"max_bytes={self.max_bytes!r}, allow_dtd={bool(self.allow_dtd)!r})"
        )


cdef XmlLimits _DEFAULT_LIMITS = XmlLimits()


cdef const char* _ENCODINGS[4]
_ENCODINGS[0] = b"utf-8"
_ENCODINGS[1] = b"utf8"
_ENCODINGS[2] = b"us-ascii"
_ENCODINGS[3] = b"ascii"


cdef bint _prefix(const unsigned char* b, int n, const char* word, bint full,
                  bint fold) noexcept:
    """b[:n] is a prefix of `word` (all of it if `full`), ASCII case folded if `fold`."""
    cdef int k
    cdef unsigned char c
    for k in range(n):
        if word[k] == 0:
            return 0
        c = b[k]
        if fold and 65 <= c <= 90:
            c += 32
        if c != <unsigned char>word[k]:
            return 0
    return not full or word[n] == 0


cdef unsigned int _predefined(const unsigned char* e, int n) noexcept:
    # XML 1.0 §4.6 predefined entities
    if n == 2 and e[1] == 116:
        if e[0] == 108:
            return 60       # lt
        if e[0] == 103:
            return 62       # gt
    elif n == 3 and memcmp(e, b"amp", 3) == 0:
        return 38
    elif n == 4 and memcmp(e, b"apos", 4) == 0:
        return 39
    elif n == 4 and memcmp(e, b"quot", 4) == 0:
        return 34
    return 0


cdef bint _predefined_prefix(const unsigned char* e, int n) noexcept:
    return (memcmp(e, b"lt", n) == 0 if n <= 2 else 0) or \
           (memcmp(e, b"gt", n) == 0 if n <= 2 else 0) or \
           (memcmp(e, b"amp", n) == 0 if n <= 3 else 0) or \
           memcmp(e, b"apos", n) == 0 or memcmp(e, b"quot", n) == 0


cdef int _grow(void** buf, Py_ssize_t* cap, Py_ssize_t need, size_t size) except -1:
    """Make room for `need` items of `size` bytes (doubling)."""
    cdef Py_ssize_t c = cap[0]
    cdef void* q
    if need <= c:
        return 0
    if c < 16:
        c = 16
    while c < need:
        c *= 2
    q = PyMem_Realloc(buf[0], <size_t>c * size)
    if q == NULL:
        raise MemoryError()
    buf[0] = q
    cap[0] = c
    return 0


@cython.final
cdef class XmlScanner:
    """Feed an XML document in chunks; raises ``PayloadRejected`` as soon as it must be refused."""

    # configuration
    cdef readonly XmlLimits limits
    cdef long long lim_depth, lim_elements, lim_attrs, lim_alen, lim_text, lim_children
    cdef long long lim_bytes
    cdef bint allow_dtd

    # stream position and outcome
    cdef long long total            # bytes accepted so far (offset of the next byte)
    cdef int st
    cdef int err_code               # -1: none
    cdef long long err_off
    cdef bint finished

    # document
    cdef long long doc_start        # where an XML declaration may start (0, or 3 after a BOM)
    cdef long long lt_off           # offset of the last '<' seen outside the root
    cdef bint bom, ascii_only, root_done, seen_doctype, in_subset
    cdef readonly long long depth       # elements currently open
    cdef readonly long long elements    # start tags seen so far

    # partial UTF-8 sequence at the end of a chunk, and a CR whose LF may come next
    cdef unsigned char carry[4]
    cdef int carry_len
    cdef long long carry_off
    cdef bint prev_cr

    # character data
    cdef long long text_len         # characters in the current text node
    cdef int brackets               # ']' just before, in content (for ']]>')

    # names
    cdef int nm_kind
    cdef Py_ssize_t nm_len, nm_colon, nm_part
    cdef bint nm_need_start

    # open elements: names stacked in `names`, one Level each
    cdef unsigned char* names
    cdef Py_ssize_t names_len, names_cap
    cdef Level* levels
    cdef Py_ssize_t levels_cap
    cdef Py_ssize_t elem_qlen, elem_colon
    cdef Py_ssize_t et_pos

    # the current start tag's attributes
    cdef unsigned char* abuf
    cdef Py_ssize_t abuf_len, abuf_cap
    cdef Attr* attrs
    cdef Py_ssize_t attrs_cap
    cdef long long n_attrs, n_prefixed
    cdef long long av_len
    cdef int av_kind
    cdef unsigned char quote
    cdef unsigned char* ubuf        # decoded value of a namespace declaration (NUL-terminated)
    cdef Py_ssize_t ubuf_len, ubuf_cap

    # duplicate-attribute table (open addressing, cleared by bumping `gen`)
    cdef unsigned int* ht_gen
    cdef Py_ssize_t* ht_idx
    cdef Py_ssize_t ht_size
    cdef unsigned int gen

    # namespace bindings in scope (prefix + URI bytes in nsbuf), a stack indexed by prefix:
    # ns_slots (open addressing) maps a prefix to its innermost binding; -1 empty, -2 deleted
    cdef Bind* binds
    cdef Py_ssize_t n_binds, binds_cap
    cdef unsigned char* nsbuf
    cdef Py_ssize_t nsbuf_len, nsbuf_cap
    cdef Py_ssize_t tag_ns_top
    cdef Py_ssize_t* ns_slots
    cdef Py_ssize_t ns_size, ns_used, ns_tomb

    # references
    cdef int ref_ctx                # 0: content, 1: attribute value
    cdef unsigned char ent[4]
    cdef int ent_len
    cdef unsigned int cref_val
    cdef int cref_digits

    # PIs, keywords, the XML declaration
    cdef bint pi_at_start
    cdef const char* lit
    cdef int lit_pos, lit_next
    cdef int xd_stage, xd_which, xd_len
    cdef bint xd_ws
    cdef unsigned char xd_quote
    cdef unsigned char xd_buf[8]

    def __cinit__(self):
        self.names = NULL
        self.levels = NULL
        self.abuf = NULL
        self.attrs = NULL
        self.ubuf = NULL
        self.ht_gen = NULL
        self.ht_idx = NULL
        self.binds = NULL
        self.nsbuf = NULL
        self.ns_slots = NULL

    def __dealloc__(self):
        PyMem_Free(self.names)
        PyMem_Free(self.levels)
        PyMem_Free(self.abuf)
        PyMem_Free(self.attrs)
        PyMem_Free(self.ubuf)
        PyMem_Free(self.ht_gen)
        PyMem_Free(self.ht_idx)
        PyMem_Free(self.binds)
        PyMem_Free(self.nsbuf)
        PyMem_Free(self.ns_slots)

    def __init__(self, XmlLimits limits=None):
        if limits is None:
            limits = _DEFAULT_LIMITS
        self.limits = limits
        self.lim_depth = _lim(limits.max_depth)
        self.lim_elements = _lim(limits.max_elements)
        self.lim_attrs = _lim(limits.max_attributes)
        self.lim_alen = _lim(limits.max_attribute_length)
        self.lim_text = _lim(limits.max_text_length)
        self.lim_children = _lim(limits.max_children)
        self.lim_bytes = _lim(limits.max_bytes)
        self.allow_dtd = limits.allow_dtd
        self.st = S_START
        self.err_code = -1
        self.nm_colon = -1
        self.elem_colon = -1
        self.gen = 1
        self._ht_alloc(16)
        self._ns_rebuild(16)
        _grow(<void**>&self.ubuf, &self.ubuf_cap, 64, 1)

    @property
    def _state(self):
        """Fuzzing hook: the number of the state the next byte will be read in."""
        return self.st

    @property
    def bytes_fed(self):
        """Bytes accepted so far (the offset of the next byte)."""
        return self.total

    # -----------------------------------------------------------------------------------------
    # Public API
    # -----------------------------------------------------------------------------------------
    def feed(self, data):
        """Scan the next chunk; raises PayloadRejected at the first certain violation."""
        cdef Py_buffer view
        cdef const unsigned char* p
        cdef Py_ssize_t n, allowed
        if self.err_code >= 0:
            self._raise(self.err_code, self.err_off)
        if self.finished:
            raise RuntimeError("XmlScanner.feed() after finish()")
        if PyBytes_CheckExact(data):
            p = <const unsigned char*>PyBytes_AS_STRING(data)
            n = PyBytes_GET_SIZE(data)
            self._feed(p, n)
            return None
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self._feed(<const unsigned char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
        return None

    def finish(self):
        """End of the body: raises PayloadRejected unless it held exactly one complete document."""
        if self.err_code >= 0:
            self._raise(self.err_code, self.err_off)
        if self.finished:
            return None
        if self.carry_len or self.st != S_MISC or not self.root_done:
            self._fail(E_MALFORMED, self.total)
        self.finished = True
        return None

    # -----------------------------------------------------------------------------------------
    # Errors
    # -----------------------------------------------------------------------------------------
    cdef int _raise(self, int code, long long off) except -1:
        name = LIMIT_NAMES[code]
        if code == E_MALFORMED:
            detail = f"malformed XML (byte {off})"
        elif code == E_DTD:
            detail = f"XML document type declarations are not allowed (byte {off})"
        else:
            detail = f"XML limit exceeded: {name} (byte {off})"
        raise PayloadRejected(name, offset=off, detail=detail)

    cdef int _fail(self, int code, long long off) except -1:
        self.err_code = code
        self.err_off = off
        return self._raise(code, off)

    # -----------------------------------------------------------------------------------------
    # Chunk handling: max_bytes, a UTF-8 sequence split across chunks, CR LF across chunks
    # -----------------------------------------------------------------------------------------
    cdef int _feed(self, const unsigned char* p, Py_ssize_t n) except -1:
        cdef Py_ssize_t allowed = n
        if n <= 0:
            return 0
        if self.total + n > self.lim_bytes:
            allowed = <Py_ssize_t>(self.lim_bytes - self.total)
        if allowed > 0:
            self._chunk(p, allowed)
            self.total += allowed
        if allowed < n:
            return self._fail(E_BYTES, self.lim_bytes)
        return 0

    cdef int _chunk(self, const unsigned char* p, Py_ssize_t n) except -1:
        cdef unsigned char tmp[4]
        cdef Py_ssize_t i = 0, k, have
        if self.carry_len:
            # Complete the pending character (at most 3 more bytes) and scan it on its own.
            have = self.carry_len
            k = _u8_len(self.carry[0]) - have
            if k > n:
                k = n
            memcpy(tmp, self.carry, have)
            memcpy(tmp + have, p, k)
            self.carry_len = 0
            self._run(tmp, have + k, self.carry_off)
            i = k
        if self.prev_cr:
            self.prev_cr = 0
            if i < n and p[i] == C_LF:
                i += 1      # CR LF is one character (XML 1.0 §2.11); the CR was counted
        if i < n:
            self._run(p + i, n - i, self.total + i)
        return 0

    cdef int _char(self, const unsigned char* p, Py_ssize_t i, Py_ssize_t n, long long base,
                   unsigned int* cp) except -1:
        """p[i] >= 0x80: length of the character there, or 0 when the chunk cut it (carried)."""
        cdef int r
        if self.ascii_only:
            return self._fail(E_MALFORMED, base + i)
        r = _u8(p, i, n, cp)
        if r > 0:
            return r
        if r == 0:
            memcpy(self.carry, p + i, n - i)
            self.carry_len = <int>(n - i)
            self.carry_off = base + i
            return 0
        return self._fail(E_MALFORMED, base + i - r - 1)

    # -----------------------------------------------------------------------------------------
    # Counting helpers
    # -----------------------------------------------------------------------------------------
    cdef inline int _text_add(self, long long k, long long off) except -1:
        if self.text_len + k > self.lim_text:
            return self._fail(E_TEXT, off)
        self.text_len += k
        return 0

    cdef inline int _attr_add(self, long long k, long long off) except -1:
        if self.av_len + k > self.lim_alen:
            return self._fail(E_ATTR_LEN, off)
        self.av_len += k
        return 0

    cdef int _uri_add(self, const unsigned char* s, Py_ssize_t k) except -1:
        cdef Py_ssize_t j
        cdef unsigned char b
        _grow(<void**>&self.ubuf, &self.ubuf_cap, self.ubuf_len + k + 1, 1)
        for j in range(k):
            b = s[j]
            if b == C_TAB or b == C_LF or b == C_CR:
                b = C_SP    # XML 1.0 §3.3.3 attribute-value normalization
            self.ubuf[self.ubuf_len + j] = b
        self.ubuf_len += k
        return 0

    cdef int _uri_add_cp(self, unsigned int cp) except -1:
        cdef unsigned char u[4]
        cdef Py_ssize_t k
        if cp < 0x80:
            u[0] = <unsigned char>cp
            k = 1
        elif cp < 0x800:
            u[0] = <unsigned char>(0xC0 | (cp >> 6))
            u[1] = <unsigned char>(0x80 | (cp & 0x3F))
            k = 2
        elif cp < 0x10000:
            u[0] = <unsigned char>(0xE0 | (cp >> 12))
            u[1] = <unsigned char>(0x80 | ((cp >> 6) & 0x3F))
            u[2] = <unsigned char>(0x80 | (cp & 0x3F))
            k = 3
        else:
            u[0] = <unsigned char>(0xF0 | (cp >> 18))
            u[1] = <unsigned char>(0x80 | ((cp >> 12) & 0x3F))
            u[2] = <unsigned char>(0x80 | ((cp >> 6) & 0x3F))
            u[3] = <unsigned char>(0x80 | (cp & 0x3F))
            k = 4
        _grow(<void**>&self.ubuf, &self.ubuf_cap, self.ubuf_len + k + 1, 1)
        memcpy(self.ubuf + self.ubuf_len, u, k)
        self.ubuf_len += k
        return 0

    # -----------------------------------------------------------------------------------------
    # Names
    # -----------------------------------------------------------------------------------------
    cdef inline void _name_begin(self, int kind) noexcept:
        self.nm_kind = kind
        self.nm_len = 0
        self.nm_colon = -1
        self.nm_part = 0
        self.nm_need_start = 1
        if kind == K_PI:
            self.abuf_len = 0

    cdef int _name_append(self, const unsigned char* s, Py_ssize_t k) except -1:
        cdef int kind = self.nm_kind
        if kind == K_ELEM:
            _grow(<void**>&self.names, &self.names_cap, self.names_len + self.nm_len + k, 1)
            memcpy(self.names + self.names_len + self.nm_len, s, k)
        elif kind == K_ATTR or kind == K_PI:
            _grow(<void**>&self.abuf, &self.abuf_cap, self.abuf_len + k, 1)
            memcpy(self.abuf + self.abuf_len, s, k)
            self.abuf_len += k
        self.nm_len += k
        return 0

    cdef int _name_first(self, long long off) except -1:
        """The first character of a name was accepted at `off`: start-of-construct checks."""
        cdef Level* parent
        cdef int kind = self.nm_kind
        if kind == K_ELEM:
            if self.depth + 1 > self.lim_depth:
                return self._fail(E_DEPTH, off)
            if self.elements + 1 > self.lim_elements:
                return self._fail(E_ELEMENTS, off)
            if self.depth > 0:
                parent = &self.levels[self.depth - 1]
                if parent.children + 1 > self.lim_children:
                    return self._fail(E_CHILDREN, off)
                parent.children += 1
            self.elements += 1
            self.n_attrs = 0
            self.n_prefixed = 0
            self.abuf_len = 0
            self.tag_ns_top = self.n_binds
            self._next_gen()
        elif kind == K_ATTR:
            if self.n_attrs + 1 > self.lim_attrs:
                return self._fail(E_ATTRIBUTES, off)
            _grow(<void**>&self.attrs, &self.attrs_cap, self.n_attrs + 1, sizeof(Attr))
            self.attrs[self.n_attrs].off = self.abuf_len
            self.n_attrs += 1
        return 0

    cdef int _name_end(self, unsigned char c, long long off) except -1:
        """The name ended before byte `c` at `off`; returns the next state."""
        cdef int kind = self.nm_kind
        cdef const unsigned char* t
        if kind == K_ELEM:
            self.elem_qlen = self.nm_len
            self.elem_colon = self.nm_colon
            if T_WS[c]:
                return S_STAG_WS
            if c == C_GT:
                return self._finish_stag(0, off)
            if c == C_SLASH:
                return S_STAG_SLASH
        elif kind == K_ATTR:
            self._attr_name_done(off)
            if T_WS[c]:
                return S_ATTR_EQ
            if c == C_EQ:
                return S_ATTR_Q
        elif kind == K_PI:
            t = self.abuf
            if (self.nm_len == 3 and (t[0] | 32) == C_LOWER_X and (t[1] | 32) == 109
                    and (t[2] | 32) == 108):
                # XML 1.0 §2.6: targets matching [Xx][Mm][Ll] are reserved; only the XML
                # declaration, exactly "<?xml" + S at the very start, may use one.
                if (self.pi_at_start and t[0] == C_LOWER_X and t[1] == 109 and t[2] == 108
                        and T_WS[c]):
                    self.xd_stage = 0
                    self.xd_ws = 1
                    return S_XD
                return self._fail(E_MALFORMED, off)
            if T_WS[c]:
                return S_PI_DATA
            if c == C_QM:
                return S_PI_QM0
        elif kind == K_DT:
            if T_WS[c]:
                return S_DT_BODY
            if c == C_GT:
                self.seen_doctype = 1
                return S_MISC
            if c == C_LBR:
                self.in_subset = 1
                return S_DT_SUBSET
        else:  # K_PEREF
            if c == C_SEMI:
                return S_DT_SUBSET
        return self._fail(E_MALFORMED, off)

    # -----------------------------------------------------------------------------------------
    # Attributes and namespaces
    # -----------------------------------------------------------------------------------------
    cdef int _ht_alloc(self, Py_ssize_t size) except -1:
        """A fresh, empty duplicate-attribute table of `size` (a power of two) slots."""
        cdef void* g = PyMem_Realloc(self.ht_gen, <size_t>size * sizeof(unsigned int))
        if g == NULL:
            raise MemoryError()
        self.ht_gen = <unsigned int*>g
        g = PyMem_Realloc(self.ht_idx, <size_t>size * sizeof(Py_ssize_t))
        if g == NULL:
            raise MemoryError()
        self.ht_idx = <Py_ssize_t*>g
        memset(self.ht_gen, 0, <size_t>size * sizeof(unsigned int))
        self.ht_size = size
        self.gen = 1
        return 0

    cdef void _next_gen(self) noexcept:
        self.gen += 1
        if self.gen == 0:
            memset(self.ht_gen, 0, self.ht_size * sizeof(unsigned int))
            self.gen = 1

    cdef int _attr_name_done(self, long long off) except -1:
        cdef Attr* at = &self.attrs[self.n_attrs - 1]
        cdef Attr* other
        cdef const unsigned char* nm
        cdef Py_ssize_t a, idx, mask, newsize
        at.len = self.abuf_len - at.off
        at.colon = self.nm_colon
        nm = self.abuf + at.off
        at.h = _fnv(nm, at.len, FNV0)
        # XML 1.0 §3.1 WFC: Unique Att Spec (raw names)
        if self.n_attrs * 2 > self.ht_size:
            newsize = self.ht_size * 2
            while self.n_attrs * 2 > newsize:
                newsize *= 2
            self._ht_alloc(newsize)
            mask = newsize - 1
            for a in range(self.n_attrs - 1):
                idx = <Py_ssize_t>(self.attrs[a].h & <uint64_t>mask)
                while self.ht_gen[idx] == self.gen:
                    idx = (idx + 1) & mask
                self.ht_gen[idx] = self.gen
                self.ht_idx[idx] = a
        mask = self.ht_size - 1
        idx = <Py_ssize_t>(at.h & <uint64_t>mask)
        while self.ht_gen[idx] == self.gen:
            other = &self.attrs[self.ht_idx[idx]]
            if other.len == at.len and memcmp(self.abuf + other.off, nm, at.len) == 0:
                return self._fail(E_MALFORMED, off)
            idx = (idx + 1) & mask
        self.ht_gen[idx] = self.gen
        self.ht_idx[idx] = self.n_attrs - 1
        if at.len == 5 and memcmp(nm, b"xmlns", 5) == 0:
            at.kind = AK_DEFNS
        elif at.colon == 5 and memcmp(nm, b"xmlns", 5) == 0:
            at.kind = AK_PFXNS
        else:
            at.kind = AK_PLAIN
            if at.colon >= 0:
                self.n_prefixed += 1
        self.av_kind = at.kind
        return 0

    cdef int _attr_value_done(self, long long off) except -1:
        """A namespace declaration's value is complete: Namespaces in XML 1.0 §3 constraints."""
        cdef Attr* at
        cdef const unsigned char* pfx
        cdef const unsigned char* uri = self.ubuf
        cdef Py_ssize_t plen, ulen = self.ubuf_len
        cdef bint is_xml_uri, is_xml_pfx
        cdef Bind* b
        if self.av_kind == AK_PLAIN:
            return S_STAG_NOWS
        self.ubuf[ulen] = 0
        is_xml_uri = _eq(uri, ulen, XML_NS, XML_NS_LEN)
        if _eq(uri, ulen, XMLNS_NS, XMLNS_NS_LEN):
            return self._fail(E_MALFORMED, off)
        if self.av_kind == AK_DEFNS:
            if ulen == 0:
                return S_STAG_NOWS      # xmlns="" undeclares the default namespace
            if is_xml_uri or not _uri_ok(uri):
                return self._fail(E_MALFORMED, off)
            return S_STAG_NOWS
        at = &self.attrs[self.n_attrs - 1]
        pfx = self.abuf + at.off + 6
        plen = at.len - 6
        is_xml_pfx = _eq(pfx, plen, b"xml", 3)
        if (_eq(pfx, plen, b"xmlns", 5) or ulen == 0 or is_xml_pfx != is_xml_uri
                or not _uri_ok(uri)):
            return self._fail(E_MALFORMED, off)
        _grow(<void**>&self.binds, &self.binds_cap, self.n_binds + 1, sizeof(Bind))
        _grow(<void**>&self.nsbuf, &self.nsbuf_cap, self.nsbuf_len + plen + ulen, 1)
        pfx = self.abuf + at.off + 6
        b = &self.binds[self.n_binds]
        b.off = self.nsbuf_len
        b.plen = plen
        b.ulen = ulen
        b.h = _fnv(pfx, plen, FNV0)
        memcpy(self.nsbuf + self.nsbuf_len, pfx, plen)
        memcpy(self.nsbuf + self.nsbuf_len + plen, self.ubuf, ulen)
        self.nsbuf_len += plen + ulen
        self.n_binds += 1
        if (self.ns_used + self.ns_tomb + 1) * 2 > self.ns_size:
            self._ns_rebuild(self.n_binds * 4)
        else:
            self._ns_index(self.n_binds - 1)
        return S_STAG_NOWS

    cdef Py_ssize_t _ns_find(self, const unsigned char* pfx, Py_ssize_t plen,
                             uint64_t h) noexcept:
        """The slot holding `pfx`, or -1. The table is never more than half full."""
        cdef Py_ssize_t mask = self.ns_size - 1
        cdef Py_ssize_t idx = <Py_ssize_t>(h & <uint64_t>mask)
        cdef Py_ssize_t v
        cdef Bind* b
        while True:
            v = self.ns_slots[idx]
            if v == -1:
                return -1
            if v >= 0:
                b = &self.binds[v]
                if b.h == h and b.plen == plen and memcmp(self.nsbuf + b.off, pfx, plen) == 0:
                    return idx
            idx = (idx + 1) & mask

    cdef void _ns_index(self, Py_ssize_t k) noexcept:
        """Make binding k (the top of the stack) the one its prefix resolves to."""
        cdef Bind* b = &self.binds[k]
        cdef Py_ssize_t mask = self.ns_size - 1
        cdef Py_ssize_t idx = self._ns_find(self.nsbuf + b.off, b.plen, b.h)
        if idx >= 0:
            b.prev = self.ns_slots[idx]
        else:
            b.prev = -1
            idx = <Py_ssize_t>(b.h & <uint64_t>mask)
            while self.ns_slots[idx] >= 0:
                idx = (idx + 1) & mask
            if self.ns_slots[idx] == -2:
                self.ns_tomb -= 1
            self.ns_used += 1
        self.ns_slots[idx] = k
        b.slot = idx

    cdef int _ns_rebuild(self, Py_ssize_t need) except -1:
        """A fresh index of at least `need` slots (a power of two) over the bindings in scope."""
        cdef Py_ssize_t size = 16, k
        cdef void* q
        while size < need:
            size *= 2
        q = PyMem_Realloc(self.ns_slots, <size_t>size * sizeof(Py_ssize_t))
        if q == NULL:
            raise MemoryError()
        self.ns_slots = <Py_ssize_t*>q
        self.ns_size = size
        for k in range(size):
            self.ns_slots[k] = -1
        self.ns_used = 0
        self.ns_tomb = 0
        for k in range(self.n_binds):
            self._ns_index(k)
        return 0

    cdef bint _lookup(self, const unsigned char* pfx, Py_ssize_t plen,
                      const unsigned char** uri, Py_ssize_t* ulen) noexcept:
        cdef Py_ssize_t idx = self._ns_find(pfx, plen, _fnv(pfx, plen, FNV0))
        cdef Bind* b
        if idx >= 0:
            b = &self.binds[self.ns_slots[idx]]
            uri[0] = self.nsbuf + b.off + plen
            ulen[0] = b.ulen
            return 1
        if _eq(pfx, plen, b"xml", 3):
            uri[0] = <const unsigned char*>XML_NS
            ulen[0] = XML_NS_LEN
            return 1
        return 0

    cdef void _pop_binds(self, Py_ssize_t top) noexcept:
        cdef Py_ssize_t k = self.n_binds - 1
        cdef Bind* b
        if self.n_binds <= top:
            return
        while k >= top:
            b = &self.binds[k]
            if b.prev >= 0:
                self.ns_slots[b.slot] = b.prev     # the shadowed binding is back in scope
            else:
                self.ns_slots[b.slot] = -2
                self.ns_used -= 1
                self.ns_tomb += 1
            k -= 1
        self.nsbuf_len = self.binds[top].off
        self.n_binds = top

    cdef int _finish_stag(self, bint empty, long long off) except -1:
        """'>' or '/>' at `off`: resolve prefixes (Namespaces in XML 1.0 §5), open the element."""
        cdef const unsigned char* uri
        cdef Py_ssize_t ulen, a, idx, mask
        cdef Attr* at
        cdef Attr* other
        cdef uint64_t h
        cdef Level* lv
        if self.elem_colon >= 0:
            if not self._lookup(self.names + self.names_len, self.elem_colon, &uri, &ulen):
                return self._fail(E_MALFORMED, off)
        if self.n_prefixed:
            # NSC: Attributes Unique -- no two attributes with the same local name and URI
            self._next_gen()
            mask = self.ht_size - 1
            for a in range(self.n_attrs):
                at = &self.attrs[a]
                if at.kind != AK_PLAIN or at.colon < 0:
                    continue
                if not self._lookup(self.abuf + at.off, at.colon, &at.uri, &at.ulen):
                    return self._fail(E_MALFORMED, off)
                h = _fnv(at.uri, at.ulen, FNV0) ^ 0xFF
                h = _fnv(self.abuf + at.off + at.colon + 1, at.len - at.colon - 1, h)
                idx = <Py_ssize_t>(h & <uint64_t>mask)
                while self.ht_gen[idx] == self.gen:
                    other = &self.attrs[self.ht_idx[idx]]
                    if (other.ulen == at.ulen and other.len - other.colon == at.len - at.colon
                            and memcmp(other.uri, at.uri, at.ulen) == 0
                            and memcmp(self.abuf + other.off + other.colon,
                                       self.abuf + at.off + at.colon, at.len - at.colon) == 0):
                        return self._fail(E_MALFORMED, off)
                    idx = (idx + 1) & mask
                self.ht_gen[idx] = self.gen
                self.ht_idx[idx] = a
        self.text_len = 0
        self.brackets = 0
        if empty:
            self._pop_binds(self.tag_ns_top)
            if self.depth == 0:
                self.root_done = 1
                return S_MISC
            return S_TEXT
        _grow(<void**>&self.levels, &self.levels_cap, self.depth + 1, sizeof(Level))
        lv = &self.levels[self.depth]
        lv.off = self.names_len
        lv.qlen = self.elem_qlen
        lv.children = 0
        lv.ns_top = self.tag_ns_top
        self.names_len += self.elem_qlen
        self.depth += 1
        return S_TEXT

    cdef int _close(self) noexcept:
        """A matching end tag ended; returns the next state."""
        cdef Level* lv
        self.depth -= 1
        lv = &self.levels[self.depth]
        self._pop_binds(lv.ns_top)
        self.names_len = lv.off
        self.text_len = 0
        self.brackets = 0
        if self.depth == 0:
            self.root_done = 1
            return S_MISC
        return S_TEXT

    cdef int _after_markup(self) noexcept:
        """A comment or PI ended: where to go back to."""
        if self.in_subset:
            return S_DT_SUBSET
        if self.depth > 0:
            self.text_len = 0
            self.brackets = 0
            return S_TEXT
        return S_MISC

    cdef int _emit_ref(self, unsigned int cp, long long off) except -1:
        """A character or entity reference ended at `off`; returns the state to go back to."""
        if self.ref_ctx == 0:
            self._text_add(1, off)
            self.brackets = 0
            return S_TEXT
        self._attr_add(1, off)
        if self.av_kind != AK_PLAIN:
            self._uri_add_cp(cp)
        return S_ATTR_VAL

    cdef inline void _lit(self, const char* s, int nxt) noexcept:
        self.lit = s
        self.lit_pos = 0
        self.lit_next = nxt

    # -----------------------------------------------------------------------------------------
    # XML declaration (XML 1.0 §2.8 XMLDecl); values checked as they arrive
    # -----------------------------------------------------------------------------------------
    cdef bint _xd_value_ok(self, bint final) noexcept:
        cdef const unsigned char* b = self.xd_buf
        cdef int n = self.xd_len, k
        if self.xd_which == 0:
            # VersionNum as libxml2 reads it: "1." [0-9]* (1.x other than 1.0 only warns)
            return n >= 2 or not final
        if self.xd_which == 1:
            # Only UTF-8 and US-ASCII (the ASCII subset of UTF-8) are accepted.
            for k in range(4):
                if _prefix(b, n, _ENCODINGS[k], final, 1):
                    if final:
                        self.ascii_only = k >= 2 and not self.bom
                    return 1
            return 0
        return _prefix(b, n, b"yes", final, 0) or _prefix(b, n, b"no", final, 0)

    # -----------------------------------------------------------------------------------------
    # The state machine
    # -----------------------------------------------------------------------------------------
    cdef int _run(self, const unsigned char* p, Py_ssize_t n, long long base) except -1:
        cdef Py_ssize_t i = 0, j, k
        cdef int st = self.st
        cdef int r
        cdef unsigned char c
        cdef unsigned int cp = 0
        cdef long long cnt
        cdef Level* lv
        cdef const unsigned char* nm

        while i < n:
            c = p[i]

            if st == S_TEXT:
                while True:
                    j = i
                    while j < n and T_TEXT[p[j]]:
                        j += 1
                    if j > i:
                        cnt = self.text_len + (j - i)
                        if cnt > self.lim_text:
                            return self._fail(E_TEXT, base + i + (self.lim_text - self.text_len))
                        self.text_len = cnt
                        self.brackets = 0
                        i = j
                    if i < n and p[i] >= 0x80 and not self.ascii_only:
                        cnt = self.text_len
                        j = _mb_run(p, i, n, &cnt, self.lim_text)
                        if j > i:
                            self.text_len = cnt
                            self.brackets = 0
                            i = j
                            continue
                    break
                if i >= n:
                    break
                c = p[i]
                if c == C_LT:
                    st = S_LT
                    i += 1
                elif c == C_AMP:
                    self.brackets = 0
                    self.ref_ctx = 0
                    st = S_REF
                    i += 1
                elif c == C_RBR:
                    self._text_add(1, base + i)
                    if self.brackets < 2:
                        self.brackets += 1
                    i += 1
                elif c == C_GT:
                    if self.brackets >= 2:
                        # XML 1.0 §2.4: ']]>' must not appear in content
                        return self._fail(E_MALFORMED, base + i)
                    self._text_add(1, base + i)
                    i += 1
                elif c == C_CR:
                    self._text_add(1, base + i)
                    self.brackets = 0
                    i += 1
                    if i < n:
                        if p[i] == C_LF:
                            i += 1
                    else:
                        self.prev_cr = 1
                elif c >= 0x80:
                    r = self._char(p, i, n, base, &cp)
                    if r == 0:
                        break
                    self._text_add(1, base + i + r - 1)
                    self.brackets = 0
                    i += r
                else:
                    return self._fail(E_MALFORMED, base + i)

            elif st == S_NAME:
                j = i
                while j < n and T_NAME[p[j]]:
                    j += 1
                if j > i:
                    if self.nm_need_start:
                        if not T_NSTART[c]:
                            return self._fail(E_MALFORMED, base + i)
                        if self.nm_len == 0:
                            self._name_first(base + i)
                        self.nm_need_start = 0
                    k = j - i
                    if self.nm_part + k > _MAX_NAME:
                        return self._fail(E_MALFORMED, base + i + (_MAX_NAME - self.nm_part))
                    self.nm_part += k
                    self._name_append(p + i, k)
                    i = j
                    if i >= n:
                        break
                    c = p[i]
                if c == C_COLON:
                    if self.nm_kind == K_ELEM or self.nm_kind == K_ATTR:
                        # Namespaces in XML 1.0 §3 QName: NCName (':' NCName)?
                        if self.nm_need_start or self.nm_colon >= 0:
                            return self._fail(E_MALFORMED, base + i)
                        self.nm_colon = self.nm_len
                        self.nm_part = 0
                        self.nm_need_start = 1
                    elif self.nm_kind == K_PI:
                        # libxml2 (namespace mode): colons are forbidden in PI targets
                        return self._fail(E_MALFORMED, base + i)
                    else:
                        self.nm_need_start = 0
                        self.nm_part += 1
                        if self.nm_part > _MAX_NAME:
                            return self._fail(E_MALFORMED, base + i)
                    self._name_append(p + i, 1)
                    i += 1
                elif c >= 0x80:
                    r = self._char(p, i, n, base, &cp)
                    if r == 0:
                        break
                    if self.nm_need_start:
                        if not _name_start(cp):
                            return self._fail(E_MALFORMED, base + i + r - 1)
                        if self.nm_len == 0:
                            self._name_first(base + i + r - 1)
                        self.nm_need_start = 0
                    elif not _name_char(cp):
                        return self._fail(E_MALFORMED, base + i + r - 1)
                    self.nm_part += r
                    if self.nm_part > _MAX_NAME:
                        return self._fail(E_MALFORMED, base + i + r - 1)
                    self._name_append(p + i, r)
                    i += r
                else:
                    if self.nm_need_start:
                        return self._fail(E_MALFORMED, base + i)
                    st = self._name_end(c, base + i)
                    i += 1

            elif st == S_ATTR_VAL:
                while True:
                    j = i
                    while j < n and T_ATTR[p[j]]:
                        j += 1
                    if j > i:
                        cnt = self.av_len + (j - i)
                        if cnt > self.lim_alen:
                            return self._fail(E_ATTR_LEN,
                                              base + i + (self.lim_alen - self.av_len))
                        self.av_len = cnt
                        if self.av_kind != AK_PLAIN:
                            self._uri_add(p + i, j - i)
                        i = j
                    if (i < n and p[i] >= 0x80 and self.av_kind == AK_PLAIN
                            and not self.ascii_only):
                        cnt = self.av_len
                        j = _mb_run(p, i, n, &cnt, self.lim_alen)
                        if j > i:
                            self.av_len = cnt
                            i = j
                            continue
                    break
                if i >= n:
                    break
                c = p[i]
                if c == self.quote:
                    st = self._attr_value_done(base + i)
                    i += 1
                elif c == C_DQ or c == C_SQ:
                    self._attr_add(1, base + i)
                    if self.av_kind != AK_PLAIN:
                        self._uri_add(p + i, 1)
                    i += 1
                elif c == C_AMP:
                    self.ref_ctx = 1
                    st = S_REF
                    i += 1
                elif c == C_CR:
                    self._attr_add(1, base + i)
                    if self.av_kind != AK_PLAIN:
                        self._uri_add(p + i, 1)
                    i += 1
                    if i < n:
                        if p[i] == C_LF:
                            i += 1
                    else:
                        self.prev_cr = 1
                elif c >= 0x80:
                    r = self._char(p, i, n, base, &cp)
                    if r == 0:
                        break
                    self._attr_add(1, base + i + r - 1)
                    if self.av_kind != AK_PLAIN:
                        self._uri_add(p + i, r)
                    i += r
                else:
                    # '<' (XML 1.0 §3.1 WFC: No < in Attribute Values) or a control character
                    return self._fail(E_MALFORMED, base + i)

            elif st == S_LT:
                if c == C_SLASH:
                    self.text_len = 0
                    self.et_pos = 0
                    st = S_ETAG
                    i += 1
                elif c == C_BANG:
                    st = S_BANG
                    i += 1
                elif c == C_QM:
                    self.text_len = 0
                    self.pi_at_start = 0
                    self._name_begin(K_PI)
                    st = S_NAME
                    i += 1
                else:
                    self._name_begin(K_ELEM)
                    st = S_NAME

            elif st == S_STAG_WS:
                while i < n and T_WS[p[i]]:
                    i += 1
                if i >= n:
                    break
                c = p[i]
                if c == C_GT:
                    st = self._finish_stag(0, base + i)
                    i += 1
                elif c == C_SLASH:
                    st = S_STAG_SLASH
                    i += 1
                else:
                    self._name_begin(K_ATTR)
                    st = S_NAME

            elif st == S_STAG_NOWS:
                if T_WS[c]:
                    st = S_STAG_WS
                    i += 1
                elif c == C_GT:
                    st = self._finish_stag(0, base + i)
                    i += 1
                elif c == C_SLASH:
                    st = S_STAG_SLASH
                    i += 1
                else:
                    # XML 1.0 §3.1: attributes are separated by whitespace
                    return self._fail(E_MALFORMED, base + i)

            elif st == S_STAG_SLASH:
                if c != C_GT:
                    return self._fail(E_MALFORMED, base + i)
                st = self._finish_stag(1, base + i)
                i += 1

            elif st == S_ATTR_EQ:
                while i < n and T_WS[p[i]]:
                    i += 1
                if i >= n:
                    break
                if p[i] != C_EQ:
                    return self._fail(E_MALFORMED, base + i)
                st = S_ATTR_Q
                i += 1

            elif st == S_ATTR_Q:
                while i < n and T_WS[p[i]]:
                    i += 1
                if i >= n:
                    break
                c = p[i]
                if c != C_DQ and c != C_SQ:
                    return self._fail(E_MALFORMED, base + i)
                self.quote = c
                self.av_len = 0
                self.ubuf_len = 0
                st = S_ATTR_VAL
                i += 1

            elif st == S_ETAG:
                # XML 1.0 §3 WFC: Element Type Match (byte-exact, so prefixes must match too)
                lv = &self.levels[self.depth - 1]
                nm = self.names + lv.off
                while i < n and self.et_pos < lv.qlen and p[i] == nm[self.et_pos]:
                    i += 1
                    self.et_pos += 1
                if i >= n:
                    break
                if self.et_pos < lv.qlen:
                    return self._fail(E_MALFORMED, base + i)
                c = p[i]
                if c == C_GT:
                    st = self._close()
                elif T_WS[c]:
                    st = S_ETAG_WS
                else:
                    return self._fail(E_MALFORMED, base + i)
                i += 1

            elif st == S_ETAG_WS:
                if c == C_GT:
                    st = self._close()
                elif not T_WS[c]:
                    return self._fail(E_MALFORMED, base + i)
                i += 1

            elif st == S_REF:
                if c == C_HASH:
                    self.cref_val = 0
                    self.cref_digits = 0
                    st = S_CREF
                elif c == 108 or c == 103 or c == 97 or c == 113:    # l g a q
                    self.ent[0] = c
                    self.ent_len = 1
                    st = S_ENT
                else:
                    # Only the five predefined entities exist: no DTD is ever read.
                    return self._fail(E_MALFORMED, base + i)
                i += 1

            elif st == S_ENT:
                if c == C_SEMI:
                    cp = _predefined(self.ent, self.ent_len)
                    if cp == 0:
                        return self._fail(E_MALFORMED, base + i)
                    st = self._emit_ref(cp, base + i)
                elif self.ent_len < 4:
                    self.ent[self.ent_len] = c
                    self.ent_len += 1
                    if not _predefined_prefix(self.ent, self.ent_len):
                        return self._fail(E_MALFORMED, base + i)
                else:
                    return self._fail(E_MALFORMED, base + i)
                i += 1

            elif st == S_CREF:
                if c == C_LOWER_X:
                    st = S_CREF_HEX
                    i += 1
                elif 48 <= c <= 57:
                    st = S_CREF_DEC
                else:
                    return self._fail(E_MALFORMED, base + i)

            elif st == S_CREF_DEC or st == S_CREF_HEX:
                # XML 1.0 §4.1 CharRef; WFC: Legal Character
                if c == C_SEMI:
                    if self.cref_digits == 0 or not _xml_char(self.cref_val):
                        return self._fail(E_MALFORMED, base + i)
                    st = self._emit_ref(self.cref_val, base + i)
                elif st == S_CREF_DEC and 48 <= c <= 57:
                    self.cref_val = self.cref_val * 10 + (c - 48)
                    self.cref_digits = 1
                    if self.cref_val > 0x10FFFF:
                        return self._fail(E_MALFORMED, base + i)
                elif st == S_CREF_HEX and T_HEX[c]:
                    self.cref_val = self.cref_val * 16 + (T_HEX[c] - 1)
                    self.cref_digits = 1
                    if self.cref_val > 0x10FFFF:
                        return self._fail(E_MALFORMED, base + i)
                else:
                    return self._fail(E_MALFORMED, base + i)
                i += 1

            elif st == S_MISC:
                while i < n and T_WS[p[i]]:
                    i += 1
                if i >= n:
                    break
                if p[i] != C_LT:
                    # XML 1.0 §2.1: only Misc (S, comments, PIs) outside the root element
                    return self._fail(E_MALFORMED, base + i)
                self.lt_off = base + i
                st = S_MISC_LT
                i += 1

            elif st == S_MISC_LT:
                if c == C_QM:
                    self.pi_at_start = self.lt_off == self.doc_start
                    self._name_begin(K_PI)
                    st = S_NAME
                    i += 1
                elif c == C_BANG:
                    st = S_MISC_BANG
                    i += 1
                elif self.root_done:
                    return self._fail(E_MALFORMED, base + i)   # one root element only
                else:
                    self._name_begin(K_ELEM)
                    st = S_NAME

            elif st == S_MISC_BANG or st == S_BANG:
                if c == C_DASH:
                    if st == S_BANG:
                        self.text_len = 0
                    self._lit(b"-", S_COMMENT)
                    st = S_LIT
                elif c == C_LBR and st == S_BANG:
                    self._lit(b"CDATA[", S_CDATA)
                    st = S_LIT
                elif c == C_D:
                    if not self.allow_dtd:
                        return self._fail(E_DTD, base + i)
                    if st == S_BANG or self.root_done or self.seen_doctype:
                        return self._fail(E_MALFORMED, base + i)
                    self._lit(b"OCTYPE", S_DT_WS1)
                    st = S_LIT
                else:
                    return self._fail(E_MALFORMED, base + i)
                i += 1

            elif st == S_LIT:
                if c != <unsigned char>self.lit[self.lit_pos]:
                    return self._fail(E_MALFORMED, base + i)
                self.lit_pos += 1
                if self.lit[self.lit_pos] == 0:
                    st = self.lit_next
                i += 1

            elif st == S_COMMENT:
                while True:
                    while i < n and T_COMMENT[p[i]]:
                        i += 1
                    if i < n and p[i] >= 0x80 and not self.ascii_only:
                        cnt = 0
                        j = _mb_run(p, i, n, &cnt, _NO_LIMIT)
                        if j > i:
                            i = j
                            continue
                    break
                if i >= n:
                    break
                c = p[i]
                if c == C_DASH:
                    st = S_COMMENT_D1
                    i += 1
                elif c >= 0x80:
                    r = self._char(p, i, n, base, &cp)
                    if r == 0:
                        break
                    i += r
                else:
                    return self._fail(E_MALFORMED, base + i)

            elif st == S_COMMENT_D1:
                if c == C_DASH:
                    st = S_COMMENT_D2
                    i += 1
                else:
                    st = S_COMMENT

            elif st == S_COMMENT_D2:
                if c != C_GT:
                    # XML 1.0 §2.5: '--' must not occur in comments
                    return self._fail(E_MALFORMED, base + i)
                st = self._after_markup()
                i += 1

            elif st == S_PI_DATA:
                while True:
                    while i < n and T_PI[p[i]]:
                        i += 1
                    if i < n and p[i] >= 0x80 and not self.ascii_only:
                        cnt = 0
                        j = _mb_run(p, i, n, &cnt, _NO_LIMIT)
                        if j > i:
                            i = j
                            continue
                    break
                if i >= n:
                    break
                c = p[i]
                if c == C_QM:
                    st = S_PI_QM
                    i += 1
                elif c >= 0x80:
                    r = self._char(p, i, n, base, &cp)
                    if r == 0:
                        break
                    i += r
                else:
                    return self._fail(E_MALFORMED, base + i)

            elif st == S_PI_QM:
                if c == C_GT:
                    st = self._after_markup()
                    i += 1
                elif c == C_QM:
                    i += 1
                else:
                    st = S_PI_DATA

            elif st == S_PI_QM0:
                if c != C_GT:
                    return self._fail(E_MALFORMED, base + i)
                st = self._after_markup()
                i += 1

            elif st == S_CDATA:
                while True:
                    j = i
                    while j < n and T_CDATA[p[j]]:
                        j += 1
                    if j > i:
                        cnt = self.text_len + (j - i)
                        if cnt > self.lim_text:
                            return self._fail(E_TEXT, base + i + (self.lim_text - self.text_len))
                        self.text_len = cnt
                        i = j
                    if i < n and p[i] >= 0x80 and not self.ascii_only:
                        cnt = self.text_len
                        j = _mb_run(p, i, n, &cnt, self.lim_text)
                        if j > i:
                            self.text_len = cnt
                            i = j
                            continue
                    break
                if i >= n:
                    break
                c = p[i]
                if c == C_RBR:
                    st = S_CDATA_B1
                    i += 1
                elif c == C_CR:
                    self._text_add(1, base + i)
                    i += 1
                    if i < n:
                        if p[i] == C_LF:
                            i += 1
                    else:
                        self.prev_cr = 1
                elif c >= 0x80:
                    r = self._char(p, i, n, base, &cp)
                    if r == 0:
                        break
                    self._text_add(1, base + i + r - 1)
                    i += r
                else:
                    return self._fail(E_MALFORMED, base + i)

            elif st == S_CDATA_B1:
                if c == C_RBR:
                    st = S_CDATA_B2
                    i += 1
                else:
                    self._text_add(1, base + i)     # the ']' was text
                    st = S_CDATA

            elif st == S_CDATA_B2:
                if c == C_GT:
                    self.brackets = 0
                    st = S_TEXT     # CDATA is part of the surrounding text node
                    i += 1
                elif c == C_RBR:
                    self._text_add(1, base + i)     # the first of three ']' was text
                    i += 1
                else:
                    self._text_add(2, base + i)
                    st = S_CDATA

            elif st == S_START:
                if c == 0xEF:
                    st = S_BOM1
                    i += 1
                else:
                    st = S_MISC

            elif st == S_BOM1 or st == S_BOM2:
                if c != (0xBB if st == S_BOM1 else 0xBF):
                    return self._fail(E_MALFORMED, base + i)
                if st == S_BOM1:
                    st = S_BOM2
                else:
                    self.bom = 1
                    self.doc_start = 3
                    st = S_MISC
                i += 1

            elif st == S_XD:
                if T_WS[c]:
                    self.xd_ws = 1
                elif c == C_QM:
                    if self.xd_stage == 0:
                        return self._fail(E_MALFORMED, base + i)   # version is required
                    st = S_XD_QM
                elif not self.xd_ws:
                    return self._fail(E_MALFORMED, base + i)
                elif c == C_LOWER_V and self.xd_stage == 0:
                    self.xd_which = 0
                    self._lit(b"ersion", S_XD_EQ)
                    st = S_LIT
                elif c == C_LOWER_E and self.xd_stage == 1:
                    self.xd_which = 1
                    self._lit(b"ncoding", S_XD_EQ)
                    st = S_LIT
                elif c == C_LOWER_S and (self.xd_stage == 1 or self.xd_stage == 2):
                    self.xd_which = 2
                    self._lit(b"tandalone", S_XD_EQ)
                    st = S_LIT
                else:
                    return self._fail(E_MALFORMED, base + i)
                i += 1

            elif st == S_XD_EQ or st == S_XD_Q:
                if T_WS[c]:
                    pass
                elif st == S_XD_EQ and c == C_EQ:
                    st = S_XD_Q
                elif st == S_XD_Q and (c == C_DQ or c == C_SQ):
                    self.xd_quote = c
                    self.xd_len = 0
                    st = S_XD_VAL
                else:
                    return self._fail(E_MALFORMED, base + i)
                i += 1

            elif st == S_XD_VAL:
                if c == self.xd_quote:
                    if not self._xd_value_ok(1):
                        return self._fail(E_MALFORMED, base + i)
                    self.xd_stage = self.xd_which + 1
                    self.xd_ws = 0
                    st = S_XD
                else:
                    if self.xd_which == 0:
                        # "1." then digits: only the first two bytes are kept
                        if not ((self.xd_len == 0 and c == 49) or (self.xd_len == 1 and c == 46)
                                or (self.xd_len >= 2 and 48 <= c <= 57)):
                            return self._fail(E_MALFORMED, base + i)
                        if self.xd_len < 2:
                            self.xd_buf[self.xd_len] = c
                        self.xd_len += 1
                    else:
                        if self.xd_len >= 8:
                            return self._fail(E_MALFORMED, base + i)
                        self.xd_buf[self.xd_len] = c
                        self.xd_len += 1
                        if not self._xd_value_ok(0):
                            return self._fail(E_MALFORMED, base + i)
                i += 1

            elif st == S_XD_QM:
                if c != C_GT:
                    return self._fail(E_MALFORMED, base + i)
                st = S_MISC
                i += 1

            elif st == S_DT_WS1:
                if not T_WS[c]:
                    return self._fail(E_MALFORMED, base + i)
                st = S_DT_WS
                i += 1

            elif st == S_DT_WS:
                if T_WS[c]:
                    i += 1
                else:
                    self._name_begin(K_DT)
                    st = S_NAME

            elif (st == S_DT_BODY or st == S_DT_BODY_Q or st == S_DT_DECL
                  or st == S_DT_DECL_Q):
                # Skipped, never interpreted: only quotes and the closing byte matter.
                if c >= 0x80:
                    r = self._char(p, i, n, base, &cp)
                    if r == 0:
                        break
                    i += r
                    continue
                if not T_CHAR[c]:
                    return self._fail(E_MALFORMED, base + i)
                if st == S_DT_BODY_Q or st == S_DT_DECL_Q:
                    if c == self.quote:
                        st = S_DT_BODY if st == S_DT_BODY_Q else S_DT_DECL
                elif c == C_DQ or c == C_SQ:
                    self.quote = c
                    st = S_DT_BODY_Q if st == S_DT_BODY else S_DT_DECL_Q
                elif st == S_DT_BODY:
                    if c == C_LBR:
                        self.in_subset = 1
                        st = S_DT_SUBSET
                    elif c == C_GT:
                        self.seen_doctype = 1
                        st = S_MISC
                    elif c == C_LT:
                        return self._fail(E_MALFORMED, base + i)
                else:
                    if c == C_GT:
                        st = S_DT_SUBSET
                    elif c == C_LT:
                        return self._fail(E_MALFORMED, base + i)
                i += 1

            elif st == S_DT_SUBSET:
                if T_WS[c]:
                    i += 1
                elif c == C_RBR:
                    self.in_subset = 0
                    st = S_DT_AFTER
                    i += 1
                elif c == C_PCT:
                    self._name_begin(K_PEREF)
                    st = S_NAME
                    i += 1
                elif c == C_LT:
                    st = S_DT_LT
                    i += 1
                else:
                    return self._fail(E_MALFORMED, base + i)

            elif st == S_DT_LT:
                if c == C_BANG:
                    st = S_DT_BANG
                elif c == C_QM:
                    self.pi_at_start = 0
                    self._name_begin(K_PI)
                    st = S_NAME
                else:
                    return self._fail(E_MALFORMED, base + i)
                i += 1

            elif st == S_DT_BANG:
                if c == C_DASH:
                    self._lit(b"-", S_COMMENT)
                    st = S_LIT
                elif 65 <= c <= 90:
                    st = S_DT_DECL
                else:
                    return self._fail(E_MALFORMED, base + i)
                i += 1

            elif st == S_DT_AFTER:
                if c == C_GT:
                    self.seen_doctype = 1
                    st = S_MISC
                elif not T_WS[c]:
                    return self._fail(E_MALFORMED, base + i)
                i += 1

            else:
                raise AssertionError(f"xmlscan: bad state {st}")

        self.st = st
        return 0


def scan_xml(data, XmlLimits limits=None):
    """Scan a whole document; raises PayloadRejected(limit=..., offset=...) if it is refused."""
    cdef XmlScanner s = XmlScanner(limits)
    s.feed(data)
    s.finish()

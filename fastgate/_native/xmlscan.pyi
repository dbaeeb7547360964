"""Streaming XML scanner for request bodies (stub for fastgate/_native/xmlscan.pyx).

Invariant: the verdict, the limit name and the offset depend only on the bytes, never on how they
were split; nothing is built or expanded (no tree, no DTD, only the five predefined entities).
"""

DEFAULT_MAX_DEPTH: int  # 30
DEFAULT_MAX_ELEMENTS: int  # 10_000
DEFAULT_MAX_ATTRIBUTES: int  # 50
DEFAULT_MAX_ATTRIBUTE_LENGTH: int  # 1000
DEFAULT_MAX_TEXT_LENGTH: int  # 100_000
DEFAULT_MAX_CHILDREN: int  # 1000
DEFAULT_MAX_BYTES: int  # 1 << 20
MAX_NAME_LENGTH: int  # 50_000 bytes per name part (libxml2's limit): longer is "malformed"
LIMIT_NAMES: tuple[str, ...]  # every PayloadRejected.limit this module raises

class XmlLimits:
    """Immutable limits; None means unlimited. Defaults are the safe ones.

    max_depth: open elements, the root is depth 1. max_elements: start tags in the document.
    max_attributes: per start tag, namespace declarations included. max_attribute_length and
    max_text_length: characters (code points) after references, CR LF folding and attribute
    normalization, i.e. len() of what lxml returns; a text node is the character data between
    two tags, comments or PIs, CDATA sections included. max_children: child elements per element.
    max_bytes: bytes fed in total. allow_dtd: skip (never read) one DOCTYPE before the root.
    """

    @property
    def max_depth(self) -> int | None: ...
    @property
    def max_elements(self) -> int | None: ...
    @property
    def max_attributes(self) -> int | None: ...
    @property
    def max_attribute_length(self) -> int | None: ...
    @property
    def max_text_length(self) -> int | None: ...
    @property
    def max_children(self) -> int | None: ...
    @property
    def max_bytes(self) -> int | None: ...
    @property
    def allow_dtd(self) -> bool: ...
    def __init__(
        self,
        *,
        max_depth: int | None = 30,
        max_elements: int | None = 10_000,
        max_attributes: int | None = 50,
        max_attribute_length: int | None = 1000,
        max_text_length: int | None = 100_000,
        max_children: int | None = 1000,
        max_bytes: int | None = 1 << 20,
        allow_dtd: bool = False,
    ) -> None: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

class XmlScanner:
    """One document: feed() chunks, then finish(). Raises fastgate.errors.PayloadRejected with
    `limit` (a XmlLimits field name, or "malformed") and `offset` (the byte at which the violation
    became certain: for a non-ASCII character, its last byte; for max_bytes, max_bytes). After a
    rejection every call raises the same error again."""

    @property
    def limits(self) -> XmlLimits: ...
    @property
    def bytes_fed(self) -> int: ...
    @property
    def _state(self) -> int: ...  # fuzzing hook: the internal state number
    @property
    def depth(self) -> int: ...  # elements currently open
    @property
    def elements(self) -> int: ...  # start tags seen so far
    def __init__(self, limits: XmlLimits | None = None) -> None: ...
    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Scan the next chunk (any split, even one byte); raises at the first certain violation.

        RuntimeError after finish()."""
    def finish(self) -> None:
        """End of input: raises unless exactly one complete document was fed. Idempotent."""

def scan_xml(data: bytes | bytearray | memoryview, limits: XmlLimits | None = None) -> None:
    """Scan a whole document; raises PayloadRejected(limit=..., offset=...) if it is refused."""

def _uri_reference_ok(value: bytes) -> bool:
    """Test hook: libxml2's namespace-URI check (RFC 3986 URI-reference, ASCII only)."""

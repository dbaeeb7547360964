"""Path normalisation and longest-prefix routing to an API.

Invariant: the gateway routes and forwards the *same* normalised path, so no encoding trick
(`..`, `%2e%2e`, `//`, encoded slashes) can make the gateway and the backend disagree about
which resource is asked for, reach another API, or escape an API's base path.
"""

from __future__ import annotations

from .config.model import Api
from .errors import BadRequest, NotFound

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = "0123456789abcdefABCDEF"


def normalise_path(raw: str) -> str:
    """RFC 3986 §6.2.2: decode unreserved %XX, remove dot segments, merge repeated slashes.

    Encoded "/", "\\", NUL and control characters have no safe meaning here and are refused
    (Envoy's `path_with_escaped_slashes_action: REJECT_REQUEST`); so are raw backslashes.
    """
    if "%" in raw:
        raw = _decode_unreserved(raw)
    if "\\" in raw:
        raise BadRequest("backslash in path")
    if "//" in raw:
        while "//" in raw:
            raw = raw.replace("//", "/")
    if "/." in raw:
        out: list[str] = []
        for seg in raw.split("/")[1:]:
            if seg == "..":
                if out:
                    out.pop()
            elif seg != ".":
                out.append(seg)
        trailing = raw.endswith(("/.", "/..")) and out
        raw = "/" + "/".join(out) + ("/" if trailing else "")
    return raw


def _decode_unreserved(raw: str) -> str:
    parts = raw.split("%")
    out = [parts[0]]
    for part in parts[1:]:
        if len(part) < 2 or part[0] not in _HEX or part[1] not in _HEX:
            raise BadRequest("malformed percent-encoding in path")
        byte = int(part[:2], 16)
        if byte in _UNRESERVED:
            out.append(chr(byte) + part[2:])
        elif byte < 0x20 or byte == 0x7F or byte in (0x2F, 0x5C):
            raise BadRequest("encoded slash, backslash or control character in path")
        else:
            out.append("%" + part[:2].upper() + part[2:])
    return "".join(out)


class Router:
    """Longest `base_path` prefix on segment boundaries (/orders/v1 never matches /orders/v10)."""

    __slots__ = ("_by_prefix", "_lengths")

    def __init__(self, apis: tuple[Api, ...]) -> None:
        self._by_prefix = {api.base_path: api for api in apis}
        self._lengths = sorted({len(p) for p in self._by_prefix}, reverse=True)

    def route(self, path: str) -> tuple[Api, str]:
        """Returns the API and the path below its base (always starting with "/" or empty)."""
        by_prefix = self._by_prefix
        for n in self._lengths:
            prefix = path[:n]
            api = by_prefix.get(prefix)
            if api is None:
                continue
            rest = path[n:]
            if prefix == "/":
                return api, path
            if not rest or rest[0] == "/":
                return api, rest
        raise NotFound("no API at this path")


def upstream_path(base: str, rest: str) -> str:
    """/orders/v1/items with upstream.path "/" -> /items; with "/api" -> /api/items."""
    if not rest:
        return base
    if base.endswith("/"):
        return base + rest[1:]
    return base + rest

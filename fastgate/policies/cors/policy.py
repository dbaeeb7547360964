"""CORS for one API (Fetch standard §3.2, "CORS protocol"): preflights answered by the gateway,
Access-Control-* headers on actual responses.

Invariant: an origin is allowed only when the request carries exactly one Origin header that is
a well-formed origin equal to a configured one (scheme and host compared case-insensitively, the
port exactly, a default port the same as none); Access-Control-Allow-Origin then echoes that
request origin, and is "*" only for a wildcard config, which the loader never pairs with
credentials. `Vary: Origin` is on every actual response, allowed or not, so no cache serves one
origin's answer to another.

Decisions:
- `Origin: null` is never allowed, not even by a wildcard config: sandboxed iframes, file: pages
  and some redirects all send it, so allowing it would allow them all. The loader refuses "null"
  in `origins`.
- Anything that is not exactly `scheme://host[:port]` (a trailing slash, a path, user info,
  whitespace, several comma-separated origins) is not an origin; two Origin headers are refused.
- Requested methods are compared exactly with the configured (upper-case) `methods`; the Fetch
  CORS-safelisted methods are not implied: a preflight for a method the config does not list is
  refused. Requested headers are compared case-insensitively with `headers`, plus the
  CORS-safelisted names `accept`, `accept-language`, `content-language` (always allowed).
  `content-type` is not implied: a browser only names it in a preflight when its value is not a
  safelisted one (e.g. application/json), so cross-origin JSON needs it listed.
- A refused preflight is (403, []) (the pipeline renders problem+json `forbidden`); a request
  that is not a preflight (not OPTIONS, or no Origin, or no Access-Control-Request-Method)
  gives None and passes on.
"""

from __future__ import annotations

import re
from typing import Protocol

from ...config.inspection import parse_origin
from ...config.model import Api, Config, Cors
from ..shared import SharedState

# Fetch §2.2.2 CORS-safelisted request-headers a browser may still name in a preflight.
SAFELISTED_HEADERS = frozenset({"accept", "accept-language", "content-language"})
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.6.2

VARY_ORIGIN = (b"vary", b"Origin")
VARY_PREFLIGHT = (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers")


class Request(Protocol):
    method: bytes
    headers: list[tuple[bytes, bytes]]  # lower-case names


class CorsPolicy:
    """Compiled once per API from `Cors`; preflight() and response_headers() per request."""

    __slots__ = (
        "wildcard",
        "origins",
        "methods",
        "headers",
        "credentials",
        "_preflight_headers",
        "_actual_headers",
    )

    def __init__(self, cors: Cors) -> None:
        self.wildcard = cors.origins == ("*",)
        self.origins = frozenset(cors.origins)  # comparable forms (parse_origin)
        self.methods = frozenset(cors.methods)
        self.headers = frozenset(h.lower() for h in cors.headers) | SAFELISTED_HEADERS
        self.credentials = cors.credentials
        common: list[tuple[bytes, bytes]] = []
        if cors.credentials:
            common.append((b"access-control-allow-credentials", b"true"))
        preflight = [*common, (b"access-control-allow-methods", ", ".join(cors.methods).encode())]
        if cors.headers:
            allowed = ", ".join(cors.headers).encode()
            preflight.append((b"access-control-allow-headers", allowed))
        preflight.append((b"access-control-max-age", str(int(cors.max_age)).encode()))
        actual = list(common)
        if cors.expose_headers:
            exposed = ", ".join(cors.expose_headers).encode()
            actual.append((b"access-control-expose-headers", exposed))
        self._preflight_headers = tuple(preflight)
        self._actual_headers = tuple(actual)

    # -- per request
    def preflight(self, req: Request) -> tuple[int, list[tuple[bytes, bytes]]] | None:
        """For OPTIONS with Origin and Access-Control-Request-Method: (204, CORS headers) when
        allowed, (403, []) when not; None when the request is not a preflight."""
        if req.method != b"OPTIONS":
            return None
        origins = _values(req, b"origin")
        methods = _values(req, b"access-control-request-method")
        if not origins or not methods:
            return None
        if len(origins) != 1 or len(methods) != 1:
            return 403, []
        allow_origin = self._allow_origin(origins[0])
        if allow_origin is None or methods[0].decode("latin-1") not in self.methods:
            return 403, []
        if not self._headers_allowed(_values(req, b"access-control-request-headers")):
            return 403, []
        headers = [(b"access-control-allow-origin", allow_origin), *self._preflight_headers]
        headers.append(VARY_PREFLIGHT)
        return 204, headers

    def response_headers(self, req: Request) -> list[tuple[bytes, bytes]]:
        """The CORS headers for an actual response; only `Vary: Origin` when not allowed."""
        origins = _values(req, b"origin")
        allow_origin = self._allow_origin(origins[0]) if len(origins) == 1 else None
        if allow_origin is None:
            return [VARY_ORIGIN]
        return [(b"access-control-allow-origin", allow_origin), *self._actual_headers, VARY_ORIGIN]

    # -- helpers
    def _allow_origin(self, raw: bytes) -> bytes | None:
        """The Access-Control-Allow-Origin value for this Origin, or None when not allowed."""
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            return None
        origin = parse_origin(text)  # None for "null", paths, trailing slashes, junk
        if origin is None:
            return None
        if self.wildcard:
            return b"*"  # the loader never allows a wildcard with credentials
        return raw if origin in self.origins else None

    def _headers_allowed(self, values: list[bytes]) -> bool:
        for value in values:
            for part in value.split(b","):
                name = part.strip()
                if not name:
                    continue
                if not _TOKEN.fullmatch(name):
                    return False
                if name.decode("ascii").lower() not in self.headers:
                    return False
        return True


def _values(req: Request, name: bytes) -> list[bytes]:
    return [value.strip(b" \t") for key, value in req.headers if key == name]


def build(api: Api, config: Config, shared: SharedState) -> CorsPolicy | None:
    """None when the API has no `cors` (no CORS headers at all: browsers refuse cross-origin)."""
    return CorsPolicy(api.cors) if api.cors is not None else None

"""The GatewayError tree: every refusal the gateway itself makes, as a typed error.

Invariant: `detail` is safe to show a client (never a payload, a secret or a path on disk);
anything only an operator should see goes in `log_detail`. Only pipeline.py renders these.
"""

from __future__ import annotations


class GatewayError(Exception):
    status: int = 500
    code: str = "internal_error"
    title: str = "Internal Server Error"
    close_connection: bool = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: list[tuple[str, str]] | None = None,
        log_detail: str | None = None,
        extra: dict | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = headers or []
        self.log_detail = log_detail
        self.extra = extra or {}


class NotFound(GatewayError):
    status, code, title = 404, "not_found", "Not Found"


class MethodNotAllowed(GatewayError):
    status, code, title = 405, "method_not_allowed", "Method Not Allowed"


class Unauthenticated(GatewayError):
    status, code, title = 401, "unauthenticated", "Unauthorized"


class InvalidCredentials(GatewayError):
    status, code, title = 401, "invalid_credentials", "Unauthorized"


class Forbidden(GatewayError):
    status, code, title = 403, "forbidden", "Forbidden"


class InsufficientScope(GatewayError):
    status, code, title = 403, "insufficient_scope", "Forbidden"


class ThreatDetected(GatewayError):
    status, code, title = 400, "threat_detected", "Bad Request"


class PayloadRejected(GatewayError):
    """A JSON/XML limit or malformed document; `limit` is the config key name or "malformed"."""

    status, code, title = 400, "payload_rejected", "Bad Request"

    def __init__(self, limit: str, offset: int = -1, **kw) -> None:
        super().__init__(kw.pop("detail", f"limit exceeded: {limit}"), **kw)
        self.limit = limit
        self.offset = offset


class InvalidRequest(GatewayError):
    status, code, title = 400, "invalid_request", "Bad Request"


class PayloadTooLarge(GatewayError):
    status, code, title = 413, "payload_too_large", "Payload Too Large"
    close_connection = True  # RFC 9110 §15.5.14: we do not read the rest of the body


class UriTooLong(GatewayError):
    status, code, title = 414, "uri_too_long", "URI Too Long"
    close_connection = True


class HeadersTooLarge(GatewayError):
    status, code, title = 431, "headers_too_large", "Request Header Fields Too Large"
    close_connection = True


class RequestTimeout(GatewayError):
    status, code, title = 408, "request_timeout", "Request Timeout"
    close_connection = True


class RateLimited(GatewayError):
    status, code, title = 429, "rate_limited", "Too Many Requests"


class BackendBusy(GatewayError):
    status, code, title = 503, "backend_busy", "Service Unavailable"


class BadGateway(GatewayError):
    status, code, title = 502, "bad_gateway", "Bad Gateway"


class InvalidResponse(GatewayError):
    status, code, title = 502, "invalid_response", "Bad Gateway"


class GatewayTimeout(GatewayError):
    status, code, title = 504, "gateway_timeout", "Gateway Timeout"


class Unavailable(GatewayError):
    status, code, title = 503, "unavailable", "Service Unavailable"


class BadRequest(GatewayError):
    """Malformed HTTP: bad framing, CL+TE, bad chunking. The connection is always closed."""

    status, code, title = 400, "bad_request", "Bad Request"
    close_connection = True


class NotImplementedHttp(GatewayError):
    status, code, title = 501, "not_implemented", "Not Implemented"
    close_connection = True

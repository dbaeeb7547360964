"""Who is calling: the Identity an authentication method produces, and the interfaces every
authentication and authorization policy unit implements.

Invariant: an Identity is only ever built by a method that verified a credential; everything
after authentication (authorization, quotas, upstream headers, logs) reads it, never the raw
credential. Units are compiled once per config load and shared by all requests (Envoy's filter
config); per-request state lives in RequestContext.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Identity:
    method: str  # "api_key" | "basic" | "digest" | "oauth2" | "mtls"
    subject: str | None = None  # user name, token `sub`, or None for application-only keys
    application: str | None = None  # applications[].name when known
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    claims: dict[str, Any] = field(default_factory=dict)  # verified token claims / user claims
    token: str | None = None  # oauth2: the bearer token, forwarded unchanged
    expires_at: float | None = None  # epoch seconds, for caches
    credential_id: str | None = None  # e.g. the API key id or jti, for logs (never the secret)


class Found:
    """What `find` saw: opaque to the pipeline, passed back to `verify`."""

    __slots__ = ("value", "strip_headers", "strip_query")

    def __init__(self, value: Any, strip_headers: tuple[bytes, ...] = (), strip_query: str | None = None) -> None:
        self.value = value
        self.strip_headers = strip_headers  # lower-case header names consumed by this method
        self.strip_query = strip_query  # a query parameter consumed by this method


class Request(Protocol):
    """What units see of a request (fastgate.http.server.Request satisfies it)."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]


class Authenticator(Protocol):
    """One authentication method of one API (policies/<method>/policy.py)."""

    name: str  # the `authentication` list entry

    def challenge(self) -> str:
        """The WWW-Authenticate value offered on 401 unauthenticated (CONTRACT.md)."""

    def find(self, ctx, req: Request) -> Found | None:
        """Cheap, no I/O: are this method's credentials present? None = not this method."""

    async def verify(self, ctx, req: Request, found: Found) -> Identity:
        """Check the credential; raise errors.InvalidCredentials / Forbidden / Unavailable."""


class Authorizer(Protocol):
    """An API's authorization chain (resources + roles_to_scopes + rules + OPA)."""

    async def authorize(self, ctx, req: Request, identity: Identity | None, rest_path: str) -> None:
        """Return to allow; raise errors.InsufficientScope / Forbidden / Unavailable to deny.
        Sets ctx.decision to the deciding rule id when a rule decides."""

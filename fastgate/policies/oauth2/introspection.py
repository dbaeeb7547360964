"""Opaque bearer tokens: RFC 7662 introspection with client authentication, a short negative
cache and one in-flight call per token.

Invariants: a token is accepted only on an explicit `"active": true` (RFC 7662 §2.2) that has not
expired; an endpoint that is down, slow, or answers anything but 200 + a JSON object makes the
request fail closed with 503 `unavailable` (CONTRACT.md), never pass. Endpoints are tried in
config order: the first `active` answer wins, and "inactive everywhere" is only concluded when
every endpoint answered. The token is sent only in the POST body and never logged.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from urllib.parse import quote, urlencode

import orjson

from ... import errors
from ...config.model import Introspection
from .jwt_verifier import Verified, client_ids, invalid_token, string_set

log = logging.getLogger("fastgate")

NEGATIVE_TTL = 10.0  # seconds an inactive/unknown token is refused without asking again
MAX_NEGATIVE = 10_000
FORM = b"application/x-www-form-urlencoded"


def basic_auth(client_id: str, secret: str) -> bytes:
    """RFC 6749 §2.3.1: both parts form-urlencoded before Basic encoding (RFC 7617); a space
    becomes %20, not "+", which form decoders and plain percent-decoders both read back."""
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return b"Basic " + base64.b64encode(pair)


def read_client_secret(ep: Introspection) -> str:
    value = os.environ.get(ep.client_secret_env)
    if not value:
        raise ValueError(f"introspection[{ep.name}].client_secret_env: environment variable "
                         f"{ep.client_secret_env} is not set")
    return value


class _Outcome(Exception):
    """An endpoint answered "not active" (carries why, for the log)."""


class Introspector:
    """All configured endpoints of one config; shared across reloads while they are unchanged."""

    def __init__(self, endpoints: tuple[Introspection, ...], http,
                 clock: Callable[[], float] = time.time) -> None:
        self.endpoints = endpoints
        self.http = http
        self.clock = clock
        self._auth = {ep.name: basic_auth(ep.client_id, read_client_secret(ep)) for ep in endpoints}
        self._negative: OrderedDict[bytes, float] = OrderedDict()  # digest -> until
        self._flights: dict[bytes, asyncio.Task] = {}
        self.calls = 0  # HTTP calls made, for tests and metrics

    async def verify(self, token: str, digest: bytes) -> Verified:
        until = self._negative.get(digest)
        if until is not None:
            if until > self.clock():
                raise invalid_token(log_detail="introspection: inactive (negative cache)")
            del self._negative[digest]
        flight = self._flights.get(digest)
        if flight is None:
            flight = self._flights[digest] = asyncio.get_running_loop().create_task(
                self._introspect(token, digest))
            flight.add_done_callback(lambda t, d=digest: self._landed(d, t))
        return await asyncio.shield(flight)  # one waiter giving up does not cancel the call

    def _landed(self, digest: bytes, task: asyncio.Task) -> None:
        self._flights.pop(digest, None)
        if not task.cancelled():
            task.exception()  # retrieved: nobody may be left waiting for it

    async def _introspect(self, token: str, digest: bytes) -> Verified:
        body = urlencode({"token": token, "token_type_hint": "access_token"}).encode()
        failed: list[str] = []
        inactive: list[str] = []
        for ep in self.endpoints:
            try:
                return await self._ask(ep, body)
            except errors.Unavailable as e:
                failed.append(f"{ep.name}: {e.log_detail or e.detail}")
            except _Outcome as e:
                inactive.append(f"{ep.name}: {e}")
        if failed:
            log.warning("oauth2 introspection unavailable: %s", "; ".join(failed))
            raise errors.Unavailable("token introspection unavailable",
                                     log_detail="introspection: " + "; ".join(failed + inactive))
        self._remember_negative(digest)
        expired = inactive and all(r.endswith("expired") for r in inactive)
        raise invalid_token("token expired" if expired else "invalid token",
                            "introspection: " + "; ".join(inactive))

    async def _ask(self, ep: Introspection, body: bytes) -> Verified:
        self.calls += 1
        resp = await self.http.request(
            "POST", ep.url, body=body, timeout=ep.timeout,
            headers=[(b"content-type", FORM), (b"accept", b"application/json"),
                     (b"authorization", self._auth[ep.name])])
        if resp.status != 200:
            raise errors.Unavailable("token introspection unavailable",
                                     log_detail=f"HTTP {resp.status}")
        try:
            claims = orjson.loads(resp.body)
        except orjson.JSONDecodeError:
            raise errors.Unavailable("token introspection unavailable",
                                     log_detail="answer is not JSON") from None
        if not isinstance(claims, dict):
            raise errors.Unavailable("token introspection unavailable",
                                     log_detail="answer is not a JSON object")
        if claims.get("active") is not True:  # RFC 7662 §2.2: exactly the boolean true
            raise _Outcome("inactive")
        now = self.clock()
        exp = claims.get("exp")
        if exp is not None:
            if not isinstance(exp, int | float) or isinstance(exp, bool):
                raise _Outcome("exp is not a NumericDate")
            if exp <= now:
                raise _Outcome("expired")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and not isinstance(nbf, bool) and nbf > now:
            raise _Outcome("not yet valid")
        token_type = claims.get("token_type")
        if isinstance(token_type, str) and "refresh" in token_type.lower():
            raise _Outcome("a refresh token used as an access token")
        sub = claims.get("sub")
        if not isinstance(sub, str):
            sub = claims.get("username") if isinstance(claims.get("username"), str) else None
        jti = claims.get("jti")
        until = now + ep.cache_ttl
        return Verified(
            source=ep, claims=claims, subject=sub, scopes=string_set(claims.get("scope")),
            roles=frozenset(), client_ids=client_ids(claims),
            expires_at=float(exp) if exp is not None else None,
            jti=jti if isinstance(jti, str) else None,
            cache_until=min(float(exp), until) if exp is not None else until)

    def _remember_negative(self, digest: bytes) -> None:
        neg = self._negative
        neg[digest] = self.clock() + NEGATIVE_TTL
        neg.move_to_end(digest)
        while len(neg) > MAX_NEGATIVE:
            neg.popitem(last=False)

"""A small async HTTP client for the gateway's own calls (JWKS, introspection, OPA).

Invariant: built on the upstream pool (keep-alive, TLS verification, connect and read
timeouts), so a slow or dead policy backend costs at most `timeout` and never blocks the loop;
responses are bounded in size.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from .. import errors
from ..config.model import Upstream, UpstreamTls, UpstreamUrl
from ..tls import upstream_context
from .upstream import UpstreamPool

MAX_RESPONSE_BYTES = 1024 * 1024  # a JWKS, an introspection answer or a decision is small


class ClientResponse:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: bytes) -> bytes | None:
        for n, v in self.headers:
            if n == name:
                return v
        return None


class HttpClient:
    """One pool per origin; `request` raises errors.Unavailable on any failure or timeout."""

    def __init__(self, tls: UpstreamTls | None = None, fast_path: bool = True) -> None:
        self._tls = tls
        self._fast_path = fast_path
        self._pools: dict[tuple[str, str, int, float], UpstreamPool] = {}

    def _pool(self, url: UpstreamUrl, timeout: float) -> UpstreamPool:
        key = (url.scheme, url.host, url.port, timeout)
        pool = self._pools.get(key)
        if pool is None:
            upstream = Upstream(urls=(url,), timeout=timeout, connect_timeout=timeout)
            ctx = upstream_context(self._tls) if url.scheme == "https" else None
            pool = self._pools[key] = UpstreamPool(upstream, self._fast_path, ctx)
        return pool

    async def request(self, method: str, url: str, *, headers: list[tuple[bytes, bytes]] | None = None,
                      body: bytes | None = None, timeout: float = 2.0) -> ClientResponse:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise errors.Unavailable("policy backend misconfigured", log_detail=f"bad URL {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        pool = self._pool(UpstreamUrl(parts.scheme, parts.hostname, port), timeout)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        hdrs = list(headers or [])

        async def one_body():
            yield body

        try:
            async with asyncio.timeout(timeout):
                resp = await pool.exchange(method.encode(), target.encode(), hdrs,
                                           one_body() if body is not None else None,
                                           len(body) if body is not None else None)
                chunks = []
                size = 0
                try:
                    async for chunk in resp.body():
                        size += len(chunk)
                        if size > MAX_RESPONSE_BYTES:
                            raise errors.Unavailable("policy backend answer too large")
                        chunks.append(chunk)
                finally:
                    resp.release()
        except errors.Unavailable:
            raise
        except (errors.GatewayError, TimeoutError, OSError) as e:
            raise errors.Unavailable("policy backend unavailable", log_detail=f"{parts.hostname}: {e!r}") from None
        return ClientResponse(resp.status, resp.headers, b"".join(chunks))

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()

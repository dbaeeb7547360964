"""Process-wide state that policy units share and that survives config reloads.

Invariant: anything expensive to rebuild or that must not reset on SIGHUP (JWKS caches,
verified-token caches, revocation sets, the HTTP client's pools) lives here, keyed by the
config that defines it, so an unchanged issuer keeps its keys and caches across a reload.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable
from typing import Any

from ..http.client import HttpClient


class SharedState:
    def __init__(self, nonce_key: bytes | None = None) -> None:
        self.http = HttpClient()
        # Signs Digest nonces and similar short-lived tokens; from the master key when one is
        # configured (so every worker agrees), else random per process.
        self.nonce_key = nonce_key or os.urandom(32)
        self._objects: dict[Any, Any] = {}
        # policies.ratelimit.stores: the rate-limit stores (counters survive reloads)
        self.quota_stores = None

    def get(self, key: Any, factory: Callable[[], Any]) -> Any:
        """The object for `key` (e.g. ("jwks", issuer_config)), made once with `factory`."""
        obj = self._objects.get(key)
        if obj is None:
            obj = self._objects[key] = factory()
        return obj

    def discard(self, obj: Any) -> None:
        """Forget `obj` (closed by its owner): a later get() of its key makes a new one."""
        for key in [k for k, v in self._objects.items() if v is obj]:
            del self._objects[key]

    def close(self) -> None:
        self.http.close()


def nonce_key_for(master_key_env: str) -> bytes:
    """A key every worker agrees on: derived from the master key when it is set, else random
    (the caller makes it once, before forking workers)."""
    raw = os.environ.get(master_key_env)
    if raw:
        try:
            master = base64.b64decode(raw, validate=True)
        except ValueError:
            master = b""
        if len(master) == 32:
            return hmac.new(master, b"fastgate nonce key v1", hashlib.sha256).digest()
    return os.urandom(32)

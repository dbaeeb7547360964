"""What the token service persists, behind one interface with two backends: Redis (every node
agrees; redis_store.py) and an embedded SQLite file (one node; sqlite_store.py).

Invariants: callers pass only hashes of refresh tokens and codes as keys (`digest()`); `take`
is atomic, so of two concurrent uses of one code or refresh token exactly one sees
`first=True`; records carry their own `exp` and are dropped by the backend some time after it.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol


def digest(secret: str) -> str:
    """The only form in which a refresh token or code is stored (SHA-256, hex)."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Store(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    # signing keys: `parent` is the kid the new key succeeds ("" for the first); one successor
    # per parent wins, so nodes that rotate at once agree on one new key
    async def keys(self) -> list[dict[str, Any]]: ...

    async def add_key(self, rec: dict[str, Any], parent: str) -> bool: ...

    # single-use records (authorization codes, refresh tokens) by kind and digest
    async def put(self, kind: str, key: str, data: dict[str, Any], ttl: float) -> None: ...

    async def take(self, kind: str, key: str) -> tuple[dict[str, Any] | None, bool]:
        """(record or None, first use?) and marks it used."""

    async def peek(self, kind: str, key: str) -> tuple[dict[str, Any] | None, bool]:
        """(record or None, already used?) without using it."""

    # families: every token issued from one grant (code or first refresh token)
    async def add_to_family(self, family: str, jti: str, exp: float, ttl: float) -> None: ...

    async def revoke_family(self, family: str, ttl: float) -> list[tuple[str, float]]:
        """Mark the family revoked; returns the access-token (jti, exp) issued in it."""

    async def family_revoked(self, family: str) -> bool: ...

    # replay markers (jwt-bearer assertion jti): True the first time only
    async def once(self, key: str, ttl: float) -> bool: ...

    # revoked access-token jti, for every node
    async def revoke_jti(self, jti: str, exp: float) -> None: ...

    async def revoked_since(self, cursor: Any) -> tuple[list[tuple[str, float]], Any]:
        """New revocations since `cursor` (None = all) for the local poll; Redis returns none
        (revocations.py already syncs Redis into every process)."""

"""API-key authentication: `apis[].api_key.header` or `.query` -> `applications[].api_keys[]`.

Invariant: keys exist here only as SHA-256 hashes (`sha256:<hex>` in the config). A presented
key is hashed first and only its hash is looked up, so the dict lookup cannot leak the secret
by timing; the stored hash is still compared with hmac.compare_digest. The index is rebuilt at
every (re)load, so a key removed from the config stops working at the SIGHUP; the revocation
set (KeyRevocations, in SharedState so it survives reloads, checked on every request) is the
hook for revoking keys between reloads (e.g. synced from Redis).

Decisions:
- An API key authenticates an *application*, not a user: the Identity has subject None and the
  application's configured `scopes` (the most that client may ever be granted), so scoped
  resources work with keys exactly as with a client_credentials token of that application.
- Errors: unknown / malformed / ambiguous (two headers, or the parameter twice) / revoked /
  expired key -> 401 invalid_credentials; a good key from a disallowed IP or Referer -> 403
  forbidden. The key itself never appears in a detail or log detail (its config id may).
- Header and query parameter both present: the header's key decides; both are stripped.
- Query parameter names are compared raw, or percent-decoded (`+` = space) when they contain
  `%` or `+`, the way pipeline.py strips them; only the value of the matching parameter is
  percent-decoded (as UTF-8); nothing else of the target is decoded.

Referer globs (`allowed_referers`): an absolute URL pattern in which `*` is the only wildcard.
The glob is split at the first `/` after `scheme://`:
- in the scheme and authority (before that `/`), `*` matches one or more DNS labels joined by
  dots, `[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*`, and matching is case-insensitive: so
  `https://*.example.com/*` matches `https://a.b.example.com/x` but never
  `https://evil.com/.example.com/`, `https://evil.com?.example.com/`,
  `https://evil.com#.example.com/` or `https://x@evil.com/` (a `*` cannot cross `/ ? # @ :`);
- in the path (from that `/` on), `*` matches anything, `/` included, case-sensitively;
- every other character is literal (`?` and `[` are not wildcards); the whole Referer must
  match (anchored). A glob without a `/` after its authority matches only that exact origin
  with no path; `https://app.example.com/*` is the usual form.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC
from urllib.parse import unquote_plus

from ... import errors
from ...config.model import Api, ApiKey, Application, Config
from ...identity import Found, Identity
from ..shared import SharedState

MAX_KEY_LENGTH = 1024  # longer presented keys are refused without hashing
VERDICT_MEMO_MAX = 1024  # per key: remembered client-IP / Referer verdicts (cleared when full)
VERDICT_MEMO_MAX_LENGTH = 512  # longer Referers are matched every time, never remembered

# `*` in the scheme/authority part of a Referer glob: one or more DNS labels.
_ORIGIN_STAR = r"[a-z0-9-]+(?:\.[a-z0-9-]+)*"


def compile_referer_glob(glob: str) -> re.Pattern[str]:
    """An anchored pattern (use .fullmatch) for one `allowed_referers` glob (see module doc)."""
    scheme_end = glob.find("://")
    slash = glob.find("/", scheme_end + 3 if scheme_end >= 0 else 0)
    origin, path = (glob, "") if slash < 0 else (glob[:slash], glob[slash:])
    origin_re = _ORIGIN_STAR.join(re.escape(part) for part in origin.split("*"))
    path_re = ".*".join(re.escape(part) for part in path.split("*"))
    return re.compile(f"(?i:{origin_re}){path_re}", re.ASCII | re.DOTALL)


class KeyRevocations:
    """Key ids revoked between reloads (e.g. synced from Redis); one per process, in SharedState.

    Revoking is by `api_keys[].id`, which the loader keeps unique across applications. An id
    stays revoked until unrevoke()/replace(): do not reuse a revoked key's id for a new key.
    """

    def __init__(self) -> None:
        self._ids: set[str] = set()

    def revoke(self, key_id: str) -> None:
        self._ids.add(key_id)

    def unrevoke(self, key_id: str) -> None:
        self._ids.discard(key_id)

    def is_revoked(self, key_id: str) -> bool:
        return key_id in self._ids

    def replace(self, key_ids: Iterable[str]) -> None:
        """Swap in a complete set (a full sync from the cluster store)."""
        self._ids = set(key_ids)

    def __len__(self) -> int:
        return len(self._ids)


REVOCATIONS_KEY = ("api_key_revocations",)


class _Key:
    """One configured key, compiled."""

    __slots__ = ("id", "hex", "application", "scopes", "expires", "v4", "v6", "referers",
                 "_ip_memo", "_referer_memo", "identity")

    def __init__(self, app: Application, key: ApiKey) -> None:
        self.id = key.id
        self.hex = key.hash.removeprefix("sha256:")
        self.application = app.name
        self.scopes = frozenset(app.scopes)
        self.expires: float | None = None
        if key.expires is not None:
            exp = key.expires if key.expires.tzinfo else key.expires.replace(tzinfo=UTC)
            self.expires = exp.timestamp()
        nets = [ipaddress.ip_network(n, strict=False) for n in key.allowed_ips]
        self.v4 = tuple(n for n in nets if n.version == 4)
        self.v6 = tuple(n for n in nets if n.version == 6)
        self.referers = tuple(compile_referer_glob(g) for g in key.allowed_referers)
        # Verdicts are pure functions of (this key's config, the string): memoised, bounded.
        self._ip_memo: dict[str, bool] = {}
        self._referer_memo: dict[str, bool] = {}
        # the same for every request with this key: made once (Identity is frozen)
        self.identity = Identity(method="api_key", application=self.application, scopes=self.scopes,
                                 expires_at=self.expires, credential_id=self.id)

    def ip_allowed(self, client_ip: str) -> bool:
        ok = self._ip_memo.get(client_ip)
        if ok is None:
            ok = self._ip_allowed(client_ip)
            _remember(self._ip_memo, client_ip, ok)
        return ok

    def referer_allowed(self, referer: str) -> bool:
        ok = self._referer_memo.get(referer)
        if ok is None:
            ok = any(p.fullmatch(referer) for p in self.referers)
            if len(referer) <= VERDICT_MEMO_MAX_LENGTH:
                _remember(self._referer_memo, referer, ok)
        return ok

    def _ip_allowed(self, client_ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(client_ip)
        except ValueError:
            return False
        if addr.version == 4:
            return any(addr in n for n in self.v4)
        if any(addr in n for n in self.v6):
            return True
        mapped = addr.ipv4_mapped  # ::ffff:a.b.c.d from a dual-stack listener
        return mapped is not None and any(mapped in n for n in self.v4)


def _remember(memo: dict[str, bool], key: str, ok: bool) -> None:
    if len(memo) >= VERDICT_MEMO_MAX:
        memo.clear()
    memo[key] = ok


def _index(applications: Iterable[Application]) -> dict[str, _Key]:
    return {
        (k := _Key(app, key)).hex: k for app in applications for key in app.api_keys
    }


class ApiKeyAuthenticator:
    """The `api_key` method of one API."""

    name = "api_key"

    def __init__(
        self,
        applications: Iterable[Application],
        *,
        header: str = "X-API-Key",
        query: str | None = "api_key",
        revocations: KeyRevocations | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = _index(applications)
        self._header = header.lower().encode("ascii")
        self._query = query
        self._query_raw = query.encode("latin-1") if query is not None else None
        self._revocations = revocations if revocations is not None else KeyRevocations()
        self._clock = clock
        self._challenge = f'ApiKey header="{header}"'

    def challenge(self) -> str:
        return self._challenge

    def find(self, ctx, req) -> Found | None:
        hname = self._header
        count = 0
        value = b""
        for name, v in req.headers:
            if name == hname:
                count += 1
                value = v
        in_query: list[str | None] | None = None
        want = self._query_raw
        if want is not None and b"?" in req.target:
            query = req.target.partition(b"?")[2]
            if want in query or b"%" in query or b"+" in query:  # else it cannot be there
                in_query = self._query_values(query)
        strip_query = self._query if in_query else None
        if count:
            key = _decode_header_key(value) if count == 1 else None
            return Found(key, strip_headers=(hname,), strip_query=strip_query)
        if in_query:
            return Found(in_query[0] if len(in_query) == 1 else None, strip_query=strip_query)
        return None

    def _query_values(self, query: bytes) -> list[str | None]:
        """Every value of the key parameter (None for one that is not valid percent-encoded UTF-8)."""
        want = self._query_raw
        out: list[str | None] = []
        for part in query.split(b"&"):
            name, eq, value = part.partition(b"=")
            if name != want:
                if b"%" not in name and b"+" not in name:
                    continue
                if unquote_plus(name.decode("latin-1"), encoding="latin-1") != self._query:
                    continue
            try:
                out.append(unquote_plus(value.decode("ascii"), errors="strict") if eq else "")
            except UnicodeError:
                out.append(None)
        return out

    async def verify(self, ctx, req, found: Found) -> Identity:
        key = found.value
        if not key or len(key) > MAX_KEY_LENGTH:
            raise self._invalid("invalid API key", "malformed, empty or ambiguous API key")
        digest = hashlib.sha256(key.encode()).hexdigest()
        entry = self._keys.get(digest)
        if entry is None or not hmac.compare_digest(entry.hex, digest):
            raise self._invalid("invalid API key", "unknown API key")
        if self._revocations.is_revoked(entry.id):
            raise self._invalid("API key revoked", f"API key {entry.id} revoked")
        if entry.expires is not None and self._clock() >= entry.expires:
            raise self._invalid("API key expired", f"API key {entry.id} expired")
        if (entry.v4 or entry.v6) and not entry.ip_allowed(ctx.client_ip):
            raise errors.Forbidden("API key not allowed from this address",
                                   log_detail=f"API key {entry.id} used from {ctx.client_ip}")
        if entry.referers and not _referer_allowed(req.headers, entry):
            raise errors.Forbidden("API key not allowed from this Referer",
                                   log_detail=f"API key {entry.id}: Referer missing or not allowed")
        return entry.identity

    def _invalid(self, detail: str, log_detail: str) -> errors.InvalidCredentials:
        # RFC 9110 §11.6.1: a 401 carries a challenge
        return errors.InvalidCredentials(detail, headers=[("www-authenticate", self._challenge)],
                                         log_detail=log_detail)


def _decode_header_key(value: bytes) -> str | None:
    try:
        return value.strip(b" \t").decode()
    except UnicodeDecodeError:
        return None


def _referer_allowed(headers: list[tuple[bytes, bytes]], entry: _Key) -> bool:
    referer = None
    for name, value in headers:
        if name == b"referer":
            if referer is not None:
                return False  # two Referers: ambiguous, refuse
            referer = value
    return referer is not None and entry.referer_allowed(referer.strip(b" \t").decode("latin-1"))


def build(api: Api, config: Config, shared: SharedState) -> ApiKeyAuthenticator:
    return ApiKeyAuthenticator(
        config.applications,
        header=api.api_key.header,
        query=api.api_key.query,
        revocations=shared.get(REVOCATIONS_KEY, KeyRevocations),
    )

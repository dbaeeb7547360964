"""HTTP Digest authentication (RFC 7616): SHA-256, qop=auth, gateway-signed nonces, nc replay check.

Invariant: a request is accepted only if its nonce carries our HMAC (so we issued it), is at
most NONCE_TTL old, its response equals H(HA1:nonce:nc:cnonce:qop:H(method:uri)) (compared in
constant time) for a `uri` equal to the request target, and its nonce-count is strictly greater
than any accepted before for that nonce. The nonce-count table is a bounded LRU that never
weakens replay protection: evicting a live nonce raises a floor, and a nonce issued at or
before the floor that is no longer in the table is answered as stale (the client retries with
a fresh nonce), never accepted.

Only algorithm=SHA-256 is supported. RFC 7616 allows MD5 for old clients; the issue wants it
only when explicitly enabled, and there is no config key for that yet, so MD5 (and a missing
`algorithm`, which RFC 7616 §3.4 reads as MD5), -sess variants, `userhash=true` and
`username*` are refused.

`users[].digest_ha1` is "sha256:" + hex SHA-256 of "username:realm:password" with realm
"fastgate" (UTF-8, no trailing newline):

    printf '%s' 'alice:fastgate:password' | sha256sum     # -> sha256:<that hex>

Users without `digest_ha1` cannot use Digest (they fail like a wrong password, at the same cost).
Failed responses count against the per-user and per-IP throttle shared with Basic (throttle.py;
429 rate_limited while blocked). A stale nonce with a correct response is 401 with a fresh
challenge carrying `stale=true` (RFC 7616 §3.3). Nonce-count state is per process: with
several workers or nodes a captured request may be replayed once per process within the nonce
lifetime (Digest without TLS is exposed to much worse anyway; use it only over TLS).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from ... import errors
from ...config.model import Api, Config, User
from ...identity import Found, Identity
from ..basic.policy import HmacSha256
from ..shared import SharedState
from ..throttle import LoginThrottle

REALM = "fastgate"
NONCE_TTL = 300.0  # seconds a nonce is accepted; older -> stale=true
NONCE_MAX_SKEW = 30.0  # a nonce dated further in the future than this is refused
NONCE_TABLE_MAX = 100_000  # nonces whose last nonce-count is remembered (LRU)
MAX_HEADER_LENGTH = 4096  # longer Digest credentials are refused without parsing
MAX_USER_LENGTH = 256
MAX_CNONCE_LENGTH = 256

THROTTLE_KEY = ("login_throttle",)  # the same object basic uses
NONCE_TABLE_KEY = ("digest_nonce_counts",)

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"  # RFC 9110 §5.6.2
# auth-param = token BWS "=" BWS ( token / quoted-string )   RFC 9110 §11.2, §5.6.4
# quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE, written as an unrolled loop
# (runs of qdtext matched by one character class) so the regex engine does no per-character
# alternation.
_QDTEXT = r"[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]"
_PAIR = r"\\[\t\x20-\x7e\x80-\xff]"
_PARAM = re.compile(
    rf'[ \t]*({_TOKEN})[ \t]*=[ \t]*(?:"({_QDTEXT}*(?:{_PAIR}{_QDTEXT}*)*)"|({_TOKEN}))[ \t]*'
)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{54}")  # base64url, no padding, of 40 bytes
_NC_RE = re.compile(r"[0-9a-fA-F]{8}")
_RESPONSE_RE = re.compile(r"[0-9a-fA-F]{64}")
_REQUIRED = ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce", "opaque",
             "algorithm")


def parse_auth_params(text: str) -> dict[str, str] | None:
    """`name=value, name="quoted \\"value\\""` -> {lower-case name: value}; None when malformed
    or when a parameter is repeated (RFC 9110 §11.2: each may occur only once)."""
    params: dict[str, str] = {}
    pos, end = 0, len(text)
    while True:
        m = _PARAM.match(text, pos)
        if m is None:
            return None
        name = m[1].lower()
        if name in params:
            return None
        quoted = m[2]
        if quoted is None:
            params[name] = m[3]
        elif "\\" in quoted:
            params[name] = _QUOTED_PAIR.sub(_unescape, quoted)
        else:
            params[name] = quoted
        pos = m.end()
        if pos == end:
            return params
        if text[pos] != ",":
            return None
        while pos < end and text[pos] in " \t,":  # empty list elements are allowed (§5.6.1)
            pos += 1
        if pos == end:
            return params


def _unescape(m: re.Match[str]) -> str:
    return m[1]


class NonceCounts:
    """Highest accepted nonce-count per nonce; bounded LRU with a replay-safe eviction floor."""

    def __init__(self, *, max_entries: int = NONCE_TABLE_MAX, ttl: float = NONCE_TTL) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self.floor = -math.inf  # nonces issued at or before this, unknown here, are stale
        self._seen: OrderedDict[bytes, tuple[int, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def observe(self, nonce_id: bytes, issued: float, nc: int, now: float) -> str:
        """"ok" (recorded), "replay" (nc not above the last accepted) or "evicted" (stale)."""
        seen = self._seen
        last = seen.get(nonce_id)
        if last is None:
            if issued <= self.floor:
                return "evicted"
        elif nc <= last[0]:
            return "replay"
        seen[nonce_id] = (nc, issued)
        seen.move_to_end(nonce_id)
        while len(seen) > self.max_entries:
            _, (_, old_issued) = seen.popitem(last=False)
            if old_issued + self.ttl >= now:  # still live: it must not become replayable
                self.floor = max(self.floor, old_issued)
        return "ok"


class DigestAuthenticator:
    """The `digest` method of one API."""

    name = "digest"

    def __init__(
        self,
        users: Iterable[User],
        *,
        nonce_key: bytes,
        throttle: LoginThrottle | None = None,
        nonces: NonceCounts | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ha1 = {
            u.name: u.digest_ha1.removeprefix("sha256:").lower().encode()
            for u in users if u.digest_ha1
        }
        self._dummy_ha1 = os.urandom(32).hex().encode()
        self._mac = HmacSha256(hmac.digest(nonce_key, b"fastgate digest nonce v1", hashlib.sha256))
        opaque = self._mac.digest(b"opaque")[:12]
        self._opaque = base64.urlsafe_b64encode(opaque).decode()
        self._users = {u.name: u for u in users}
        self._throttle = throttle if throttle is not None else LoginThrottle()
        self._nonces = nonces if nonces is not None else NonceCounts()
        self._clock = clock

    # ------------------------------------------------------------------ nonces
    def new_nonce(self) -> str:
        """base64url(issued seconds, 8 bytes BE || 16 random bytes || HMAC-SHA256[:16])."""
        body = int(self._clock()).to_bytes(8, "big") + os.urandom(16)
        mac = self._mac.digest(body)[:16]
        return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode()

    def _open_nonce(self, nonce: str) -> tuple[float, bytes] | None:
        """(issued, id) of a nonce we signed; None when forged, tampered or malformed."""
        if not _NONCE_RE.fullmatch(nonce):
            return None
        if nonce[-1] not in "AQgw":  # 54th char: 2 data bits, 4 zero bits (canonical only)
            return None
        raw = base64.urlsafe_b64decode(nonce + "==")
        body, mac = raw[:24], raw[24:]
        if not hmac.compare_digest(mac, self._mac.digest(body)[:16]):
            return None
        return float(int.from_bytes(body[:8], "big")), body[8:]

    def challenge(self, stale: bool = False) -> str:
        text = (f'Digest realm="{REALM}", qop="auth", algorithm=SHA-256, '
                f'nonce="{self.new_nonce()}", opaque="{self._opaque}"')
        return text + ", stale=true" if stale else text

    # ------------------------------------------------------------------ requests
    def find(self, ctx, req) -> Found | None:
        rest = None
        count = 0
        for name, value in req.headers:
            if name == b"authorization":
                scheme, _, params = value.strip(b" \t").partition(b" ")
                if scheme.lower() == b"digest":
                    count += 1
                    rest = params
        if not count:
            return None
        return Found(rest if count == 1 else None, strip_headers=(b"authorization",))

    async def verify(self, ctx, req, found: Found) -> Identity:
        raw: bytes | None = found.value
        p = None
        if raw is not None and len(raw) <= MAX_HEADER_LENGTH:
            p = parse_auth_params(raw.decode("latin-1"))
        if p is None or any(k not in p for k in _REQUIRED):
            return self._malformed(ctx, "malformed Digest credentials")
        if "username*" in p or p.get("userhash", "false").lower() != "false":
            return self._malformed(ctx, "Digest username* / userhash not supported")
        if p["realm"] != REALM:
            return self._malformed(ctx, "Digest realm mismatch")
        if p["algorithm"].upper() != "SHA-256":
            return self._malformed(ctx, "Digest algorithm not supported (SHA-256 only)")
        if p["qop"] != "auth":
            return self._malformed(ctx, "Digest qop not supported (auth only)")
        nc_text, response, cnonce = p["nc"], p["response"], p["cnonce"]
        if not _NC_RE.fullmatch(nc_text) or not _RESPONSE_RE.fullmatch(response) \
                or not cnonce or len(cnonce) > MAX_CNONCE_LENGTH:
            return self._malformed(ctx, "malformed Digest nc, response or cnonce")
        nc = int(nc_text, 16)
        if nc == 0:
            return self._malformed(ctx, "Digest nc must start at 1")
        if not hmac.compare_digest(p["opaque"].encode("latin-1"), self._opaque.encode()):
            return self._malformed(ctx, "Digest opaque mismatch")
        uri = p["uri"].encode("latin-1")
        if uri != req.target:  # RFC 7616 §3.4.6: the uri must be the request target
            return self._malformed(ctx, "Digest uri does not match the request target")
        opened = self._open_nonce(p["nonce"])
        if opened is None:
            return self._malformed(ctx, "Digest nonce not issued by this gateway")
        issued, nonce_id = opened
        try:
            name = p["username"].encode("latin-1").decode("utf-8")
        except UnicodeDecodeError:
            name = ""
        if not name or len(name) > MAX_USER_LENGTH:
            return self._malformed(ctx, "malformed Digest username")

        wait = self._throttle.begin(name, ctx.client_ip)
        if wait > 0:
            raise errors.RateLimited("too many failed attempts",
                                     headers=[("retry-after", str(max(1, math.ceil(wait))))],
                                     log_detail="digest: user or client IP throttled")
        ha1 = self._ha1.get(name)
        ha2 = hashlib.sha256(req.method + b":" + uri).hexdigest().encode()
        expected = hashlib.sha256(b":".join((
            ha1 if ha1 is not None else self._dummy_ha1, p["nonce"].encode(), nc_text.encode(),
            cnonce.encode("latin-1"), b"auth", ha2,
        ))).hexdigest()
        if not hmac.compare_digest(expected.encode(), response.lower().encode()) or ha1 is None:
            self._throttle.end(name, ctx.client_ip, False)
            raise self._invalid("bad Digest response")
        # The response is right: what remains is about the nonce, not the password.
        self._throttle.end(name, ctx.client_ip, True)
        now = self._clock()
        if issued > now + NONCE_MAX_SKEW:
            raise self._invalid("Digest nonce dated in the future")
        if now - issued > NONCE_TTL:
            raise self._invalid("stale Digest nonce", stale=True)
        seen = self._nonces.observe(nonce_id, issued, nc, now)
        if seen == "replay":
            raise self._invalid("Digest nonce-count replayed")
        if seen == "evicted":
            raise self._invalid("Digest nonce evicted from the nonce-count table", stale=True)
        user = self._users[name]
        return Identity(method="digest", subject=user.name, roles=frozenset(user.roles),
                        claims=dict(user.claims))

    def _malformed(self, ctx, log_detail: str):
        self._throttle.ip_failure(ctx.client_ip)
        raise self._invalid(log_detail)

    def _invalid(self, log_detail: str, stale: bool = False) -> errors.InvalidCredentials:
        # RFC 9110 §11.6.1: a 401 carries a challenge; RFC 7616 §3.3: stale=true for old nonces
        return errors.InvalidCredentials(
            "stale nonce" if stale else "invalid Digest credentials",
            headers=[("www-authenticate", self.challenge(stale=stale))], log_detail=log_detail)


def build(api: Api, config: Config, shared: SharedState) -> DigestAuthenticator:
    return DigestAuthenticator(
        config.users,
        nonce_key=shared.nonce_key,
        throttle=shared.get(THROTTLE_KEY, LoginThrottle),
        nonces=shared.get(NONCE_TABLE_KEY, NonceCounts),
    )

"""mTLS identity: the client certificate the TLS handshake verified -> `applications[].certificates[]`.

Invariant: this unit never verifies a chain (tls.py did, in the handshake: a bad chain never
gets here); it only maps an already-verified certificate to an application, by SHA-256
fingerprint of the DER certificate (compared normalised: upper-case hex pairs with colons) or
by exact RFC 4514 subject string. A fingerprint match wins over a subject match. A fingerprint
or subject listed for two different applications is ambiguous and matches nothing (it could
not say which application it is; the loader should refuse such a config): a certificate with
an ambiguous fingerprint is refused even if its subject is listed. Unknown is 401
`unauthenticated` (CONTRACT.md: "client certificate required but absent/unknown"). Like an API
key, a certificate authenticates an application: the Identity carries the application's
`scopes` and no subject. challenge() is "": mTLS has no WWW-Authenticate scheme.
"""

from __future__ import annotations

from collections.abc import Iterable

from ... import errors
from ...config.model import Api, Application, Config
from ...identity import Found, Identity
from ..shared import SharedState

_MISSING = object()


def normalise_fingerprint(text: str) -> str:
    """"ab:cd:..." or "abcd..." -> "AB:CD:..."."""
    hexits = text.replace(":", "").upper()
    return ":".join(hexits[i : i + 2] for i in range(0, len(hexits), 2))


class MtlsAuthenticator:
    """The `mtls` method of one API."""

    name = "mtls"

    def __init__(self, applications: Iterable[Application]) -> None:
        by_fingerprint: dict[str, Application | None] = {}
        by_subject: dict[str, Application | None] = {}
        for app in applications:
            for cert in app.certificates:
                if cert.sha256 is not None:
                    _add(by_fingerprint, normalise_fingerprint(cert.sha256), app)
                if cert.subject is not None:
                    _add(by_subject, cert.subject, app)
        self._by_fingerprint = _compile(by_fingerprint)
        self._by_subject = _compile(by_subject)

    def challenge(self) -> str:
        return ""

    def find(self, ctx, req) -> Found | None:
        cert = ctx.peer_cert
        return Found(cert) if cert is not None else None

    async def verify(self, ctx, req, found: Found) -> Identity:
        cert = found.value
        fingerprint = normalise_fingerprint(cert.sha256)
        hit = self._by_fingerprint.get(fingerprint, _MISSING)
        if hit is _MISSING:
            hit = self._by_subject.get(cert.subject, _MISSING)
        if hit is _MISSING or hit is None:  # unknown, or listed for two applications
            raise errors.Unauthenticated("client certificate not recognised",
                                         log_detail=f"mtls: unknown certificate {fingerprint}")
        application, scopes = hit
        return Identity(method="mtls", application=application, scopes=scopes,
                        credential_id=fingerprint)


def _add(index: dict[str, Application | None], key: str, app: Application) -> None:
    if key in index and (index[key] is None or index[key].name != app.name):
        index[key] = None  # listed for two applications: ambiguous
    else:
        index[key] = app


def _compile(index: dict[str, Application | None]) -> dict[str, tuple[str, frozenset[str]] | None]:
    return {k: (a.name, frozenset(a.scopes)) if a is not None else None for k, a in index.items()}


def build(api: Api, config: Config, shared: SharedState) -> MtlsAuthenticator:
    return MtlsAuthenticator(config.applications)

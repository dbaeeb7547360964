"""SSLContext building for listeners and upstreams, and peer-certificate identity.

Invariant: nothing older than TLS 1.2 is ever negotiable, "hardened" means ECDHE key exchange
with AEAD ciphers only, and client certificates are verified in the handshake, never later.
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass

from .config.model import ServerTls, UpstreamTls

# ECDHE + AEAD only (AES-GCM, CHACHA20-POLY1305) for TLS 1.2; TLS 1.3 suites are all AEAD.
HARDENED_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
# "required" is CERT_OPTIONAL in the handshake: a presented certificate is still verified there
# (a bad chain never completes a handshake), but a missing one gets the contract's HTTP 401
# `unauthenticated` answer instead of an opaque TLS alert (pipeline.py enforces it).
_CLIENT_CERTS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_OPTIONAL}


def server_context(tls: ServerTls) -> ssl.SSLContext:
    """Build the listener context; raises ssl.SSLError/OSError on bad material (config reload)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[tls.min_version]
    ctx.maximum_version = ssl.TLSVersion.MAXIMUM_SUPPORTED
    ctx.set_ciphers(HARDENED_CIPHERS if tls.ciphers == "hardened" else tls.ciphers)
    # No compression (CRIME), no renegotiation, server picks the cipher order, fresh ECDH keys.
    ctx.options |= (
        ssl.OP_NO_COMPRESSION
        | ssl.OP_NO_RENEGOTIATION
        | ssl.OP_CIPHER_SERVER_PREFERENCE
        | ssl.OP_SINGLE_ECDH_USE
    )
    ctx.load_cert_chain(str(tls.certificate), str(tls.private_key))
    ctx.verify_mode = _CLIENT_CERTS[tls.client_certificates]
    if tls.client_certificates != "none" and tls.client_ca is not None:
        ctx.load_verify_locations(cafile=str(tls.client_ca))
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def upstream_context(tls: UpstreamTls | None) -> ssl.SSLContext:
    """Client context for https:// upstreams: verification on unless `verify: false`.

    `ca` *replaces* the system trust store (as curl --cacert, Envoy trusted_ca): a backend
    pinned to a private CA must not also accept any publicly trusted certificate for its name.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED + check_hostname
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls is not None and tls.ca is not None:
        ctx.load_verify_locations(cafile=str(tls.ca))
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if tls is not None:
        if tls.certificate is not None and tls.private_key is not None:
            ctx.load_cert_chain(str(tls.certificate), str(tls.private_key))
        if not tls.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """A verified client certificate, as identity policies see it."""

    sha256: str  # "AB:CD:..." fingerprint of the DER certificate
    subject: str  # RFC 4514, most specific RDN first


def peer_certificate(ssl_object: ssl.SSLObject | None) -> PeerCertificate | None:
    """Only called after the handshake verified the chain; None when the client sent none."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    digest = hashlib.sha256(der).hexdigest().upper()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, 64, 2))
    return PeerCertificate(sha256=fingerprint, subject=_subject(der))


def _subject(der: bytes) -> str:
    from cryptography import x509

    return x509.load_der_x509_certificate(der).subject.rfc4514_string()

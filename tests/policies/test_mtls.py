"""mTLS identity (fastgate/policies/mtls/policy.py): a real certificate, fingerprinted and named
the way tls.peer_certificate does it."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fastgate import errors
from fastgate.config.model import Api, Application, ClientCertificate, Config, Upstream
from fastgate.context import RequestContext
from fastgate.policies.mtls.policy import MtlsAuthenticator, build, normalise_fingerprint
from fastgate.policies.shared import SharedState
from fastgate.tls import PeerCertificate


def make_cert(cn: str) -> PeerCertificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    digest = hashlib.sha256(der).hexdigest().upper()
    return PeerCertificate(sha256=":".join(digest[i:i + 2] for i in range(0, 64, 2)),
                           subject=cert.subject.rfc4514_string())


BANK = make_cert("partner-bank")
SHOP = make_cert("shop")
STRANGER = make_cert("stranger")


class Req:
    method = b"GET"
    target = b"/"
    headers: list = []


def ctx(cert=None) -> RequestContext:
    return RequestContext("req-1", "203.0.113.7", "public", "https", cert)


def verify(auth, cert):
    found = auth.find(ctx(cert), Req())
    assert found is not None and found.value is cert
    assert found.strip_headers == () and found.strip_query is None
    return asyncio.run(auth.verify(ctx(cert), Req(), found))


APPS = [
    Application(name="bank", scopes=("payments:write",),
                certificates=(ClientCertificate(sha256=BANK.sha256.lower()),)),  # any case
    Application(name="shop", certificates=(ClientCertificate(subject=SHOP.subject),)),
]


def test_by_fingerprint():
    ident = verify(MtlsAuthenticator(APPS), BANK)
    assert ident.method == "mtls" and ident.application == "bank" and ident.subject is None
    assert ident.credential_id == BANK.sha256
    assert ident.scopes == frozenset({"payments:write"})


def test_by_subject():
    assert SHOP.subject == "CN=shop,O=Example"  # RFC 4514: most specific RDN first
    ident = verify(MtlsAuthenticator(APPS), SHOP)
    assert ident.application == "shop" and ident.credential_id == SHOP.sha256


def test_subject_match_is_exact():
    near = PeerCertificate(sha256=STRANGER.sha256, subject="CN=shop,O=Example,C=US")
    with pytest.raises(errors.Unauthenticated):
        verify(MtlsAuthenticator(APPS), near)


def test_unknown_certificate_is_401_unauthenticated():
    with pytest.raises(errors.Unauthenticated) as e:
        verify(MtlsAuthenticator(APPS), STRANGER)
    assert e.value.status == 401 and e.value.code == "unauthenticated"
    assert e.value.detail == "client certificate not recognised"


def test_no_certificate_is_not_this_method():
    assert MtlsAuthenticator(APPS).find(ctx(None), Req()) is None
    assert MtlsAuthenticator(APPS).challenge() == ""


def test_certificate_listed_for_two_applications_matches_nothing():
    apps = APPS + [Application(name="evil", certificates=(ClientCertificate(sha256=BANK.sha256),
                                                          ClientCertificate(subject=SHOP.subject)))]
    auth = MtlsAuthenticator(apps)
    for cert in (BANK, SHOP):
        with pytest.raises(errors.Unauthenticated):
            verify(auth, cert)
    # an ambiguous fingerprint is not rescued by an unambiguous subject
    both = [Application(name="a", certificates=(ClientCertificate(sha256=BANK.sha256),)),
            Application(name="b", certificates=(ClientCertificate(sha256=BANK.sha256),)),
            Application(name="c", certificates=(ClientCertificate(subject=BANK.subject),))]
    with pytest.raises(errors.Unauthenticated):
        verify(MtlsAuthenticator(both), BANK)


def test_same_application_twice_is_fine():
    twice = [Application(name="bank", certificates=(ClientCertificate(sha256=BANK.sha256),
                                                    ClientCertificate(sha256=BANK.sha256.lower())))]
    assert verify(MtlsAuthenticator(twice), BANK).application == "bank"


def test_normalise_fingerprint():
    assert normalise_fingerprint("ab:cd:ef") == "AB:CD:EF"
    assert normalise_fingerprint("abcdef") == "AB:CD:EF"


def test_build():
    api = Api(name="p", base_path="/p", upstream=Upstream(urls=()), authentication=("mtls",))
    config = Config(source=Path("gw.yaml"), listeners=(), apis=(api,), applications=tuple(APPS))
    assert verify(build(api, config, SharedState()), SHOP).application == "shop"

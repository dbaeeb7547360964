"""Development TLS material made with `cryptography`: a CA, a server cert, a client CA and cert.

Invariant: for demos and tests only, written under a directory the caller names (never
committed); ECDSA P-256 keys, short validity, SANs for localhost and 127.0.0.1.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 30


def _name(cn: str, org: str = "fastgate dev") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn)).issuer_name(_name(cn))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_leaf(ca_key, ca_cert, cn: str, *, server: bool, org: str = "fastgate dev",
              hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org)).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    if server:
        sans: list[x509.GeneralName] = []
        for h in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def write_key(path: Path, key) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def write_cert(path: Path, *certs: x509.Certificate) -> None:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))


def make_dev_pki(directory: Path) -> dict[str, Path]:
    """ca.crt, server.crt/.key (leaf + chain), client-ca.crt, client.crt/.key, other-client.* (untrusted CA)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = make_ca("fastgate dev CA")
    srv_key, srv = make_leaf(ca_key, ca, "localhost", server=True)
    cca_key, cca = make_ca("fastgate dev client CA")
    cli_key, cli = make_leaf(cca_key, cca, "partner-app", server=False, org="Example")
    rogue_key, rogue_ca = make_ca("rogue CA")
    oth_key, oth = make_leaf(rogue_key, rogue_ca, "intruder", server=False)
    paths = {name: directory / name for name in (
        "ca.crt", "server.crt", "server.key", "client-ca.crt", "client.crt", "client.key",
        "other-client.crt", "other-client.key")}
    write_cert(paths["ca.crt"], ca)
    write_cert(paths["server.crt"], srv, ca)
    write_key(paths["server.key"], srv_key)
    write_cert(paths["client-ca.crt"], cca)
    write_cert(paths["client.crt"], cli)
    write_key(paths["client.key"], cli_key)
    write_cert(paths["other-client.crt"], oth)
    write_key(paths["other-client.key"], oth_key)
    return paths

"""The TLS front door, end to end against a real gateway process: protocol versions, the hardened
cipher policy, client certificates (optional / required / untrusted), ALPN, the handshake-failure
metric, and a plain listener beside a TLS one.

The gateway closes a refused handshake without an alert, so a client only sees EOF; each refusal
is therefore also checked on the server side through the `reason` label of
`fastgate_tls_handshake_failures_total`, which proves the server refused and why.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import time
import urllib.request
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import Gateway, client_context, connect, exchange, get, read_response
from tests.integration.conftest import config_yaml

REQ = b"GET /echo/v1/tls HTTP/1.1\r\nHost: localhost\r\n\r\n"
TLS12 = ssl.TLSVersion.TLSv1_2
TLS13 = ssl.TLSVersion.TLSv1_3


# ---------------------------------------------------------------- helpers
def failures(gw: Gateway, listener: str = "public") -> dict[str, float]:
    """reason -> count of `fastgate_tls_handshake_failures_total` for one listener."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{gw.admin_port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "fastgate_tls_handshake_failures_total" and s.labels["listener"] == listener:
                out[s.labels["reason"]] = s.value
    return out


def wait_failure(gw: Gateway, before: dict[str, float], reason: str | None = None,
                 timeout: float = 3.0) -> dict[str, float]:
    """Wait until some (or the named) reason counted one more refused handshake; return the deltas."""
    deadline = time.monotonic() + timeout
    while True:
        now = failures(gw)
        delta = {k: v - before.get(k, 0.0) for k, v in now.items() if v > before.get(k, 0.0)}
        if (reason is None and delta) or (reason is not None and reason in delta):
            return delta
        if time.monotonic() > deadline:
            raise AssertionError(f"no handshake failure counted (reason={reason!r}); metrics={now!r}")
        time.sleep(0.05)


def refused(port: int, ctx: ssl.SSLContext) -> bool:
    """True when no HTTP answer is possible: the handshake fails, or (TLS 1.3, where the client's
    certificate is judged after the client already finished) the first read finds the
    connection closed or an alert."""
    try:
        s = connect(port, ctx, timeout=5)
    except (ssl.SSLError, ConnectionError):
        return True
    with s:
        try:
            s.sendall(REQ)
            data = s.recv(65536)
        except (ssl.SSLError, ConnectionError):
            return True
        return data == b""


def handshake(port: int, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    return connect(port, ctx, timeout=5)


def ask(s: ssl.SSLSocket, path: str = "/echo/v1/tls"):
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    return read_response(s)


def tls_block(pki: dict[str, Path], extra: str = "", cert: Path | None = None,
              key: Path | None = None) -> str:
    text = f"""
      certificate: {cert or pki['server.crt']}
      private_key: {key or pki['server.key']}"""
    for line in extra.strip().splitlines():
        text += "\n      " + line.strip()
    return text


def legacy_client(ca: Path, max_version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that really offers TLS 1.0/1.1: SECLEVEL=0 so the local OpenSSL policy does not
    refuse before the server had its say."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = client_context(ca, ciphers="DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = max_version
    return ctx


def _local_legacy_possible(pki: dict[str, Path], version: ssl.TLSVersion) -> bool:
    """Can this OpenSSL negotiate `version` at all? An in-memory handshake against a permissive
    server context answers it without any gateway."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            srv.set_ciphers("DEFAULT:@SECLEVEL=0")
            srv.minimum_version = ssl.TLSVersion.TLSv1
            srv.maximum_version = version
            srv.load_cert_chain(str(pki["server.crt"]), str(pki["server.key"]))
            cli = legacy_client(pki["ca.crt"], version)
        except (ssl.SSLError, ValueError):
            return False
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    ends = [cli.wrap_bio(c_in, c_out, server_hostname="localhost"),
            srv.wrap_bio(s_in, s_out, server_side=True)]
    done = [False, False]
    for _ in range(10):
        for i, end in enumerate(ends):
            if not done[i]:
                try:
                    end.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError:
                    return False
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done):
            return ends[0].version() in ("TLSv1", "TLSv1.1")
    return False


def rsa_self_signed(directory: Path) -> tuple[Path, Path]:
    """An RSA server certificate, so RSA key exchange (no ECDHE) is something the server *could*
    do: refusing it is then the cipher policy, not a key-type mismatch."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    crt, k = directory / "rsa.crt", directory / "rsa.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    k.chmod(0o600)
    return crt, k


# ---------------------------------------------------------------- gateways (one per TLS setup)
def _start(text: str, tmp_path_factory) -> Gateway:
    return Gateway(text, tmp_path_factory.mktemp("gw"))


@pytest.fixture(scope="module")
def gw(pki, echo, tmp_path_factory):
    """Defaults (min 1.2, hardened) on `public`, plus a plain-HTTP `internal` listener."""
    listeners = f"""
  - name: public
    address: 127.0.0.1:0
    tls:{tls_block(pki)}
  - name: internal
    address: 127.0.0.1:0
    tls: false
"""
    g = _start(config_yaml(pki, echo.port, listeners=listeners), tmp_path_factory)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def gw13(pki, echo, tmp_path_factory):
    g = _start(config_yaml(pki, echo.port, tls=tls_block(pki, 'min_version: "1.3"')), tmp_path_factory)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def rsa_pair(tmp_path_factory):
    return rsa_self_signed(tmp_path_factory.mktemp("rsa"))


@pytest.fixture(scope="module")
def gw_rsa(pki, echo, rsa_pair, tmp_path_factory):
    crt, key = rsa_pair
    g = _start(config_yaml(pki, echo.port, tls=tls_block(pki, cert=crt, key=key)), tmp_path_factory)
    yield g
    g.stop()


EXPLICIT = "ECDHE-RSA-AES256-GCM-SHA384:AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA"


@pytest.fixture(scope="module")
def gw_rsa_explicit(pki, echo, rsa_pair, tmp_path_factory):
    crt, key = rsa_pair
    g = _start(config_yaml(pki, echo.port, tls=tls_block(pki, f'ciphers: "{EXPLICIT}"', crt, key)),
               tmp_path_factory)
    yield g
    g.stop()


def _mtls_gateway(mode: str, pki, echo, tmp_path_factory):
    tls = tls_block(pki, f"client_certificates: {mode}\nclient_ca: {pki['client-ca.crt']}")
    return _start(config_yaml(pki, echo.port, tls=tls), tmp_path_factory)


@pytest.fixture(scope="module")
def gw_optional(pki, echo, tmp_path_factory):
    g = _mtls_gateway("optional", pki, echo, tmp_path_factory)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def gw_required(pki, echo, tmp_path_factory):
    g = _mtls_gateway("required", pki, echo, tmp_path_factory)
    yield g
    g.stop()


# ---------------------------------------------------------------- versions
@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_tls10_and_tls11_refused(gw, pki, version):
    max_version = getattr(ssl.TLSVersion, version)
    if not _local_legacy_possible(pki, max_version):
        pytest.skip(f"the local OpenSSL cannot negotiate {version} even with SECLEVEL=0")
    before = failures(gw)
    assert refused(gw.ports["public"], legacy_client(pki["ca.crt"], max_version))
    delta = wait_failure(gw, before)
    assert "unsupported_protocol" in delta, delta  # the server refused, for the version


@pytest.mark.parametrize("version,name", [(TLS12, "TLSv1.2"), (TLS13, "TLSv1.3")])
def test_tls12_and_tls13_accepted_by_default(gw, pki, version, name):
    ctx = client_context(pki["ca.crt"], min_version=version, max_version=version)
    with handshake(gw.ports["public"], ctx) as s:
        assert s.version() == name
        assert ask(s).status == 200


def test_default_client_gets_tls13(gw, tls_client):
    with handshake(gw.ports["public"], tls_client) as s:
        assert s.version() == "TLSv1.3"


def test_min_version_13_refuses_tls12_client(gw13, pki):
    before = failures(gw13)
    assert refused(gw13.ports["public"], client_context(pki["ca.crt"], max_version=TLS12))
    assert "unsupported_protocol" in wait_failure(gw13, before)
    with handshake(gw13.ports["public"], client_context(pki["ca.crt"])) as s:
        assert s.version() == "TLSv1.3"
        assert ask(s).status == 200


# ---------------------------------------------------------------- ciphers
@pytest.mark.parametrize("ciphers", [
    "ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA:AES128-SHA",  # CBC only (ECDSA one would fit the key)
    "AES128-GCM-SHA256",  # AEAD but RSA key exchange: no forward secrecy
])
def test_hardened_refuses_cbc_and_static_rsa(gw, pki, ciphers):
    before = failures(gw)
    ctx = client_context(pki["ca.crt"], max_version=TLS12, ciphers=ciphers + ":@SECLEVEL=0")
    assert refused(gw.ports["public"], ctx)
    assert "no_shared_cipher" in wait_failure(gw, before)


def test_hardened_accepts_ecdhe_ecdsa_gcm(gw, pki):
    ctx = client_context(pki["ca.crt"], max_version=TLS12, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
    with handshake(gw.ports["public"], ctx) as s:
        assert s.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"
        assert ask(s).status == 200


def test_default_tls12_negotiation_is_ecdhe_aead_without_compression(gw, pki):
    ctx = client_context(pki["ca.crt"], max_version=TLS12)
    with handshake(gw.ports["public"], ctx) as s:
        name, proto, _bits = s.cipher()
        assert proto == "TLSv1.2"
        assert name.startswith("ECDHE-") and ("GCM" in name or "CHACHA20-POLY1305" in name), name
        assert s.compression() is None


def test_tls13_has_no_compression(gw, tls_client):
    with handshake(gw.ports["public"], tls_client) as s:
        assert s.compression() is None
        assert s.cipher()[0].startswith("TLS_")


@pytest.mark.parametrize("ciphers,accepted", [
    ("AES128-GCM-SHA256", False),
    ("ECDHE-RSA-AES128-SHA", False),
    ("ECDHE-RSA-AES128-GCM-SHA256", True),
])
def test_hardened_with_rsa_key(gw_rsa, ciphers, accepted):
    """With an RSA key the server could do static RSA or CBC: only the policy stops it."""
    ctx = client_context(None, max_version=TLS12, ciphers=ciphers + ":@SECLEVEL=0")
    port = gw_rsa.ports["public"]
    if accepted:
        with handshake(port, ctx) as s:
            assert s.cipher()[0] == ciphers
            assert ask(s).status == 200
    else:
        before = failures(gw_rsa)
        assert refused(port, ctx)
        assert "no_shared_cipher" in wait_failure(gw_rsa, before)


@pytest.mark.parametrize("ciphers,expected", [
    (None, "ECDHE-RSA-AES256-GCM-SHA384"),  # server order: the string's first entry
    ("AES128-GCM-SHA256", "AES128-GCM-SHA256"),  # the same clients hardened refuses ...
    ("ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES128-SHA"),  # ... are let in by this explicit string
    ("ECDHE-RSA-AES128-GCM-SHA256", None),  # and a hardened suite it leaves out is refused
])
def test_explicit_cipher_string_is_honoured(gw_rsa_explicit, ciphers, expected):
    ctx = client_context(None, max_version=TLS12,
                         ciphers=None if ciphers is None else ciphers + ":@SECLEVEL=0")
    port = gw_rsa_explicit.ports["public"]
    if expected is None:
        before = failures(gw_rsa_explicit)
        assert refused(port, ctx)
        assert "no_shared_cipher" in wait_failure(gw_rsa_explicit, before)
        return
    with handshake(port, ctx) as s:
        assert s.cipher()[0] == expected
        assert ask(s).status == 200


def test_alpn_never_selects_h2(gw, pki):
    ctx = client_context(pki["ca.crt"])
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with handshake(gw.ports["public"], ctx) as s:
        assert s.selected_alpn_protocol() == "http/1.1"
    ctx = client_context(pki["ca.crt"])
    ctx.set_alpn_protocols(["h2"])
    try:
        s = handshake(gw.ports["public"], ctx)
    except ssl.SSLError:
        return  # refusing with no_application_protocol is fine too
    with s:
        assert s.selected_alpn_protocol() is None
        assert ask(s).status == 200


# ---------------------------------------------------------------- client certificates
def _cert_ctx(pki, which: str | None, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    cert = key = None
    if which is not None:
        cert, key = pki[f"{which}.crt"], pki[f"{which}.key"]
    return client_context(pki["ca.crt"], cert, key, max_version=version)


VERSIONS = pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls12", "tls13"])


@VERSIONS
def test_optional_client_cert_absent_is_fine(gw_optional, pki, version):
    with handshake(gw_optional.ports["public"], _cert_ctx(pki, None, version)) as s:
        assert ask(s).status == 200


@VERSIONS
def test_optional_client_cert_good_is_fine(gw_optional, pki, version):
    with handshake(gw_optional.ports["public"], _cert_ctx(pki, "client", version)) as s:
        assert ask(s).status == 200


@VERSIONS
def test_optional_client_cert_untrusted_is_refused_in_handshake(gw_optional, pki, version):
    before = failures(gw_optional)
    assert refused(gw_optional.ports["public"], _cert_ctx(pki, "other-client", version))
    assert "certificate_verify_failed" in wait_failure(gw_optional, before)


@VERSIONS
def test_required_client_cert_absent_is_401(gw_required, pki, version):
    r = exchange(gw_required.ports["public"], REQ, _cert_ctx(pki, None, version))
    assert r.status == 401
    assert r.header("content-type") == "application/problem+json"
    doc = r.json()
    assert doc["code"] == "unauthenticated" and doc["status"] == 401
    assert doc["request_id"] == r.header("x-request-id")


def test_required_client_cert_absent_never_reaches_upstream(gw_required, pki, echo):
    r = get(gw_required.ports["public"], "/echo/v1/nocert-marker", _cert_ctx(pki, None))
    assert r.status == 401
    time.sleep(0.1)
    assert not echo.seen("/nocert-marker")


@VERSIONS
def test_required_client_cert_good_is_200(gw_required, pki, version):
    with handshake(gw_required.ports["public"], _cert_ctx(pki, "client", version)) as s:
        r = ask(s)
        assert r.status == 200
        r = ask(s)  # and stays usable on keep-alive
        assert r.status == 200


@VERSIONS
def test_required_client_cert_untrusted_is_refused_in_handshake(gw_required, pki, version):
    before = failures(gw_required)
    assert refused(gw_required.ports["public"], _cert_ctx(pki, "other-client", version))
    assert "certificate_verify_failed" in wait_failure(gw_required, before)


def test_server_cert_is_not_a_client_cert(gw_required, pki):
    """A certificate from the *server* CA (not the client CA) is not trusted for clients."""
    ctx = client_context(pki["ca.crt"], pki["server.crt"], pki["server.key"])
    before = failures(gw_required)
    assert refused(gw_required.ports["public"], ctx)
    assert wait_failure(gw_required, before)


# ---------------------------------------------------------------- metrics and listeners
def test_handshake_failure_metric_counts_public_listener(gw, pki):
    before = failures(gw)
    for _ in range(2):
        assert refused(gw.ports["public"], client_context(pki["ca.crt"], max_version=TLS12,
                                                          ciphers="AES128-SHA:@SECLEVEL=0"))
    deadline = time.monotonic() + 3
    while failures(gw).get("no_shared_cipher", 0) - before.get("no_shared_cipher", 0) < 2:
        assert time.monotonic() < deadline, failures(gw)
        time.sleep(0.05)
    assert failures(gw, "internal") == {}
    # a handshake cut by the client (TCP connect, then close) costs nothing but itself
    socket.create_connection(("127.0.0.1", gw.ports["public"])).close()
    assert get(gw.ports["public"], "/echo/v1/still-up", client_context(pki["ca.crt"])).status == 200


def test_plain_listener_beside_tls_listener(gw, tls_client, echo):
    r = get(gw.ports["internal"], "/echo/v1/plain-marker")
    assert r.status == 200
    sent = dict((n, v) for n, v in r.json()["headers"])
    assert sent["x-forwarded-proto"] == "http"
    r = get(gw.ports["public"], "/echo/v1/tls-marker", tls_client)
    assert r.status == 200
    sent = dict((n, v) for n, v in r.json()["headers"])
    assert sent["x-forwarded-proto"] == "https"


def test_plaintext_on_tls_listener_gets_no_http(gw):
    with socket.create_connection(("127.0.0.1", gw.ports["public"]), timeout=5) as s:
        s.sendall(b"GET /echo/v1/x HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionError:
            pass
        assert not data.startswith(b"HTTP/")


def test_tls_on_plain_listener_fails(gw, tls_client):
    """A ClientHello is not HTTP: no handshake ever completes on a plain listener (the gateway
    either answers 400 in plain text or waits for a request line that never comes)."""
    raw = socket.create_connection(("127.0.0.1", gw.ports["internal"]), timeout=1)
    with pytest.raises((ssl.SSLError, ConnectionError, TimeoutError)):
        tls_client.wrap_socket(raw, server_hostname="localhost")
    raw.close()

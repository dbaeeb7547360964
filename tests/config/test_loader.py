"""load_config: exact "FILE:LINE: key.path: message" problems, and the objects a valid file builds.

Every test writes its YAML to gateway.yaml in a fresh tmp folder and loads it by that relative
name, so FILE in the messages is exactly "gateway.yaml".
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import textwrap
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from fastgate.config import (
    ConfigError,
    format_duration,
    format_size,
    load_config,
    parse_duration,
    parse_size,
)
from fastgate.config.model import (
    DEFAULT_REDACT_HEADERS,
    Admin,
    ApiKey,
    ClientCertificate,
    Limits,
    Subscription,
    Tier,
    UpstreamUrl,
    Window,
)

DATA = Path(__file__).parent / "data"
REFERENCE = Path(__file__).resolve().parents[3] / "shared/spec/gateway.reference.yaml"
BASE = """\
listeners:
  - name: main
    address: 127.0.0.1:0
"""
CERT_FILES = ("server", "client-ca", "backend-ca", "gw")
HASH_A, HASH_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def write_cert(folder: Path, name: str) -> None:
    """A self-signed EC certificate and key as <name>.crt / <name>.key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path, as the working directory, with certs/ holding every cert the tests name."""
    monkeypatch.chdir(tmp_path)
    for name in CERT_FILES:
        write_cert(tmp_path / "certs", name)
    return tmp_path


def load(text: str, base: str = BASE):
    Path("gateway.yaml").write_text(base + textwrap.dedent(text))
    return load_config("gateway.yaml")


def problems(text: str, base: str = BASE) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(text, base)
    return caught.value.problems


# ------------------------------------------------------------------------ a full, valid file


def test_demo_config_builds_the_right_objects(here: Path) -> None:
    shutil.copy(DATA / "demo.yaml", here / "gateway.yaml")
    cfg = load_config("gateway.yaml")
    assert cfg.source == here / "gateway.yaml"

    public, internal = cfg.listeners
    assert (public.name, public.host, public.port) == ("public", "0.0.0.0", 8443)
    assert public.tls.certificate == here / "certs/server.crt"
    assert public.tls.private_key == here / "certs/server.key"
    assert public.tls.min_version == "1.3"
    assert public.tls.ciphers == "ECDHE+AESGCM:ECDHE+CHACHA20"
    assert public.tls.client_certificates == "optional"
    assert public.tls.client_ca == here / "certs/client-ca.crt"
    assert (internal.host, internal.port, internal.tls) == ("::1", 8080, None)

    assert cfg.limits == Limits(4096, 32768, 50, 1 << 20, 5.0, 15.0, 120.0, 2000, 10.0)
    assert cfg.workers == 2
    assert cfg.http.fast_path is False
    assert cfg.admin == Admin("127.0.0.1", 9902)
    assert cfg.logging.access_log == str(here / "logs/access.log")
    assert cfg.logging.level == "warning"
    assert cfg.logging.redact_headers == ("authorization", "x-secret")
    assert cfg.redis.urls == ("redis://10.0.0.1:6379/0", "rediss://10.0.0.2:6380/0")
    assert (cfg.redis.timeout, cfg.redis.on_unavailable) == (0.1, "deny")
    assert cfg.secrets.master_key_env == "DEMO_MASTER_KEY"

    (alice,) = cfg.users
    assert alice.name == "alice" and alice.password_hash.startswith("scrypt$")
    assert alice.roles == ("teacher",)
    assert alice.claims == {"email": "alice@example.com", "email_verified": True}

    (app,) = cfg.applications
    assert (app.name, app.tier, app.client_id) == ("mobile-app", "gold", "mobile-app")
    assert app.redirect_uris == ("https://app.example.com/cb",)
    assert app.grant_types == ("authorization_code", "refresh_token")
    assert app.scopes == ("orders:read", "orders:write")
    assert app.api_keys == (
        ApiKey(
            id="k1",
            hash="sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            allowed_ips=("10.0.0.0/8", "192.0.2.7", "2001:db8::/32"),
            allowed_referers=("https://*.example.com/*",),
            expires=dt.datetime(2099, 1, 1, tzinfo=dt.UTC),
        ),
    )
    assert app.certificates == (
        ClientCertificate(sha256=":".join(["AB", "CD", "EF", "01", "23", "45", "67", "89"] * 4)),
        ClientCertificate(subject="CN=partner-bank,O=Example"),
    )
    assert app.subscriptions == (Subscription(api="orders", tier="silver"),)

    assert cfg.tiers == {
        "gold": Tier("gold", 5000, 60.0, burst=Window(100, 1.0)),
        "silver": Tier("silver", 2000, 60.0),
        "bronze": Tier("bronze", 100, 60.0, bandwidth=10 << 20),
        "unlimited": Tier("unlimited"),
    }

    orders, root = cfg.apis
    assert (orders.name, orders.base_path, orders.mode) == ("orders", "/orders/v1", "monitor")
    assert orders.upstream.urls == (
        UpstreamUrl("http", "127.0.0.1", 9000),
        UpstreamUrl("https", "backend.example.com", 443),
        UpstreamUrl("http", "::1", 9001),
    )
    assert orders.upstream.urls[2].authority == "[::1]:9001"
    assert orders.upstream.path == "/api"
    assert (orders.upstream.timeout, orders.upstream.connect_timeout) == (5.0, 0.25)
    assert orders.upstream.tls.verify is True
    assert orders.upstream.tls.ca == here / "certs/backend-ca.crt"
    assert orders.upstream.tls.certificate == here / "certs/gw.crt"
    assert orders.upstream.tls.private_key == here / "certs/gw.key"
    assert orders.upstream.max_concurrency == 100
    assert orders.authentication == ()
    assert orders.max_body_bytes == 65536
    assert orders.rate_limits.anonymous == Window(60, 60.0)
    assert (root.base_path, root.upstream.path, root.upstream.timeout) == ("/", "/", 30.0)
    assert root.upstream.tls is None and root.max_body_bytes is None

    assert cfg.lines["listeners[0].tls.ciphers"] == 11
    assert cfg.lines["apis[0]"] == 89
    assert cfg.lines["apis[0].mode"] == 98
    assert cfg.lines["tiers.gold.burst.per"] == 79


def test_minimal_config_gets_the_defaults(here: Path) -> None:
    cfg = load("")
    assert cfg.listeners[0].tls is None
    assert cfg.limits == Limits()
    assert cfg.admin == Admin()
    assert cfg.logging.redact_headers == DEFAULT_REDACT_HEADERS
    assert (cfg.redis, cfg.apis, cfg.users, cfg.applications, cfg.tiers) == (None, (), (), (), {})
    assert cfg.workers == 1


def test_workers_auto_is_the_cpu_count(here: Path) -> None:
    assert load("workers: auto\n").workers == (os.cpu_count() or 1)


@pytest.mark.parametrize("value", ["off", "false", "'off'"])
def test_admin_off_disables_it(here: Path, value: str) -> None:
    assert load(f"admin: {value}\n").admin is None


@pytest.mark.parametrize("value", ["false", "off", "'off'", "", "~"])
def test_tls_off_or_empty_means_plain_http(here: Path, value: str) -> None:
    base = f"listeners:\n  - name: a\n    address: 127.0.0.1:0\n    tls: {value}\n"
    assert load("", base).listeners[0].tls is None


@pytest.mark.parametrize("value, expected", [("1.2", "1.2"), ('"1.2"', "1.2"), ("1.3", "1.3")])
def test_min_version_float_or_string(here: Path, value: str, expected: str) -> None:
    base = f"""\
listeners:
  - name: a
    address: 127.0.0.1:0
    tls: {{certificate: certs/server.crt, private_key: certs/server.key, min_version: {value}}}
"""
    assert load("", base).listeners[0].tls.min_version == expected


@pytest.mark.parametrize("value", ["off", "false", '"off"', "none"])
def test_client_certificates_off_means_none(here: Path, value: str) -> None:
    base = f"""\
listeners:
  - name: a
    address: 127.0.0.1:0
    tls: {{certificate: certs/server.crt, private_key: certs/server.key, client_certificates: {value}}}
"""
    assert load("", base).listeners[0].tls.client_certificates == "none"


def test_relative_paths_resolve_against_the_config_folder(here: Path, monkeypatch) -> None:
    (here / "conf").mkdir()
    write_cert(here / "conf/tls", "server")
    (here / "conf/gateway.yaml").write_text(
        "listeners:\n  - name: a\n    address: 127.0.0.1:0\n"
        "    tls: {certificate: tls/server.crt, private_key: ../conf/tls/server.key}\n"
        f"logging: {{access_log: ../logs/a.log}}\n"
        f"apis:\n  - {{name: x, base_path: /x, upstream: {{urls: ['http://h'], tls: {{ca: {here}/certs/gw.crt}}}}}}\n"
    )
    monkeypatch.chdir(here / "certs")  # the working directory must not matter
    cfg = load_config(here / "conf/gateway.yaml")
    assert cfg.listeners[0].tls.certificate == here / "conf/tls/server.crt"
    assert cfg.listeners[0].tls.private_key == here / "conf/tls/server.key"
    assert cfg.logging.access_log == str(here / "logs/a.log")
    assert cfg.apis[0].upstream.tls.ca == here / "certs/gw.crt"  # absolute stays as written


# ------------------------------------------------------------------------ exact messages

CASES = [
    # unknown keys
    ("limits:\n  max_hedaers: 3\n", ["gateway.yaml:5: limits.max_hedaers: unknown key"]),
    ("lisenters: []\n", ["gateway.yaml:4: lisenters: unknown key"]),
    (
        "apis:\n  - name: a\n    base_path: /a\n    upstream:\n      urls: [http://h]\n      retries: 3\n",
        ["gateway.yaml:9: apis[0].upstream.retries: unknown key"],
    ),
    (
        "token_service: {enabled: false, ttl: 1m}\n",
        ["gateway.yaml:4: token_service.ttl: unknown key"],
    ),
    (
        "limits: {a: 1}\nlimits: {}\n",
        ["gateway.yaml:4: limits.a: unknown key", "gateway.yaml:5: limits: duplicate key"],
    ),
    # required
    ("apis:\n  - name: a\n    base_path: /a\n", ["gateway.yaml:5: apis[0].upstream: required"]),
    (
        "apis:\n  - {name: a, base_path: /a, upstream: {path: /}}\n",
        ["gateway.yaml:5: apis[0].upstream.urls: required"],
    ),
    (
        "apis:\n  - name: ~\n    base_path: /a\n    upstream: {urls: [http://h]}\n",
        ["gateway.yaml:5: apis[0].name: required"],
    ),
    ("redis: {timeout: 1s}\n", ["gateway.yaml:4: redis.url: required"]),
    ("users:\n  - name: bob\n", ["gateway.yaml:5: users[0].password_hash: required"]),
    # types
    ("http: {fast_path: 1}\n", ["gateway.yaml:4: http.fast_path: expected a boolean"]),
    ("limits: {max_headers: many}\n", ["gateway.yaml:4: limits.max_headers: expected an integer"]),
    ("limits: {max_headers: 1.5}\n", ["gateway.yaml:4: limits.max_headers: expected an integer"]),
    (
        "limits: {max_connections: true}\n",
        ["gateway.yaml:4: limits.max_connections: expected an integer"],
    ),
    ("limits: [1]\n", ["gateway.yaml:4: limits: expected a mapping"]),
    ("apis: {name: a}\n", ["gateway.yaml:4: apis: expected a list"]),
    (
        "logging: {level: 3}\n",
        ["gateway.yaml:4: logging.level: expected one of: debug, info, warning, error"],
    ),
    (
        "logging: {redact_headers: cookie}\n",
        ["gateway.yaml:4: logging.redact_headers: expected a list"],
    ),
    (
        "logging: {redact_headers: [cookie, 1]}\n",
        ["gateway.yaml:4: logging.redact_headers[1]: expected a string"],
    ),
    (
        "secrets: {master_key_env: ''}\n",
        ["gateway.yaml:4: secrets.master_key_env: must not be empty"],
    ),
    (
        "secrets: {master_key_env: A-B}\n",
        ["gateway.yaml:4: secrets.master_key_env: expected an environment variable name"],
    ),
    ("workers: many\n", ['gateway.yaml:4: workers: expected an integer or "auto"']),
    # units and ranges
    (
        "limits: {header_timeout: 5x}\n",
        ['gateway.yaml:4: limits.header_timeout: expected a duration like "1m"'],
    ),
    (
        "limits: {header_timeout: -1}\n",
        ['gateway.yaml:4: limits.header_timeout: expected a duration like "1m"'],
    ),
    ("limits: {header_timeout: 0}\n", ["gateway.yaml:4: limits.header_timeout: must be > 0"]),
    (
        "limits: {max_body_bytes: 8MB}\n",
        ['gateway.yaml:4: limits.max_body_bytes: expected a size like "16KiB"'],
    ),
    ("limits: {max_header_bytes: 0}\n", ["gateway.yaml:4: limits.max_header_bytes: must be > 0"]),
    (
        "limits: {max_connections: 0}\n",
        ["gateway.yaml:4: limits.max_connections: must be at least 1"],
    ),
    ("workers: 0\n", ["gateway.yaml:4: workers: must be at least 1"]),
    (
        "limits: {idle_timeout: 366d}\n",
        ["gateway.yaml:4: limits.idle_timeout: must be at most 365d"],
    ),
    (
        "limits: {max_body_bytes: 4294967297GiB, max_connections: 4611686018427387905}\n",
        [
            "gateway.yaml:4: limits.max_body_bytes: must be at most 4611686018427387904",
            "gateway.yaml:4: limits.max_connections: must be at most 4611686018427387904",
        ],
    ),
    ("? [a]\n: b\n", ["gateway.yaml:4: document: expected a string key"]),
    ("redis: {url: redis://h, timeout: 0ms}\n", ["gateway.yaml:4: redis.timeout: must be > 0"]),
    (
        "tiers:\n  gold: {requests: 0, per: 1m}\n",
        ["gateway.yaml:5: tiers.gold.requests: must be at least 1"],
    ),
    (
        "tiers:\n  gold:\n    burst: {requests: 5, per: soon}\n",
        ['gateway.yaml:6: tiers.gold.burst.per: expected a duration like "1m"'],
    ),
    ("tiers:\n  gold: {requests: 5}\n", ["gateway.yaml:5: tiers.gold.per: required"]),
    ("tiers:\n  gold: {per: 1m}\n", ["gateway.yaml:5: tiers.gold.requests: required"]),
    # enums
    (
        "logging: {level: verbose}\n",
        ["gateway.yaml:4: logging.level: expected one of: debug, info, warning, error"],
    ),
    (
        "redis: {url: redis://h, on_unavailable: panic}\n",
        ["gateway.yaml:4: redis.on_unavailable: expected one of: local, allow, deny"],
    ),
    (
        "redis: {url: [redis://h, http://h]}\n",
        ['gateway.yaml:4: redis.url[1]: expected a URL like "redis://127.0.0.1:6379/0"'],
    ),
    # version
    ("version: 2\n", ["gateway.yaml:4: version: unsupported version, expected 1"]),
    ('version: "1"\n', ["gateway.yaml:4: version: unsupported version, expected 1"]),
    # token service (the rest: tests/config/test_token_service_config.py)
    (
        "token_service:\n  enabled: yes please\n",
        ["gateway.yaml:5: token_service.enabled: expected a boolean"],
    ),
    # admin
    (
        "admin: {address: 127.0.0.1}\n",
        ['gateway.yaml:4: admin.address: expected an address like "127.0.0.1:8080"'],
    ),
    ("admin: {address: 127.0.0.1:0}\nadmin: off\n", ["gateway.yaml:5: admin: duplicate key"]),
    ("admin: {address: 127.0.0.1:0, port: 3}\n", ["gateway.yaml:4: admin.port: unknown key"]),
    ("admin: yes\n", ["gateway.yaml:4: admin: expected a mapping"]),
]


@pytest.mark.parametrize("text, expected", CASES)
def test_problem_messages(here: Path, text: str, expected: list[str]) -> None:
    assert problems(text) == expected


LISTENER_CASES = [
    (
        "  - name: a\n    address: 127.0.0.1:0\n    tls: true\n",
        ["gateway.yaml:4: listeners[0].tls: expected a mapping"],
    ),
    ("  - address: 127.0.0.1:0\n", ["gateway.yaml:2: listeners[0].name: required"]),
    ("  - name: a\n", ["gateway.yaml:2: listeners[0].address: required"]),
    (
        "  - {name: a, address: localhost:70000}\n",
        ["gateway.yaml:2: listeners[0].address: port must be between 0 and 65535"],
    ),
    (
        "  - {name: a, address: ':80'}\n",
        ['gateway.yaml:2: listeners[0].address: expected an address like "127.0.0.1:8080"'],
    ),
    (
        "  - {name: a, address: '[1.2.3.4]:80'}\n",
        ['gateway.yaml:2: listeners[0].address: expected an address like "127.0.0.1:8080"'],
    ),
    (
        "  - {name: a, address: '::1:80'}\n",
        ['gateway.yaml:2: listeners[0].address: expected an address like "127.0.0.1:8080"'],
    ),
    (
        "  - {name: a, address: 127.0.0.1:1}\n  - {name: a, address: 127.0.0.1:2}\n",
        ['gateway.yaml:3: listeners[1].name: duplicate name "a"'],
    ),
    (
        "  - {name: a, address: 127.0.0.1:1}\n  - {name: b, address: 127.0.0.1:1}\n",
        ['gateway.yaml:3: listeners[1].address: duplicate address "127.0.0.1:1"'],
    ),
    (
        "  - {name: a, address: 127.0.0.1:9901}\n",
        ["gateway.yaml:2: listeners[0].address: address already used by admin.address"],
    ),
    (
        "  - {name: a, address: 127.0.0.1:99}\nadmin:\n  address: 127.0.0.1:99\n",
        ["gateway.yaml:4: admin.address: address already used by listeners[0]"],
    ),
    (
        "  - name: a\n    address: 127.0.0.1:0\n    tls:\n      private_key: certs/server.key\n",
        ["gateway.yaml:4: listeners[0].tls.certificate: required"],
    ),
    (
        "  - name: a\n    address: 127.0.0.1:0\n    tls:\n      certificate: certs/nope.crt\n      private_key: /nope.key\n",
        [
            "gateway.yaml:5: listeners[0].tls.certificate: file not found: certs/nope.crt",
            "gateway.yaml:6: listeners[0].tls.private_key: file not found: /nope.key",
        ],
    ),
    (
        "  - name: a\n    address: 127.0.0.1:0\n    tls:\n      certificate: certs/server.crt\n      private_key: certs/server.key\n"
        "      min_version: 1.1\n      client_certificates: required\n      ciphers: NOTHING-AT-ALL\n      client_ca: certs\n",
        [
            "gateway.yaml:7: listeners[0].tls.min_version: expected one of: 1.2, 1.3",
            "gateway.yaml:9: listeners[0].tls.ciphers: OpenSSL selects no cipher from this string",
            "gateway.yaml:10: listeners[0].tls.client_ca: file not found: certs",
        ],
    ),
    (
        "  - name: a\n    address: 127.0.0.1:0\n    tls:\n      certificate: certs/server.crt\n      private_key: certs/server.key\n"
        "      client_certificates: optional\n",
        [
            "gateway.yaml:7: listeners[0].tls.client_ca: required when client_certificates is optional or required"
        ],
    ),
    (
        "  - name: a\n    address: 127.0.0.1:0\n    tls: {certificate: certs/server.crt, private_key: certs/server.key, client_certificates: yes}\n",
        [
            "gateway.yaml:4: listeners[0].tls.client_certificates: expected one of: none, optional, required"
        ],
    ),
]


@pytest.mark.parametrize("text, expected", LISTENER_CASES)
def test_listener_problems(here: Path, text: str, expected: list[str]) -> None:
    assert problems("", "listeners:\n" + text) == expected


def test_listeners_required_and_not_empty(here: Path) -> None:
    assert problems("", "limits: {}\n") == ["gateway.yaml:1: listeners: required"]
    assert problems("", "listeners: []\n") == ["gateway.yaml:1: listeners: must not be empty"]
    assert problems("", "") == ["gateway.yaml:1: listeners: required"]
    assert problems("", "- a\n") == ["gateway.yaml:1: document: expected a mapping"]


API = "apis:\n  - name: a\n    base_path: /a\n    upstream: {urls: [http://127.0.0.1:9000]}\n"
API_CASES = [
    ("    mode: audit\n", ["gateway.yaml:8: apis[0].mode: expected one of: enforce, monitor"]),
    (
        "    authentication: [oauth2, api_key, magic]\n",
        [
            "gateway.yaml:8: apis[0].authentication[0]: oauth2 needs issuers or introspection",
            "gateway.yaml:8: apis[0].authentication[1]: api_key needs an application with api_keys",
            "gateway.yaml:8: apis[0].authentication[2]: expected one of: oauth2, api_key, mtls, basic, digest",
        ],
    ),
    ("    authentication: basic\n", ["gateway.yaml:8: apis[0].authentication: expected a list"]),
    (
        "    max_body_bytes: 1.5MiB\n",
        ['gateway.yaml:8: apis[0].max_body_bytes: expected a size like "16KiB"'],
    ),
    (
        "    rate_limits:\n      anonymous: {requests: 10}\n",
        ["gateway.yaml:9: apis[0].rate_limits.anonymous.per: required"],
    ),
    (
        "    rate_limits:\n      anonymous: {requests: 10, per: 0s}\n",
        ["gateway.yaml:9: apis[0].rate_limits.anonymous.per: must be > 0"],
    ),
    (
        "    rate_limits:\n      api: {requests: 1, per: 1s}\n      application: true\n      subscription: true\n      resources: [{path: /}]\n",
        [
            "gateway.yaml:12: apis[0].rate_limits.resources[0].requests: required",
            "gateway.yaml:12: apis[0].rate_limits.resources[0].per: required",
        ],
    ),
    (
        "    rate_limits:\n      api: {requests: 1}\n      application: yes please\n"
        "      resources: [{path: /a/**/b, methods: [G T], requests: 0, per: 1s}]\n",
        [
            "gateway.yaml:9: apis[0].rate_limits.api.per: required",
            "gateway.yaml:10: apis[0].rate_limits.application: expected a boolean",
            "gateway.yaml:11: apis[0].rate_limits.resources[0].path: \"**\" only as the last segment",
            "gateway.yaml:11: apis[0].rate_limits.resources[0].methods[0]: expected an HTTP method like GET (RFC 9110 §9.1)",
            "gateway.yaml:11: apis[0].rate_limits.resources[0].requests: must be at least 1",
        ],
    ),
    ("    rate_limits: {application: false, resources: []}\n", []),
    (
        "    openapi: x.yaml\n    api_key: {header: X}\n    mtls: optional\n    authorization: {rules: []}\n"
        "    threat_protection: {json: {}}\n    validation: {request: true}\n    cors: {origins: ['*']}\n"
        "    anomaly_detection: {enabled: true}\n    retries: 3\n",
        [
            "gateway.yaml:8: apis[0].openapi: file not found: x.yaml",
            "gateway.yaml:15: apis[0].anomaly_detection: not supported yet",
            "gateway.yaml:16: apis[0].retries: unknown key",
        ],
    ),
    (
        "  - {name: a, base_path: /a/, upstream: {urls: ['http://h']}}\n",
        [
            'gateway.yaml:8: apis[1].name: duplicate name "a"',
            'gateway.yaml:8: apis[1].base_path: duplicate base_path "/a"',
        ],
    ),
]


@pytest.mark.parametrize("text, expected", API_CASES)
def test_api_problems(here: Path, text: str, expected: list[str]) -> None:
    if expected:
        assert problems(API + text) == expected
    else:
        load(API + text)


@pytest.mark.parametrize(
    "base_path, message",
    [
        ("orders", 'must start with "/"'),
        ("/a/../b", 'must not contain ".."'),
        ("/a//b", 'must not contain "//"'),
        ("/a%2fb", 'must not contain "%"'),
        ("/a?b", 'must not contain "?" or "#"'),
        ('"/a#b"', 'must not contain "?" or "#"'),
        ('"/a b"', 'expected a path like "/orders/v1"'),
        ("5", "expected a string"),
    ],
)
def test_base_path_rules(here: Path, base_path: str, message: str) -> None:
    text = f"apis:\n  - name: a\n    base_path: {base_path}\n    upstream: {{urls: [http://h]}}\n"
    assert problems(text) == [f"gateway.yaml:6: apis[0].base_path: {message}"]


@pytest.mark.parametrize(
    "base_path, normalised",
    [("/", "/"), ("/a/", "/a"), ("/a/b/", "/a/b"), ("/v1.2/x_y~z", "/v1.2/x_y~z")],
)
def test_base_path_is_normalised(here: Path, base_path: str, normalised: str) -> None:
    text = f"apis:\n  - name: a\n    base_path: {base_path}\n    upstream: {{urls: [http://h]}}\n"
    assert load(text).apis[0].base_path == normalised


@pytest.mark.parametrize(
    "url, parsed",
    [
        ("http://127.0.0.1:9000", UpstreamUrl("http", "127.0.0.1", 9000)),
        ("https://api.example.com", UpstreamUrl("https", "api.example.com", 443)),
        ("http://h/", UpstreamUrl("http", "h", 80)),
        ("'http://[2001:db8::1]:81'", UpstreamUrl("http", "2001:db8::1", 81)),
        ("ftp://h", None),
        ("http://h/api", None),
        ("'http://h?x=1'", None),
        ("http://user:pw@h", None),
        ("http://h:0", None),
        ("http://h:99999", None),
        ("http://", None),
        ("'http://[zz]:1'", None),
        ("127.0.0.1:9000", None),
    ],
)
def test_upstream_urls(here: Path, url: str, parsed: UpstreamUrl | None) -> None:
    text = f"apis:\n  - name: a\n    base_path: /a\n    upstream:\n      urls: [{url}]\n"
    if parsed is None:
        assert problems(text) == [
            'gateway.yaml:8: apis[0].upstream.urls[0]: expected a URL like "http://127.0.0.1:9000"'
        ]
    else:
        assert load(text).apis[0].upstream.urls == (parsed,)


UPSTREAM_CASES = [
    ("urls: []", ["gateway.yaml:8: apis[0].upstream.urls: must not be empty"]),
    ("urls: http://h", ["gateway.yaml:8: apis[0].upstream.urls: expected a list"]),
    (
        "{urls: [http://h], path: api}",
        ['gateway.yaml:8: apis[0].upstream.path: must start with "/"'],
    ),
    ("{urls: [http://h], timeout: 0}", ["gateway.yaml:8: apis[0].upstream.timeout: must be > 0"]),
    (
        "{urls: [http://h], connect_timeout: 2 s}",
        ['gateway.yaml:8: apis[0].upstream.connect_timeout: expected a duration like "1m"'],
    ),
    (
        "{urls: [http://h], max_concurrency: 0}",
        ["gateway.yaml:8: apis[0].upstream.max_concurrency: must be at least 1"],
    ),
    (
        "{urls: [http://h], max_requests_per_second: 0}",
        ["gateway.yaml:8: apis[0].upstream.max_requests_per_second: must be at least 1"],
    ),
    (
        "{urls: [http://h], tls: {verify: no, certificate: certs/gw.crt}}",
        ["gateway.yaml:8: apis[0].upstream.tls.private_key: required when certificate is set"],
    ),
    (
        "{urls: [http://h], tls: {ca: certs/none.crt}}",
        ["gateway.yaml:8: apis[0].upstream.tls.ca: file not found: certs/none.crt"],
    ),
    (
        "{urls: [http://h], tls: {verify: 0}}",
        ["gateway.yaml:8: apis[0].upstream.tls.verify: expected a boolean"],
    ),
]


@pytest.mark.parametrize("upstream, expected", UPSTREAM_CASES)
def test_upstream_problems(here: Path, upstream: str, expected: list[str]) -> None:
    text = f"apis:\n  - name: a\n    base_path: /a\n    upstream:\n      {upstream}\n"
    assert problems(text) == expected


def test_upstream_tls_verify_off_and_tls_off(here: Path) -> None:
    text = (
        "apis:\n  - {name: a, base_path: /a, upstream: {urls: [https://h], tls: {verify: false}}}\n"
        "  - {name: b, base_path: /b, upstream: {urls: [https://h], tls: off}}\n"
    )
    a, b = load(text).apis
    assert a.upstream.tls.verify is False and a.upstream.tls.ca is None
    assert b.upstream.tls is None


IDENTITY_CASES = [
    (
        "users:\n  - {name: bob, password_hash: hunter2}\n  - {name: eve, password_hash: scrypt$1$2$3$x}\n",
        [
            'gateway.yaml:5: users[0].password_hash: expected an scrypt hash from "fastgate hash-password"',
            'gateway.yaml:6: users[1].password_hash: expected an scrypt hash from "fastgate hash-password"',
        ],
    ),
    (
        "users:\n  - {name: bob, password_hash: scrypt$16$8$1$c2FsdA$aGFzaA}\n  - {name: bob, password_hash: scrypt$16$8$1$c2FsdA$aGFzaB}\n",
        ['gateway.yaml:6: users[1].name: duplicate name "bob"'],
    ),
    (
        "users:\n  - {name: bob, password_hash: scrypt$16$8$1$c2FsdA$aGFzaA, claims: [1]}\n",
        ["gateway.yaml:5: users[0].claims: expected a mapping of JSON values"],
    ),
    (
        "users:\n  - {name: bob, password_hash: scrypt$16$8$1$c2FsdA$aGFzaA, claims: {at: 2020-01-01}}\n",
        ["gateway.yaml:5: users[0].claims: expected a mapping of JSON values"],
    ),
    (
        "applications:\n  - name: app\n    api_keys:\n      - {id: k, hash: 'sha256:ABC'}\n",
        [
            'gateway.yaml:7: applications[0].api_keys[0].hash: expected "sha256:" and 64 lowercase hex digits'
        ],
    ),
    (
        f"applications:\n  - name: app\n    api_keys:\n      - {{id: k, hash: '{HASH_A}', allowed_ips: [10.0.0.1/8, 300.1.1.1, '::1']}}\n",
        [
            "gateway.yaml:7: applications[0].api_keys[0].allowed_ips[0]: expected an IP address or CIDR",
            "gateway.yaml:7: applications[0].api_keys[0].allowed_ips[1]: expected an IP address or CIDR",
        ],
    ),
    (
        f"applications:\n  - name: app\n    api_keys:\n      - {{id: k, hash: '{HASH_A}', expires: 2027-01-01}}\n"
        f"      - {{id: k2, hash: '{HASH_B}', expires: '2027-01-01 00:00'}}\n",
        [
            'gateway.yaml:7: applications[0].api_keys[0].expires: expected an RFC 3339 timestamp like "2027-01-01T00:00:00Z"',
            'gateway.yaml:8: applications[0].api_keys[1].expires: expected an RFC 3339 timestamp like "2027-01-01T00:00:00Z"',
        ],
    ),
    (
        f"applications:\n  - name: app\n    api_keys:\n      - {{id: k, hash: '{HASH_A}'}}\n"
        f"  - name: app2\n    api_keys:\n      - {{id: k, hash: '{HASH_A}'}}\n",
        [
            'gateway.yaml:10: applications[1].api_keys[0].id: duplicate id "k"',
            "gateway.yaml:10: applications[1].api_keys[0].hash: same hash as applications[0].api_keys[0]",
        ],
    ),
    (
        "applications:\n  - name: app\n    certificates:\n      - {sha256: 'AB:CD'}\n      - {}\n      - {sha256: x, subject: y}\n      - {subject: 'no equals'}\n",
        [
            'gateway.yaml:7: applications[0].certificates[0].sha256: expected 32 colon-separated hex pairs like "AB:CD:..."',
            "gateway.yaml:8: applications[0].certificates[1]: expected exactly one of: sha256, subject",
            "gateway.yaml:9: applications[0].certificates[2]: expected exactly one of: sha256, subject",
            'gateway.yaml:10: applications[0].certificates[3].subject: expected an RFC 4514 name like "CN=partner,O=Example"',
        ],
    ),
    (
        "applications:\n  - name: app\n    tier: gold\n    subscriptions:\n      - {api: orders, tier: silver}\n      - {api: orders, tier: silver}\n",
        [
            'gateway.yaml:6: applications[0].tier: no tier named "gold"',
            'gateway.yaml:8: applications[0].subscriptions[0].api: no API named "orders"',
            'gateway.yaml:8: applications[0].subscriptions[0].tier: no tier named "silver"',
            'gateway.yaml:9: applications[0].subscriptions[1].api: duplicate subscription to "orders"',
            'gateway.yaml:9: applications[0].subscriptions[1].api: no API named "orders"',
            'gateway.yaml:9: applications[0].subscriptions[1].tier: no tier named "silver"',
        ],
    ),
    (
        "applications:\n  - name: app\n    client_id: c\n    grant_types: [implicit]\n    scopes: ['a b']\n"
        "    redirect_uris: [/cb, 'https://x/cb#frag']\n  - {name: app2, client_id: c, client_secret_hash: plain}\n",
        [
            "gateway.yaml:7: applications[0].grant_types[0]: expected one of: authorization_code, client_credentials, password, refresh_token, jwt_bearer",
            "gateway.yaml:8: applications[0].scopes[0]: expected a scope token (RFC 6749 §3.3)",
            "gateway.yaml:9: applications[0].redirect_uris[0]: expected an absolute URI without a fragment (RFC 6749 §3.1.2)",
            "gateway.yaml:9: applications[0].redirect_uris[1]: expected an absolute URI without a fragment (RFC 6749 §3.1.2)",
            'gateway.yaml:10: applications[1].client_id: duplicate client_id "c"',
            'gateway.yaml:10: applications[1].client_secret_hash: expected an scrypt hash from "fastgate hash-password"',
        ],
    ),
]


@pytest.mark.parametrize("text, expected", IDENTITY_CASES)
def test_identity_problems(here: Path, text: str, expected: list[str]) -> None:
    assert problems(text) == expected


def test_references_resolve_in_any_order(here: Path) -> None:
    cfg = load(
        "applications:\n  - {name: app, tier: t, subscriptions: [{api: later, tier: t}]}\n"
        "apis:\n  - {name: later, base_path: /l, upstream: {urls: ['http://h']}}\n"
        "tiers: {t: {requests: 1, per: 1s}}\n"
    )
    assert cfg.applications[0].subscriptions == (Subscription("later", "t"),)


def test_yaml_syntax_error_has_a_line(here: Path) -> None:
    assert problems("limits:\n  max_headers: [1\n") == [
        "gateway.yaml:6: yaml: expected ',' or ']', but got '<stream end>'"
    ]


def test_one_document_only(here: Path) -> None:
    assert problems("---\nb: 2\n") == [
        "gateway.yaml:4: yaml: expected a single document in the stream, but found another document"
    ]


def test_unsupported_yaml_tags_are_refused(here: Path) -> None:
    assert problems("workers: !!python/object:os.system 1\n") == [
        'gateway.yaml:4: workers: unsupported YAML tag "tag:yaml.org,2002:python/object:os.system"'
    ]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert caught.value.problems == [
        f"{tmp_path / 'nope.yaml'}:1: file: cannot read: No such file or directory"
    ]


def test_all_problems_are_collected_in_file_order(here: Path) -> None:
    found = problems(
        """\
        apis:
          - name: a
            base_path: a
            upstream: {urls: [http://h], timeout: x}
        limits: {max_headers: 0, wat: 1}
        version: 3
        """
    )
    assert found == [
        'gateway.yaml:6: apis[0].base_path: must start with "/"',
        'gateway.yaml:7: apis[0].upstream.timeout: expected a duration like "1m"',
        "gateway.yaml:8: limits.max_headers: must be at least 1",
        "gateway.yaml:8: limits.wat: unknown key",
        "gateway.yaml:9: version: unsupported version, expected 1",
    ]


def test_merge_keys_let_apis_share_settings(here: Path) -> None:
    cfg = load(
        """\
        tiers:
          base: &limit {requests: 5, per: 1s}
          copy: {<<: *limit, per: 2s}
        apis:
          - {name: a, base_path: /a, upstream: {urls: [http://h]}, rate_limits: {anonymous: *limit}}
        """
    )
    assert cfg.tiers["copy"] == Tier("copy", 5, 2.0)
    assert cfg.apis[0].rate_limits.anonymous == Window(5, 1.0)


def test_merged_unknown_key_is_reported_at_its_anchor(here: Path) -> None:
    found = problems("tiers:\n  base: &t {requests: 5, per: 1s}\n  bad: {<<: [*t, {oops: 1}]}\n")
    assert found == ["gateway.yaml:6: tiers.bad.oops: unknown key"]


# What the reference file may be refused for: files and environment variables it names do not
# exist here, its hashes are placeholders ("scrypt$..."), its only client-certificate listener
# says `none` while its API lists mtls, and the keys still to come.
REFERENCE_EXPECTED = re.compile(
    r"file not found: .*|environment variable [A-Z_]+ is not set|not supported yet"
    r"|expected an scrypt hash .*|expected \"sha256:\" .*|expected 32 colon-separated .*"
    r"|mtls needs a listener with client_certificates"
)


def test_every_reference_key_is_accepted_or_not_supported_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not REFERENCE.is_file():
        pytest.skip(f"no reference file at {REFERENCE}")
    monkeypatch.delenv("INTROSPECTION_SECRET", raising=False)
    copy = tmp_path / "gateway.reference.yaml"
    shutil.copy(REFERENCE, copy)
    with pytest.raises(ConfigError) as caught:
        load_config(copy)
    found = caught.value.problems
    assert not [p for p in found if "unknown key" in p], found
    unexpected = [p for p in found if not REFERENCE_EXPECTED.fullmatch(p.split(": ", 2)[2])]
    assert unexpected == []
    assert f"{copy}:13: listeners[0].tls.certificate: file not found: certs/server.crt" in found
    # the identity keys are accepted now: only their environment and cross-section needs fail
    identity = [
        p
        for p in found
        if re.search(
            r": (issuers|introspection|apis\[0\]\.(authentication|api_key|mtls|authorization))", p
        )
    ]
    assert [p.split(":", 1)[1] for p in identity] == [
        "111: introspection[0].client_secret_env: environment variable INTROSPECTION_SECRET is not set",
        "144: apis[0].authentication[2]: mtls needs a listener with client_certificates",
    ]
    assert f"{copy}:134: apis[0].openapi: file not found: apis/orders.yaml" in found


def test_config_is_frozen(here: Path) -> None:
    cfg = load("")
    with pytest.raises(AttributeError):
        cfg.workers = 3  # type: ignore[misc]


# ------------------------------------------------------------------------ units

DURATIONS = [
    ("250ms", 0.25), ("10s", 10.0), ("5m", 300.0), ("1h", 3600.0), ("1d", 86400.0), ("1.5s", 1.5),
    ("0.1m", 6.0), ("0", 0.0), ("30", 30.0), (30, 30.0), (0.5, 0.5), (0, 0.0),
    ("", None), ("1 s", None), ("-1s", None), (-1, None), ("1.s", None), (".5s", None),
    ("1sec", None), ("1M", None), ("1e3", None), (True, None), (float("inf"), None),
    (float("nan"), None), (None, None), ([1], None),
]  # fmt: skip


@pytest.mark.parametrize("value, seconds", DURATIONS)
def test_parse_duration(value: object, seconds: float | None) -> None:
    assert parse_duration(value) == seconds


SIZES = [
    (512, 512), ("512", 512), ("512B", 512), ("16KiB", 16384), ("8MiB", 8 << 20), ("1GiB", 1 << 30),
    (0, 0), ("16KB", None), ("16kib", None), ("1.5MiB", None), ("16 KiB", None), (-1, None),
    (1024.0, None), (True, None), ("", None), (None, None),
]  # fmt: skip


@pytest.mark.parametrize("value, size", SIZES)
def test_parse_size(value: object, size: int | None) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0.25, "250ms"),
        (10, "10s"),
        (300, "5m"),
        (86400, "1d"),
        (90, "90s"),
        (0, "0s"),
        (1.5, "1500ms"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.floats(min_value=0, allow_nan=False, allow_infinity=False))
def test_duration_round_trip(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.integers(min_value=0, max_value=10**12))
def test_duration_round_trip_milliseconds(ms: int) -> None:
    text = format_duration(ms / 1000)
    assert not text[-1].isdigit()  # always a unit, never a long decimal
    assert parse_duration(text) == ms / 1000


@given(st.integers(min_value=0, max_value=1 << 50))
def test_size_round_trip(size: int) -> None:
    assert parse_size(format_size(size)) == size


def test_hashes_from_the_cli_helpers_are_accepted(here: Path) -> None:
    credentials = pytest.importorskip("fastgate.credentials")
    password_hash = credentials.hash_password("pw", n=16)
    _, key_hash = credentials.new_api_key()
    cfg = load(
        f"users:\n  - {{name: u, password_hash: '{password_hash}'}}\n"
        f"applications:\n  - {{name: a, api_keys: [{{id: k, hash: '{key_hash}'}}]}}\n"
    )
    assert cfg.users[0].password_hash == password_hash
    assert cfg.applications[0].api_keys[0].hash == key_hash

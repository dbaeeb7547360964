"""fastgate audit: every finding fires on a config that has the issue, none on a hardened one."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from fastgate.audit import (
    MSG_ANONYMOUS_ONLY,
    MSG_BODY_NOT_SCANNED,
    MSG_CORS_CREDENTIALS,
    MSG_CORS_WILDCARD,
    MSG_DIGEST,
    MSG_DTD_ALLOWED,
    MSG_KEY_IN_URL,
    MSG_NO_AUTHORIZATION,
    MSG_NO_BODY_CAP,
    MSG_NO_FINAL_DENY,
    MSG_NO_THREAT_PROTECTION,
    MSG_OPA_FAILS_OPEN,
    MSG_SHARED_SECRET,
    Finding,
    audit,
    format_findings,
    is_deny_all,
    is_loopback,
    line_for,
    weak_ciphers,
)
from fastgate.config import Config, inspection, load_config
from fastgate.config.model import PolicyRule, TimeWindow

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
HARDENED = """\
listeners:
  - name: public
    address: 0.0.0.0:8443
    tls:
      certificate: certs/server.crt
      private_key: certs/server.key
      min_version: "1.3"
      client_certificates: required
      client_ca: certs/ca.crt
admin:
  address: 127.0.0.1:9901
apis:
  - name: orders
    base_path: /orders
    mode: enforce
    upstream:
      urls: [https://backend.internal:8443, http://127.0.0.1:9000]
      tls: {verify: true}
    rate_limits:
      anonymous: {requests: 60, per: 1m}
    authentication: [mtls]
    authorization:
      rules:
        - {id: partners, allow: true, applications: [app]}
        - {allow: false}
applications:
  - name: app
    api_keys:
      - id: k1
        hash: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        expires: 2030-01-01T00:00:00Z
"""
# An API with authentication and only an anonymous limit has no rate limit at all (the anonymous
# limit only applies to public APIs): the one finding HARDENED has.
KNOWN_GAP = Finding("medium", "apis[0].rate_limits.anonymous", MSG_ANONYMOUS_ONLY, 20)
SECRET_ENV = "AUDIT_TEST_HS_SECRET"


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The general findings are tested on HARDENED without threat protection, whose "no threat
    # protection" finding only exists while the key is runtime-ready; the inspection tests
    # below switch every key on (`inspection_ready`).
    monkeypatch.setattr(inspection, "INSPECTION_RUNTIME_READY",
                        inspection.INSPECTION_RUNTIME_READY - {"threat_protection"})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(SECRET_ENV, "s" * 32)
    (tmp_path / "certs").mkdir()
    for name in ("server.crt", "server.key", "ca.crt"):
        (tmp_path / "certs" / name).touch()  # the loader only checks that they exist
    return tmp_path


def load(text: str) -> Config:
    Path("gateway.yaml").write_text(text)
    return load_config("gateway.yaml")


def variant(old: str, new: str) -> Config:
    """HARDENED with one snippet replaced."""
    assert old in HARDENED, old
    return load(HARDENED.replace(old, new, 1))


def added(cfg: Config) -> list[Finding]:
    """The findings of `cfg` beyond HARDENED's known gap (compared without lines)."""
    gap = (KNOWN_GAP.severity, KNOWN_GAP.path, KNOWN_GAP.message)
    return [f for f in audit(cfg, now=NOW) if (f.severity, f.path, f.message) != gap]


def test_hardened_config_has_only_the_known_gap(here: Path) -> None:
    assert audit(load(HARDENED), now=NOW) == [KNOWN_GAP]


@pytest.mark.parametrize("limit", [
    "      api: {requests: 1000, per: 1m}\n", "      application: true\n", "      subscription: true\n",
    "      resources: [{path: /x, requests: 1, per: 1s}]\n"])
def test_any_consumer_limit_closes_the_gap(here: Path, limit: str) -> None:
    cfg = variant("    rate_limits:\n", "    rate_limits:\n" + limit)
    assert audit(cfg, now=NOW) == []


def test_strong_explicit_cipher_string_is_fine(here: Path) -> None:
    cfg = variant(
        '      min_version: "1.3"\n', '      min_version: "1.3"\n      ciphers: ECDHE+AESGCM\n'
    )
    assert added(cfg) == []


CASES = [
    (
        "admin:\n",
        "  - {name: local, address: 127.0.0.1:8080}\nadmin:\n",
        Finding("medium", "listeners[1].tls", "plain HTTP listener: traffic is not encrypted", 10),
    ),
    (
        "    tls:\n      certificate",
        "    tls: off\n  - name: tls\n    address: 0.0.0.0:1\n    tls:\n      certificate",
        Finding("high", "listeners[0].tls", "plain HTTP listener: traffic is not encrypted", 4),
    ),
    (
        '      min_version: "1.3"\n',
        '      min_version: "1.3"\n      ciphers: "ECDHE+AESGCM:AES128-SHA"\n',
        Finding("high", "listeners[0].tls.ciphers", "weak cipher string: admits AES128-SHA", 8),
    ),
    (
        '      min_version: "1.3"\n',
        "      min_version: 1.2\n",
        Finding("info", "listeners[0].tls.min_version", "TLS 1.2 allowed: consider 1.3", 7),
    ),
    (
        '      min_version: "1.3"\n',
        "",
        Finding("info", "listeners[0].tls.min_version", "TLS 1.2 allowed: consider 1.3", 4),
    ),
    (
        "client_certificates: required",
        "client_certificates: optional",
        Finding(
            "low",
            "listeners[0].tls.client_certificates",
            "client certificates optional: clients without one can connect",
            8,
        ),
    ),
    (
        "  address: 127.0.0.1:9901",
        "  address: 10.0.0.5:9901",
        Finding(
            "high", "admin.address", "admin endpoints reachable from other hosts: use loopback", 11
        ),
    ),
    (
        "    mode: enforce",
        "    mode: monitor",
        Finding("medium", "apis[0].mode", "monitor mode: violations are logged, not blocked", 15),
    ),
    (
        "http://127.0.0.1:9000",
        "http://backend.internal:9000",
        Finding("low", "apis[0].upstream.urls[1]", "traffic to the backend is not encrypted", 17),
    ),
    (
        "{verify: true}",
        "{verify: false}",
        Finding(
            "high", "apis[0].upstream.tls.verify", "the backend's certificate is not verified", 18
        ),
    ),
    (
        "    rate_limits:\n      anonymous: {requests: 60, per: 1m}\n",
        "",
        Finding("medium", "apis[0].rate_limits", "no rate limit", 13),
    ),
    (
        "expires: 2030-01-01T00:00:00Z",
        "expires: 2026-05-31T23:59:59Z",
        Finding(
            "medium",
            "applications[0].api_keys[0].expires",
            'API key "k1" expired on 2026-05-31T23:59:59+00:00',
            31,
        ),
    ),
]


@pytest.mark.parametrize("old, new, finding", CASES)
def test_each_finding(here: Path, old: str, new: str, finding: Finding) -> None:
    assert added(variant(old, new)) == [finding]


ISSUER = "issuers:\n  - {name: idp, issuer: https://idp/, audiences: [orders], "
IDENTITY_CASES = [
    (
        "applications:\n",
        f"{ISSUER}algorithms: [HS256], secret_env: {SECRET_ENV}}}\napplications:\n",
        Finding("medium", "issuers[0].algorithms", MSG_SHARED_SECRET, 27),
    ),
    (
        "applications:\n",
        f"{ISSUER}algorithms: [RS256], jwks_uri: 'https://idp/jwks', leeway: 2m}}\napplications:\n",
        Finding(
            "low", "issuers[0].leeway", "leeway of 2m: expired tokens stay valid that long", 27
        ),
    ),
    (
        "applications:\n",
        f"{ISSUER}algorithms: [ES256], jwks_uri: 'http://idp.example/jwks'}}\napplications:\n",
        Finding(
            "medium",
            "issuers[0].jwks_uri",
            "signing keys fetched over plain HTTP: anyone on the path can replace them",
            27,
        ),
    ),
    (
        "applications:\n",
        "introspection:\n  - {name: as, url: 'http://as.example/introspect', client_id: gw,"
        f" client_secret_env: {SECRET_ENV}}}\napplications:\n",
        Finding(
            "medium",
            "introspection[0].url",
            "tokens and the client secret sent over plain HTTP",
            27,
        ),
    ),
    (
        "applications:\n",
        "users:\n  - name: bob\n    password_hash: scrypt$16$8$1$c2FsdA$aGFzaA\n"
        f"    digest_ha1: 'sha256:{'0' * 64}'\napplications:\n",
        Finding("info", "users[0].digest_ha1", MSG_DIGEST, 29),
    ),
    (
        "    authorization:\n      rules:\n        - {id: partners, allow: true, applications: [app]}\n"
        "        - {allow: false}\n",
        "",
        Finding("info", "apis[0].authorization", MSG_NO_AUTHORIZATION, 13),
    ),
    (
        "[mtls]",
        "[mtls, api_key]",
        Finding("low", "apis[0].api_key.query", MSG_KEY_IN_URL, 13),
    ),
    (
        "[mtls]",
        "[mtls, api_key]\n    api_key: {header: X-Key, query: key}",
        Finding("low", "apis[0].api_key.query", MSG_KEY_IN_URL, 22),
    ),
    (
        "        - {allow: false}\n",
        "        - {allow: false, methods: [DELETE]}\n",
        Finding("info", "apis[0].authorization.rules", MSG_NO_FINAL_DENY, 23),
    ),
    (
        "        - {allow: false}\n",
        "        - {allow: false}\n      opa: {url: 'http://127.0.0.1:8181/v1/data/gw/allow', on_error: allow}\n",
        Finding("high", "apis[0].authorization.opa.on_error", MSG_OPA_FAILS_OPEN, 26),
    ),
    (
        "        - {allow: false}\n",
        "        - {allow: false}\n      opa: {url: 'http://opa.example:8181/v1/data/gw/allow'}\n",
        Finding(
            "medium",
            "apis[0].authorization.opa.url",
            "policy decisions travel over plain HTTP",
            26,
        ),
    ),
]


@pytest.mark.parametrize("old, new, finding", IDENTITY_CASES)
def test_each_identity_finding(here: Path, old: str, new: str, finding: Finding) -> None:
    assert added(variant(old, new)) == [finding]


@pytest.mark.parametrize(
    "new",
    [
        "[mtls, api_key]\n    api_key: {query: null}",
        "[mtls, api_key]\n    api_key: {query: off}",
        "[mtls, basic]",  # the default query location only matters for api_key
    ],
)
def test_no_query_key_finding_when_query_keys_are_off(here: Path, new: str) -> None:
    text = HARDENED.replace("[mtls]", new)
    if "basic" in new:
        text = text.replace(
            "applications:\n",
            "users:\n  - {name: bob, password_hash: scrypt$16$8$1$c2FsdA$aGFzaA}\napplications:\n",
        )
    assert added(load(text)) == []


def test_issuer_with_short_leeway_and_https_keys_is_fine(here: Path) -> None:
    issuer = f"{ISSUER}algorithms: [RS256, ES256], jwks_uri: 'https://idp/jwks', leeway: 1m}}\n"
    assert added(variant("applications:\n", issuer + "applications:\n")) == []


def test_anonymous_limit_of_a_public_api_counts(here: Path) -> None:
    cfg = variant("    authentication: [mtls]\n", "")
    assert [f.path for f in audit(cfg, now=NOW)] == ["apis[0].authentication"]


@pytest.mark.parametrize(
    "rule, deny_all",
    [
        (PolicyRule("r", False), True),
        (PolicyRule("r", False, path="/**"), True),
        (PolicyRule("r", True), False),
        (PolicyRule("r", False, path="/a/**"), False),
        (PolicyRule("r", False, methods=("GET",)), False),
        (PolicyRule("r", False, claims={"a": 1}), False),
        (PolicyRule("r", False, time=TimeWindow("06:00", "22:00")), False),
        (PolicyRule("r", False, client_ips=("10.0.0.0/8",)), False),
    ],
)
def test_is_deny_all(rule: PolicyRule, deny_all: bool) -> None:
    assert is_deny_all(rule) is deny_all


def test_api_without_authentication(here: Path) -> None:
    cfg = variant("    authentication: [mtls]\n", "")
    assert audit(cfg, now=NOW) == [
        Finding("high", "apis[0].authentication", "no authentication: anyone can call this API", 13)
    ]


def test_findings_come_in_file_order_and_format(here: Path) -> None:
    cfg = load(
        textwrap.dedent(
            """\
            listeners:
              - {name: a, address: 0.0.0.0:8080}
            admin: {address: "[::]:9901"}
            apis:
              - {name: a, base_path: /, upstream: {urls: [http://127.0.0.1:1]}, mode: monitor}
            """
        )
    )
    assert format_findings(audit(cfg, now=NOW), "gateway.yaml") == textwrap.dedent(
        """\
        gateway.yaml:2: high: listeners[0].tls: plain HTTP listener: traffic is not encrypted
        gateway.yaml:3: high: admin.address: admin endpoints reachable from other hosts: use loopback
        gateway.yaml:5: high: apis[0].authentication: no authentication: anyone can call this API
        gateway.yaml:5: medium: apis[0].rate_limits: no rate limit
        gateway.yaml:5: medium: apis[0].mode: monitor mode: violations are logged, not blocked"""
    )


def test_format_without_a_line() -> None:
    assert format_findings([Finding("low", "x", "y")], Path("a.yaml")) == "a.yaml:0: low: x: y"
    assert format_findings([], "a.yaml") == ""


@pytest.mark.parametrize(
    "ciphers, weak",
    [
        ("ECDHE+AESGCM", []),
        ("ECDHE+AESGCM:ECDHE+CHACHA20", []),
        ("AES128-SHA", ["AES128-SHA"]),
        ("ECDHE-RSA-AES128-SHA256", ["ECDHE-RSA-AES128-SHA256"]),
        ("DHE-RSA-AES128-GCM-SHA256", ["DHE-RSA-AES128-GCM-SHA256"]),
        ("no-such-cipher", []),
    ],
)
def test_weak_ciphers(ciphers: str, weak: list[str]) -> None:
    assert weak_ciphers(ciphers) == weak


@pytest.mark.parametrize("alias", ["DEFAULT", "HIGH", "ALL", "ALL:@SECLEVEL=0"])
def test_broad_aliases_are_weak(alias: str) -> None:
    assert weak_ciphers(alias)


@pytest.mark.parametrize(
    "host, loopback",
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("10.0.0.1", False), ("example.com", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_line_for_falls_back_to_the_nearest_parent() -> None:
    cfg = Config(source=Path("x"), listeners=(), lines={"apis[0]": 7, "apis": 6})
    assert line_for(cfg, "apis[0].upstream.tls.verify") == 7
    assert line_for(cfg, "apis[1].mode") == 6
    assert line_for(cfg, "admin.address") is None


# ------------------------------------------------------------------------ content inspection (issue 5)

PROTECTED = HARDENED.replace(
    "    rate_limits:\n",
    "    threat_protection: {regex: {}, json: {}, xml: {}}\n    cors: {origins: [https://app.example]}\n"
    "    rate_limits:\n",
    1,
)


@pytest.fixture
def inspection_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inspection, "INSPECTION_RUNTIME_READY", set(inspection.INSPECTION_KEYS))


def protected(old: str, new: str) -> Config:
    assert old in PROTECTED, old
    return load(PROTECTED.replace(old, new, 1))


def test_protected_config_adds_no_finding(here: Path, inspection_ready: None) -> None:
    assert added(load(PROTECTED)) == []


INSPECTION_CASES = [
    (
        "[https://app.example]}",
        "['*']}",
        Finding("medium", "apis[0].cors.origins", MSG_CORS_WILDCARD, 20),
    ),
    (
        "[https://app.example]}",
        "[https://app.example], credentials: true}",
        Finding("info", "apis[0].cors.credentials", MSG_CORS_CREDENTIALS, 20),
    ),
    (
        "    threat_protection: {regex: {}, json: {}, xml: {}}\n",
        "",
        Finding("medium", "apis[0].threat_protection", MSG_NO_THREAT_PROTECTION, 13),
    ),
    (
        "regex: {}",
        "regex: {scan: [path, query, headers]}",
        Finding("low", "apis[0].threat_protection.regex.scan", MSG_BODY_NOT_SCANNED, 19),
    ),
    (
        "xml: {}",
        "xml: {allow_dtd: true}",
        Finding("high", "apis[0].threat_protection.xml.allow_dtd", MSG_DTD_ALLOWED, 19),
    ),
    (
        "json: {}",
        "json: {max_bytes: null}",
        Finding(
            "medium",
            "apis[0].threat_protection.json.max_bytes",
            MSG_NO_BODY_CAP.format(kind="JSON"),
            19,
        ),
    ),
    (
        "xml: {}",
        "xml: {max_bytes: off}",
        Finding(
            "medium",
            "apis[0].threat_protection.xml.max_bytes",
            MSG_NO_BODY_CAP.format(kind="XML"),
            19,
        ),
    ),
]


@pytest.mark.parametrize("old, new, finding", INSPECTION_CASES)
def test_each_inspection_finding(
    here: Path, inspection_ready: None, old: str, new: str, finding: Finding
) -> None:
    assert added(protected(old, new)) == [finding]


def test_no_threat_protection_finding_while_the_key_is_refused(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inspection, "INSPECTION_RUNTIME_READY", {"cors"})
    assert added(load(HARDENED)) == []


# ------------------------------------------------------------------------ token service (issue 7)
TS_ENV = "AUDIT_TEST_MASTER_KEY"


@pytest.mark.parametrize("block, expected", [
    ("access_token_ttl: 15m", []),
    ("access_token_ttl: 12h", [("medium", "token_service.access_token_ttl")]),
    ("refresh_token_ttl: 365d", [("low", "token_service.refresh_token_ttl")]),
    ("grants: [client_credentials, password]", [("low", "token_service.grants")]),
    ("grants: [authorization_code]\n  pkce: public_clients", [("low", "token_service.pkce")]),
])
def test_token_service_findings(here: Path, monkeypatch: pytest.MonkeyPatch, block: str,
                                expected: list[tuple[str, str]]) -> None:
    import base64
    import os

    monkeypatch.setenv(TS_ENV, base64.b64encode(os.urandom(32)).decode())
    text = HARDENED + f"""secrets:
  master_key_env: {TS_ENV}
token_service:
  enabled: true
  issuer: https://gw.example/
  signing_key: signing.pem
  {block}
"""
    found = [(f.severity, f.path) for f in audit(load(text), now=NOW) if f.path.startswith("token_service")]
    assert found == expected

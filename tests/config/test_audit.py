"""fastgate audit: every finding fires on a config that has the issue, none on a hardened one."""

from __future__ import annotations

import dataclasses
import datetime as dt
import textwrap
from pathlib import Path

import pytest

from fastgate.audit import Finding, audit, format_findings, is_loopback, line_for, weak_ciphers
from fastgate.config import Config, load_config

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
applications:
  - name: app
    api_keys:
      - id: k1
        hash: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        expires: 2030-01-01T00:00:00Z
"""


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "certs").mkdir()
    for name in ("server.crt", "server.key", "ca.crt"):
        (tmp_path / "certs" / name).touch()  # the loader only checks that they exist
    return tmp_path


def with_auth(cfg: Config) -> Config:
    """The loader refuses authentication for now; the audit must still credit it."""
    apis = tuple(dataclasses.replace(api, authentication=("oauth2",)) for api in cfg.apis)
    return dataclasses.replace(cfg, apis=apis)


def load(text: str) -> Config:
    Path("gateway.yaml").write_text(text)
    return load_config("gateway.yaml")


def variant(old: str, new: str) -> Config:
    """HARDENED with one snippet replaced, authentication credited."""
    assert old in HARDENED, old
    return with_auth(load(HARDENED.replace(old, new, 1)))


def test_hardened_config_has_no_findings(here: Path) -> None:
    assert audit(with_auth(load(HARDENED)), now=NOW) == []


def test_strong_explicit_cipher_string_is_fine(here: Path) -> None:
    cfg = variant(
        '      min_version: "1.3"\n', '      min_version: "1.3"\n      ciphers: ECDHE+AESGCM\n'
    )
    assert audit(cfg, now=NOW) == []


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
            26,
        ),
    ),
]


@pytest.mark.parametrize("old, new, finding", CASES)
def test_each_finding(here: Path, old: str, new: str, finding: Finding) -> None:
    assert audit(variant(old, new), now=NOW) == [finding]


def test_api_without_authentication(here: Path) -> None:
    assert audit(load(HARDENED), now=NOW) == [
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

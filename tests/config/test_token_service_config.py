"""`token_service` in a config file: what builds, and every problem with its line and key path."""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path

import pytest

from fastgate.config import ConfigError, load_config
from fastgate.config.model import TokenService

BASE = """\
listeners:
  - name: main
    address: 127.0.0.1:0
issuers:
  - name: corp
    issuer: https://idp.example.com/
    jwks_uri: https://idp.example.com/jwks
    audiences: [api]
    algorithms: [ES256]
"""


MASTER = base64.b64encode(b"k" * 32).decode()


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FASTGATE_MASTER_KEY", MASTER)
    (tmp_path / "keys").mkdir()
    return tmp_path


def load(text: str):
    Path("gateway.yaml").write_text(BASE + textwrap.dedent(text))
    return load_config("gateway.yaml")


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(text)
    return caught.value.problems


def test_full_token_service(here: Path) -> None:
    cfg = load("""
        token_service:
          enabled: true
          issuer: https://gw.example.com/
          signing_key: keys/signing.pem
          access_token_ttl: 5m
          refresh_token_ttl: 7d
          authorization_code_ttl: 30s
          grants: [client_credentials, jwt_bearer]
          jwt_bearer_issuers: [corp]
          pkce: public_clients
          key_rotation: 30d
        """)
    assert cfg.token_service == TokenService(
        issuer="https://gw.example.com/", signing_key=here / "keys/signing.pem",
        access_token_ttl=300.0, refresh_token_ttl=7 * 86400.0, authorization_code_ttl=30.0,
        grants=("client_credentials", "jwt_bearer"), jwt_bearer_issuers=("corp",),
        pkce="public_clients", key_rotation=30 * 86400.0)


def test_defaults_and_off(here: Path) -> None:
    cfg = load("""
        token_service: {enabled: true, issuer: "https://gw.example.com/", signing_key: keys/k.pem}
        """)
    ts = cfg.token_service
    assert (ts.access_token_ttl, ts.refresh_token_ttl, ts.authorization_code_ttl) == (900.0, 30 * 86400.0, 60.0)
    assert ts.grants == ("client_credentials", "refresh_token", "authorization_code")
    assert ts.pkce == "required" and ts.key_rotation is None
    assert load("token_service: {enabled: false, issuer: \"https://x/\"}\n").token_service is None
    assert load("token_service: off\n").token_service is None


def test_oauth2_api_needs_no_issuer_with_the_token_service(here: Path) -> None:
    Path("gateway.yaml").write_text(textwrap.dedent("""\
        listeners: [{name: main, address: "127.0.0.1:0"}]
        token_service: {enabled: true, issuer: "https://gw.example.com/", signing_key: keys/k.pem}
        apis:
          - {name: a, base_path: /a, upstream: {urls: ["http://h"]}, authentication: [oauth2]}
        """))
    assert load_config("gateway.yaml").apis[0].authentication == ("oauth2",)


@pytest.mark.parametrize("text, expected", [
    ("token_service: {enabled: true}\n",
     ["gateway.yaml:10: token_service.issuer: required",
      "gateway.yaml:10: token_service.signing_key: required"]),
    ("token_service:\n  enabled: true\n  issuer: gw.example.com\n  signing_key: keys/k.pem\n",
     ['gateway.yaml:12: token_service.issuer: expected an http(s) URL like "https://example.com/path"']),
    ("token_service:\n  enabled: true\n  issuer: https://gw/\n  signing_key: nowhere/k.pem\n",
     ["gateway.yaml:13: token_service.signing_key: folder not found: nowhere"]),
    ("token_service:\n  enabled: true\n  issuer: https://gw/\n  signing_key: keys\n",
     ["gateway.yaml:13: token_service.signing_key: not a file: keys"]),
    ("token_service:\n  enabled: true\n  issuer: https://gw/\n  signing_key: keys/k.pem\n  grants: [implicit]\n",
     ["gateway.yaml:14: token_service.grants[0]: expected one of: authorization_code, "
      "client_credentials, password, refresh_token, jwt_bearer"]),
    ("token_service:\n  enabled: true\n  issuer: https://gw/\n  signing_key: keys/k.pem\n  grants: [jwt_bearer]\n",
     ["gateway.yaml:14: token_service.jwt_bearer_issuers: required for the jwt_bearer grant"]),
    ("token_service:\n  enabled: true\n  issuer: https://gw/\n  signing_key: keys/k.pem\n"
     "  jwt_bearer_issuers: [corp, nobody]\n",
     ['gateway.yaml:14: token_service.jwt_bearer_issuers[1]: no issuer named "nobody"']),
    ("token_service:\n  enabled: true\n  issuer: https://gw/\n  signing_key: keys/k.pem\n  pkce: optional\n",
     ["gateway.yaml:14: token_service.pkce: expected one of: required, public_clients"]),
    ("token_service:\n  enabled: true\n  issuer: https://gw/\n  signing_key: keys/k.pem\n  access_token_ttl: 0s\n",
     ["gateway.yaml:14: token_service.access_token_ttl: must be > 0"]),
    ("token_service:\n  enabled: true\n  issuer: https://gw/\n  signing_key: keys/k.pem\n  key_rotation: soon\n",
     ['gateway.yaml:14: token_service.key_rotation: expected a duration like "1m"']),
    ("token_service:\n  enabled: true\n  issuer: https://idp.example.com/\n  signing_key: keys/k.pem\n",
     ["gateway.yaml:12: token_service.issuer: also the issuer of an issuers entry"]),
    ("token_service:\n  enabled: true\n  issuer: https://gw/\n  signing_key: keys/k.pem\n  audience: x\n",
     ["gateway.yaml:14: token_service.audience: unknown key"]),
])
def test_problems(here: Path, text: str, expected: list[str]) -> None:
    assert problems(text) == expected


def test_master_key_is_checked_at_load(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = 'token_service:\n  enabled: true\n  issuer: https://gw/\n  signing_key: keys/k.pem\n'
    monkeypatch.delenv("FASTGATE_MASTER_KEY")
    assert problems(text) == ["gateway.yaml:11: token_service.enabled: needs the master key: environment "
                              "variable FASTGATE_MASTER_KEY (secrets.master_key_env) is not set"]
    monkeypatch.setenv("FASTGATE_MASTER_KEY", "c2hvcnQ=")
    assert problems(text) == ["gateway.yaml:11: token_service.enabled: needs the master key: "
                              "FASTGATE_MASTER_KEY must hold base64 of 32 bytes"]
    monkeypatch.setenv("OTHER_MK", MASTER)
    assert load("secrets: {master_key_env: OTHER_MK}\n" + text).token_service is not None
    assert load("token_service: {enabled: false}\n").token_service is None  # off: not needed

"""The identity sections of the config (issue 4): issuers, introspection, and per API
authentication, api_key, mtls and authorization; exact "FILE:LINE: key.path: message" problems
and the model objects a valid file builds.

Every test writes gateway.yaml in a fresh tmp folder and loads it by that relative name.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from fastgate.config import ConfigError, load_config
from fastgate.config.identity import glob_problem, template_problem
from fastgate.config.model import (
    ApiKeyLocation,
    Authorization,
    Introspection,
    Issuer,
    Opa,
    PolicyRule,
    ResourceScopes,
    TimeWindow,
)

BASE = """\
listeners:
  - name: main
    address: 127.0.0.1:0
"""
API = "apis:\n  - name: a\n    base_path: /a\n    upstream: {urls: [http://127.0.0.1:9000]}\n"
SCRYPT = "scrypt$16384$8$1$c2FsdA$aGFzaA"
HA1 = "sha256:" + "0" * 64
KEY_HASH = "sha256:" + "a" * 64
HS_ENV, HS_SECRET = "FASTGATE_TEST_HS_SECRET", "0123456789abcdef" * 4  # 64 bytes: enough for HS512 (RFC 7518 §3.2)
AS_ENV = "FASTGATE_TEST_INTROSPECTION_SECRET"


def ec_jwk(curve: ec.EllipticCurve | None = None) -> dict:
    key = ec.generate_private_key(curve or ec.SECP256R1())
    return ECAlgorithm.to_jwk(key.public_key(), as_dict=True)


def rsa_jwk() -> dict:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path as the working directory; certificate files exist; secrets are set."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "certs").mkdir()
    for name in ("server.crt", "server.key", "client-ca.crt"):
        (tmp_path / "certs" / name).touch()  # the loader only checks that they exist
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys/idp-jwks.json").write_text(json.dumps({"keys": [ec_jwk()]}))
    monkeypatch.setenv(HS_ENV, HS_SECRET)
    monkeypatch.setenv(AS_ENV, "introspection-secret")
    monkeypatch.delenv("FASTGATE_TEST_UNSET", raising=False)
    return tmp_path


def load(text: str, base: str = BASE):
    Path("gateway.yaml").write_text(base + textwrap.dedent(text))
    return load_config("gateway.yaml")


def problems(text: str, base: str = BASE) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(text, base)
    return caught.value.problems


# ------------------------------------------------------------------------ a full, valid file

FULL = f"""\
listeners:
  - name: public
    address: 127.0.0.1:0
    tls:
      certificate: certs/server.crt
      private_key: certs/server.key
      client_certificates: optional
      client_ca: certs/client-ca.crt
users:
  - {{name: alice, password_hash: "{SCRYPT}", digest_ha1: "{HA1}", roles: [teacher]}}
  - {{name: sam, password_hash: "{SCRYPT}", roles: [student]}}
applications:
  - name: school-app
    api_keys: [{{id: k1, hash: "{KEY_HASH}"}}]
    certificates: [{{subject: "CN=school,O=Example"}}]
issuers:
  - name: corp-idp
    issuer: https://idp.example.com/
    jwks_uri: https://idp.example.com/.well-known/jwks.json
    audiences: [courses-api]
    algorithms: [RS256, ES256]
    leeway: 45s
    scope_claim: scp
    roles_claim: groups
  - name: file-idp
    issuer: https://files.example.com/
    jwks_file: keys/idp-jwks.json
    audiences: [courses-api, other-api]
    algorithms: [ES256]
  - name: hs-idp
    issuer: hs-issuer
    secret_env: {HS_ENV}
    audiences: [courses-api]
    algorithms: [HS256, HS512]
    leeway: 0
introspection:
  - name: legacy-as
    url: https://as.example.com/oauth2/introspect
    client_id: gateway
    client_secret_env: {AS_ENV}
    cache_ttl: 30s
    timeout: 500ms
  - {{name: other-as, url: "http://127.0.0.1:8100/introspect", client_id: gw, client_secret_env: {AS_ENV}}}
apis:
  - name: courses
    base_path: /school/v1
    upstream: {{urls: [http://127.0.0.1:9000]}}
    authentication: [oauth2, api_key, mtls, basic, digest]
    api_key: {{header: X-School-Key, query: null}}
    mtls: required
    authorization:
      roles_to_scopes: {{teacher: [course:create, course:view], student: [course:view]}}
      resources:
        - {{path: /courses, methods: [post], scopes: [course:create]}}
        - {{path: "/courses/{{id}}/", methods: [GET, head], scopes: [course:view]}}
        - {{path: "/files/**"}}
      rules:
        - {{id: teachers-create, allow: true, roles: [teacher], path: /courses, methods: [POST]}}
        - {{allow: true, roles: [student], path: "/courses/**", methods: [get],
           time: {{from: "06:00", to: 22:00, timezone: Asia/Colombo}}}}
        - id: partner
          allow: true
          applications: [school-app]
          scopes: [course:view]
          client_ips: [10.0.0.0/8, "2001:db8::/32", 192.0.2.7]
          claims: {{dept: physics, level: [1, 2], staff: true}}
          path: /courses/*/grades
        - {{allow: false}}
      opa:
        url: http://127.0.0.1:8181/v1/data/fastgate/allow
        timeout: 100ms
        on_error: deny
  - name: defaults
    base_path: /d
    upstream: {{urls: [http://127.0.0.1:9000]}}
    authentication: [api_key]
    authorization: {{rules: [{{allow: false, time: {{from: "22:00", to: "06:00"}}}}]}}
"""


def test_full_identity_config_builds_the_right_objects(here: Path) -> None:
    cfg = load(FULL, base="")
    assert cfg.issuers == (
        Issuer(
            name="corp-idp",
            issuer="https://idp.example.com/",
            algorithms=("RS256", "ES256"),
            audiences=("courses-api",),
            jwks_uri="https://idp.example.com/.well-known/jwks.json",
            leeway=45.0,
            scope_claim="scp",
            roles_claim="groups",
        ),
        Issuer(
            name="file-idp",
            issuer="https://files.example.com/",
            algorithms=("ES256",),
            audiences=("courses-api", "other-api"),
            jwks_file=here / "keys/idp-jwks.json",
        ),
        Issuer(
            name="hs-idp",
            issuer="hs-issuer",
            algorithms=("HS256", "HS512"),
            audiences=("courses-api",),
            secret_env=HS_ENV,
            leeway=0.0,
        ),
    )
    assert HS_SECRET not in repr(cfg)  # only the variable's name is kept
    assert cfg.introspection == (
        Introspection("legacy-as", "https://as.example.com/oauth2/introspect", "gateway", AS_ENV,
                      cache_ttl=30.0, timeout=0.5),
        Introspection("other-as", "http://127.0.0.1:8100/introspect", "gw", AS_ENV),
    )  # fmt: skip
    assert (cfg.introspection[1].cache_ttl, cfg.introspection[1].timeout) == (60.0, 2.0)

    courses, defaults = cfg.apis
    assert courses.authentication == ("oauth2", "api_key", "mtls", "basic", "digest")
    assert courses.api_key == ApiKeyLocation(header="X-School-Key", query=None)
    assert courses.mtls == "required"
    assert courses.authorization == Authorization(
        roles_to_scopes={
            "teacher": ("course:create", "course:view"),
            "student": ("course:view",),
        },
        resources=(
            ResourceScopes("/courses", ("POST",), ("course:create",)),
            ResourceScopes("/courses/{id}", ("GET", "HEAD"), ("course:view",)),
            ResourceScopes("/files/**"),
        ),
        rules=(
            PolicyRule("teachers-create", True, roles=("teacher",), methods=("POST",),
                       path="/courses"),
            PolicyRule("rules[1]", True, roles=("student",), methods=("GET",), path="/courses/**",
                       time=TimeWindow("06:00", "22:00", "Asia/Colombo")),
            PolicyRule("partner", True, scopes=("course:view",), applications=("school-app",),
                       path="/courses/*/grades",
                       client_ips=("10.0.0.0/8", "2001:db8::/32", "192.0.2.7"),
                       claims={"dept": "physics", "level": (1, 2), "staff": True}),
            PolicyRule("rules[3]", False),
        ),
        opa=Opa("http://127.0.0.1:8181/v1/data/fastgate/allow", timeout=0.1, on_error="deny",
                cache_ttl=1.0),
    )  # fmt: skip
    assert defaults.api_key == ApiKeyLocation("X-API-Key", "api_key")
    assert defaults.mtls == "optional"
    assert defaults.authorization == Authorization(
        rules=(PolicyRule("rules[0]", False, time=TimeWindow("22:00", "06:00", "UTC")),)
    )
    assert cfg.lines["apis[0].authorization.rules[2]"] == 61
    assert cfg.lines["issuers[2].secret_env"] == 32


def test_the_seeds_example_as_in_the_reference(here: Path) -> None:
    """teachers may POST /courses, students may GET /courses/** 06:00-22:00 Colombo time."""
    cfg = load(
        f"""\
        users:
          - {{name: t, password_hash: "{SCRYPT}", roles: [teacher]}}
        apis:
          - name: school
            base_path: /school
            upstream: {{urls: [http://127.0.0.1:9000]}}
            authentication: [basic]
            authorization:
              rules:
                - {{allow: true, roles: [teacher], path: /courses, methods: [POST]}}
                - {{allow: true, roles: [student], path: "/courses/**", methods: [GET],
                   time: {{from: "06:00", to: "22:00", timezone: Asia/Colombo}}}}
                - {{allow: false}}
        """
    )
    assert cfg.apis[0].authorization.rules == (
        PolicyRule("rules[0]", True, roles=("teacher",), methods=("POST",), path="/courses"),
        PolicyRule("rules[1]", True, roles=("student",), methods=("GET",), path="/courses/**",
                   time=TimeWindow("06:00", "22:00", "Asia/Colombo")),
        PolicyRule("rules[2]", False),
    )  # fmt: skip


@pytest.mark.parametrize(
    "block, query",
    [
        ("", "api_key"),
        ("    api_key: {header: X-Key}\n", "api_key"),
        ("    api_key: {query: key}\n", "key"),
        ("    api_key: {query: null}\n", None),
        ("    api_key: {query: ~}\n", None),
        ("    api_key:\n      query:\n", None),
        ("    api_key: {query: false}\n", None),
        ("    api_key: {query: off}\n", None),
        ('    api_key: {query: "off"}\n', None),
        ("    api_key:\n", "api_key"),  # a null block is an absent block
    ],
)
def test_api_key_query_location(here: Path, block: str, query: str | None) -> None:
    assert load(API + block).apis[0].api_key.query == query


@pytest.mark.parametrize("block", ["", "    authorization: {}\n", "    authorization:\n",
                                   "    authorization: {rules: [], resources: []}\n"])  # fmt: skip
def test_authorization_that_configures_nothing_is_none(here: Path, block: str) -> None:
    assert load(API + block).apis[0].authorization is None


def test_needs_are_met_by_sections_in_any_order(here: Path) -> None:
    cfg = load(
        f"""\
        apis:
          - name: a
            base_path: /a
            upstream: {{urls: [http://h]}}
            authentication: [digest, api_key, oauth2]
        users:
          - {{name: u, password_hash: "{SCRYPT}"}}
          - {{name: v, password_hash: "{SCRYPT}", digest_ha1: "{HA1}"}}
        applications:
          - {{name: none-yet, api_keys: []}}
          - {{name: app, api_keys: [{{id: k, hash: "{KEY_HASH}"}}]}}
        introspection:
          - {{name: as, url: "https://as/i", client_id: c, client_secret_env: {AS_ENV}}}
        """
    )
    assert cfg.apis[0].authentication == ("digest", "api_key", "oauth2")


def test_a_listener_with_optional_client_certificates_is_enough_for_mtls(here: Path) -> None:
    base = (
        "listeners:\n  - {name: plain, address: 127.0.0.1:0}\n  - name: tls\n"
        "    address: 127.0.0.1:1\n    tls: {certificate: certs/server.crt, private_key:"
        " certs/server.key, client_certificates: optional, client_ca: certs/client-ca.crt}\n"
    )
    api = load(API + "    authentication: [mtls]\n    mtls: required\n", base).apis[0]
    assert (api.authentication, api.mtls) == (("mtls",), "required")


def test_every_algorithm_is_accepted(here: Path) -> None:
    for algorithms in (["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
                       ["ES256", "ES384", "ES512", "EdDSA"]):  # fmt: skip
        text = (
            "issuers:\n  - {name: i, issuer: x, audiences: [a], jwks_uri: 'https://x/k',"
            f" algorithms: [{', '.join(algorithms)}]}}\n"
        )
        assert load(text).issuers[0].algorithms == tuple(algorithms)


@pytest.mark.parametrize(
    "keys, algorithms",
    [
        (lambda: [rsa_jwk()], "[RS256, PS512]"),
        (lambda: [ec_jwk(ec.SECP384R1()), rsa_jwk()], "[ES384]"),
        (
            lambda: [
                OKPAlgorithm.to_jwk(ed25519.Ed25519PrivateKey.generate().public_key(), as_dict=True)
            ],
            "[EdDSA]",
        ),
    ],
)
def test_jwks_files_that_load(here: Path, keys, algorithms: str) -> None:
    (here / "keys/set.json").write_text(json.dumps({"keys": keys()}))
    text = (
        "issuers:\n  - {name: i, issuer: x, audiences: [a], jwks_file: keys/set.json,"
        f" algorithms: {algorithms}}}\n"
    )
    assert load(text).issuers[0].jwks_file == here / "keys/set.json"


# ------------------------------------------------------------------------ exact messages

ISSUER = "issuers:\n  - {name: i, issuer: x, audiences: [a], "
ISSUER_CASES = [
    (
        "issuers:\n  - name: corp\n",
        [
            "gateway.yaml:5: issuers[0].issuer: required",
            "gateway.yaml:5: issuers[0].algorithms: required",
            "gateway.yaml:5: issuers[0].audiences: required",
            "gateway.yaml:5: issuers[0]: expected exactly one of: jwks_uri, jwks_file, secret_env",
        ],
    ),
    ("issuers: {name: x}\n", ["gateway.yaml:4: issuers: expected a list"]),
    (
        "issuers:\n  - {name: i, issuer: x, audiences: [a], algorithms: [RS256], jwks_uri: 'https://x/k', colour: red}\n",
        ["gateway.yaml:5: issuers[0].colour: unknown key"],
    ),
    (
        ISSUER + "algorithms: [none, RS256, RS256, XS256], jwks_uri: 'https://x/k'}\n",
        [
            'gateway.yaml:5: issuers[0].algorithms[0]: "none" is never accepted',
            'gateway.yaml:5: issuers[0].algorithms[2]: duplicate entry "RS256"',
            "gateway.yaml:5: issuers[0].algorithms[3]: expected one of: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, HS256, HS384, HS512",
        ],
    ),
    (
        ISSUER + "algorithms: [NONE], jwks_uri: 'https://x/k'}\n",
        ['gateway.yaml:5: issuers[0].algorithms[0]: "none" is never accepted'],
    ),
    (
        ISSUER + "algorithms: [], jwks_uri: 'https://x/k'}\n",
        ["gateway.yaml:5: issuers[0].algorithms: must not be empty"],
    ),
    (
        ISSUER + "algorithms: RS256, jwks_uri: 'https://x/k'}\n",
        ["gateway.yaml:5: issuers[0].algorithms: expected a list"],
    ),
    (
        ISSUER + f"algorithms: [RS256, HS256], secret_env: {HS_ENV}}}\n",
        ["gateway.yaml:5: issuers[0].algorithms: HS* and public-key algorithms cannot be mixed"],
    ),
    (
        ISSUER + "algorithms: [HS256], jwks_uri: 'https://x/k'}\n",
        [
            "gateway.yaml:5: issuers[0].secret_env: required for HS256, HS384 and HS512",
            "gateway.yaml:5: issuers[0].jwks_uri: HS256, HS384 and HS512 use secret_env, not keys",
        ],
    ),
    (
        ISSUER + "algorithms: [HS384]}\n",
        ["gateway.yaml:5: issuers[0].secret_env: required for HS256, HS384 and HS512"],
    ),
    (
        ISSUER + f"algorithms: [ES256], secret_env: {HS_ENV}}}\n",
        [
            "gateway.yaml:5: issuers[0]: expected exactly one of: jwks_uri, jwks_file",
            "gateway.yaml:5: issuers[0].secret_env: only for HS256, HS384 and HS512",
        ],
    ),
    (
        ISSUER + "algorithms: [ES256]}\n",
        ["gateway.yaml:5: issuers[0]: expected exactly one of: jwks_uri, jwks_file"],
    ),
    (
        ISSUER + "algorithms: [ES256], jwks_uri: 'https://x/k', jwks_file: keys/idp-jwks.json}\n",
        ["gateway.yaml:5: issuers[0]: expected exactly one of: jwks_uri, jwks_file"],
    ),
    (
        ISSUER + "algorithms: [HS256], secret_env: FASTGATE_TEST_UNSET}\n",
        [
            "gateway.yaml:5: issuers[0].secret_env: environment variable FASTGATE_TEST_UNSET is not set"
        ],
    ),
    (
        ISSUER + "algorithms: [HS256], secret_env: 'NOT-A-NAME'}\n",
        ["gateway.yaml:5: issuers[0].secret_env: expected an environment variable name"],
    ),
    (
        "issuers:\n  - {name: i, issuer: x, audiences: [], algorithms: [RS256], jwks_uri: 'ftp://x/k'}\n",
        [
            "gateway.yaml:5: issuers[0].audiences: must not be empty",
            'gateway.yaml:5: issuers[0].jwks_uri: expected an http(s) URL like "https://example.com/path"',
        ],
    ),
    (
        "issuers:\n  - {name: i, issuer: x, algorithms: [RS256], jwks_uri: 'https://user:pw@x/k', audiences: a}\n",
        [
            'gateway.yaml:5: issuers[0].jwks_uri: expected an http(s) URL like "https://example.com/path"',
            "gateway.yaml:5: issuers[0].audiences: expected a list",
        ],
    ),
    (
        ISSUER + "algorithms: [RS256], jwks_uri: 'https://x/k', leeway: 301s}\n",
        ["gateway.yaml:5: issuers[0].leeway: must be at most 5m"],
    ),
    (
        ISSUER + "algorithms: [RS256], jwks_uri: 'https://x/k', leeway: soon, scope_claim: 1}\n",
        [
            'gateway.yaml:5: issuers[0].leeway: expected a duration like "1m"',
            "gateway.yaml:5: issuers[0].scope_claim: expected a string",
        ],
    ),
    (
        ISSUER + "algorithms: [RS256], jwks_uri: 'https://x/k'}\n"
        "  - {name: i, issuer: x, audiences: [a], algorithms: [RS256], jwks_uri: 'https://x/k'}\n",
        [
            'gateway.yaml:6: issuers[1].name: duplicate name "i"',
            'gateway.yaml:6: issuers[1].issuer: duplicate issuer "x"',
        ],
    ),
    (
        ISSUER + "algorithms: [RS256], jwks_file: keys/missing.json}\n",
        ["gateway.yaml:5: issuers[0].jwks_file: file not found: keys/missing.json"],
    ),
]


@pytest.mark.parametrize("text, expected", ISSUER_CASES)
def test_issuer_problems(here: Path, text: str, expected: list[str]) -> None:
    assert problems(text) == expected


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "secret in {env} must be at least 32 bytes"),
        ("x" * 31, "secret in {env} must be at least 32 bytes"),
        ("é" * 16, None),  # 32 bytes in UTF-8
        ("x" * 32, None),
    ],
)
def test_secret_env_length(
    here: Path, monkeypatch: pytest.MonkeyPatch, value: str, message: str | None
) -> None:
    monkeypatch.setenv(HS_ENV, value)
    text = ISSUER + f"algorithms: [HS256], secret_env: {HS_ENV}}}\n"
    if message is None:
        assert load(text).issuers[0].secret_env == HS_ENV
    else:
        expected = f"gateway.yaml:5: issuers[0].secret_env: {message.format(env=HS_ENV)}"
        assert problems(text) == [expected]


OCT = {"kty": "oct", "k": "c2VjcmV0"}
JWKS_CASES = [
    ("not json", 'not a JWKS: expected JSON with a "keys" list'),
    ('{"keys": {}}', 'not a JWKS: expected JSON with a "keys" list'),
    ("[1]", 'not a JWKS: expected JSON with a "keys" list'),
    ('{"keys": []}', "the JWKS holds no keys"),
    ('{"keys": [1]}', 'keys[0] is not a JWK: expected an object with "kty"'),
    (
        json.dumps({"keys": [ec_jwk(), OCT]}),
        'keys[1] is a shared secret ("kty": "oct"): a JWKS file holds public keys',
    ),
    (
        json.dumps({"keys": [{**ec_jwk(), "d": "AAAA"}]}),
        "keys[0] holds private key material: a JWKS file holds public keys",
    ),
    (
        json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA"}]}),
        "keys[0] is not a valid EC public key",
    ),
    (json.dumps({"keys": [{"kty": "XYZ"}]}), 'keys[0] has "kty": "XYZ": expected RSA, EC or OKP'),
    (json.dumps({"keys": [rsa_jwk()]}), "no EC key for algorithms ES256"),
]


@pytest.mark.parametrize("content, message", JWKS_CASES)
def test_jwks_file_problems(here: Path, content: str, message: str) -> None:
    (here / "keys/bad.json").write_text(content)
    text = ISSUER + "algorithms: [ES256], jwks_file: keys/bad.json}\n"
    assert problems(text) == [f"gateway.yaml:5: issuers[0].jwks_file: {message}"]


INTROSPECTION_CASES = [
    (
        "introspection: [{name: x}]\n",
        [
            "gateway.yaml:4: introspection[0].url: required",
            "gateway.yaml:4: introspection[0].client_id: required",
            "gateway.yaml:4: introspection[0].client_secret_env: required",
        ],
    ),
    (
        "introspection:\n  - name: x\n    url: as.example.com/introspect\n    client_id: ''\n"
        "    client_secret_env: FASTGATE_TEST_UNSET\n    cache_ttl: 1 minute\n    timeout: 0\n",
        [
            'gateway.yaml:6: introspection[0].url: expected an http(s) URL like "https://example.com/path"',
            "gateway.yaml:7: introspection[0].client_id: must not be empty",
            "gateway.yaml:8: introspection[0].client_secret_env: environment variable FASTGATE_TEST_UNSET is not set",
            'gateway.yaml:9: introspection[0].cache_ttl: expected a duration like "1m"',
            "gateway.yaml:10: introspection[0].timeout: must be > 0",
        ],
    ),
    (
        f"introspection:\n  - {{name: x, url: 'https://a/i', client_id: c, client_secret_env: {AS_ENV}}}\n"
        f"  - {{name: x, url: 'https://a/i', client_id: c, client_secret_env: {AS_ENV}}}\n",
        ['gateway.yaml:6: introspection[1].name: duplicate name "x"'],
    ),
]


@pytest.mark.parametrize("text, expected", INTROSPECTION_CASES)
def test_introspection_problems(here: Path, text: str, expected: list[str]) -> None:
    assert problems(text) == expected


def test_introspection_secret_must_not_be_empty(here: Path, monkeypatch) -> None:
    monkeypatch.setenv(AS_ENV, "")
    text = f"introspection:\n  - {{name: x, url: 'https://a/i', client_id: c, client_secret_env: {AS_ENV}}}\n"
    assert problems(text) == [
        f"gateway.yaml:5: introspection[0].client_secret_env: environment variable {AS_ENV} is empty"
    ]


def test_cache_ttl_zero_is_allowed(here: Path) -> None:
    text = (
        "introspection:\n  - {name: x, url: 'https://a/i', client_id: c,"
        f" client_secret_env: {AS_ENV}, cache_ttl: 0}}\n"
    )
    assert load(text).introspection[0].cache_ttl == 0.0


AUTHENTICATION_CASES = [
    (
        "    authentication: [basic, digest, mtls, oauth2, api_key, basic]\n    mtls: required\n",
        [
            "gateway.yaml:8: apis[0].authentication[0]: basic needs users",
            "gateway.yaml:8: apis[0].authentication[1]: digest needs users",
            "gateway.yaml:8: apis[0].authentication[2]: mtls needs a listener with client_certificates",
            "gateway.yaml:8: apis[0].authentication[3]: oauth2 needs issuers or introspection",
            "gateway.yaml:8: apis[0].authentication[4]: api_key needs an application with api_keys",
            'gateway.yaml:8: apis[0].authentication[5]: duplicate entry "basic"',
            "gateway.yaml:9: apis[0].mtls: mtls needs a listener with client_certificates",
        ],
    ),
    (
        f"    authentication: [digest, api_key]\nusers:\n  - {{name: u, password_hash: '{SCRYPT}'}}\n"
        "applications:\n  - {name: a, api_keys: []}\n",
        [
            "gateway.yaml:8: apis[0].authentication[0]: digest needs a user with digest_ha1",
            "gateway.yaml:8: apis[0].authentication[1]: api_key needs an application with api_keys",
        ],
    ),
    (  # an invalid entry still counts: one mistake, one message
        "    authentication: [digest, oauth2]\nusers:\n  - {name: u, password_hash: x, digest_ha1: y}\n"
        "issuers:\n  - {name: i}\n",
        [
            'gateway.yaml:10: users[0].password_hash: expected an scrypt hash from "fastgate hash-password"',
            'gateway.yaml:10: users[0].digest_ha1: expected "sha256:" and 64 lowercase hex digits',
            "gateway.yaml:12: issuers[0].issuer: required",
            "gateway.yaml:12: issuers[0].algorithms: required",
            "gateway.yaml:12: issuers[0].audiences: required",
            "gateway.yaml:12: issuers[0]: expected exactly one of: jwks_uri, jwks_file, secret_env",
        ],
    ),
    (
        "    authentication: [Basic, ~]\n",
        [
            "gateway.yaml:8: apis[0].authentication[0]: expected one of: oauth2, api_key, mtls, basic, digest",
            "gateway.yaml:8: apis[0].authentication[1]: expected one of: oauth2, api_key, mtls, basic, digest",
        ],
    ),
    (
        "    mtls: off\n",
        ["gateway.yaml:8: apis[0].mtls: expected one of: optional, required"],
    ),
    (
        "    api_key: {header: Authorization, query: 'a b'}\n",
        [
            'gateway.yaml:8: apis[0].api_key.header: "Authorization" cannot carry API keys: hop-by-hop, a credential or set by the gateway',
            'gateway.yaml:8: apis[0].api_key.query: expected a query parameter name (letters, digits, "-", ".", "_", "~")',
        ],
    ),
    (
        "    api_key: {header: 'X API Key'}\n",
        ["gateway.yaml:8: apis[0].api_key.header: expected a header name (RFC 9110 §5.1)"],
    ),
    (
        "    api_key: {header: X-Key, cookie: k}\n",
        ["gateway.yaml:8: apis[0].api_key.cookie: unknown key"],
    ),
    ("    api_key: X-Key\n", ["gateway.yaml:8: apis[0].api_key: expected a mapping"]),
]


@pytest.mark.parametrize("text, expected", AUTHENTICATION_CASES)
def test_authentication_problems(here: Path, text: str, expected: list[str]) -> None:
    assert problems(API + text) == expected


@pytest.mark.parametrize(
    "header",
    ["Host", "connection", "Transfer-Encoding", "Proxy-Authorization", "Cookie", "X-Forwarded-For",
     "x_forwarded_for", "X-Request-Id", "X-Fastgate-Subject", "Content-Length", "TE", "Upgrade"],
)  # fmt: skip
def test_reserved_headers_cannot_carry_keys(here: Path, header: str) -> None:
    assert problems(API + f"    api_key: {{header: {header}}}\n") == [
        f'gateway.yaml:8: apis[0].api_key.header: "{header}" cannot carry API keys: hop-by-hop,'
        " a credential or set by the gateway"
    ]


AUTHZ = API + "    authorization:\n"
AUTHORIZATION_CASES = [
    ("      roles: {}\n", ["gateway.yaml:9: apis[0].authorization.roles: unknown key"]),
    (
        "      roles_to_scopes: {teacher: [a, 'b c'], student: view}\n",
        [
            "gateway.yaml:9: apis[0].authorization.roles_to_scopes.teacher[1]: expected a scope token (RFC 6749 §3.3)",
            "gateway.yaml:9: apis[0].authorization.roles_to_scopes.student: expected a list",
        ],
    ),
    (
        "      resources:\n"
        "        - {path: /c, methods: [post, GET, GET, 'A B']}\n"
        "        - {path: '/c/{id}/x/{id}'}\n"
        "        - {path: /c/**/x}\n"
        "        - {path: c}\n"
        "        - {path: /c/a*}\n"
        "        - {path: /c/../a}\n"
        "        - {path: /c/, methods: []}\n"
        "        - {path: /c//d}\n"
        "        - {path: /c%2f}\n"
        "        - {methods: [GET], scopes: [x y]}\n",
        [
            'gateway.yaml:10: apis[0].authorization.resources[0].methods[2]: duplicate entry "GET"',
            "gateway.yaml:10: apis[0].authorization.resources[0].methods[3]: expected an HTTP method like GET (RFC 9110 §9.1)",
            'gateway.yaml:11: apis[0].authorization.resources[1].path: duplicate template name "id"',
            'gateway.yaml:12: apis[0].authorization.resources[2].path: "**" only as the last segment',
            'gateway.yaml:13: apis[0].authorization.resources[3].path: must start with "/"',
            'gateway.yaml:14: apis[0].authorization.resources[4].path: expected a path like "/courses/{id}" or "/courses/**"',
            'gateway.yaml:15: apis[0].authorization.resources[5].path: must not contain "." or ".." segments',
            "gateway.yaml:16: apis[0].authorization.resources[6].methods: must not be empty",
            'gateway.yaml:17: apis[0].authorization.resources[7].path: must not contain "//"',
            'gateway.yaml:18: apis[0].authorization.resources[8].path: must not contain "%"',
            "gateway.yaml:19: apis[0].authorization.resources[9].path: required",
            "gateway.yaml:19: apis[0].authorization.resources[9].scopes[0]: expected a scope token (RFC 6749 §3.3)",
        ],
    ),
    (
        "      resources:\n"
        "        - {path: '/c/{id}', methods: [GET]}\n"
        "        - {path: '/c/{name}/', methods: [PUT, get]}\n"
        "        - {path: /c}\n"
        "        - {path: /c, methods: [GET]}\n",
        [
            "gateway.yaml:11: apis[0].authorization.resources[1].path: same path and method as apis[0].authorization.resources[0]",
        ],
    ),
    (
        "      rules:\n"
        "        - {allow: true, roles: [], scopes: [], applications: [], methods: [], client_ips: []}\n"
        "        - {id: r, allow: yes, applications: [nope], client_ips: [10.0.0.1/8, '::1', 10.0.0.0/8]}\n"
        "        - {id: r, allow: 1}\n"
        "        - {roles: [x]}\n"
        "        - {allow: false, path: /a/**/b}\n"
        "        - {allow: false, path: '/a/{id}'}\n"
        "        - {allow: false, path: a/*}\n"
        "        - {allow: false, when: always}\n",
        [
            "gateway.yaml:10: apis[0].authorization.rules[0].roles: must not be empty",
            "gateway.yaml:10: apis[0].authorization.rules[0].scopes: must not be empty",
            "gateway.yaml:10: apis[0].authorization.rules[0].applications: must not be empty",
            "gateway.yaml:10: apis[0].authorization.rules[0].methods: must not be empty",
            "gateway.yaml:10: apis[0].authorization.rules[0].client_ips: must not be empty",
            'gateway.yaml:11: apis[0].authorization.rules[1].applications[0]: no application named "nope"',
            "gateway.yaml:11: apis[0].authorization.rules[1].client_ips[0]: expected an IP address or CIDR",
            'gateway.yaml:12: apis[0].authorization.rules[2].id: duplicate id "r"',
            "gateway.yaml:12: apis[0].authorization.rules[2].allow: expected a boolean",
            "gateway.yaml:13: apis[0].authorization.rules[3].allow: required",
            'gateway.yaml:14: apis[0].authorization.rules[4].path: "**" only as the last segment',
            'gateway.yaml:15: apis[0].authorization.rules[5].path: expected a path glob like "/courses/*" or "/courses/**"',
            'gateway.yaml:16: apis[0].authorization.rules[6].path: must start with "/"',
            "gateway.yaml:17: apis[0].authorization.rules[7].when: unknown key",
        ],
    ),
    (
        "      rules:\n"
        "        - allow: false\n"
        "          claims: {a: [1, x], b: {c: 1}, c: ~, d: [], e: 2020-01-01, f: [[1]]}\n",
        [
            "gateway.yaml:11: apis[0].authorization.rules[0].claims.b: expected a scalar or a list of scalars",
            "gateway.yaml:11: apis[0].authorization.rules[0].claims.c: expected a scalar or a list of scalars",
            "gateway.yaml:11: apis[0].authorization.rules[0].claims.d: must not be empty",
            "gateway.yaml:11: apis[0].authorization.rules[0].claims.e: expected a scalar or a list of scalars",
            "gateway.yaml:11: apis[0].authorization.rules[0].claims.f[0]: expected a scalar or a list of scalars",
        ],
    ),
    (
        "      rules:\n"
        "        - {allow: false, time: {from: '06:00', to: 22:00, timezone: Mars/Base}}\n"
        "        - {allow: false, time: {from: 6:00, to: '06:00'}}\n"
        "        - {allow: false, time: {to: '24:00', timezone: localtime}}\n"
        "        - {allow: false, time: {from: '08:00', to: '08:00', timezone: ''}}\n"
        "        - {allow: false, time: {from: 0800, to: '8:00 pm', tz: UTC}}\n"
        "        - {allow: false, time: {from: '00:00', to: '23:59', timezone: ../etc/passwd}}\n",
        [
            'gateway.yaml:10: apis[0].authorization.rules[0].time.timezone: unknown timezone "Mars/Base"',
            'gateway.yaml:11: apis[0].authorization.rules[1].time.from: expected a time like "06:00" (HH:MM, 24-hour)',
            "gateway.yaml:12: apis[0].authorization.rules[2].time.from: required",
            'gateway.yaml:12: apis[0].authorization.rules[2].time.to: expected a time like "06:00" (HH:MM, 24-hour)',
            'gateway.yaml:12: apis[0].authorization.rules[2].time.timezone: unknown timezone "localtime"',
            'gateway.yaml:13: apis[0].authorization.rules[3].time.to: must differ from "from"',
            "gateway.yaml:13: apis[0].authorization.rules[3].time.timezone: must not be empty",
            'gateway.yaml:14: apis[0].authorization.rules[4].time.from: expected a time like "06:00" (HH:MM, 24-hour)',
            'gateway.yaml:14: apis[0].authorization.rules[4].time.to: expected a time like "06:00" (HH:MM, 24-hour)',
            "gateway.yaml:14: apis[0].authorization.rules[4].time.tz: unknown key",
            'gateway.yaml:15: apis[0].authorization.rules[5].time.timezone: unknown timezone "../etc/passwd"',
        ],
    ),
    (
        "      opa: {url: 'https://user:pw@opa/v1', timeout: 0, on_error: open, cache_ttl: -1s}\n",
        [
            'gateway.yaml:9: apis[0].authorization.opa.url: expected an http(s) URL like "https://example.com/path"',
            "gateway.yaml:9: apis[0].authorization.opa.timeout: must be > 0",
            "gateway.yaml:9: apis[0].authorization.opa.on_error: expected one of: deny, allow",
            'gateway.yaml:9: apis[0].authorization.opa.cache_ttl: expected a duration like "1m"',
        ],
    ),
    ("      opa: {timeout: 1s}\n", ["gateway.yaml:9: apis[0].authorization.opa.url: required"]),
    (
        "      rules: {allow: false}\n",
        ["gateway.yaml:9: apis[0].authorization.rules: expected a list"],
    ),
]


@pytest.mark.parametrize("text, expected", AUTHORIZATION_CASES)
def test_authorization_problems(here: Path, text: str, expected: list[str]) -> None:
    assert problems(AUTHZ + text) == expected


def test_opa_defaults_and_extension(here: Path) -> None:
    opa = load(AUTHZ + "      opa: {url: 'https://opa:8181/v1/data/x', cache_ttl: 0}\n")
    assert opa.apis[0].authorization.opa == Opa("https://opa:8181/v1/data/x", 0.1, "deny", 0.0)


def test_rule_applications_resolve_in_any_order(here: Path) -> None:
    cfg = load(
        AUTHZ + "      rules: [{allow: true, applications: [late]}]\napplications: [{name: late}]\n"
    )
    assert cfg.apis[0].authorization.rules[0].applications == ("late",)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("/", None), ("/**", None), ("/courses", None), ("/courses/{id}", None),
        ("/courses/{id}/", None), ("/a/{a_1}/b/{b}/**", None), ("/v1.2/x~y", None),
        ("courses", 'must start with "/"'), ("/a/{}", 'expected a path like "/courses/{id}" or "/courses/**"'),
        ("/a/{1x}", 'expected a path like "/courses/{id}" or "/courses/**"'),
        ("/a/x{id}", 'expected a path like "/courses/{id}" or "/courses/**"'),
        ("/a/*", 'expected a path like "/courses/{id}" or "/courses/**"'),
        ("/**/a", '"**" only as the last segment'), ("/a?b", 'must not contain "?" or "#"'),
        ("/a/./b", 'must not contain "." or ".." segments'),
    ],
)  # fmt: skip
def test_template_problem(text: str, problem: str | None) -> None:
    assert template_problem(text) == problem


@pytest.mark.parametrize(
    "text, problem",
    [
        ("/", None), ("/**", None), ("/*", None), ("/courses/*/grades", None), ("/a/*/**", None),
        ("/a*", 'expected a path glob like "/courses/*" or "/courses/**"'),
        ("/a/{id}", 'expected a path glob like "/courses/*" or "/courses/**"'),
        ("/**/a", '"**" only as the last segment'), ("a", 'must start with "/"'),
        ("/a/..", 'must not contain "." or ".." segments'),
    ],
)  # fmt: skip
def test_glob_problem(text: str, problem: str | None) -> None:
    assert glob_problem(text) == problem


def test_hs512_secret_needs_64_bytes(tmp_path, monkeypatch):
    """RFC 7518 §3.2: the loader refuses what the verifier would refuse at start-up."""
    from fastgate.config import ConfigError, load_config

    monkeypatch.setenv("HS_SECRET_48", "x" * 48)
    cfg = tmp_path / "g.yaml"
    cfg.write_text(
        "version: 1\nlisteners:\n  - name: a\n    address: 127.0.0.1:0\n"
        "issuers:\n  - name: i\n    issuer: https://i/\n    audiences: [a]\n"
        "    algorithms: [HS512]\n    secret_env: HS_SECRET_48\n"
    )
    try:
        load_config(cfg)
    except ConfigError as e:
        assert e.problems == [f"{cfg}:10: issuers[0].secret_env: secret in HS_SECRET_48 must be at least 64 bytes"]
    else:
        raise AssertionError("accepted a 48-byte HS512 secret")

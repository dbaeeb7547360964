"""The content-inspection sections of the config (issue 5): threat_protection, validation,
openapi and cors; exact "FILE:LINE: key.path: message" problems, the model objects a valid file
builds, and the INSPECTION_RUNTIME_READY gate that keeps unwired keys "not supported yet".

Every test writes gateway.yaml in a fresh tmp folder and loads it by that relative name; all
four keys are accepted (the gate monkeypatched) unless a test says otherwise.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fastgate.config import ConfigError, inspection, load_config
from fastgate.config.inspection import parse_origin
from fastgate.config.model import (
    Cors,
    JsonProtection,
    RegexProtection,
    ThreatProtection,
    Validation,
    XmlProtection,
)

BASE = """\
listeners:
  - name: main
    address: 127.0.0.1:0
apis:
  - name: a
    base_path: /a
    upstream: {urls: [http://127.0.0.1:9000]}
"""
XSD = (
    '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
    '<xs:element name="order" type="xs:string"/></xs:schema>\n'
)
ALL_SETS = ("sql", "javascript", "ssi", "xpath", "java_exception", "path_traversal", "command")


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path as the working directory, every inspection key runtime-ready."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(inspection, "INSPECTION_RUNTIME_READY", set(inspection.INSPECTION_KEYS))
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas/orders.xsd").write_text(XSD)
    (tmp_path / "schemas/broken.xsd").write_text(XSD.replace(' name="order"', ""))
    (tmp_path / "schemas/remote.xsd").write_text(
        XSD.replace(
            "<xs:element", '<xs:include schemaLocation="http://127.0.0.1:9/x.xsd"/><xs:element'
        )
    )
    (tmp_path / "schemas/xxe.xsd").write_text(
        '<!DOCTYPE xs:schema [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n'
        + XSD.replace('type="xs:string"', 'type="xs:string" default="&e;"')
    )
    (tmp_path / "api.yaml").write_text(
        'openapi: 3.0.3\ninfo: {title: t, version: "1"}\npaths: {}\n'
    )
    (tmp_path / "api31.json").write_text('{"openapi": "3.1.0", "info": {}, "paths": {}}')
    (tmp_path / "swagger.yaml").write_text('swagger: "2.0"\n')
    (tmp_path / "float.yaml").write_text("openapi: 3.1\n")
    (tmp_path / "list.yaml").write_text("- openapi: 3.0.0\n")
    (tmp_path / "broken.yaml").write_text("openapi: [3.0.0\n")
    return tmp_path


def load(text: str, base: str = BASE):
    """`text`: keys of apis[0] (any common indentation), or further APIs after them."""
    Path("gateway.yaml").write_text(base + textwrap.indent(textwrap.dedent(text), "    "))
    return load_config("gateway.yaml")


def problems(text: str, base: str = BASE) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(text, base)
    return caught.value.problems


# ------------------------------------------------------------------------ valid files


def test_full_inspection_config(here: Path) -> None:
    api = load(
        """\
            max_body_bytes: 2MiB
            mode: monitor
            openapi: api.yaml
            validation: {request: true, response: true}
            threat_protection:
              regex:
                sets: [sql, command]
                custom: ["(?i)<!ENTITY"]
                scan: [query, body]
              json: {max_depth: 5, max_string_length: 100, max_key_length: null,
                     max_array_elements: off, max_object_entries: 7, max_bytes: 1MiB}
              xml: {max_depth: 3, max_elements: 4, max_attributes: 5, max_attribute_length: 6,
                    max_text_length: 7, max_children: 8, max_bytes: 2MiB, allow_dtd: true,
                    schema: schemas/orders.xsd}
            cors:
              origins: ["https://App.Example.com", "http://localhost:3000", "https://b.example:443"]
              methods: [get, Post]
              headers: [Authorization, content-type]
              expose_headers: [X-Total-Count]
              credentials: true
              max_age: 10m
        """
    ).apis[0]
    assert api.mode == "monitor"
    assert api.openapi == here / "api.yaml"
    assert api.validation == Validation(request=True, response=True)
    assert api.threat_protection == ThreatProtection(
        regex=RegexProtection(
            sets=("sql", "command"), custom=("(?i)<!ENTITY",), scan=("query", "body")
        ),
        json=JsonProtection(5, 100, None, None, 7, 1 << 20),
        xml=XmlProtection(3, 4, 5, 6, 7, 8, 2 << 20, True, here / "schemas/orders.xsd"),
    )
    assert api.cors == Cors(
        origins=("https://app.example.com", "http://localhost:3000", "https://b.example"),
        methods=("GET", "POST"),
        headers=("authorization", "content-type"),
        expose_headers=("x-total-count",),
        credentials=True,
        max_age=600.0,
    )


def test_defaults(here: Path) -> None:
    api = load(
        """\
            openapi: api31.json
            validation: {}
            threat_protection: {regex: {}, json: {}, xml: {}}
            cors: {origins: ["*"]}
        """
    ).apis[0]
    assert api.validation == Validation(request=True, response=False)
    assert api.threat_protection == ThreatProtection(
        regex=RegexProtection(sets=ALL_SETS), json=JsonProtection(), xml=XmlProtection()
    )
    assert api.cors == Cors(origins=("*",))


def test_absent_and_off(here: Path) -> None:
    api = load("").apis[0]
    assert (api.threat_protection, api.validation, api.openapi, api.cors) == (None,) * 4
    api = load(
        """\
            threat_protection: {regex: off, json: false, xml: null}
            validation: {request: false, response: false}
            cors: off
        """
    ).apis[0]
    assert (api.threat_protection, api.validation, api.cors) == (None, None, None)
    assert (
        load("    threat_protection: off\n    validation: false\n").apis[0].threat_protection
        is None
    )


def test_custom_only_regex(here: Path) -> None:
    regex = load("    threat_protection: {regex: {sets: [], custom: [abc]}}\n").apis[0]
    assert regex.threat_protection.regex == RegexProtection(sets=(), custom=("abc",))


def test_default_max_bytes_is_capped_at_the_body_limit(here: Path) -> None:
    api = load("    max_body_bytes: 64KiB\n    threat_protection: {json: {}, xml: {}}\n").apis[0]
    assert api.threat_protection.json.max_bytes == 64 * 1024
    assert api.threat_protection.xml.max_bytes == 64 * 1024
    base = BASE.replace("apis:", "limits: {max_body_bytes: 0}\napis:")
    api = load("    threat_protection: {json: {max_bytes: null}}\n", base).apis[0]
    assert api.threat_protection.json.max_bytes is None  # off: the body limit still applies


def test_max_bytes_may_equal_the_body_limit(here: Path) -> None:
    base = BASE.replace("apis:", "limits: {max_body_bytes: 1MiB}\napis:")
    api = load("    threat_protection: {json: {max_bytes: 1MiB}}\n", base).apis[0]
    assert api.threat_protection.json.max_bytes == 1 << 20


# ------------------------------------------------------------------------ problems

P = "gateway.yaml:{}: apis[0].{}"
CASES = [
    # threat_protection
    ("    threat_protection: [regex]\n", [P.format(8, "threat_protection: expected a mapping")]),
    ("    threat_protection: {html: {}}\n", [P.format(8, "threat_protection.html: unknown key")]),
    (
        "    threat_protection:\n      regex: {sets: [sql, sql, nosql], scan: [body, cookies]}\n",
        [
            P.format(9, 'threat_protection.regex.sets[1]: duplicate entry "sql"'),
            P.format(
                9,
                "threat_protection.regex.sets[2]: expected one of: sql, javascript, ssi, xpath,"
                " java_exception, path_traversal, command",
            ),
            P.format(
                9, "threat_protection.regex.scan[1]: expected one of: path, query, headers, body"
            ),
        ],
    ),
    (
        "    threat_protection:\n      regex: {scan: [], sets: []}\n",
        [
            P.format(9, "threat_protection.regex.scan: must not be empty"),
            P.format(9, "threat_protection.regex.sets: must not be empty without custom patterns"),
        ],
    ),
    (
        "    threat_protection:\n      regex: {scan: [body, body], sets: sql}\n",
        [
            P.format(9, 'threat_protection.regex.scan[1]: duplicate entry "body"'),
            P.format(9, "threat_protection.regex.sets: expected a list"),
        ],
    ),
    (
        "    threat_protection:\n      regex:\n        custom:\n          - 'ok'\n          - '(a)\\1'\n"
        "          - '['\n          - ''\n          - 'a(?=b)'\n          - 7\n",
        [
            P.format(12, "threat_protection.regex.custom[1]: Back-references are unsupported"),
            P.format(
                13,
                "threat_protection.regex.custom[2]: Unterminated character class starting at index 0",
            ),
            P.format(
                14,
                "threat_protection.regex.custom[3]: empty pattern (it would match every request)",
            ),
            P.format(
                15, "threat_protection.regex.custom[4]: Zero-width assertions are not supported"
            ),
            P.format(16, "threat_protection.regex.custom[5]: expected a string"),
        ],
    ),
    (
        "    threat_protection:\n      json: {max_depth: 0, max_key_length: -1, max_bytes: 1MB,"
        " max_array_elements: 1.5, nesting: 3}\n",
        [
            P.format(9, "threat_protection.json.max_depth: must be at least 1"),
            P.format(9, "threat_protection.json.max_key_length: must be at least 1"),
            P.format(9, 'threat_protection.json.max_bytes: expected a size like "16KiB"'),
            P.format(9, "threat_protection.json.max_array_elements: expected an integer"),
            P.format(9, "threat_protection.json.nesting: unknown key"),
        ],
    ),
    (
        "    threat_protection:\n      json: {max_bytes: 9MiB}\n",
        [P.format(9, "threat_protection.json.max_bytes: larger than the body limit (8MiB)")],
    ),
    (
        "    max_body_bytes: 100KiB\n    threat_protection:\n      xml: {max_bytes: 101KiB}\n",
        [P.format(10, "threat_protection.xml.max_bytes: larger than the body limit (100KiB)")],
    ),
    (
        "    threat_protection:\n      json: {max_bytes: 0}\n",
        [P.format(9, "threat_protection.json.max_bytes: must be > 0")],
    ),
    (
        "    threat_protection:\n      xml: {allow_dtd: sometimes, max_children: x, entities: 1}\n",
        [
            P.format(9, "threat_protection.xml.allow_dtd: expected a boolean"),
            P.format(9, "threat_protection.xml.max_children: expected an integer"),
            P.format(9, "threat_protection.xml.entities: unknown key"),
        ],
    ),
    (
        "    threat_protection:\n      xml: {schema: schemas/none.xsd}\n",
        [P.format(9, "threat_protection.xml.schema: file not found: schemas/none.xsd")],
    ),
    (
        "    threat_protection:\n      xml: {schema: schemas/broken.xsd}\n",
        [
            P.format(
                9,
                "threat_protection.xml.schema: not a valid XML Schema: Element"
                " '{http://www.w3.org/2001/XMLSchema}element': The attribute 'name' is required"
                " but missing., line 1",
            )
        ],
    ),
    (
        "    threat_protection:\n      xml: {schema: api.yaml}\n",
        [
            P.format(
                9,
                "threat_protection.xml.schema: not a valid XML Schema: Start tag expected, '<'"
                " not found, line 1, column 1 (api.yaml, line 1)",
            )
        ],
    ),
    # validation and openapi
    ("    validation: {request: true}\n", [P.format(8, "validation: validation needs openapi")]),
    ("    validation: {}\n", [P.format(8, "validation: validation needs openapi")]),
    ("    validation: off\n", []),
    (
        "    openapi: api.yaml\n    validation: {request: maybe, responses: true}\n",
        [
            P.format(9, "validation.request: expected a boolean"),
            P.format(9, "validation.responses: unknown key"),
        ],
    ),
    ("    openapi: nope.yaml\n", [P.format(8, "openapi: file not found: nope.yaml")]),
    (
        "    openapi: swagger.yaml\n",
        [P.format(8, "openapi: expected an OpenAPI 3.0 or 3.1 document")],
    ),
    (
        "    openapi: float.yaml\n",
        [P.format(8, "openapi: expected an OpenAPI 3.0 or 3.1 document")],
    ),
    ("    openapi: list.yaml\n", [P.format(8, "openapi: expected an OpenAPI 3.0 or 3.1 document")]),
    ("    openapi: schemas\n", [P.format(8, "openapi: file not found: schemas")]),
    (
        "    openapi: broken.yaml\n",
        [
            P.format(
                8,
                "openapi: not YAML or JSON: expected ',' or ']', but got '<stream end>' at line 2",
            )
        ],
    ),
    # cors
    ("    cors: {methods: [GET]}\n", [P.format(8, "cors.origins: required")]),
    ("    cors: {origins: []}\n", [P.format(8, "cors.origins: must not be empty")]),
    ("    cors: {origins: '*'}\n", [P.format(8, "cors.origins: expected a list")]),
    (
        "    cors: {origins: ['*'], credentials: true}\n",
        [P.format(8, "cors.credentials: wildcard origin cannot be used with credentials")],
    ),
    (
        "    cors:\n      origins:\n        - https://app.example.com/\n        - https://app.example.com/path\n"
        "        - 'null'\n        - app.example.com\n        - https://user@app.example.com\n"
        "        - https://app.example.com:99999\n        - https://*.example.com\n"
        "        - https://a.example.com\n        - HTTPS://A.EXAMPLE.COM:443\n        - '*'\n",
        [
            P.format(10, f"cors.origins[0]: {inspection.MSG_ORIGIN}"),
            P.format(11, f"cors.origins[1]: {inspection.MSG_ORIGIN}"),
            P.format(12, f"cors.origins[2]: {inspection.MSG_NULL_ORIGIN}"),
            P.format(13, f"cors.origins[3]: {inspection.MSG_ORIGIN}"),
            P.format(14, f"cors.origins[4]: {inspection.MSG_ORIGIN}"),
            P.format(15, f"cors.origins[5]: {inspection.MSG_ORIGIN}"),
            P.format(16, f"cors.origins[6]: {inspection.MSG_ORIGIN}"),
            P.format(18, 'cors.origins[8]: duplicate entry "HTTPS://A.EXAMPLE.COM:443"'),
            P.format(19, 'cors.origins[9]: "*" must be the only origin'),
        ],
    ),
    (
        "    cors: {origins: ['https://a.example'], methods: [GET, get, 'PO ST', '*'],"
        " headers: [X-A, x-a, 'a:b'], expose_headers: ['*'], credentials: 1, max_age: forever}\n",
        [
            P.format(8, 'cors.methods[1]: duplicate entry "GET"'),
            P.format(8, "cors.methods[2]: expected an HTTP method like GET (RFC 9110)"),
            P.format(8, "cors.methods[3]: expected an HTTP method like GET (RFC 9110)"),
            P.format(8, 'cors.headers[1]: duplicate entry "x-a"'),
            P.format(8, "cors.headers[2]: expected a header name (RFC 9110)"),
            P.format(8, "cors.expose_headers[0]: expected a header name (RFC 9110)"),
            P.format(8, "cors.credentials: expected a boolean"),
            P.format(8, 'cors.max_age: expected a duration like "1m"'),
        ],
    ),
    (
        "    cors: {origins: ['https://a.example'], allow_all: true}\n",
        [P.format(8, "cors.allow_all: unknown key")],
    ),
]


@pytest.mark.parametrize("text, expected", CASES)
def test_problems(here: Path, text: str, expected: list[str]) -> None:
    if expected:
        assert problems(text) == expected
    else:
        load(text)


def test_xsd_never_reaches_the_network_or_resolves_entities(here: Path) -> None:
    second = "  - name: b\n    base_path: /b\n    upstream: {urls: [http://127.0.0.1:9000]}\n"
    found = problems(
        "threat_protection:\n  xml: {schema: schemas/xxe.xsd}\n",
        BASE + "    threat_protection:\n      xml: {schema: schemas/remote.xsd}\n" + second,
    )
    assert len(found) == 2
    assert found[0].startswith(
        "gateway.yaml:9: apis[0].threat_protection.xml.schema: not a valid XML Schema: "
    )
    assert "http://127.0.0.1:9/x.xsd" in found[0]
    assert found[1].startswith(
        "gateway.yaml:14: apis[1].threat_protection.xml.schema: not a valid XML Schema: "
    )
    assert "external entity" in found[1] and "root:" not in found[1]


# ------------------------------------------------------------------------ the runtime gate

ALL_FOUR = (
    "    openapi: api.yaml\n    validation: {request: true}\n"
    "    threat_protection: {json: {}}\n    cors: {origins: ['https://a.example']}\n"
)


def test_shipped_gate_lists_what_the_runtime_enforces() -> None:
    assert inspection.INSPECTION_RUNTIME_READY == {"cors", "openapi", "validation", "threat_protection"}


def test_keys_not_runtime_ready_are_not_supported_yet(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inspection, "INSPECTION_RUNTIME_READY", {"cors"})
    assert problems(ALL_FOUR) == [
        P.format(8, "openapi: not supported yet"),
        P.format(9, "validation: not supported yet"),
        P.format(10, "threat_protection: not supported yet"),
    ]
    assert load("    cors: {origins: ['https://a.example']}\n").apis[0].cors is not None


def test_validation_ready_before_openapi(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inspection, "INSPECTION_RUNTIME_READY", {"validation"})
    # openapi is written (and refused on its own line): no second "needs openapi" problem
    assert problems("    openapi: api.yaml\n    validation: {}\n") == [
        P.format(8, "openapi: not supported yet")
    ]


def test_every_key_when_all_are_ready(here: Path) -> None:
    api = load(ALL_FOUR).apis[0]
    assert api.openapi and api.validation and api.threat_protection and api.cors


# ------------------------------------------------------------------------ origins


@pytest.mark.parametrize(
    "text, origin",
    [
        ("https://app.example.com", "https://app.example.com"),
        ("HTTPS://APP.Example.COM", "https://app.example.com"),
        ("https://app.example.com:443", "https://app.example.com"),
        ("http://app.example.com:80", "http://app.example.com"),
        ("http://app.example.com:443", "http://app.example.com:443"),
        ("https://app.example.com:08443", "https://app.example.com:8443"),
        ("http://127.0.0.1:3000", "http://127.0.0.1:3000"),
        ("http://[::1]:3000", "http://[::1]:3000"),
        ("capacitor://localhost", "capacitor://localhost"),
        ("https://app.example.com/", None),
        ("https://app.example.com/x", None),
        ("https://app.example.com?", None),
        ("https://app.example.com#", None),
        ("https://app.example.com:", None),
        ("https://app.example.com:0", None),
        ("https://app.example.com:65536", None),
        ("https://u:p@app.example.com", None),
        ("https://app.example.com https://b.example.com", None),
        ("https://app.example.com, https://b.example.com", None),
        (" https://app.example.com", None),
        ("https://-bad.example.com", None),
        ("https://[zz]:1", None),
        ("null", None),
        ("*", None),
        ("", None),
        ("//app.example.com", None),
    ],
)
def test_parse_origin(text: str, origin: str | None) -> None:
    assert parse_origin(text) == origin

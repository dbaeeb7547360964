"""The content-inspection sections of a config file (issue 5), per API: `threat_protection`
(regex, json, xml), `validation`, `openapi` and `cors`.

Invariant: what this builds can run as written: every custom pattern compiled in hyperscan, every
XSD parsed by lxml (local files only, no network, no entities), the OpenAPI file exists and says
3.0 or 3.1, no JSON/XML `max_bytes` above the API's body limit, no wildcard CORS origin with
credentials. Only the keys in INSPECTION_RUNTIME_READY are accepted; the others still read
"not supported yet" until their runtime is wired in (the lead adds them one by one).
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import Node

from ._reader import Map, Reader
from .model import (
    Cors,
    JsonProtection,
    RegexProtection,
    ThreatProtection,
    Validation,
    XmlProtection,
)
from .units import format_size

# The per-API keys of this module, and those whose runtime is wired in (accepted by the loader;
# the rest answer "not supported yet"). Read at every load, so tests may monkeypatch it.
INSPECTION_KEYS = ("threat_protection", "validation", "openapi", "cors")
INSPECTION_RUNTIME_READY: set[str] = {"cors", "openapi", "validation", "threat_protection"}

RULE_SETS = ("sql", "javascript", "ssi", "xpath", "java_exception", "path_traversal", "command")
SCAN_TARGETS = ("path", "query", "headers", "body")
THREAT_KEYS = ("regex", "json", "xml")
REGEX_KEYS = ("sets", "custom", "scan")
JSON_COUNTS = (
    "max_depth",
    "max_string_length",
    "max_key_length",
    "max_array_elements",
    "max_object_entries",
)
XML_COUNTS = (
    "max_depth",
    "max_elements",
    "max_attributes",
    "max_attribute_length",
    "max_text_length",
    "max_children",
)
CORS_KEYS = ("origins", "methods", "headers", "expose_headers", "credentials", "max_age")

MSG_OPENAPI = "expected an OpenAPI 3.0 or 3.1 document"
MSG_ORIGIN = 'expected an origin like "https://app.example.com" (scheme://host[:port], no path)'
MSG_NULL_ORIGIN = '"null" is never allowed: sandboxed and file: documents all send it'
MSG_WILDCARD_CREDENTIALS = "wildcard origin cannot be used with credentials"

# RFC 9110 §5.1 field-name = token; §9.1 method = token
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_OPENAPI_VERSION = re.compile(r"3\.[01]\.[0-9]+(-[0-9A-Za-z.-]+)?")
# RFC 6454 §6.2 serialisation: scheme "://" host [":" port], nothing else.
_ORIGIN = re.compile(
    r"([A-Za-z][A-Za-z0-9+.\-]*)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(?::([0-9]{1,5}))?"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def runtime_ready(key: str) -> bool:
    return key in INSPECTION_RUNTIME_READY


# ---------------------------------------------------------------------------- threat protection


def threat_protection(r: Reader, node: Node, path: str, body_limit: int) -> ThreatProtection | None:
    """None when turned off (`false`/`off`) or when it configures no protection at all."""
    if r.is_off(node):
        return None
    m = r.mapping(node, path, THREAT_KEYS)
    if m is None:
        return None
    regex = _section(m, "regex", partial(_regex, r))
    json = _section(m, "json", partial(_json, r, body_limit))
    xml = _section(m, "xml", partial(_xml, r, body_limit))
    if regex is None and json is None and xml is None:
        return None
    return ThreatProtection(regex=regex, json=json, xml=xml)


def _section(m: Map, key: str, parse) -> Any:
    node = m.get(key)
    if node is None or m.r.is_off(node):
        return None
    return parse(node, m.sub(key))


def _regex(r: Reader, node: Node, path: str) -> RegexProtection | None:
    """`sets` absent = every rule set (the safe default); `sets: []` = only `custom`."""
    m = r.mapping(node, path, REGEX_KEYS)
    if m is None:
        return None
    sets = m.read("sets", partial(_unique_choices, r, RULE_SETS, empty_ok=True), RULE_SETS)
    custom = m.read("custom", partial(_custom, r), ())
    scan = m.read("scan", partial(_unique_choices, r, SCAN_TARGETS, empty_ok=False), SCAN_TARGETS)
    if not sets and not custom and m.has("sets"):
        r.bad(m.get("sets"), m.sub("sets"), "must not be empty without custom patterns")
        return None
    return RegexProtection(sets=sets, custom=custom, scan=scan)


def _unique_choices(
    r: Reader, choices: tuple[str, ...], node: Node, path: str, *, empty_ok: bool
) -> tuple[str, ...] | None:
    items = r.items(node, path)
    if items is None:
        return None
    if not items and not empty_ok:
        r.bad(node, path, "must not be empty")
        return None
    seen: dict[Any, str] = {}
    out: list[str | None] = []
    for item_path, item in items:
        value = r.choice(item, item_path, choices)
        if value is not None and value in seen:
            r.bad(item, item_path, f'duplicate entry "{value}"')
            value = None
        elif value is not None:
            seen[value] = item_path
        out.append(value)
    return None if None in out else tuple(v for v in out if v is not None)


def _custom(r: Reader, node: Node, path: str) -> tuple[str, ...] | None:
    """Each pattern compiled alone, so a refusal points at its own line."""
    from fastgate._native.regexscan import PatternError, PatternSet

    items = r.items(node, path)
    if items is None:
        return None
    out: list[str | None] = []
    for index, (item_path, item) in enumerate(items):
        value = r.value(item, item_path)
        pattern = value if isinstance(value, str) else None
        if pattern is None:
            r.bad(item, item_path, "expected a string")
        else:
            try:
                PatternSet([(f"custom[{index}]", pattern)])
            except PatternError as exc:
                r.bad(item, item_path, exc.reason)
                pattern = None
        out.append(pattern)
    return None if None in out else tuple(p for p in out if p is not None)


def _limit(
    r: Reader, m: Map, key: str, parse, default: int | None
) -> tuple[int | None, bool] | None:
    """(value, written): null / false / "off" = that limit off; None when invalid (reported)."""
    if key not in m.entries:
        return default, False
    node = m.get(key)
    if node is None or r.is_off(node):
        return None, True
    value = parse(node, m.sub(key))
    return (value, True) if value is not None else None


def _limits(
    r: Reader, m: Map, counts: tuple[str, ...], body_limit: int, defaults: Any
) -> dict[str, int | None] | None:
    """The count limits (integers >= 1) and `max_bytes` (a size, at most the body limit; when
    not written, the default capped at the body limit)."""
    values: dict[str, int | None] = {}
    ok = True
    for key in counts:
        got = _limit(r, m, key, partial(r.integer, minimum=1), getattr(defaults, key))
        if got is None:
            ok = False
        else:
            values[key] = got[0]
    got = _limit(r, m, "max_bytes", r.size, defaults.max_bytes)
    if got is None:
        return None
    max_bytes, written = got
    if max_bytes is not None and max_bytes > body_limit:
        if written:
            message = f"larger than the body limit ({format_size(body_limit)})"
            r.bad(m.get("max_bytes"), m.sub("max_bytes"), message)
            return None
        max_bytes = body_limit
    values["max_bytes"] = max_bytes
    return values if ok else None


def _json(r: Reader, body_limit: int, node: Node, path: str) -> JsonProtection | None:
    m = r.mapping(node, path, (*JSON_COUNTS, "max_bytes"))
    if m is None:
        return None
    values = _limits(r, m, JSON_COUNTS, body_limit, JsonProtection())
    return JsonProtection(**values) if values is not None else None


def _xml(r: Reader, body_limit: int, node: Node, path: str) -> XmlProtection | None:
    m = r.mapping(node, path, (*XML_COUNTS, "max_bytes", "allow_dtd", "schema"))
    if m is None:
        return None
    values = _limits(r, m, XML_COUNTS, body_limit, XmlProtection())
    allow_dtd = m.read("allow_dtd", r.boolean, False)
    schema = m.read("schema", partial(_xsd, r))
    if values is None or (schema is None and m.has("schema")):
        return None
    return XmlProtection(**values, allow_dtd=allow_dtd, schema=schema)


def xsd_parser():
    """The parser for XSD files: no network, no DTD loading, no entity expansion, and any
    xs:include / xs:import / entity that is not a local file refused."""
    from lxml import etree

    class LocalOnly(etree.Resolver):
        def resolve(self, url, public_id, context):  # noqa: ANN001, ANN201 - lxml's signature
            if url and "://" in url and not url.startswith("file://"):
                raise ValueError(f"not a local file: {url}")
            return None  # a local file: lxml loads it as usual (still without network)

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    parser.resolvers.add(LocalOnly())
    return parser


def _xsd(r: Reader, node: Node, path: str) -> Path | None:
    """An existing local .xsd that lxml compiles (errors -> its message)."""
    from lxml import etree

    file = r.file(node, path)
    if file is None:
        return None
    try:
        document = etree.parse(str(file), xsd_parser())
        etree.XMLSchema(document)
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError, OSError, ValueError) as exc:
        r.bad(node, path, f"not a valid XML Schema: {_one_line(str(exc))}")
        return None
    return file


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "unreadable"


# ---------------------------------------------------------------------------- validation, openapi


def validation(r: Reader, node: Node, path: str) -> Validation | None:
    """None when turned off (`false` / `off`, or both request and response false)."""
    if r.is_off(node):
        return None
    m = r.mapping(node, path, ("request", "response"))
    if m is None:
        return None
    result = Validation(
        request=m.read("request", r.boolean, True),
        response=m.read("response", r.boolean, False),
    )
    return result if result.request or result.response else None


def openapi(r: Reader, node: Node, path: str) -> Path | None:
    """An existing file that reads as a YAML/JSON mapping with `openapi: 3.0.x` or `3.1.x`.
    Resolving and compiling it is fastgate/openapi's job, at runtime build."""
    file = r.file(node, path)
    if file is None:
        return None
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}" if mark is not None else ""
        r.bad(node, path, f"not YAML or JSON: {exc.problem or exc}{where}")
        return None
    except (yaml.YAMLError, OSError, UnicodeDecodeError, RecursionError):
        r.bad(node, path, MSG_OPENAPI)
        return None
    version = document.get("openapi") if isinstance(document, dict) else None
    if not isinstance(version, str) or not _OPENAPI_VERSION.fullmatch(version):
        r.bad(node, path, MSG_OPENAPI)
        return None
    return file


# ---------------------------------------------------------------------------- cors


def parse_origin(text: str) -> str | None:
    """The comparable form of an RFC 6454 origin: scheme and host lowercased, a default port
    (80 for http, 443 for https) dropped; None when `text` is not exactly an origin (a path,
    even "/", user info, a query, whitespace, "null" are all refused)."""
    match = _ORIGIN.fullmatch(text)
    if match is None:
        return None
    from ._reader import valid_host

    scheme, host, port_text = match[1].lower(), match[2].lower(), match[3]
    ipv6 = host.startswith("[")
    if not valid_host(host[1:-1] if ipv6 else host, ipv6=ipv6):
        return None
    if port_text is None:
        return f"{scheme}://{host}"
    port = int(port_text)
    if not 0 < port <= 65535:
        return None
    if _DEFAULT_PORTS.get(scheme) == port:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _origin_problem(text: str) -> str | None:
    if text == "null":
        return MSG_NULL_ORIGIN
    return None if text == "*" or parse_origin(text) is not None else MSG_ORIGIN


def cors(r: Reader, node: Node, path: str) -> Cors | None:
    if r.is_off(node):
        return None
    m = r.mapping(node, path, CORS_KEYS)
    if m is None:
        return None
    origins = m.read("origins", partial(_origins, r), required=True)
    credentials = m.read("credentials", r.boolean, False)
    if origins == ("*",) and credentials:
        r.bad(m.get("credentials"), m.sub("credentials"), MSG_WILDCARD_CREDENTIALS)
        return None
    optional = {
        "methods": m.read("methods", partial(_tokens, r, str.upper, "an HTTP method like GET")),
        "headers": m.read("headers", partial(_tokens, r, str.lower, "a header name")),
        "expose_headers": m.read("expose_headers", partial(_tokens, r, str.lower, "a header name")),
        "max_age": m.read("max_age", partial(r.duration, positive=False)),
    }
    if origins is None:
        return None
    given = {key: value for key, value in optional.items() if value is not None}
    return Cors(origins=origins, credentials=credentials, **given)


def _origins(r: Reader, node: Node, path: str) -> tuple[str, ...] | None:
    """Exact origins, stored in their comparable form (parse_origin), or just ("*",)."""
    items = r.items(node, path)
    if items is None:
        return None
    if not items:
        r.bad(node, path, "must not be empty")
        return None
    seen: dict[Any, str] = {}
    out: list[str | None] = []
    for item_path, item in items:
        text = r.checked(item, item_path, _origin_problem)
        origin = None
        if text == "*" and len(items) > 1:
            r.bad(item, item_path, '"*" must be the only origin')
        elif text is not None:
            origin = "*" if text == "*" else parse_origin(text)
            if origin in seen:
                r.bad(item, item_path, f'duplicate entry "{text}"')
                origin = None
            else:
                seen[origin] = item_path
        out.append(origin)
    return None if None in out else tuple(o for o in out if o is not None)


def _tokens(r: Reader, case, what: str, node: Node, path: str) -> tuple[str, ...] | None:
    """RFC 9110 tokens (methods, field names) in one case; "*" and duplicates refused."""
    items = r.items(node, path)
    if items is None:
        return None
    seen: dict[Any, str] = {}
    out: list[str | None] = []
    for item_path, item in items:
        text = r.string(item, item_path)
        token = None
        if text is not None and (text == "*" or not _TOKEN.fullmatch(text)):
            r.bad(item, item_path, f"expected {what} (RFC 9110)")
        elif text is not None:
            token = case(text)
            if token in seen:
                r.bad(item, item_path, f'duplicate entry "{token}"')
                token = None
            else:
                seen[token] = item_path
        out.append(token)
    return None if None in out else tuple(t for t in out if t is not None)


# ---------------------------------------------------------------------------- cross-key


def check_api(r: Reader, m: Map, validation: Validation | None) -> None:
    """Rules across one API's keys: validation reads the schemas `openapi` supplies."""
    if validation is not None and not m.has("openapi"):
        r.bad(m.get("validation"), m.sub("validation"), "validation needs openapi")

"""The identity sections of a config file (issue 4): `issuers`, `introspection`, and per API
`authentication`, `api_key`, `mtls` and `authorization`.

Invariant: what this builds is safe by construction (no "none" algorithm, no HS* beside
public-key algorithms, no issuer without audiences, no secret in the model: only the name of the
environment variable holding it), and every need that crosses sections (oauth2 -> an issuer,
digest -> a user with digest_ha1, mtls -> a listener asking for client certificates) is checked
by check_needs once the whole file is read, so sections may come in any order.
"""

from __future__ import annotations

import json
import os
import re
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from yaml.nodes import Node, ScalarNode, SequenceNode

from ._reader import (
    REPORTED,
    Reader,
    Refs,
    env_name_problem,
    http_url_problem,
    ip_or_cidr_problem,
    list_of,
    scope_problem,
)
from .model import (
    ApiKeyLocation,
    Authorization,
    Introspection,
    Issuer,
    Opa,
    PolicyRule,
    ResourceScopes,
    TimeWindow,
)

AUTH_METHODS = ("oauth2", "api_key", "mtls", "basic", "digest")
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
ALGORITHMS = (
    *("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"),
    *HMAC_ALGORITHMS,
)
# JWK "kty" each public-key algorithm verifies with (RFC 7518 §3, RFC 8037)
_KEY_TYPE = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
MAX_LEEWAY = 300.0  # beyond 5 minutes a clock problem should be fixed, not tolerated
MIN_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key at least as long as the hash output
ISSUER_KEYS = tuple(
    "name issuer jwks_uri jwks_file secret_env audiences algorithms leeway scope_claim"
    " roles_claim".split()
)
INTROSPECTION_KEYS = ("name", "url", "client_id", "client_secret_env", "cache_ttl", "timeout")
AUTHORIZATION_KEYS = ("roles_to_scopes", "resources", "rules", "opa")
RULE_KEYS = tuple("id allow roles scopes applications methods path client_ips claims time".split())
OPA_KEYS = ("url", "timeout", "on_error", "cache_ttl")

# RFC 9110 §5.1 field-name = token; §9.1 method = token
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_QUERY_NAME = re.compile(r"[A-Za-z0-9._~-]+")  # RFC 3986 unreserved: never needs encoding
_SEGMENT = re.compile(r"[A-Za-z0-9\-._~!$&'()+,;=:@]+")  # RFC 3986 pchar minus "%" and "*"
_TEMPLATE_NAME = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
# Headers an API key must not travel in: hop-by-hop and framing (RFC 9110 §7.6.1), other
# methods' credentials, and headers the gateway itself sets, replaces or strips.
_RESERVED_HEADERS = frozenset(
    "connection keep-alive proxy-connection te trailer transfer-encoding upgrade content-length"
    " host expect authorization proxy-authorization proxy-authenticate cookie forwarded"
    " x-forwarded-for x-forwarded-proto x-forwarded-host x-forwarded-port x-real-ip"
    " x-request-id".split()
)
_NOT_IANA = frozenset({"localtime", "posixrules"})  # files in the zone folder, not zone names

MSG_TEMPLATE = 'expected a path like "/courses/{id}" or "/courses/**"'
MSG_GLOB = 'expected a path glob like "/courses/*" or "/courses/**"'
MSG_CLAIM = "expected a scalar or a list of scalars"


# ---------------------------------------------------------------------------- issuers


def issuers(r: Reader, node: Node | None, refs: Refs) -> tuple[Issuer, ...]:
    names: dict[Any, str] = {}
    values: dict[Any, str] = {}
    out = []
    for path, item in (r.items(node, "issuers") or ()) if node is not None else ():
        refs.issuers += 1
        issuer = _issuer(r, item, path, names, values)
        if issuer is not None:
            out.append(issuer)
    return tuple(out)


def _issuer(
    r: Reader, node: Node, path: str, names: dict[Any, str], values: dict[Any, str]
) -> Issuer | None:
    m = r.mapping(node, path, ISSUER_KEYS)
    if m is None:
        return None
    name = m.read("name", r.string, required=True)
    if name is not None:
        r.unique(names, name, m.get("name"), m.sub("name"), "name")
    issuer = m.read("issuer", r.string, required=True)
    if issuer is not None:
        r.unique(values, issuer, m.get("issuer"), m.sub("issuer"), "issuer")
    algorithms = m.read("algorithms", partial(_algorithms, r), required=True)
    audiences = m.read("audiences", partial(_some, r, r.strings), required=True)
    hmac = None if algorithms is None else algorithms[0] in HMAC_ALGORITHMS
    jwks_uri = m.read("jwks_uri", partial(r.checked, check=http_url_problem))
    jwks_file = m.read("jwks_file", partial(_jwks_file, r, algorithms if not hmac else None))
    secret_env = None
    if hmac is True:
        if not m.has("secret_env"):
            r.bad(m.get("algorithms"), m.sub("secret_env"), "required for HS256, HS384 and HS512")
        for key in ("jwks_uri", "jwks_file"):
            if m.has(key):
                r.bad(m.get(key), m.sub(key), "HS256, HS384 and HS512 use secret_env, not keys")
        minimum = max(HMAC_MIN_BYTES.get(a, 0) for a in algorithms)
        secret_env = m.read("secret_env", partial(_secret_env, r, minimum=minimum))
    elif hmac is False:
        if m.has("secret_env"):
            r.bad(m.get("secret_env"), m.sub("secret_env"), "only for HS256, HS384 and HS512")
        if m.has("jwks_uri") == m.has("jwks_file"):
            r.report(m.line, path, "expected exactly one of: jwks_uri, jwks_file")
    else:  # algorithms missing or invalid (reported): judge the key source alone
        secret_env = m.read("secret_env", partial(_secret_env, r))
        if sum(m.has(key) for key in ("jwks_uri", "jwks_file", "secret_env")) != 1:
            r.report(m.line, path, "expected exactly one of: jwks_uri, jwks_file, secret_env")
    leeway = m.read("leeway", partial(_leeway, r))
    optional = {
        "leeway": leeway,
        "scope_claim": m.read("scope_claim", r.string),
        "roles_claim": m.read("roles_claim", r.string),
    }
    if None in (name, issuer, algorithms, audiences):
        return None
    return Issuer(
        name=name,
        issuer=issuer,
        algorithms=algorithms,
        audiences=audiences,
        jwks_uri=jwks_uri,
        jwks_file=jwks_file,
        secret_env=secret_env,
        **_given(optional),
    )


def _algorithms(r: Reader, node: Node, path: str) -> tuple[str, ...] | None:
    items = r.items(node, path)
    if items is None:
        return None
    if not items:
        r.bad(node, path, "must not be empty")
        return None
    seen: dict[Any, str] = {}
    out: list[str | None] = []
    for item_path, item in items:
        value = r.value(item, item_path, quiet=True)
        if isinstance(value, str) and value.lower() == "none":  # RFC 7519 §6: unsecured JWT
            r.bad(item, item_path, '"none" is never accepted')
            out.append(None)
            continue
        algorithm = r.choice(item, item_path, ALGORITHMS)
        if algorithm in seen:
            r.bad(item, item_path, f'duplicate entry "{algorithm}"')
        elif algorithm is not None:
            seen[algorithm] = item_path
        out.append(algorithm)
    if None in out:
        return None
    if len({a in HMAC_ALGORITHMS for a in out}) > 1:  # the HS/RS key-confusion attack
        r.bad(node, path, "HS* and public-key algorithms cannot be mixed")
        return None
    return tuple(dict.fromkeys(a for a in out if a is not None))


def _leeway(r: Reader, node: Node, path: str) -> float | None:
    seconds = r.duration(node, path, positive=False)
    if seconds is not None and seconds > MAX_LEEWAY:
        r.bad(node, path, "must be at most 5m")
        return None
    return seconds


# RFC 7518 §3.2: an HMAC key at least as long as the hash output.
HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


def _secret_env(r: Reader, node: Node, path: str, minimum: int = 0) -> str | None:
    """The name of an environment variable holding a long enough secret; the secret is not kept."""
    minimum = max(minimum, MIN_SECRET_BYTES)
    name = r.checked(node, path, env_name_problem)
    if name is None:
        return None
    value = os.environ.get(name)
    if value is None:
        r.bad(node, path, f"environment variable {name} is not set")
        return None
    if len(value.encode("utf-8", "surrogateescape")) < minimum:
        r.bad(node, path, f"secret in {name} must be at least {minimum} bytes")
        return None
    return name


def _env_set(r: Reader, node: Node, path: str) -> str | None:
    name = r.checked(node, path, env_name_problem)
    if name is None:
        return None
    value = os.environ.get(name)
    if value is None:
        r.bad(node, path, f"environment variable {name} is not set")
        return None
    if not value:
        r.bad(node, path, f"environment variable {name} is empty")
        return None
    return name


def _jwks_file(r: Reader, algorithms: tuple[str, ...] | None, node: Node, path: str) -> Path | None:
    """An existing JSON Web Key Set (RFC 7517 §5) of public keys that PyJWT can load."""
    file = r.file(node, path)
    if file is None:
        return None
    try:
        document = json.loads(file.read_bytes())
    except (OSError, ValueError):
        document = None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        r.bad(node, path, 'not a JWKS: expected JSON with a "keys" list')
        return None
    if not keys:
        r.bad(node, path, "the JWKS holds no keys")
        return None
    message = _jwks_problem(keys, algorithms)
    if message is not None:
        r.bad(node, path, message)
        return None
    return file


def _jwks_problem(keys: list, algorithms: tuple[str, ...] | None) -> str | None:
    from jwt import PyJWK
    from jwt.exceptions import PyJWTError

    kinds = set()
    for index, key in enumerate(keys):
        kty = key.get("kty") if isinstance(key, dict) else None
        if not isinstance(kty, str):
            return f'keys[{index}] is not a JWK: expected an object with "kty"'
        if kty == "oct":
            return f'keys[{index}] is a shared secret ("kty": "oct"): a JWKS file holds public keys'
        if kty not in _KEY_TYPE.values():
            return f'keys[{index}] has "kty": "{kty}": expected RSA, EC or OKP'
        if any(part in key for part in ("d", "p", "q", "dp", "dq", "qi")):
            return f"keys[{index}] holds private key material: a JWKS file holds public keys"
        try:
            PyJWK(key)
        except (PyJWTError, ValueError, TypeError, KeyError):
            return f"keys[{index}] is not a valid {kty} public key"
        kinds.add(kty)
    wanted = {_KEY_TYPE[a[:2]] for a in algorithms or ()}
    if wanted and not wanted & kinds:
        shown = " or ".join(sorted(wanted))
        return f"no {shown} key for algorithms {', '.join(algorithms or ())}"
    return None


# ---------------------------------------------------------------------------- introspection


def introspection(r: Reader, node: Node | None, refs: Refs) -> tuple[Introspection, ...]:
    names: dict[Any, str] = {}
    out = []
    for path, item in (r.items(node, "introspection") or ()) if node is not None else ():
        refs.introspection += 1
        m = r.mapping(item, path, INTROSPECTION_KEYS)
        if m is None:
            continue
        name = m.read("name", r.string, required=True)
        if name is not None:
            r.unique(names, name, m.get("name"), m.sub("name"), "name")
        required = (
            name,
            m.read("url", partial(r.checked, check=http_url_problem), required=True),
            m.read("client_id", r.string, required=True),
            m.read("client_secret_env", partial(_env_set, r), required=True),
        )
        optional = {
            "cache_ttl": m.read("cache_ttl", partial(r.duration, positive=False)),
            "timeout": m.read("timeout", r.duration),
        }
        if None not in required:
            out.append(Introspection(*required, **_given(optional)))
    return tuple(out)


# ---------------------------------------------------------------------------- per API


def authentication(r: Reader, refs: Refs, node: Node, path: str) -> tuple[str, ...] | None:
    """Methods in config order; [] = public. Each one's needs are checked by check_needs."""
    items = r.items(node, path)
    if items is None:
        return None
    seen: dict[Any, str] = {}
    out = []
    for item_path, item in items:
        method = r.choice(item, item_path, AUTH_METHODS)
        if method is None:
            continue
        if method in seen:
            r.bad(item, item_path, f'duplicate entry "{method}"')
            continue
        seen[method] = item_path
        refs.needs.append((method, item, item_path))
        out.append(method)
    return tuple(out)


def mtls(r: Reader, refs: Refs, node: Node, path: str) -> str | None:
    mode = r.choice(node, path, ("optional", "required"))
    if mode == "required":
        refs.needs.append(("mtls", node, path))
    return mode


def api_key_location(r: Reader, node: Node, path: str) -> ApiKeyLocation | None:
    """`query: null` / `false` / `off` turns query-string keys off (unlike other keys, where a
    null value means "absent": here absent means the default, `api_key`)."""
    m = r.mapping(node, path, ("header", "query"))
    if m is None:
        return None
    header = m.read("header", partial(r.checked, check=_key_header_problem), "X-API-Key")
    query_node = m.get("query")
    query: str | None = "api_key"
    if query_node is None and "query" in m.entries:  # `query: null`
        query = None
    elif query_node is not None and r.is_off(query_node):
        query = None
    elif query_node is not None:
        query = r.checked(query_node, m.sub("query"), _query_name_problem)
        if query is None:
            return None
    return ApiKeyLocation(header=header, query=query)


def _key_header_problem(text: str) -> str | None:
    if not _TOKEN.fullmatch(text):
        return "expected a header name (RFC 9110 §5.1)"
    key = text.lower().replace("_", "-")  # some servers read X_Forwarded_For as X-Forwarded-For
    if key in _RESERVED_HEADERS or key.startswith("x-fastgate-"):
        return f'"{text}" cannot carry API keys: hop-by-hop, a credential or set by the gateway'
    return None


def _query_name_problem(text: str) -> str | None:
    if _QUERY_NAME.fullmatch(text):
        return None
    return 'expected a query parameter name (letters, digits, "-", ".", "_", "~")'


def authorization(r: Reader, refs: Refs, node: Node, path: str) -> Authorization | None:
    """None when the block configures nothing, so "no authorization" has one spelling."""
    m = r.mapping(node, path, AUTHORIZATION_KEYS)
    if m is None:
        return None
    auth = Authorization(
        roles_to_scopes=m.read("roles_to_scopes", partial(_roles_to_scopes, r), {}),
        resources=m.read("resources", partial(_resources, r), ()),
        rules=m.read("rules", partial(_rules, r, refs), ()),
        opa=m.read("opa", partial(_opa, r)),
    )
    return None if auth == Authorization() else auth


def _roles_to_scopes(r: Reader, node: Node, path: str) -> dict | None:
    m = r.mapping(node, path, None)
    if m is None:
        return None
    out = {}
    for role, role_path, value in m.each():
        scopes = r.strings(value, role_path, check=scope_problem) if value is not None else ()
        if scopes is not None:
            out[role] = scopes
    return out


def _resources(r: Reader, node: Node, path: str) -> tuple[ResourceScopes, ...] | None:
    seen: dict[tuple[str, str], str] = {}

    def one(item: Node, item_path: str) -> ResourceScopes | None:
        m = r.mapping(item, item_path, ("path", "methods", "scopes"))
        if m is None:
            return None
        template = m.read("path", partial(r.checked, check=template_problem), required=True)
        methods = m.read("methods", partial(_some, r, partial(_methods, r)))
        scopes = m.read("scopes", partial(r.strings, check=scope_problem), ())
        if template is None or (methods is None and m.has("methods")):
            return None  # reported; no duplicate check on half-read entries
        methods = methods or ()
        template = _strip_slash(template)
        shape = _TEMPLATE_NAME.sub("{}", template)  # /a/{id} and /a/{x} are the same resource
        for method in methods or ("*",):
            first = seen.setdefault((shape, method), item_path)
            if first != item_path:
                r.bad(m.get("path"), m.sub("path"), f"same path and method as {first}")
                break
        return ResourceScopes(path=template, methods=methods, scopes=scopes)

    return list_of(r, one, node, path)


def template_problem(text: str) -> str | None:
    """Relative to base_path: literal segments, whole "{name}" segments, a final "/**"."""
    problem = _segments_problem(text)
    if problem is not None:
        return problem
    names: set[str] = set()
    segments = _strip_slash(text)[1:].split("/")
    for index, segment in enumerate(segments):
        if segment == "" and len(segments) == 1:  # "/"
            continue
        if segment == "**":
            if index != len(segments) - 1:
                return '"**" only as the last segment'
            continue
        match = _TEMPLATE_NAME.fullmatch(segment)
        if match:
            if match[1] in names:
                return f'duplicate template name "{match[1]}"'
            names.add(match[1])
        elif not _SEGMENT.fullmatch(segment):
            return MSG_TEMPLATE
    return None


def glob_problem(text: str) -> str | None:
    """Relative to base_path: literal segments, "*" for one whole segment, a final "/**"."""
    problem = _segments_problem(text)
    if problem is not None:
        return problem
    segments = _strip_slash(text)[1:].split("/")
    for index, segment in enumerate(segments):
        if (segment == "" and len(segments) == 1) or segment == "*":
            continue
        if segment == "**":
            if index != len(segments) - 1:
                return '"**" only as the last segment'
            continue
        if not _SEGMENT.fullmatch(segment):
            return MSG_GLOB
    return None


def _segments_problem(text: str) -> str | None:
    """What both path syntaxes refuse: what routing would never match (see routing.py)."""
    if not text.startswith("/"):
        return 'must start with "/"'
    for bad in ("//", "%"):
        if bad in text:
            return f'must not contain "{bad}"'
    if "?" in text or "#" in text:
        return 'must not contain "?" or "#"'
    if any(segment in (".", "..") for segment in text.split("/")):
        return 'must not contain "." or ".." segments'
    return None


def _strip_slash(text: str) -> str:
    return text.rstrip("/") or "/"


def _methods(r: Reader, node: Node, path: str) -> tuple[str, ...] | None:
    """HTTP methods (RFC 9110 §9.1 tokens), upper-cased; duplicates refused."""
    items = r.items(node, path)
    if items is None:
        return None
    seen: dict[Any, str] = {}
    out: list[str | None] = []
    for item_path, item in items:
        text = r.string(item, item_path)
        method = None
        if text is not None and not _TOKEN.fullmatch(text):
            r.bad(item, item_path, "expected an HTTP method like GET (RFC 9110 §9.1)")
        elif text is not None:
            method = text.upper()
            if method in seen:
                r.bad(item, item_path, f'duplicate entry "{method}"')
                method = None
            else:
                seen[method] = item_path
        out.append(method)
    return None if None in out else tuple(m for m in out if m is not None)


def _rules(r: Reader, refs: Refs, node: Node, path: str) -> tuple[PolicyRule, ...] | None:
    items = r.items(node, path)
    if items is None:
        return None
    ids: dict[Any, str] = {}
    out = [
        _rule(r, refs, item, item_path, index, ids) for index, (item_path, item) in enumerate(items)
    ]
    return None if None in out else tuple(out)


def _rule(
    r: Reader, refs: Refs, node: Node, path: str, index: int, ids: dict[Any, str]
) -> PolicyRule | None:
    m = r.mapping(node, path, RULE_KEYS)
    if m is None:
        return None
    rule_id = m.read("id", r.string, f"rules[{index}]")
    r.unique(ids, rule_id, m.get("id") or node, m.sub("id"), "id")
    allow = m.read("allow", r.boolean, required=True)
    strings = partial(_some, r, r.strings)
    glob = m.read("path", partial(r.checked, check=glob_problem))
    rule = PolicyRule(
        id=rule_id,
        allow=allow,
        roles=m.read("roles", strings, ()),
        scopes=m.read("scopes", partial(_some, r, partial(r.strings, check=scope_problem)), ()),
        applications=m.read("applications", partial(_some, r, partial(_app_names, r, refs)), ()),
        methods=m.read("methods", partial(_some, r, partial(_methods, r)), ()),
        path=_strip_slash(glob) if glob is not None else None,
        client_ips=m.read(
            "client_ips", partial(_some, r, partial(r.strings, check=ip_or_cidr_problem)), ()
        ),
        claims=m.read("claims", partial(_rule_claims, r), {}),
        time=m.read("time", partial(_time_window, r)),
    )
    return rule if allow is not None else None


def _app_names(r: Reader, refs: Refs, node: Node, path: str) -> tuple[str, ...] | None:
    names = r.strings(node, path)
    for index, name in enumerate(names or ()):
        refs.uses.append(("application", name, node.value[index], f"{path}[{index}]"))
    return names


def _rule_claims(r: Reader, node: Node, path: str) -> dict | None:
    """claim name -> a scalar (equals) or a non-empty tuple of scalars (any of)."""
    m = r.mapping(node, path, None)
    if m is None:
        return None
    out: dict[str, Any] = {}
    ok = True
    for name, claim_path, value in m.each():
        if value is None:  # `name: ~` or `name:`: a mistake here, never "absent"
            r.bad(m.entries[name][0], claim_path, MSG_CLAIM)
            ok = False
        elif isinstance(value, SequenceNode):
            if not value.value:
                r.bad(value, claim_path, "must not be empty")
                ok = False
                continue
            values = [
                _claim_scalar(r, item, f"{claim_path}[{i}]") for i, item in enumerate(value.value)
            ]
            if any(v is REPORTED for v in values):
                ok = False
            else:
                out[name] = tuple(values)
        else:
            scalar = _claim_scalar(r, value, claim_path)
            if scalar is REPORTED:
                ok = False
            else:
                out[name] = scalar
    return out if ok else None


def _claim_scalar(r: Reader, node: Node, path: str) -> Any:
    value = r.value(node, path)
    if value is REPORTED:
        return REPORTED
    if isinstance(value, (str, bool, int)) or (isinstance(value, float) and value == value):
        return value
    r.bad(node, path, MSG_CLAIM)
    return REPORTED


def _time_window(r: Reader, node: Node, path: str) -> TimeWindow | None:
    m = r.mapping(node, path, ("from", "to", "timezone"))
    if m is None:
        return None
    start = m.read("from", partial(_clock, r), required=True)
    end = m.read("to", partial(_clock, r), required=True)
    timezone = m.read("timezone", partial(_timezone, r), "UTC")
    if start is not None and start == end:
        r.bad(m.get("to"), m.sub("to"), 'must differ from "from"')
        return None
    if start is None or end is None:
        return None
    return TimeWindow(start=start, end=end, timezone=timezone)


def _clock(r: Reader, node: Node, path: str) -> str | None:
    """ "HH:MM", 24-hour. Read from the source text: YAML 1.1 reads an unquoted 22:00 as the
    base-60 integer 1320 (while 06:00 stays a string)."""
    value = r.value(node, path)
    if value is REPORTED:
        return None
    text = node.value if isinstance(node, ScalarNode) and isinstance(value, (str, int)) else None
    if text is None or not _CLOCK.fullmatch(text):
        r.bad(node, path, 'expected a time like "06:00" (HH:MM, 24-hour)')
        return None
    return text


def _timezone(r: Reader, node: Node, path: str) -> str | None:
    name = r.string(node, path)
    if name is None:
        return None
    try:
        ZoneInfo(name)
        known = name not in _NOT_IANA
    except (ZoneInfoNotFoundError, ValueError, OSError):
        known = False
    if not known:
        r.bad(node, path, f'unknown timezone "{name}"')
        return None
    return name


def _opa(r: Reader, node: Node, path: str) -> Opa | None:
    m = r.mapping(node, path, OPA_KEYS)
    if m is None:
        return None
    url = m.read("url", partial(r.checked, check=http_url_problem), required=True)
    optional = {
        "timeout": m.read("timeout", r.duration),
        "on_error": m.read("on_error", partial(r.choice, choices=("deny", "allow"))),
        "cache_ttl": m.read("cache_ttl", partial(r.duration, positive=False)),
    }
    return Opa(url=url, **_given(optional)) if url is not None else None


# ---------------------------------------------------------------------------- cross-section


def check_needs(r: Reader, refs: Refs) -> None:
    """What each authentication method (and `mtls: required`) needs elsewhere in the file.
    Entries are counted as written, valid or not, so one mistake is never reported twice."""
    for method, node, path in refs.needs:
        message = None
        if method == "oauth2" and not (refs.issuers or refs.introspection):
            message = "oauth2 needs issuers or introspection"
        elif method in ("basic", "digest") and not refs.users:
            message = f"{method} needs users"
        elif method == "digest" and not refs.digest_users:
            message = "digest needs a user with digest_ha1"
        elif method == "api_key" and not refs.key_applications:
            message = "api_key needs an application with api_keys"
        elif method == "mtls" and not refs.client_cert_listeners:
            message = "mtls needs a listener with client_certificates"
        if message is not None:
            r.bad(node, path, message)


# ---------------------------------------------------------------------------- helpers


def _some(r: Reader, parse, node: Node, path: str) -> tuple | None:
    """A list that must not be empty: an empty condition list is a mistake, not "any"."""
    if isinstance(node, SequenceNode) and not node.value:
        r.bad(node, path, "must not be empty")
        return None
    return parse(node, path)


def _given(values: dict[str, Any]) -> dict[str, Any]:
    """The optional values the file set (and that are valid): the rest keep model defaults."""
    return {key: value for key, value in values.items() if value is not None}

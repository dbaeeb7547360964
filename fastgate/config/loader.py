"""Load a gateway YAML file into the frozen `Config` of model.py, every problem with its line.

Invariant: load_config returns a Config only when the file has no problem at all; otherwise it
raises ConfigError listing every problem, each "FILE:LINE: key.path: message", in file order.
The YAML walking lives in _reader.py; the identity sections (issue 4) in identity.py; the
content-inspection sections (issue 5) in inspection.py.
"""

from __future__ import annotations

import os
import re
import ssl
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

from . import identity, inspection
from ._reader import (
    REPORTED,
    Map,
    Parse,
    Reader,
    Refs,
    env_name_problem,
    http_url_problem,
    ip_or_cidr_problem,
    is_null,
    list_of,
    scope_problem,
    valid_host,
)
from .model import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_REDACT_HEADERS,
    DEFAULT_UPSTREAM_TIMEOUT,
    Admin,
    Api,
    ApiKey,
    ApiKeyLocation,
    Application,
    ClientCertificate,
    Config,
    HttpSettings,
    Limits,
    Listener,
    Logging,
    RateLimits,
    RedisSettings,
    ResourceLimit,
    Secrets,
    ServerTls,
    Subscription,
    Tier,
    TokenService,
    Upstream,
    UpstreamTls,
    UpstreamUrl,
    User,
    Window,
)

GRANT_TYPES = tuple(
    "authorization_code client_credentials password refresh_token jwt_bearer".split()
)
_SHA256_HASH = re.compile(r"sha256:[0-9a-f]{64}")
_SCRYPT_HASH = re.compile(r"scrypt\$[0-9]+\$[0-9]+\$[0-9]+\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*")
_FINGERPRINT = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){31}")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_PATH_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/]*")  # RFC 3986 pchar and "/", minus "%"

MSG_UPSTREAM_URL = 'expected a URL like "http://127.0.0.1:9000"'
MSG_SCRYPT = 'expected an scrypt hash from "fastgate hash-password"'
MSG_SHA256 = 'expected "sha256:" and 64 lowercase hex digits'
MSG_FINGERPRINT = 'expected 32 colon-separated hex pairs like "AB:CD:..."'
MSG_CLIENT_CA = "required when client_certificates is optional or required"

# The keys of each section, as in gateway.reference.yaml; *_UNSUPPORTED: "not supported yet".
TOP_KEYS = tuple(
    "version listeners limits workers http admin logging redis secrets users applications tiers"
    " issuers introspection token_service apis".split()
)
SERVER_TLS_KEYS = tuple(
    "certificate private_key min_version ciphers client_certificates client_ca".split()
)
TOKEN_SERVICE_KEYS = tuple(
    "enabled issuer signing_key access_token_ttl refresh_token_ttl authorization_code_ttl grants"
    " jwt_bearer_issuers pkce key_rotation".split()
)
APPLICATION_KEYS = tuple(
    "name tier client_id client_secret_hash redirect_uris grant_types scopes api_keys"
    " certificates subscriptions".split()
)
API_KEYS = tuple(
    "name base_path upstream mode authentication api_key mtls authorization max_body_bytes"
    " rate_limits".split()
)
API_UNSUPPORTED = ("anomaly_detection",)  # plus the inspection keys not yet runtime-ready
UPSTREAM_KEYS = ("urls", "path", "timeout", "connect_timeout", "tls", "max_requests_per_second",
                 "max_concurrency")
RATE_LIMITS_KEYS = ("api", "application", "subscription", "anonymous", "resources")


class ConfigError(Exception):
    """A config file with problems; `problems` holds every "FILE:LINE: key.path: message"."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, validate and compile one config file. Raises ConfigError, never a YAML exception."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{file}:1: file: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{file}:1: file: not UTF-8 text"]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        message = exc.problem or str(exc)
        if message.startswith("but ") and exc.context:  # "expected X, but found Y"
            message = f"{exc.context}, {message}"
        raise ConfigError([f"{file}:{line}: yaml: {message}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{file}:1: yaml: {exc}"]) from None
    source = Path(path).absolute()
    reader = Reader(file, source.parent)
    config = _config(reader, root, source)
    problems = reader.problems()
    if problems or config is None:
        raise ConfigError(problems or [f"{file}:1: document: invalid"])
    return config


# ---------------------------------------------------------------------------- small validators


def upstream_url(text: str) -> UpstreamUrl | None:
    """scheme://host[:port] with nothing else; None when it is not exactly that."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or "@" in parts.netloc or "?" in text or "#" in text:
        return None
    if parts.path not in ("", "/") or port == 0:
        return None
    host = parts.hostname or ""
    if not valid_host(host, ipv6=parts.netloc.startswith("[")):
        return None
    return UpstreamUrl(parts.scheme, host, port or (443 if parts.scheme == "https" else 80))


def url_path_problem(text: str) -> str | None:
    """Why a base_path / upstream.path is unsafe to route on, or None."""
    if not text.startswith("/"):
        return 'must start with "/"'
    for bad in ("..", "//", "%"):
        if bad in text:
            return f'must not contain "{bad}"'
    if "?" in text or "#" in text:
        return 'must not contain "?" or "#"'
    if not _PATH_CHARS.fullmatch(text):
        return 'expected a path like "/orders/v1"'
    return None


def normalise_path(text: str) -> str:
    return text.rstrip("/") or "/"


def _scrypt(text: str) -> str | None:
    """scrypt$N$r$p$salt$hash, as fastgate/credentials.py writes it."""
    return None if _SCRYPT_HASH.fullmatch(text) else MSG_SCRYPT


def _sha256(text: str) -> str | None:
    return None if _SHA256_HASH.fullmatch(text) else MSG_SHA256


def _fingerprint(text: str) -> str | None:
    return None if _FINGERPRINT.fullmatch(text) else MSG_FINGERPRINT


def _redirect_uri(text: str) -> str | None:
    # RFC 6749 §3.1.2: absolute URI, no fragment
    ok = bool(urlsplit(text).scheme) and "#" not in text and " " not in text
    return None if ok else "expected an absolute URI without a fragment (RFC 6749 §3.1.2)"


def _redis_url(text: str) -> str | None:
    try:
        ok = text.startswith(("redis://", "rediss://")) and bool(urlsplit(text).hostname)
    except ValueError:
        ok = False
    return None if ok else 'expected a URL like "redis://127.0.0.1:6379/0"'


def _rfc4514(text: str) -> str | None:
    from cryptography import x509

    try:
        x509.Name.from_rfc4514_string(text)
        return None
    except ValueError:
        return 'expected an RFC 4514 name like "CN=partner,O=Example"'


def _cipher_string(text: str) -> str | None:
    if text == "hardened":
        return None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(text)
        return None
    except ssl.SSLError:
        return "OpenSSL selects no cipher from this string"


# ---------------------------------------------------------------------------- sections


def _config(r: Reader, root: Node | None, source: Path) -> Config | None:
    if root is None or is_null(root):
        r.report(1, "listeners", "required")
        return None
    if not isinstance(root, MappingNode):
        r.bad(root, "document", "expected a mapping")
        return None
    top = Map(r, root, "", TOP_KEYS)
    version = top.get("version")
    value = r.value(version, "version") if version is not None else 1
    if not (type(value) is int and value == 1) and value is not REPORTED:
        r.bad(version, "version", "unsupported version, expected 1")
    refs = Refs()
    tiers = _tiers(r, top.get("tiers"), refs)
    limits = _limits(r, top.get("limits"))
    apis = _apis(r, top.get("apis"), refs, limits)
    users = _users(r, top.get("users"), refs)
    applications = _applications(r, top.get("applications"), refs)
    issuers = identity.issuers(r, top.get("issuers"), refs)
    introspection = identity.introspection(r, top.get("introspection"), refs)
    token_service = _token_service(r, top, refs, issuers)
    listeners = _listeners(r, top.need("listeners"), refs)
    admin = _admin(r, top.get("admin"), listeners)
    refs.check(r)
    identity.check_needs(r, refs)
    return Config(
        source=source,
        listeners=listeners,
        apis=apis,
        limits=limits,
        workers=top.read("workers", partial(_workers, r), 1),
        http=_http(r, top.get("http")),
        admin=admin,
        logging=_logging(r, top.get("logging")),
        redis=_redis(r, top.get("redis")),
        secrets=_secrets(r, top.get("secrets")),
        users=users,
        applications=applications,
        tiers=tiers,
        issuers=issuers,
        introspection=introspection,
        token_service=token_service,
        lines=r.lines,
    )


def _workers(r: Reader, node: Node, path: str) -> int | None:
    value = r.value(node, path)
    if value == "auto":
        return os.cpu_count() or 1
    if type(value) is int:
        return r.integer(node, path, minimum=1)
    if value is not REPORTED:
        r.bad(node, path, 'expected an integer or "auto"')
    return None


def _listeners(r: Reader, node: Node | None, refs: Refs) -> tuple[Listener, ...]:
    items = r.items(node, "listeners") if node is not None else None
    if items == []:
        r.bad(node, "listeners", "must not be empty")
    names: dict[Any, str] = {}
    addresses: dict[Any, str] = {}
    out = []
    for path, item in items or ():
        m = r.mapping(item, path, ("name", "address", "tls"))
        if m is None:
            continue
        name = m.read("name", r.string, required=True)
        address = m.read("address", r.address, required=True)
        tls = m.read("tls", partial(_server_tls, r, refs))
        if name is not None:
            r.unique(names, name, m.get("name"), m.sub("name"), "name")
        if address is not None and address[1] != 0:
            key = (address[0].lower(), address[1])
            r.unique(addresses, key, m.get("address"), m.sub("address"), "address")
        if name is not None and address is not None:
            out.append(Listener(name=name, host=address[0], port=address[1], tls=tls or None))
    return tuple(out)


def _tls_version(r: Reader, node: Node, path: str) -> str | None:
    value = r.value(node, path)
    if value in ("1.2", "1.3", 1.2, 1.3) and not isinstance(value, bool):
        return str(value)
    if value is not REPORTED:
        r.bad(node, path, "expected one of: 1.2, 1.3")
    return None


def _server_tls(r: Reader, refs: Refs, node: Node, path: str) -> ServerTls | bool | None:
    """ServerTls, or False for `tls: false` / `off` (plain HTTP), None when invalid."""
    if r.is_off(node):
        return False
    m = r.mapping(node, path, SERVER_TLS_KEYS)
    if m is None:
        return None
    certificate = m.read("certificate", r.file, required=True)
    private_key = m.read("private_key", r.file, required=True)
    modes = ("none", "optional", "required")
    off = {False: "none", "off": "none"}
    client_certificates = m.read(
        "client_certificates", partial(r.choice, choices=modes, aliases=off), "none"
    )
    if client_certificates in ("optional", "required"):
        refs.client_cert_listeners += 1
    client_ca = m.read("client_ca", r.file)
    if client_certificates != "none" and not m.has("client_ca"):
        r.bad(m.get("client_certificates"), m.sub("client_ca"), MSG_CLIENT_CA)
    tls = ServerTls(
        certificate=certificate,
        private_key=private_key,
        min_version=m.read("min_version", partial(_tls_version, r), "1.2"),
        ciphers=m.read("ciphers", partial(r.checked, check=_cipher_string), "hardened"),
        client_certificates=client_certificates,
        client_ca=client_ca,
    )
    return tls if certificate and private_key else None


def _admin(r: Reader, node: Node | None, listeners: tuple[Listener, ...]) -> Admin | None:
    if node is not None and r.is_off(node):
        return None
    m = r.mapping(node, "admin", ("address",)) if node is not None else None
    address = m.read("address", r.address) if m else None
    admin = Admin(*address) if address else Admin()
    for index, listener in enumerate(listeners):
        same_host = listener.host.lower() == admin.host.lower()
        if admin.port and same_host and listener.port == admin.port:
            if address:  # written in the file: point at it
                message = f"address already used by listeners[{index}]"
                r.bad(m.get("address"), "admin.address", message)
            else:  # the default admin address: point at the listener
                path = f"listeners[{index}].address"
                r.report(r.lines.get(path, 1), path, "address already used by admin.address")
    return admin


def _limits(r: Reader, node: Node | None) -> Limits:
    size, count, duration = r.size, partial(r.integer, minimum=1), r.duration
    parsers: dict[str, Parse] = {
        "max_request_line": size,
        "max_header_bytes": size,
        "max_headers": count,
        "max_body_bytes": partial(r.size, positive=False),
        "header_timeout": duration,
        "body_timeout": duration,
        "idle_timeout": duration,
        "max_connections": count,
        "shutdown_grace": partial(r.duration, positive=False),
    }
    m = r.mapping(node, "limits", parsers) if node is not None else None
    if m is None:
        return Limits()
    values = {key: m.read(key, parse) for key, parse in parsers.items()}
    return Limits(**{key: value for key, value in values.items() if value is not None})


def _http(r: Reader, node: Node | None) -> HttpSettings:
    m = r.mapping(node, "http", ("fast_path",)) if node is not None else None
    return HttpSettings(fast_path=m.read("fast_path", r.boolean, True)) if m else HttpSettings()


def _access_log(r: Reader, node: Node, path: str) -> str | None:
    if r.is_off(node):
        return "off"
    text = r.string(node, path)
    if text is None or text == "stdout":
        return text
    return str(r.resolve(text))


def _logging(r: Reader, node: Node | None) -> Logging:
    keys = ("access_log", "level", "redact_headers")
    m = r.mapping(node, "logging", keys) if node is not None else None
    if m is None:
        return Logging()
    levels = ("debug", "info", "warning", "error")
    redact = m.read("redact_headers", r.strings, DEFAULT_REDACT_HEADERS)
    return Logging(
        access_log=m.read("access_log", partial(_access_log, r), "stdout"),
        level=m.read("level", partial(r.choice, choices=levels), "info"),
        redact_headers=tuple(header.lower() for header in redact),
    )


def _redis(r: Reader, node: Node | None) -> RedisSettings | None:
    if node is None or r.is_off(node):
        return None
    m = r.mapping(node, "redis", ("url", "timeout", "on_unavailable"))
    if m is None:
        return None
    url_node = m.need("url")
    urls: tuple[str, ...] | None = None
    if isinstance(url_node, SequenceNode):
        urls = r.strings(url_node, "redis.url", _redis_url)
        if urls == ():
            r.bad(url_node, "redis.url", "must not be empty")
    elif url_node is not None:
        url = r.checked(url_node, "redis.url", _redis_url)
        urls = (url,) if url else None
    modes = ("local", "allow", "deny")
    return RedisSettings(
        urls=urls or (),
        timeout=m.read("timeout", r.duration, 0.05),
        on_unavailable=m.read("on_unavailable", partial(r.choice, choices=modes), "local"),
    )


def _secrets(r: Reader, node: Node | None) -> Secrets:
    m = r.mapping(node, "secrets", ("master_key_env",)) if node is not None else None
    if m is None:
        return Secrets()
    env = m.read("master_key_env", partial(r.checked, check=env_name_problem))
    return Secrets(env) if env else Secrets()


def _token_service(r: Reader, top: Map, refs: Refs, issuers: tuple) -> TokenService | None:
    """The built-in authorization server (issue 7); None unless `enabled: true`. Its keys are
    checked even while it is off, so turning it on never reveals an old mistake."""
    node = top.get("token_service")
    if node is None or r.is_off(node):
        return None
    m = r.mapping(node, "token_service", TOKEN_SERVICE_KEYS)
    if m is None:
        return None
    enabled = m.read("enabled", r.boolean, False)
    if enabled:
        refs.issuers += 1  # an implicit issuer: `authentication: [oauth2]` needs nothing else
    issuer = m.read("issuer", partial(r.checked, check=http_url_problem), required=enabled)
    signing_key = m.read("signing_key", partial(_key_path, r, enabled), required=enabled)
    if issuer is not None and issuer in {i.issuer for i in issuers}:
        r.bad(m.get("issuer"), m.sub("issuer"), "also the issuer of an issuers entry")
    grant_check = partial(r.choice, choices=GRANT_TYPES)
    grants = m.read("grants", partial(list_of, r, grant_check))
    names = {i.name for i in issuers}
    bearer = m.read("jwt_bearer_issuers", partial(r.strings), ())
    for index, name in enumerate(bearer):
        if name not in names and refs.issuers - enabled == len(issuers):  # all issuers valid
            path = m.sub(f"jwt_bearer_issuers[{index}]")
            r.report(r.lines.get(path, m.line), path, f'no issuer named "{name}"')
    if grants is not None and "jwt_bearer" in grants and not bearer and enabled:
        r.bad(m.get("grants"), m.sub("jwt_bearer_issuers"), "required for the jwt_bearer grant")
    optional = {
        "access_token_ttl": m.read("access_token_ttl", r.duration),
        "refresh_token_ttl": m.read("refresh_token_ttl", r.duration),
        "authorization_code_ttl": m.read("authorization_code_ttl", r.duration),
        "grants": grants,
        "pkce": m.read("pkce", partial(r.choice, choices=("required", "public_clients"))),
        "key_rotation": m.read("key_rotation", r.duration),
    }
    if enabled:
        _master_key_problem(r, top, m)
    if not enabled or issuer is None or signing_key is None:
        return None
    return TokenService(issuer=issuer, signing_key=signing_key, jwt_bearer_issuers=bearer,
                        **{k: v for k, v in optional.items() if v is not None})


def _master_key_problem(r: Reader, top: Map, m: Map) -> None:
    """The token service seals its keys with the master key: it must be set, base64 of 32 bytes
    (checked at load, like every secret_env, so a bad key never reaches a running gateway)."""
    import base64
    import binascii

    name = _secrets(r, top.get("secrets")).master_key_env  # its problems are reported once
    value = os.environ.get(name)
    if not value:
        r.bad(m.get("enabled"), m.sub("enabled"),
              f"needs the master key: environment variable {name} (secrets.master_key_env) is not set")
        return
    try:
        ok = len(base64.b64decode(value.strip(), validate=True)) == 32
    except (binascii.Error, ValueError):
        ok = False
    if not ok:
        r.bad(m.get("enabled"), m.sub("enabled"),
              f"needs the master key: {name} must hold base64 of 32 bytes")


def _key_path(r: Reader, enabled: bool, node: Node, path: str) -> Path | None:
    """A key file that may not exist yet (made on first start); its folder must (when on)."""
    text = r.string(node, path)
    if text is None:
        return None
    resolved = r.resolve(text)
    if resolved.exists() and not resolved.is_file():
        r.bad(node, path, f"not a file: {text}")
        return None
    if enabled and not resolved.parent.is_dir():
        r.bad(node, path, f"folder not found: {Path(text).parent}")
        return None
    return resolved


def _window(r: Reader, node: Node, path: str) -> Window | None:
    m = r.mapping(node, path, ("requests", "per"))
    if m is None:
        return None
    requests = m.read("requests", partial(r.integer, minimum=1), required=True)
    per = m.read("per", r.duration, required=True)
    return Window(requests, per) if requests and per else None


def _tiers(r: Reader, node: Node | None, refs: Refs) -> dict[str, Tier]:
    top = r.mapping(node, "tiers", None) if node is not None else None
    tiers: dict[str, Tier] = {}
    for name, path, value in top.each() if top else ():
        refs.tiers.add(name)
        keys = ("requests", "per", "burst", "bandwidth")
        m = r.mapping(value, path, keys) if value is not None else None
        if m is None:
            tiers[name] = Tier(name)
            continue
        tiers[name] = Tier(
            name=name,
            requests=m.read("requests", partial(r.integer, minimum=1)),
            per=m.read("per", r.duration),
            burst=m.read("burst", partial(_window, r)),
            bandwidth=m.read("bandwidth", r.size),
        )
        if (m.has("requests") or m.has("bandwidth")) and not m.has("per"):
            r.report(m.line, m.sub("per"), "required")
        if m.has("per") and not (m.has("requests") or m.has("bandwidth")):
            r.report(m.line, m.sub("requests"), "required")
    return tiers


def _claims(r: Reader, node: Node, path: str) -> dict | None:
    value = None
    if isinstance(node, MappingNode):
        try:
            value = r._constructor.construct_object(node, deep=True)
        except (ConstructorError, ValueError):
            pass
    try:
        ok = isinstance(value, dict) and _jsonable(value)
    except RecursionError:  # an alias that contains itself
        ok = False
    if not ok:
        r.bad(node, path, "expected a mapping of JSON values")
        return None
    return value


def _jsonable(value: object) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _jsonable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_jsonable(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def _users(r: Reader, node: Node | None, refs: Refs) -> tuple[User, ...]:
    names: dict[Any, str] = {}
    out = []
    for path, item in (r.items(node, "users") or ()) if node is not None else ():
        refs.users += 1
        m = r.mapping(item, path, ("name", "password_hash", "digest_ha1", "roles", "claims"))
        if m is None:
            continue
        if m.has("digest_ha1"):
            refs.digest_users += 1
        name = m.read("name", r.string, required=True)
        if name is not None:
            r.unique(names, name, m.get("name"), m.sub("name"), "name")
        password_hash = m.read("password_hash", partial(r.checked, check=_scrypt), required=True)
        user = User(
            name=name,
            password_hash=password_hash,
            digest_ha1=m.read("digest_ha1", partial(r.checked, check=_sha256)),
            roles=m.read("roles", r.strings, ()),
            claims=m.read("claims", partial(_claims, r), {}),
        )
        if name is not None and password_hash is not None:
            out.append(user)
    return tuple(out)


def _timestamp(r: Reader, node: Node, path: str) -> datetime | None:
    value = r.value(node, path)
    if isinstance(value, str) and _RFC3339.fullmatch(value):
        try:
            value = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        except ValueError:
            pass
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    if value is not REPORTED:
        r.bad(node, path, 'expected an RFC 3339 timestamp like "2027-01-01T00:00:00Z"')
    return None


class _AppSeen:
    """Values that must be unique across all applications."""

    def __init__(self) -> None:
        self.names: dict[Any, str] = {}
        self.client_ids: dict[Any, str] = {}
        self.key_ids: dict[Any, str] = {}
        self.key_hashes: dict[Any, str] = {}


def _applications(r: Reader, node: Node | None, refs: Refs) -> tuple[Application, ...]:
    seen = _AppSeen()
    out = []
    for path, item in (r.items(node, "applications") or ()) if node is not None else ():
        app = _application(r, item, path, refs, seen)
        if app is not None:
            out.append(app)
    return tuple(out)


def _application(
    r: Reader, node: Node, path: str, refs: Refs, seen: _AppSeen
) -> Application | None:
    m = r.mapping(node, path, APPLICATION_KEYS)
    if m is None:
        return None
    name = m.read("name", r.string, required=True)
    if name is not None:
        refs.applications.add(name)
        r.unique(seen.names, name, m.get("name"), m.sub("name"), "name")
    keys = m.get("api_keys")
    if keys is not None and not (isinstance(keys, SequenceNode) and not keys.value):
        refs.key_applications += 1
    tier = m.read("tier", r.string)
    if tier is not None:
        refs.uses.append(("tier", tier, m.get("tier"), m.sub("tier")))
    client_id = m.read("client_id", r.string)
    if client_id is not None:
        r.unique(seen.client_ids, client_id, m.get("client_id"), m.sub("client_id"), "client_id")
    grant_check = partial(r.choice, choices=GRANT_TYPES)
    app = Application(
        name=name,
        tier=tier,
        client_id=client_id,
        client_secret_hash=m.read("client_secret_hash", partial(r.checked, check=_scrypt)),
        redirect_uris=m.read("redirect_uris", partial(r.strings, check=_redirect_uri), ()),
        grant_types=m.read("grant_types", partial(list_of, r, grant_check), ()),
        scopes=m.read("scopes", partial(r.strings, check=scope_problem), ()),
        api_keys=m.read("api_keys", partial(list_of, r, partial(_api_key, r, seen)), ()),
        certificates=m.read("certificates", partial(list_of, r, partial(_certificate, r)), ()),
        subscriptions=m.read("subscriptions", partial(_subscriptions, r, refs), ()),
    )
    return app if name is not None else None


def _api_key(r: Reader, seen: _AppSeen, node: Node, path: str) -> ApiKey | None:
    m = r.mapping(node, path, ("id", "hash", "allowed_ips", "allowed_referers", "expires"))
    if m is None:
        return None
    key_id = m.read("id", r.string, required=True)
    if key_id is not None:
        r.unique(seen.key_ids, key_id, m.get("id"), m.sub("id"), "id")
    key_hash = m.read("hash", partial(r.checked, check=_sha256), required=True)
    if key_hash is not None and key_hash in seen.key_hashes:
        r.bad(m.get("hash"), m.sub("hash"), f"same hash as {seen.key_hashes[key_hash]}")
    elif key_hash is not None:
        seen.key_hashes[key_hash] = path
    key = ApiKey(
        id=key_id,
        hash=key_hash,
        allowed_ips=m.read("allowed_ips", partial(r.strings, check=ip_or_cidr_problem), ()),
        allowed_referers=m.read("allowed_referers", r.strings, ()),
        expires=m.read("expires", partial(_timestamp, r)),
    )
    return key if key_id and key_hash else None


def _certificate(r: Reader, node: Node, path: str) -> ClientCertificate | None:
    m = r.mapping(node, path, ("sha256", "subject"))
    if m is None:
        return None
    if m.has("sha256") == m.has("subject"):
        r.report(m.line, path, "expected exactly one of: sha256, subject")
        return None
    fingerprint = m.read("sha256", partial(r.checked, check=_fingerprint))
    subject = m.read("subject", partial(r.checked, check=_rfc4514))
    if fingerprint is None and subject is None:
        return None
    return ClientCertificate(sha256=fingerprint.upper() if fingerprint else None, subject=subject)


def _subscriptions(r: Reader, refs: Refs, node: Node, path: str) -> tuple[Subscription, ...] | None:
    items = r.items(node, path)
    if items is None:
        return None
    seen: dict[Any, str] = {}
    out = []
    for item_path, item in items:
        m = r.mapping(item, item_path, ("api", "tier"))
        if m is None:
            continue
        api = m.read("api", r.string, required=True)
        tier = m.read("tier", r.string, required=True)
        if api is not None:
            refs.uses.append(("API", api, m.get("api"), m.sub("api")))
            r.unique(seen, api, m.get("api"), m.sub("api"), "subscription to")
        if tier is not None:
            refs.uses.append(("tier", tier, m.get("tier"), m.sub("tier")))
        if api is not None and tier is not None:
            out.append(Subscription(api=api, tier=tier))
    return tuple(out)


def _apis(r: Reader, node: Node | None, refs: Refs, limits: Limits) -> tuple[Api, ...]:
    names: dict[Any, str] = {}
    base_paths: dict[Any, str] = {}
    ready = [key for key in inspection.INSPECTION_KEYS if inspection.runtime_ready(key)]
    waiting = [key for key in inspection.INSPECTION_KEYS if key not in ready]
    out = []
    for path, item in (r.items(node, "apis") or ()) if node is not None else ():
        m = r.mapping(item, path, (*API_KEYS, *ready), (*waiting, *API_UNSUPPORTED))
        if m is None:
            continue
        name = m.read("name", r.string, required=True)
        if name is not None:
            refs.apis.add(name)
            r.unique(names, name, m.get("name"), m.sub("name"), "name")
        base_path = m.read("base_path", partial(r.checked, check=url_path_problem), required=True)
        if base_path is not None:
            base_path = normalise_path(base_path)
            r.unique(base_paths, base_path, m.get("base_path"), m.sub("base_path"), "base_path")
        upstream = m.read("upstream", partial(_upstream, r), required=True)
        max_body_bytes = m.read("max_body_bytes", partial(r.size, positive=False))
        body_limit = limits.max_body_bytes if max_body_bytes is None else max_body_bytes
        api = Api(
            name=name,
            base_path=base_path,
            upstream=upstream,
            mode=m.read("mode", partial(r.choice, choices=("enforce", "monitor")), "enforce"),
            authentication=m.read("authentication", partial(identity.authentication, r, refs), ()),
            api_key=m.read("api_key", partial(identity.api_key_location, r), ApiKeyLocation()),
            mtls=m.read("mtls", partial(identity.mtls, r, refs), "optional"),
            authorization=m.read("authorization", partial(identity.authorization, r, refs)),
            max_body_bytes=max_body_bytes,
            rate_limits=m.read("rate_limits", partial(_rate_limits, r), RateLimits()),
            **_inspection(r, m, ready, body_limit),
        )
        if name is not None and base_path is not None and upstream is not None:
            out.append(api)
    return tuple(out)


def _inspection(r: Reader, m: Map, ready: list[str], body_limit: int) -> dict[str, Any]:
    """The runtime-ready inspection keys of one API (the others were refused by Map)."""
    parsers: dict[str, Parse] = {
        "threat_protection": partial(inspection.threat_protection, r, body_limit=body_limit),
        "validation": partial(inspection.validation, r),
        "openapi": partial(inspection.openapi, r),
        "cors": partial(inspection.cors, r),
    }
    values = {key: m.read(key, parsers[key]) for key in ready}
    inspection.check_api(r, m, values.get("validation"))
    return values


def _rate_limits(r: Reader, node: Node, path: str) -> RateLimits | None:
    m = r.mapping(node, path, RATE_LIMITS_KEYS)
    if m is None:
        return None
    return RateLimits(
        api=m.read("api", partial(_window, r)),
        application=m.read("application", r.boolean, False),
        subscription=m.read("subscription", r.boolean, False),
        anonymous=m.read("anonymous", partial(_window, r)),
        resources=m.read("resources", partial(_resource_limits, r), ()),
    )


def _resource_limits(r: Reader, node: Node, path: str) -> tuple[ResourceLimit, ...] | None:
    def one(item: Node, item_path: str) -> ResourceLimit | None:
        m = r.mapping(item, item_path, ("path", "methods", "requests", "per"))
        if m is None:
            return None
        template = m.read("path", partial(r.checked, check=identity.template_problem), required=True)
        methods = m.read("methods", partial(identity._methods, r), ())
        requests = m.read("requests", partial(r.integer, minimum=1), required=True)
        per = m.read("per", r.duration, required=True)
        if None in (template, methods, requests, per):
            return None
        return ResourceLimit(identity._strip_slash(template), methods, requests, per)

    return list_of(r, one, node, path)


def _upstream(r: Reader, node: Node, path: str) -> Upstream | None:
    m = r.mapping(node, path, UPSTREAM_KEYS)
    if m is None:
        return None
    urls = m.read("urls", partial(_upstream_urls, r), required=True)
    upstream = Upstream(
        urls=urls,
        path=normalise_path(m.read("path", partial(r.checked, check=url_path_problem), "/")),
        timeout=m.read("timeout", r.duration, DEFAULT_UPSTREAM_TIMEOUT),
        connect_timeout=m.read("connect_timeout", r.duration, DEFAULT_CONNECT_TIMEOUT),
        tls=m.read("tls", partial(_upstream_tls, r)) or None,
        max_requests_per_second=m.read("max_requests_per_second", partial(r.integer, minimum=1)),
        max_concurrency=m.read("max_concurrency", partial(r.integer, minimum=1)),
    )
    return upstream if urls else None


def _upstream_urls(r: Reader, node: Node, path: str) -> tuple[UpstreamUrl, ...] | None:
    items = r.items(node, path)
    if items == []:
        r.bad(node, path, "must not be empty")
    out = []
    for item_path, item in items or ():
        text = r.string(item, item_path)
        url = upstream_url(text) if text is not None else None
        if text is not None and url is None:
            r.bad(item, item_path, MSG_UPSTREAM_URL)
        out.append(url)
    return None if not out or None in out else tuple(out)


def _upstream_tls(r: Reader, node: Node, path: str) -> UpstreamTls | bool | None:
    if r.is_off(node):
        return False
    m = r.mapping(node, path, ("verify", "ca", "certificate", "private_key"))
    if m is None:
        return None
    for key, other in (("certificate", "private_key"), ("private_key", "certificate")):
        if m.has(key) and not m.has(other):
            r.bad(m.get(key), m.sub(other), f"required when {key} is set")
    return UpstreamTls(
        verify=m.read("verify", r.boolean, True),
        ca=m.read("ca", r.file),
        certificate=m.read("certificate", r.file),
        private_key=m.read("private_key", r.file),
    )

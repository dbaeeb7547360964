"""The compiled configuration: frozen dataclasses built once by loader.py.

Invariant: runtime code reads only these objects, never raw YAML dicts. Durations are float
seconds, sizes are int bytes, paths are absolute (resolved against the config file's folder).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

# Named defaults: every limit has one, a config key and a contract status (CONTRACT.md).
DEFAULT_MAX_REQUEST_LINE = 8 * 1024  # -> 414
DEFAULT_MAX_HEADER_BYTES = 16 * 1024  # -> 431
DEFAULT_MAX_HEADERS = 100  # -> 431
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024  # -> 413
DEFAULT_HEADER_TIMEOUT = 10.0  # -> 408
DEFAULT_BODY_TIMEOUT = 30.0  # -> 408
DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_MAX_CONNECTIONS = 10000
DEFAULT_SHUTDOWN_GRACE = 30.0
DEFAULT_UPSTREAM_TIMEOUT = 30.0  # -> 504
DEFAULT_CONNECT_TIMEOUT = 2.0  # -> 502
DEFAULT_ADMIN_ADDRESS = ("127.0.0.1", 9901)
DEFAULT_REDACT_HEADERS = ("authorization", "cookie", "x-api-key", "proxy-authorization")


@dataclass(frozen=True, slots=True)
class ServerTls:
    certificate: Path
    private_key: Path
    min_version: str = "1.2"  # "1.2" | "1.3"
    ciphers: str = "hardened"  # "hardened" or an explicit OpenSSL TLS 1.2 cipher string
    client_certificates: str = "none"  # none | optional | required
    client_ca: Path | None = None


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    host: str
    port: int
    tls: ServerTls | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    max_request_line: int = DEFAULT_MAX_REQUEST_LINE
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_headers: int = DEFAULT_MAX_HEADERS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE


@dataclass(frozen=True, slots=True)
class HttpSettings:
    fast_path: bool = True


@dataclass(frozen=True, slots=True)
class Admin:
    host: str = DEFAULT_ADMIN_ADDRESS[0]
    port: int = DEFAULT_ADMIN_ADDRESS[1]


@dataclass(frozen=True, slots=True)
class Logging:
    access_log: str = "stdout"  # "stdout" | "off" | an absolute file path
    level: str = "info"
    redact_headers: tuple[str, ...] = DEFAULT_REDACT_HEADERS


@dataclass(frozen=True, slots=True)
class RedisSettings:
    urls: tuple[str, ...]
    timeout: float = 0.05
    on_unavailable: str = "local"  # local | allow | deny


@dataclass(frozen=True, slots=True)
class Secrets:
    master_key_env: str = "FASTGATE_MASTER_KEY"


@dataclass(frozen=True, slots=True)
class Window:
    """`requests` per `per` seconds (a tier, a burst, an anonymous or API limit)."""

    requests: int
    per: float


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    requests: int | None = None
    per: float | None = None
    burst: Window | None = None
    bandwidth: int | None = None  # request + response bytes per `per`


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password_hash: str
    digest_ha1: str | None = None
    roles: tuple[str, ...] = ()
    claims: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    hash: str  # "sha256:" + 64 lowercase hex
    allowed_ips: tuple[str, ...] = ()
    allowed_referers: tuple[str, ...] = ()
    expires: datetime | None = None


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    sha256: str | None = None  # "AB:CD:..." upper-case hex pairs
    subject: str | None = None  # RFC 4514


@dataclass(frozen=True, slots=True)
class Subscription:
    api: str
    tier: str


@dataclass(frozen=True, slots=True)
class Application:
    name: str
    tier: str | None = None
    client_id: str | None = None
    client_secret_hash: str | None = None
    redirect_uris: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    api_keys: tuple[ApiKey, ...] = ()
    certificates: tuple[ClientCertificate, ...] = ()
    subscriptions: tuple[Subscription, ...] = ()


@dataclass(frozen=True, slots=True)
class UpstreamTls:
    verify: bool = True
    ca: Path | None = None
    certificate: Path | None = None
    private_key: Path | None = None


@dataclass(frozen=True, slots=True)
class UpstreamUrl:
    scheme: str  # "http" | "https"
    host: str
    port: int

    @property
    def authority(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Upstream:
    urls: tuple[UpstreamUrl, ...]
    path: str = "/"
    timeout: float = DEFAULT_UPSTREAM_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    tls: UpstreamTls | None = None
    max_requests_per_second: int | None = None
    max_concurrency: int | None = None


@dataclass(frozen=True, slots=True)
class ResourceLimit:
    """`rate_limits.resources[]`: all consumers of one resource (method + path template) together."""

    path: str  # relative to base_path; "{id}" matches one segment, "/**" any rest
    methods: tuple[str, ...] = ()  # () = every method
    requests: int = 1
    per: float = 1.0


@dataclass(frozen=True, slots=True)
class RateLimits:
    api: Window | None = None  # all consumers of the API together, cluster-wide
    application: bool = False  # each application's own tier (across every API)
    subscription: bool = False  # the application x API subscription tier
    anonymous: Window | None = None  # per client IP (IPv6: per /64) when the API is public
    resources: tuple[ResourceLimit, ...] = ()


@dataclass(frozen=True, slots=True)
class Api:
    name: str
    base_path: str  # normalised: starts with "/", no trailing "/" (except the root "/")
    upstream: Upstream
    mode: str = "enforce"  # enforce | monitor
    authentication: tuple[str, ...] = ()  # () = public; oauth2 | api_key | mtls | basic | digest
    max_body_bytes: int | None = None  # per-API override of limits.max_body_bytes
    rate_limits: RateLimits = field(default_factory=RateLimits)
    api_key: ApiKeyLocation = field(default_factory=lambda: ApiKeyLocation())
    mtls: str = "optional"  # optional | required (a verified client cert on top of a method)
    authorization: Authorization | None = None
    threat_protection: ThreatProtection | None = None
    validation: Validation | None = None
    openapi: Path | None = None
    cors: Cors | None = None


@dataclass(frozen=True, slots=True)
class Config:
    source: Path
    listeners: tuple[Listener, ...]
    apis: tuple[Api, ...] = ()
    limits: Limits = field(default_factory=Limits)
    workers: int = 1
    http: HttpSettings = field(default_factory=HttpSettings)
    admin: Admin | None = field(default_factory=Admin)
    logging: Logging = field(default_factory=Logging)
    redis: RedisSettings | None = None
    secrets: Secrets = field(default_factory=Secrets)
    users: tuple[User, ...] = ()
    applications: tuple[Application, ...] = ()
    tiers: dict[str, Tier] = field(default_factory=dict)
    issuers: tuple[Issuer, ...] = ()
    introspection: tuple[Introspection, ...] = ()
    token_service: TokenService | None = None  # None = disabled
    # key path -> line, for audit findings and messages that point into the file
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)


# ---------------------------------------------------------------- token service (issue 7)
DEFAULT_ACCESS_TOKEN_TTL = 900.0
DEFAULT_REFRESH_TOKEN_TTL = 30 * 86400.0
DEFAULT_AUTHORIZATION_CODE_TTL = 60.0


@dataclass(frozen=True, slots=True)
class TokenService:
    """`token_service` when `enabled: true`: the built-in authorization server."""

    issuer: str  # `iss` of every token it signs; its tokens are accepted without an `issuers` entry
    signing_key: Path  # PEM (ES256 P-256 or RS256), or made on first start (encrypted)
    access_token_ttl: float = DEFAULT_ACCESS_TOKEN_TTL
    refresh_token_ttl: float = DEFAULT_REFRESH_TOKEN_TTL
    authorization_code_ttl: float = DEFAULT_AUTHORIZATION_CODE_TTL
    grants: tuple[str, ...] = ("client_credentials", "refresh_token", "authorization_code")
    jwt_bearer_issuers: tuple[str, ...] = ()  # issuers[].name
    pkce: str = "required"  # required (every client) | public_clients
    key_rotation: float | None = None  # our extension: a new signing key this often


# ---------------------------------------------------------------- identity (issue 4)
@dataclass(frozen=True, slots=True)
class ApiKeyLocation:
    """Where an API's keys are looked for (`apis[].api_key`)."""

    header: str = "X-API-Key"
    query: str | None = "api_key"


@dataclass(frozen=True, slots=True)
class Issuer:
    """An external OAuth2/OIDC provider whose JWTs are accepted (`issuers[]`)."""

    name: str
    issuer: str
    algorithms: tuple[str, ...]
    audiences: tuple[str, ...] = ()
    jwks_uri: str | None = None
    jwks_file: Path | None = None
    secret_env: str | None = None  # HS256/384/512 only; the secret itself is read at load
    leeway: float = 30.0
    scope_claim: str = "scope"
    roles_claim: str = "roles"


@dataclass(frozen=True, slots=True)
class Introspection:
    """An RFC 7662 endpoint for opaque tokens (`introspection[]`)."""

    name: str
    url: str
    client_id: str
    client_secret_env: str
    cache_ttl: float = 60.0
    timeout: float = 2.0  # our extension: -> 503 unavailable (fail closed)


@dataclass(frozen=True, slots=True)
class ResourceScopes:
    """`authorization.resources[]`: every listed scope is needed for method + path template."""

    path: str  # relative to base_path; "{id}" matches one segment, "/**" any rest
    methods: tuple[str, ...] = ()  # () = every method
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TimeWindow:
    start: str  # "HH:MM" (config key `from`)
    end: str  # "HH:MM" (config key `to`); end < start wraps past midnight
    timezone: str = "UTC"  # IANA name, checked with zoneinfo at load


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """`authorization.rules[]`: first match wins; every present condition must hold."""

    id: str  # "rules[N]" unless the rule sets `id`
    allow: bool
    roles: tuple[str, ...] = ()  # any of
    scopes: tuple[str, ...] = ()  # all of
    applications: tuple[str, ...] = ()  # any of
    methods: tuple[str, ...] = ()
    path: str | None = None  # glob relative to base_path: "*" one segment, "**" any
    client_ips: tuple[str, ...] = ()  # CIDRs, v4 and v6
    claims: dict = field(default_factory=dict)  # name -> value (equals) or list (in)
    time: TimeWindow | None = None


@dataclass(frozen=True, slots=True)
class Opa:
    url: str
    timeout: float = 0.1
    on_error: str = "deny"  # deny | allow
    cache_ttl: float = 1.0  # our extension: decisions cached by input digest


@dataclass(frozen=True, slots=True)
class Authorization:
    roles_to_scopes: dict = field(default_factory=dict)  # role -> tuple of scopes
    resources: tuple[ResourceScopes, ...] = ()
    rules: tuple[PolicyRule, ...] = ()
    opa: Opa | None = None


# ---------------------------------------------------------------- content inspection (issue 5)
@dataclass(frozen=True, slots=True)
class RegexProtection:
    sets: tuple[str, ...] = ()  # sql javascript ssi xpath java_exception path_traversal command
    custom: tuple[str, ...] = ()  # extra patterns (hyperscan syntax), ids "custom[N]"
    scan: tuple[str, ...] = ("path", "query", "headers", "body")


@dataclass(frozen=True, slots=True)
class JsonProtection:
    """None = that limit is off; the scanner's names (fastgate._native.jsonscan.JsonLimits)."""

    max_depth: int | None = 20
    max_string_length: int | None = 10_000
    max_key_length: int | None = 256
    max_array_elements: int | None = 1000
    max_object_entries: int | None = 1000
    max_bytes: int | None = 1024 * 1024


@dataclass(frozen=True, slots=True)
class XmlProtection:
    max_depth: int | None = 30
    max_elements: int | None = 10_000
    max_attributes: int | None = 50
    max_attribute_length: int | None = 1000
    max_text_length: int | None = 100_000
    max_children: int | None = 1000
    max_bytes: int | None = 1024 * 1024  # our addition, as for JSON
    allow_dtd: bool = False
    schema: Path | None = None  # XSD, local file only


@dataclass(frozen=True, slots=True)
class ThreatProtection:
    regex: RegexProtection | None = None
    json: JsonProtection | None = None
    xml: XmlProtection | None = None


@dataclass(frozen=True, slots=True)
class Validation:
    request: bool = True
    response: bool = False


@dataclass(frozen=True, slots=True)
class Cors:
    origins: tuple[str, ...]  # exact origins ("https://app.example.com"); "*" only without credentials
    methods: tuple[str, ...] = ("GET", "HEAD", "POST")
    headers: tuple[str, ...] = ()  # allowed request headers, lowercase
    expose_headers: tuple[str, ...] = ()  # our addition
    credentials: bool = False
    max_age: float = 600.0

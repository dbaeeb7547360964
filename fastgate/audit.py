"""`fastgate audit`: a security review of a config that already loaded (a valid Config).

Invariant: audit only reads the Config (never the YAML); each finding names a key path and, when
the config came from a file, the line of that key (or of its nearest present parent).
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from .config import inspection
from .config.model import Api, Config, Listener, PolicyRule, ServerTls
from .config.units import format_duration

SEVERITIES = ("high", "medium", "low", "info")
# Names OpenSSL gives ciphers we never want, whatever the rest of the string says.
_WEAK_NAME_PARTS = ("CBC", "RC4", "3DES", "DES", "NULL", "MD5", "EXP", "ADH", "AECDH")
MSG_PLAIN_UPSTREAM = "traffic to the backend is not encrypted"
MSG_OPTIONAL_CLIENT_CERT = "client certificates optional: clients without one can connect"
MSG_NO_RATE_LIMIT = "no rate limit"
MSG_PASSWORD_GRANT = "password grant: clients see users' passwords (OAuth 2.0 Security BCP: do not use)"
MSG_PKCE_PUBLIC_ONLY = "PKCE only for public clients: confidential clients' codes can be injected (RFC 9700 §2.1.1)"
MAX_ACCESS_TOKEN_TTL = 3600.0  # longer access tokens: a finding
MAX_REFRESH_TOKEN_TTL = 90 * 86400.0
MSG_ANONYMOUS_ONLY = "no rate limit: rate_limits.anonymous only applies to public APIs"
MSG_SHARED_SECRET = "shared-secret signatures: any holder of the secret can mint tokens"
MSG_KEY_IN_URL = "keys in URLs end up in logs and browser history"
MSG_DIGEST = "Digest HA1 is password-equivalent: consider a stronger method"
MSG_NO_AUTHORIZATION = "no authorization: any authenticated caller may use every resource"
MSG_OPA_FAILS_OPEN = "OPA errors allow requests: authorization fails open"
MSG_NO_FINAL_DENY = "no final deny rule: requests no rule matches are denied by default; say so with a final {allow: false}"
MSG_CORS_WILDCARD = "any website can read this API's responses in a browser"
MSG_CORS_CREDENTIALS = "browsers send cookies and credentials from the listed origins"
MSG_NO_THREAT_PROTECTION = "no threat protection"
MSG_BODY_NOT_SCANNED = "request bodies are not scanned for attacks"
MSG_DTD_ALLOWED = "XML bodies may carry a DTD: entity expansion and XXE reach the backend's parser"
MSG_NO_BODY_CAP = "no {kind} size limit: bodies up to the API's body limit are buffered and parsed"
MAX_QUIET_LEEWAY = 60.0  # beyond a minute, leeway is a window for expired tokens


@dataclass(frozen=True, slots=True)
class Finding:
    severity: str  # "high" | "medium" | "low" | "info"
    path: str
    message: str
    line: int | None = None


def audit(cfg: Config, now: datetime | None = None) -> list[Finding]:
    """Every finding for `cfg`, in file order; `now` (aware) is injectable for tests."""
    now = now or datetime.now(UTC)
    found: list[tuple[str, str, str]] = []  # (severity, path, message)

    def add(severity: str, path: str, message: str) -> None:
        found.append((severity, path, message))

    for index, listener in enumerate(cfg.listeners):
        found.extend(_listener(f"listeners[{index}]", listener))
    if cfg.admin is not None and not is_loopback(cfg.admin.host):
        add("high", "admin.address", "admin endpoints reachable from other hosts: use loopback")
    for index, api in enumerate(cfg.apis):
        path = f"apis[{index}]"
        if not api.authentication:
            add("high", f"{path}.authentication", "no authentication: anyone can call this API")
        rl = api.rate_limits
        limited = rl.api or rl.application or rl.subscription or rl.resources or (
            rl.anonymous is not None and not api.authentication)
        if not limited and rl.anonymous is not None:  # anonymous applies to public APIs only (the contract)
            add("medium", f"{path}.rate_limits.anonymous", MSG_ANONYMOUS_ONLY)
        elif not limited:
            add("medium", f"{path}.rate_limits", MSG_NO_RATE_LIMIT)
        if api.mode == "monitor":
            add("medium", f"{path}.mode", "monitor mode: violations are logged, not blocked")
        found.extend(_api_identity(path, api))
        found.extend(_api_inspection(path, api))
        for url_index, url in enumerate(api.upstream.urls):
            if url.scheme == "http" and not is_loopback(url.host):
                add("low", f"{path}.upstream.urls[{url_index}]", MSG_PLAIN_UPSTREAM)
        if api.upstream.tls is not None and not api.upstream.tls.verify:
            add("high", f"{path}.upstream.tls.verify", "the backend's certificate is not verified")
    for index, issuer in enumerate(cfg.issuers):
        path = f"issuers[{index}]"
        if any(algorithm.startswith("HS") for algorithm in issuer.algorithms):
            add("medium", f"{path}.algorithms", MSG_SHARED_SECRET)
        if issuer.leeway > MAX_QUIET_LEEWAY:
            leeway = format_duration(issuer.leeway)
            add("low", f"{path}.leeway", f"leeway of {leeway}: expired tokens stay valid that long")
        if issuer.jwks_uri and _plain_remote(issuer.jwks_uri):
            message = "signing keys fetched over plain HTTP: anyone on the path can replace them"
            add("medium", f"{path}.jwks_uri", message)
    ts = cfg.token_service
    if ts is not None:  # the built-in authorization server (config/token-service.md)
        if ts.access_token_ttl > MAX_ACCESS_TOKEN_TTL:
            add("medium", "token_service.access_token_ttl",
                f"long-lived access tokens ({format_duration(ts.access_token_ttl)}): a stolen one "
                "works that long; keep them short and use refresh tokens")
        if ts.refresh_token_ttl > MAX_REFRESH_TOKEN_TTL:
            add("low", "token_service.refresh_token_ttl",
                f"long-lived refresh tokens ({format_duration(ts.refresh_token_ttl)})")
        if "password" in ts.grants:
            add("low", "token_service.grants", MSG_PASSWORD_GRANT)
        if ts.pkce != "required" and "authorization_code" in ts.grants:
            add("low", "token_service.pkce", MSG_PKCE_PUBLIC_ONLY)
    for index, endpoint in enumerate(cfg.introspection):
        if _plain_remote(endpoint.url):
            message = "tokens and the client secret sent over plain HTTP"
            add("medium", f"introspection[{index}].url", message)
    for index, user in enumerate(cfg.users):
        if user.digest_ha1 is not None:
            add("info", f"users[{index}].digest_ha1", MSG_DIGEST)
    for app_index, app in enumerate(cfg.applications):
        for key_index, key in enumerate(app.api_keys):
            if key.expires is not None and key.expires <= now:
                message = f'API key "{key.id}" expired on {key.expires.isoformat()}'
                add("medium", f"applications[{app_index}].api_keys[{key_index}].expires", message)
    # Not checkable yet because the loader refuses the keys that would cause them: long-lived
    # tokens (token_service.*_ttl). Wildcard CORS with credentials never loads (the loader).
    findings = [Finding(sev, path, msg, line_for(cfg, path)) for sev, path, msg in found]
    return sorted(findings, key=_order)


def _order(finding: Finding) -> tuple[bool, int, int]:
    return finding.line is None, finding.line or 0, SEVERITIES.index(finding.severity)


def _api_identity(path: str, api: Api) -> list[tuple[str, str, str]]:
    out = []
    if "api_key" in api.authentication and api.api_key.query is not None:
        out.append(("low", f"{path}.api_key.query", MSG_KEY_IN_URL))
    auth = api.authorization
    if auth is None:
        if api.authentication:
            out.append(("info", f"{path}.authorization", MSG_NO_AUTHORIZATION))
        return out
    if auth.rules and not is_deny_all(auth.rules[-1]):
        out.append(("info", f"{path}.authorization.rules", MSG_NO_FINAL_DENY))
    if auth.opa is not None:
        if auth.opa.on_error == "allow":
            out.append(("high", f"{path}.authorization.opa.on_error", MSG_OPA_FAILS_OPEN))
        if _plain_remote(auth.opa.url):
            message = "policy decisions travel over plain HTTP"
            out.append(("medium", f"{path}.authorization.opa.url", message))
    return out


def _api_inspection(path: str, api: Api) -> list[tuple[str, str, str]]:
    """CORS and threat protection. "no threat protection" only once the loader accepts the key
    (inspection.INSPECTION_RUNTIME_READY): never advise a key that would be refused."""
    out = []
    cors = api.cors
    if cors is not None and cors.origins == ("*",):
        out.append(("medium", f"{path}.cors.origins", MSG_CORS_WILDCARD))
    if cors is not None and cors.credentials:
        out.append(("info", f"{path}.cors.credentials", MSG_CORS_CREDENTIALS))
    threat = api.threat_protection
    if threat is None:
        if inspection.runtime_ready("threat_protection"):
            out.append(("medium", f"{path}.threat_protection", MSG_NO_THREAT_PROTECTION))
        return out
    if threat.regex is not None and "body" not in threat.regex.scan:
        out.append(("low", f"{path}.threat_protection.regex.scan", MSG_BODY_NOT_SCANNED))
    if threat.json is not None and threat.json.max_bytes is None:
        message = MSG_NO_BODY_CAP.format(kind="JSON")
        out.append(("medium", f"{path}.threat_protection.json.max_bytes", message))
    if threat.xml is not None and threat.xml.allow_dtd:
        out.append(("high", f"{path}.threat_protection.xml.allow_dtd", MSG_DTD_ALLOWED))
    if threat.xml is not None and threat.xml.max_bytes is None:
        message = MSG_NO_BODY_CAP.format(kind="XML")
        out.append(("medium", f"{path}.threat_protection.xml.max_bytes", message))
    return out


def is_deny_all(rule: PolicyRule) -> bool:
    """A rule that denies whatever reaches it: no condition, or only a path matching all."""
    return (
        not rule.allow
        and rule.path in (None, "/**")
        and not (rule.roles or rule.scopes or rule.applications or rule.methods)
        and not (rule.client_ips or rule.claims or rule.time)
    )


def _plain_remote(url: str) -> bool:
    """http:// to a host other than this one (the loader checked the URL's shape)."""
    parts = urlsplit(url)
    return parts.scheme == "http" and not is_loopback(parts.hostname or "")


def _listener(path: str, listener: Listener) -> list[tuple[str, str, str]]:
    tls = listener.tls
    if tls is None:
        severity = "medium" if is_loopback(listener.host) else "high"
        return [(severity, f"{path}.tls", "plain HTTP listener: traffic is not encrypted")]
    return _tls(f"{path}.tls", tls)


def _tls(path: str, tls: ServerTls) -> list[tuple[str, str, str]]:
    out = []
    if tls.ciphers != "hardened":
        weak = weak_ciphers(tls.ciphers)
        if weak:
            shown = ", ".join(weak[:3]) + (f" and {len(weak) - 3} more" if len(weak) > 3 else "")
            out.append(("high", f"{path}.ciphers", f"weak cipher string: admits {shown}"))
    if tls.min_version == "1.2":
        out.append(("info", f"{path}.min_version", "TLS 1.2 allowed: consider 1.3"))
    if tls.client_certificates == "optional":
        out.append(("low", f"{path}.client_certificates", MSG_OPTIONAL_CLIENT_CERT))
    return out


def weak_ciphers(cipher_string: str) -> list[str]:
    """TLS 1.2 ciphers `cipher_string` admits that are not ECDHE + AEAD, as OpenSSL expands it.

    Asking OpenSSL (not parsing the string ourselves) is the point: aliases such as "HIGH" or
    "DEFAULT" and the library's own security level decide what is really offered.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.set_ciphers(cipher_string)
    except ssl.SSLError:
        return []  # the loader refuses a string that selects nothing
    weak = []
    for cipher in context.get_ciphers():
        if cipher["protocol"] == "TLSv1.3":  # not governed by the string; all AEAD
            continue
        name = cipher["name"]
        if (
            cipher["kea"] != "kx-ecdhe"
            or not cipher["aead"]
            or cipher["auth"] == "auth-null"
            or any(part in name for part in _WEAK_NAME_PARTS)
        ):
            weak.append(name)
    return weak


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a DNS name: assume it can be reached from elsewhere


def line_for(cfg: Config, path: str) -> int | None:
    """The line of `path`, or of its nearest parent the file spelled out (defaults have none)."""
    while path:
        if path in cfg.lines:
            return cfg.lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None


def format_findings(findings: list[Finding], source: str | Path) -> str:
    """One "FILE:LINE: severity: key.path: message" line per finding (LINE 0 when unknown)."""
    return "\n".join(
        f"{source}:{f.line or 0}: {f.severity}: {f.path}: {f.message}" for f in findings
    )

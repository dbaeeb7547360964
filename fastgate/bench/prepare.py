"""The config `fastgate bench` runs the gateway with, and the requests it sends.

The user's file is copied with: listeners on 127.0.0.1 port 0 (each prints its port), the admin
listener and the access log off, the chosen API's upstream pointed at the built-in upstream,
run-local credentials added (bench.credentials), and for --policy-cost one extra copy of the API
per policy, each under its own base_path with only that policy on.
Invariant: the temp file sits beside the original (relative paths keep their meaning), starts
with ".fastgate-bench-", and is removed when the run ends; the original is never written.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from . import credentials as creds

if TYPE_CHECKING:
    from fastgate.config.model import Api, Config

# policy -> the API keys that switch it on (everything else in POLICY_KEYS is removed)
POLICIES: dict[str, tuple[str, ...]] = {
    "auth": ("authentication", "authorization", "api_key", "mtls"),
    "threat_protection": ("threat_protection",),
    "validation": ("openapi", "validation"),
    "quotas": ("rate_limits",),
}
POLICY_KEYS = tuple(k for keys in POLICIES.values() for k in keys) + ("cors",)
BACKEND_LIMITS = ("max_requests_per_second", "max_concurrency")  # upstream.*: quotas too
VARIANT_PREFIX = "/__bench"


@dataclass(frozen=True)
class Template:
    """One request shape: method, path under the API's base_path, extra headers, body."""

    method: str
    path: str  # relative to base_path, starts with "/"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None


@dataclass
class Prepared:
    path: Path  # the temp config
    api: str
    base_path: str
    pool: creds.CredentialPool
    variants: dict[str, str] = field(default_factory=dict)  # policy -> base_path of its copy
    notes: list[str] = field(default_factory=list)

    def cleanup(self) -> None:
        self.path.unlink(missing_ok=True)


def digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def pick_api(cfg: Config, name: str | None) -> Api:
    """The API to load: the named one, or the only/first one."""
    if not cfg.apis:
        raise ValueError("the config has no apis")
    if name is None:
        return cfg.apis[0]
    for api in cfg.apis:
        if api.name == name:
            return api
    raise ValueError(f"--api {name}: no such API (have {', '.join(a.name for a in cfg.apis)})")


def _fill(template: str) -> str:
    """A concrete path for a resource template: {param} -> 1, ** -> x, * -> x."""
    path = re.sub(r"\{[^}/]+\}", "1", template)
    return path.replace("**", "x").replace("*", "x")


def templates_for(api: Api, *, path: str | None, method: str | None, body: bytes | None,
                  headers: list[tuple[str, str]]) -> list[Template]:
    """Requests from the API's declared resources (GET/HEAD; writes only with a body), or the
    one the command line names."""
    hdrs = tuple(headers)
    if body is not None and not any(n.lower() == "content-type" for n, _ in hdrs):
        hdrs += (("Content-Type", "application/json"),)
    if path is not None:
        p = path if path.startswith("/") else "/" + path
        return [Template((method or ("POST" if body is not None else "GET")).upper(), p, hdrs, body)]
    out: list[Template] = []
    authz = getattr(api, "authorization", None)
    for res in getattr(authz, "resources", ()) if authz else ():
        methods = res.methods or ("GET",)
        for m in methods:
            if method and m != method.upper():
                continue
            if m in ("GET", "HEAD"):
                out.append(Template(m, _fill(res.path), hdrs, None))
            elif body is not None and m in ("POST", "PUT", "PATCH"):
                out.append(Template(m, _fill(res.path), hdrs, body))
    if not out:
        out.append(Template((method or "GET").upper(), "/", hdrs, body))
    return out


def build_requests(templates: list[Template], base_path: str, pool: creds.CredentialPool,
                   host: str = "localhost", limit: int = 4096) -> list[bytes]:
    """Pre-built request bytes: every template with every credential, cycled to at most `limit`."""
    n = min(limit, math.lcm(len(templates), len(pool.headers)))  # every template x credential pair
    out = []
    base = "" if base_path == "/" else base_path
    for i in range(max(n, 1)):
        t = templates[i % len(templates)]
        cred = pool.headers[i % len(pool.headers)]
        lines = [f"{t.method} {base}{t.path} HTTP/1.1", f"Host: {host}", "Accept: application/json",
                 "User-Agent: fastgate-bench"]
        lines += [f"{k}: {v}" for k, v in (*cred, *t.headers)]
        if t.body is not None:
            lines.append(f"Content-Length: {len(t.body)}")
        out.append(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (t.body or b""))
    return out


def scopes_and_roles(api: Api) -> tuple[list[str], list[str]]:
    """Every scope the API's resources ask for, and every role it maps to scopes."""
    authz = getattr(api, "authorization", None)
    scopes: list[str] = []
    roles: list[str] = []
    if authz:
        for res in authz.resources:
            scopes += [s for s in res.scopes if s not in scopes]
        for role, granted in dict(authz.roles_to_scopes).items():
            roles.append(role)
            scopes += [s for s in granted if s not in scopes]
    return scopes, roles


def rewrite(src: Path, api: Api, upstream: tuple[str, int] | None, pool: creds.CredentialPool, *,
            policy_variants: bool = False, keep_access_log: bool = False,
            without_quotas: bool = False) -> Prepared:
    """Write the bench copy of `src` beside it (see the module docstring)."""
    raw = yaml.safe_load(src.read_text())
    notes: list[str] = []
    for lst in raw.get("listeners") or []:
        if isinstance(lst, dict):
            lst["address"] = "127.0.0.1:0"
    raw["admin"] = False
    if not keep_access_log:
        raw.setdefault("logging", {})
        if isinstance(raw["logging"], dict):
            raw["logging"]["access_log"] = "off"
    apis = raw.get("apis") or []
    target = next(a for a in apis if isinstance(a, dict) and a.get("name") == api.name)
    if without_quotas:
        removed = ["rate_limits"] if target.pop("rate_limits", None) is not None else []
        for k in BACKEND_LIMITS:
            if isinstance(target.get("upstream"), dict) and target["upstream"].pop(k, None) is not None:
                removed.append(f"upstream.{k}")
        if removed:
            notes.append(f"--without-quotas: apis[{api.name}] {', '.join(removed)} removed for this run")
    if upstream is not None:
        up = target.setdefault("upstream", {})
        up["urls"] = [f"http://{upstream[0]}:{upstream[1]}"]
        up.pop("tls", None)
    # run-local identities
    if pool.applications:
        raw.setdefault("applications", [])
        raw["applications"] = [a for a in raw["applications"] or [] if a.get("name") != creds.BENCH_APP]
        raw["applications"] += pool.applications
    if pool.issuers:
        raw["issuers"] = [*(raw.get("issuers") or []), *pool.issuers]
    if pool.users:
        raw["users"] = [*(raw.get("users") or []), *pool.users]
    variants: dict[str, str] = {}
    if policy_variants:
        bare = copy.deepcopy({k: v for k, v in target.items() if k not in POLICY_KEYS})
        limits = {k: bare["upstream"].pop(k) for k in BACKEND_LIMITS if k in bare.get("upstream", {})}
        present = ["none"] + [p for p, keys in POLICIES.items()
                              if any(k in target for k in keys) or (p == "quotas" and limits)]
        for policy in present:
            copy_ = copy.deepcopy(bare)
            copy_["name"] = f"{api.name}__bench_{policy}"
            base = f"{VARIANT_PREFIX}/{policy}{'' if api.base_path == '/' else api.base_path}"
            copy_["base_path"] = base
            copy_["authentication"] = []
            for k in POLICIES.get(policy, ()):
                if k in target:
                    copy_[k] = copy.deepcopy(target[k])
            if policy == "quotas":
                copy_["upstream"].update(limits)
            apis.append(copy_)
            variants[policy] = base
        variants["all"] = api.base_path
        if "quotas" in variants:
            notes.append("quotas: requests over a limit get 429; their CPU cost is that of a rejection")
    path = _temp_path(src)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # it names credential hashes
    with os.fdopen(fd, "w") as f:
        f.write("# written by `fastgate bench` for one run; safe to delete\n" + yaml.safe_dump(raw, sort_keys=False))
    return Prepared(path, api.name, api.base_path, pool, variants, notes)


def _temp_path(src: Path) -> Path:
    import secrets

    name = f".fastgate-bench-{os.getpid()}-{secrets.token_hex(4)}-{src.name}"
    return src.resolve().parent / name

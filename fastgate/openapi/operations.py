"""Compile an OpenAPI document's `paths` into a matcher of operations: `Spec.match(method,
rest_path)` -> `Match` (operation + decoded path parameters) | `NOT_FOUND` | `MethodNotAllowed`.

Invariant: everything (templates, parameters, schemas, security) is compiled once in
`compile_spec`; `match` only splits the path and walks a segment tree (concrete segments before
partial templates like `{id}.json` before whole-segment `{id}`, as OpenAPI §4.8.8 asks).
Paths are matched strictly: `/pets/` is not `/pets`, an empty segment never fills a parameter.
`servers` / `basePath` are ignored: the API's `base_path` in the gateway config is authoritative,
and `rest_path` is what follows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from . import validate as v
from .loader import Document, LoadError, load

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SCOPED_SCHEMES = frozenset({"oauth2", "openIdConnect"})
_PARAM = re.compile(r"\{([^{}/]+)\}")


class Operation:
    """One (method, path template) of the spec, with its compiled validators.

    `scopes`: the OAuth2/OIDC scopes the operation requires (union over its security
    requirements; () when it has none or allows anonymous access with `{}`). `security`: the
    requirements as written, ((scheme, (scope, ...)), ...) per alternative."""

    __slots__ = ("method", "template", "operation_id", "parameters", "body", "responses",
                 "scopes", "security", "anonymous", "source")

    def __init__(self, method: str, template: str, operation_id: str | None,
                 parameters: tuple[v.Parameter, ...], body: v.RequestBody | None,
                 responses: v.Responses | None, security: tuple, source: str) -> None:
        self.method = method
        self.template = template
        self.operation_id = operation_id
        self.parameters = parameters
        self.body = body
        self.responses = responses
        self.security = security
        self.anonymous = not security or any(not alt for alt in security)
        scopes: dict[str, None] = {}
        if not self.anonymous:
            for alternative in security:
                for _scheme, names in alternative:
                    scopes.update(dict.fromkeys(names))
        self.scopes = tuple(scopes)
        self.source = source

    def __repr__(self) -> str:
        return f"<Operation {self.method} {self.template}>"

    def validate_request(self, path_params: dict[str, str], query: str | bytes | None,
                         headers, content_type: str | bytes | None = None,
                         body: bytes | None = None) -> list[dict[str, str]]:
        """Errors (at most MAX_ERRORS) for one request: `query` is the raw query string,
        `headers` (name, value) pairs, `body` the whole body or None."""
        out: list[dict[str, str]] = []
        hdrs = v.parse_headers(headers)
        if content_type is None and "content-type" in hdrs:
            content_type = hdrs["content-type"][0]
        v.check_parameters(self.parameters, path_params, v.parse_query(query), hdrs, out)
        if self.body is not None and len(out) < v.MAX_ERRORS:
            self.body.check(content_type, body, out)
        return out[: v.MAX_ERRORS]

    def validate_response(self, status: int, content_type: str | bytes | None,
                          body: bytes | None) -> list[dict[str, str]]:
        """Errors for an upstream response (JSON bodies against the schema of `status`, else
        `NXX`, else `default`); [] when responses were not compiled. A HEAD answered by the
        GET operation has an empty body, so only its status is checked."""
        if self.responses is None:
            return []
        return self.responses.check(status, content_type, body)[: v.MAX_ERRORS]


@dataclass(frozen=True, slots=True)
class Match:
    operation: Operation
    path_params: dict[str, str]

    def validate_request(self, query, headers, content_type=None, body=None):
        return self.operation.validate_request(self.path_params, query, headers, content_type,
                                               body)


class NotFound:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_FOUND"


NOT_FOUND = NotFound()


@dataclass(frozen=True, slots=True)
class MethodNotAllowed:
    allow: tuple[str, ...]  # for the Allow header (RFC 9110 §15.5.6), sorted

    @property
    def header(self) -> str:
        return ", ".join(self.allow)


class _Node:
    __slots__ = ("literals", "partials", "param", "ops", "template")

    def __init__(self) -> None:
        self.literals: dict[str, _Node] = {}
        self.partials: list[tuple[re.Pattern[str], tuple[str, ...], _Node]] = []
        self.param: tuple[str, _Node] | None = None
        self.ops: dict[str, Operation] | None = None
        self.template = ""


def _segments(template: str) -> list[str]:
    return [] if template == "/" else template[1:].split("/")


class Spec:
    """The compiled `paths` of one document."""

    def __init__(self, operations: list[Operation], version: str, name: str = "") -> None:
        self.operations = tuple(operations)
        self.version = version
        self._root = _Node()
        shapes: dict[tuple, str] = {}
        for op in operations:
            node = self._root
            shape: list[Any] = []
            for seg in _segments(op.template):
                names = tuple(_PARAM.findall(seg))
                if not names:
                    node = node.literals.setdefault(seg, _Node())
                    shape.append(seg)
                elif _PARAM.fullmatch(seg):
                    if node.param is None:  # names come from each template, not the tree
                        node.param = (names[0], _Node())
                    node = node.param[1]
                    shape.append(None)
                else:
                    pattern = "".join(
                        f"(?P<p{i}>.+?)" if i % 2 else re.escape(part)
                        for i, part in enumerate(_PARAM.split(seg)))
                    regex = re.compile(pattern)
                    # groups are numbered positionally; names kept in order
                    for rx, _, child in node.partials:
                        if rx.pattern == regex.pattern:
                            node = child
                            break
                    else:
                        child = _Node()
                        node.partials.append((regex, names, child))
                        node = child
                    shape.append(("partial", regex.pattern))
            key = tuple(shape)
            if key in shapes and shapes[key] != op.template:
                raise LoadError(f"{name}: paths: '{op.template}' and '{shapes[key]}' are the same path "
                                "with different parameter names")
            shapes[key] = op.template
            node.template = op.template
            if node.ops is None:
                node.ops = {}
            node.ops[op.method] = op
        self._param_names = {op.template: [n for s in _segments(op.template)
                                           for n in _PARAM.findall(s)] for op in operations}

    def match(self, method: str | bytes, rest_path: str) -> Match | NotFound | MethodNotAllowed:
        """`rest_path`: the raw (percent-encoded) path after the API's base_path, no query."""
        if isinstance(method, bytes):
            method = method.decode("latin-1")
        segs = [] if rest_path in ("", "/") else rest_path[1:].split("/")
        if rest_path and not rest_path.startswith("/"):
            return NOT_FOUND
        allow: set[str] = set()
        for node, values in self._walk(self._root, segs, 0, []):
            ops = node.ops
            op = ops.get(method)
            if op is None and method == "HEAD":
                op = ops.get("GET")  # RFC 9110 §9.3.2: HEAD is GET without the body
            if op is not None:
                names = self._param_names[node.template]
                return Match(op, dict(zip(names, values, strict=False)))
            allow.update(ops)
        if not allow:
            return NOT_FOUND
        if "GET" in allow:
            allow.add("HEAD")
        return MethodNotAllowed(tuple(sorted(allow)))

    def _walk(self, node: _Node, segs: list[str], i: int, values: list[str]):
        """Matching leaves, most specific first, with the parameter values that got there."""
        if i == len(segs):
            if node.ops:
                yield node, values
            return
        seg = unquote(segs[i], errors="replace")
        child = node.literals.get(seg)
        if child is not None:
            yield from self._walk(child, segs, i + 1, values)
        for regex, _names, child in node.partials:
            m = regex.fullmatch(seg)
            if m:
                yield from self._walk(child, segs, i + 1, [*values, *m.groups()])
        if node.param is not None and seg:
            yield from self._walk(node.param[1], segs, i + 1, [*values, seg])

    def scope_resources(self) -> list[tuple[str, tuple[str, ...], tuple[str, ...], str]]:
        """(template, methods, scopes, source) for operations that need scopes: the shape
        `policies.authorization.build(extra_resources=...)` takes."""
        return [(op.template, (op.method,), op.scopes, f"openapi:{op.method} {op.template}")
                for op in self.operations if op.scopes]


# ---------------------------------------------------------------------- compilation
def _security(doc: Document, reqs: Any, where: str) -> tuple:
    if not isinstance(reqs, list):
        raise LoadError(f"{where}: security must be a list")
    schemes = (doc.root.get("components") or {}).get("securitySchemes") or {}
    out = []
    for i, req in enumerate(reqs):
        if not isinstance(req, dict):
            raise LoadError(f"{where}[{i}]: a security requirement must be a mapping")
        alt = []
        for name, scopes in req.items():
            if name not in schemes:
                raise LoadError(f"{where}[{i}]: unknown security scheme '{name}'")
            scheme, _ = doc.deref(schemes[name], doc.path, f"components.securitySchemes.{name}")
            kind = scheme.get("type") if isinstance(scheme, dict) else None
            names = tuple(str(s) for s in scopes or ()) if kind in SCOPED_SCHEMES else ()
            alt.append((name, names))
        out.append(tuple(alt))
    return tuple(out)


def _content(doc: Document, content: Any, base: Path, where: str, direction: str
             ) -> v.Content:
    if content is None:
        return v.Content({})
    if not isinstance(content, dict):
        raise LoadError(f"{where}: content must be a mapping")
    media: dict[str, v.Schema | None] = {}
    for mt, entry in content.items():
        key = v.media_type(mt)
        schema = entry.get("schema") if isinstance(entry, dict) else None
        jsonish = v.is_json(key) or key.endswith("/*")
        if schema is not None and jsonish:
            imported, defs = doc.import_schema(schema, base, f"{where}.{mt}.schema", direction)
            media[key] = _compile(imported, defs, f"{where}.{mt}.schema")
        else:
            media[key] = None
    return v.Content(media)


def _compile(schema: Any, defs: dict[str, Any], where: str) -> v.Schema:
    try:
        return v.Schema(schema, defs)
    except Exception as exc:  # jsonschema_rs.ValidationError / ReferencingError: a bad schema
        raise LoadError(f"{where}: invalid schema: {str(exc).splitlines()[0]}") from None


def _parameter(doc: Document, raw: Any, base: Path, where: str) -> v.Parameter | None:
    p, pbase = doc.deref(raw, base, where)
    if not isinstance(p, dict) or "name" not in p or "in" not in p:
        raise LoadError(f"{where}: a parameter needs 'name' and 'in'")
    name, loc = str(p["name"]), p["in"]
    if loc not in v.DEFAULT_STYLE:
        raise LoadError(f"{where}: 'in' must be path, query, header or cookie")
    if loc == "header" and name.lower() in v.IGNORED_HEADERS:
        return None
    schema = None
    is_json = False
    if "schema" in p:
        imported, defs = doc.import_schema(p["schema"], pbase, f"{where}.schema")
        schema = _compile(imported, defs, f"{where}.schema")
    elif isinstance(p.get("content"), dict) and p["content"]:
        mt, entry = next(iter(p["content"].items()))
        if v.is_json(v.media_type(mt)) and isinstance(entry, dict) and "schema" in entry:
            imported, defs = doc.import_schema(entry["schema"], pbase, f"{where}.content")
            schema = _compile(imported, defs, f"{where}.content")
            is_json = True
    return v.Parameter(name, loc, bool(p.get("required")), p.get("style"), p.get("explode"),
                       schema, is_json)


def compile_spec(doc: Document, *, responses: bool = True) -> Spec:
    """Every operation of `doc.root["paths"]`, compiled. Raises LoadError."""
    root = doc.root
    show = doc.path.name
    default_security = _security(doc, root.get("security", []), f"{show}: security")
    operations: list[Operation] = []
    for template, raw_item in (root.get("paths") or {}).items():
        where = f"{show}: paths.{template}"
        if not isinstance(template, str) or not template.startswith("/"):
            raise LoadError(f"{where}: a path must start with '/'")
        item, ibase = doc.deref(raw_item, doc.path, where)
        if not isinstance(item, dict):
            raise LoadError(f"{where}: a path item must be a mapping")
        in_template = {n for s in _segments(template) for n in _PARAM.findall(s)}
        shared = _parameters(doc, item.get("parameters"), ibase, f"{where}.parameters")
        for method in METHODS:
            if method not in item:
                continue
            op_where = f"{where}.{method}"
            op = item[method]
            if not isinstance(op, dict):
                raise LoadError(f"{op_where}: an operation must be a mapping")
            params = dict(shared)
            params.update(_parameters(doc, op.get("parameters"), ibase, f"{op_where}.parameters"))
            declared_path = {p.name for p in params.values() if p.location == "path"}
            missing = declared_path - in_template
            if missing:
                raise LoadError(f"{op_where}: path parameter '{sorted(missing)[0]}' is not in "
                                "the path template")
            body = None
            if "requestBody" in op:
                rb, rbase = doc.deref(op["requestBody"], ibase, f"{op_where}.requestBody")
                if not isinstance(rb, dict):
                    raise LoadError(f"{op_where}.requestBody: must be a mapping")
                body = v.RequestBody(bool(rb.get("required")),
                                     _content(doc, rb.get("content"), rbase,
                                              f"{op_where}.requestBody.content", "request"))
            resp = None
            if responses:
                by_status: dict[str, v.Content] = {}
                for status, raw_resp in (op.get("responses") or {}).items():
                    r_where = f"{op_where}.responses.{status}"
                    r, rbase = doc.deref(raw_resp, ibase, r_where)
                    if not isinstance(r, dict):
                        raise LoadError(f"{r_where}: must be a mapping")
                    key = str(status)
                    if key.lower().endswith("xx"):
                        key = key.upper()  # "2xx" and "2XX" are the same range
                    by_status[key] = _content(doc, r.get("content"), rbase,
                                                              f"{r_where}.content", "response")
                resp = v.Responses(by_status)
            security = default_security
            if "security" in op:
                security = _security(doc, op["security"], f"{op_where}.security")
            operations.append(Operation(
                method.upper(), template, op.get("operationId"), tuple(params.values()), body,
                resp, security, f"{show}: paths.{template}.{method}"))
    return Spec(operations, doc.version, show)


def _parameters(doc: Document, raw: Any, base: Path, where: str
                ) -> dict[tuple[str, str], v.Parameter]:
    out: dict[tuple[str, str], v.Parameter] = {}
    if raw is None:
        return out
    if not isinstance(raw, list):
        raise LoadError(f"{where}: must be a list")
    for i, entry in enumerate(raw):
        p = _parameter(doc, entry, base, f"{where}[{i}]")
        if p is not None:
            out[(p.location, p.key)] = p
    return out


def load_spec(path: str | Path, *, responses: bool = True) -> Spec:
    """Read, resolve and compile the spec at `path`. Raises LoadError."""
    return compile_spec(load(path), responses=responses)

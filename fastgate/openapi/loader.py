"""Read an OpenAPI 3.0 / 3.1 document (YAML or JSON), follow its local `$ref`s, and import its
schemas as JSON Schema 2020-12 with every schema `$ref` rewritten to `#/$defs/<name>`.

Invariant: nothing outside the spec's directory is ever read (no http(s), no other URI scheme,
no path that resolves outside the directory, symlinks included); every walk is bounded (a `$ref`
chain that loops, or more than MAX_NODES nodes / MAX_DEFS imported schemas, is a LoadError).
Recursive *schemas* stay recursive: their `$ref` is kept for the validator, which handles it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

MAX_REF_CHAIN = 32  # a $ref pointing at a $ref ... this many times is refused
MAX_NODES = 1_000_000  # nodes walked while importing schemas (YAML alias bombs)
MAX_DEFS = 10_000  # distinct schemas reachable through $ref
MAX_FILE_BYTES = 16 * 1024 * 1024

DIALECT = "https://json-schema.org/draft/2020-12/schema"

# JSON Schema 2020-12 keywords whose value is a schema / a list of schemas / a map of schemas.
_ONE = ("additionalProperties", "items", "contains", "not", "if", "then", "else", "propertyNames",
        "unevaluatedItems", "unevaluatedProperties", "contentSchema", "additionalItems")
_MANY = ("allOf", "anyOf", "oneOf", "prefixItems")
_MAP = ("properties", "patternProperties", "dependentSchemas", "$defs", "definitions")
# OpenAPI 3.0 keywords that are not JSON Schema assertions: dropped on import.
_OAS30_DROP = ("nullable", "example", "discriminator", "xml", "externalDocs", "deprecated")
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class LoadError(ValueError):
    """The spec cannot be imported; the message names the file and the place in it."""


def _read(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise LoadError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        if path.suffix.lower() == ".json":
            return json.loads(raw)
        return yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except (ValueError, yaml.YAMLError) as exc:
        raise LoadError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                        f"{str(exc).splitlines()[0]}") from None


def _pointer(doc: Any, pointer: str, where: str) -> Any:
    """RFC 6901 JSON pointer `pointer` ("" or "/a/b") into `doc`."""
    node = doc
    if pointer == "":
        return node
    if not pointer.startswith("/"):
        raise LoadError(f"{where}: only JSON-pointer fragments are supported (got '#{pointer}')")
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise LoadError(f"{where}: $ref target '#{pointer}' does not exist")
    return node


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


class Document:
    """A loaded spec: `root` (the parsed main file), `version` ("3.0" | "3.1"), `path`; `deref()`
    for non-schema objects and `import_schema()` for schemas. Files are read once, lazily."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()
        self.directory = self.path.parent
        self._files: dict[Path, Any] = {}
        self.root = self._file(self.path, str(path))
        path = self.path.name
        if not isinstance(self.root, dict):
            raise LoadError(f"{path}: not an OpenAPI document (expected a mapping)")
        version = str(self.root.get("openapi", ""))
        if re.fullmatch(r"3\.0(\.\d+)?", version):
            self.version = "3.0"
        elif re.fullmatch(r"3\.1(\.\d+)?", version):
            self.version = "3.1"
        else:
            found = f"'openapi: {version}'" if version else "no 'openapi' field"
            if "swagger" in self.root:
                found = f"'swagger: {self.root['swagger']}'"
            raise LoadError(f"{path}: only OpenAPI 3.0 and 3.1 are supported ({found})")
        if not isinstance(self.root.get("paths", {}), dict):
            raise LoadError(f"{path}: 'paths' must be a mapping")
        # name -> translated schema, one table per direction ("request" | "response"): readOnly
        # properties are not required in requests, writeOnly ones not in responses.
        self._defs: dict[str, dict[str, Any]] = {"request": {}, "response": {}}
        self._def_names: dict[tuple[Path, str], str] = {}
        self._taken: set[str] = set()
        self._nodes = 0

    # ------------------------------------------------------------------ references
    def _file(self, path: Path, shown: str) -> Any:
        if path not in self._files:
            self._files[path] = _read(path)
        return self._files[path]

    def _target(self, ref: Any, base: Path, where: str) -> tuple[Path, str]:
        """(file, pointer) that `ref`, found in file `base`, names. Refuses remote refs."""
        if not isinstance(ref, str):
            raise LoadError(f"{where}: $ref must be a string")
        file_part, _, fragment = ref.partition("#")
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", file_part):
            raise LoadError(f"{where}: $ref '{ref}' refused: only local references are allowed "
                            "(same document or a file next to the spec)")
        if file_part:
            candidate = Path(unquote(file_part))
            target = (candidate if candidate.is_absolute() else base.parent / candidate).resolve()
            if not target.is_relative_to(self.directory):
                raise LoadError(f"{where}: $ref '{ref}' refused: it points outside the spec's "
                                "directory")
            if not target.is_file():
                raise LoadError(f"{where}: $ref '{ref}': no such file")
        else:
            target = base
        return target, unquote(fragment)

    def deref(self, node: Any, base: Path, where: str) -> tuple[Any, Path]:
        """Follow `node`'s `$ref` chain (parameters, request bodies, responses, path items...):
        the object it ends on and the file that object lives in (for its own nested refs)."""
        seen: list[tuple[Path, str]] = []
        while isinstance(node, dict) and "$ref" in node:
            file, pointer = self._target(node["$ref"], base, where)
            if (file, pointer) in seen:
                chain = " -> ".join(f"{self._show(f)}#{p}" for f, p in [*seen, (file, pointer)])
                raise LoadError(f"{where}: $ref cycle: {chain}")
            seen.append((file, pointer))
            if len(seen) > MAX_REF_CHAIN:
                raise LoadError(f"{where}: $ref chain longer than {MAX_REF_CHAIN}")
            node = _pointer(self._file(file, str(file)), pointer, f"{where} ($ref '{node['$ref']}')")
            base = file
        return node, base

    def _show(self, file: Path) -> str:
        return file.name if file.parent == self.directory else str(file.relative_to(self.directory))

    # ------------------------------------------------------------------ schemas
    def import_schema(self, schema: Any, base: Path, where: str, direction: str = "request"
                      ) -> tuple[Any, dict[str, Any]]:
        """`schema` (found in file `base`) as JSON Schema 2020-12, and the `$defs` it reaches
        (only those). 3.0 schemas are translated: nullable -> a "null" type, boolean
        exclusiveMinimum/Maximum -> numeric, `$ref` siblings dropped, `example` etc. ignored."""
        out = self._schema(schema, base, where, direction)
        reached: dict[str, Any] = {}
        table = self._defs[direction]
        pending = list(_refs(out))
        while pending:
            name = pending.pop()
            if name not in reached and name in table:  # (a literal in an enum is no ref)
                reached[name] = table[name]
                pending.extend(_refs(table[name]))
        return out, reached

    def _def(self, ref: str, base: Path, where: str, direction: str) -> str:
        """The `$defs` name for `ref`, importing its target on first use (cycles allowed)."""
        file, pointer = self._target(ref, base, where)
        key = (file, pointer)
        name = self._def_names.get(key)
        if name is None:
            if file == self.path and pointer.startswith("/components/schemas/") \
                    and pointer.count("/") == 3:
                name = pointer.rsplit("/", 1)[1]
            else:
                name = f"{self._show(file)}{pointer}"
            name = _NAME_UNSAFE.sub("_", name) or "_"
            while name in self._taken:
                name += "_"
            self._def_names[key] = name
            self._taken.add(name)
        table = self._defs[direction]
        if name not in table:
            if len(table) >= MAX_DEFS:
                raise LoadError(f"{where}: more than {MAX_DEFS} referenced schemas")
            target = _pointer(self._file(file, str(file)), pointer, f"{where} ($ref '{ref}')")
            self._ref_only_cycle(target, file, where)
            table[name] = True  # placeholder: a recursive schema meets itself here
            table[name] = self._schema(target, file, f"{self._show(file)}#{pointer}", direction)
        return name

    def _ref_only_cycle(self, node: Any, base: Path, where: str) -> None:
        """A schema that is only a `$ref` to a schema that is only a `$ref` ... back to itself
        constrains nothing and loops validators: refuse it (real recursion goes through
        `properties`/`items`, which is fine)."""
        if isinstance(node, dict) and "$ref" in node:
            self.deref(node, base, where)

    def _schema(self, node: Any, base: Path, where: str, direction: str) -> Any:
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise LoadError(f"{where}: more than {MAX_NODES} schema nodes")
        if isinstance(node, bool):
            return node
        if not isinstance(node, dict):
            raise LoadError(f"{where}: a schema must be a mapping")
        oas30 = self.version == "3.0"
        if "$ref" in node:
            ref = f"#/$defs/{self._def(node['$ref'], base, where, direction)}"
            if oas30:  # OAS 3.0: siblings of $ref are ignored
                return {"$ref": ref}
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref":
                out[key] = ref
            elif oas30 and key in _OAS30_DROP:
                continue
            elif key in _ONE and isinstance(value, (dict, bool)):
                out[key] = self._schema(value, base, f"{where}.{key}", direction)
            elif key in _MANY and isinstance(value, list):
                out[key] = [self._schema(v, base, f"{where}.{key}[{i}]", direction)
                            for i, v in enumerate(value)]
            elif key in _MAP and isinstance(value, dict):
                out[key] = {k: self._schema(v, base, f"{where}.{key}.{k}", direction)
                            for k, v in value.items()}
            elif key == "$id" or key == "$schema" or key.startswith("x-"):
                continue  # the document is one resource; extensions are not assertions
            else:
                out[key] = value
        if oas30:
            _translate_30(node, out)
        fmt = node.get("format")
        if fmt in _INT_RANGES:  # OAS data types: int32/int64 bound the value
            low, high = _INT_RANGES[fmt]
            if "minimum" not in out and "exclusiveMinimum" not in out:
                out["minimum"] = low
            if "maximum" not in out and "exclusiveMaximum" not in out:
                out["maximum"] = high
        required = out.get("required")
        props = node.get("properties")
        if isinstance(required, list) and isinstance(props, dict):
            hidden = "readOnly" if direction == "request" else "writeOnly"
            kept = [r for r in required
                    if not (isinstance(props.get(r), dict) and props[r].get(hidden) is True)]
            if kept != required:
                if kept:
                    out["required"] = kept
                else:
                    del out["required"]
        return out


def _translate_30(node: dict[str, Any], out: dict[str, Any]) -> None:
    """OpenAPI 3.0 (a draft-4/5 dialect) -> 2020-12, in place on `out`."""
    for bound in ("Minimum", "Maximum"):
        flag = node.get(f"exclusive{bound}")
        if isinstance(flag, bool):
            del out[f"exclusive{bound}"]
            limit = node.get(bound.lower())
            if flag and isinstance(limit, (int, float)):
                out[f"exclusive{bound}"] = limit
                out.pop(bound.lower(), None)
    if node.get("nullable") is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
            if isinstance(out.get("enum"), list) and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        elif kind is None and any(k in out for k in ("allOf", "anyOf", "oneOf", "$ref")):
            inner = dict(out)
            out.clear()
            out["anyOf"] = [inner, {"type": "null"}]


def _refs(schema: Any):
    """Names of the `#/$defs/<name>` refs directly inside an imported schema."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                yield ref[8:]
            stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))


def bundle(schema: Any, defs: dict[str, Any]) -> Any:
    """One self-contained 2020-12 document: `schema` with `defs` under `$defs`."""
    if not defs:
        return {"$schema": DIALECT, "allOf": [schema]} if isinstance(schema, bool) else \
            {"$schema": DIALECT, **schema}
    if isinstance(schema, dict) and "$defs" not in schema:
        return {"$schema": DIALECT, **schema, "$defs": defs}
    return {"$schema": DIALECT, "$defs": defs, "allOf": [schema]}


def load(path: str | Path) -> Document:
    """Read the spec at `path` (.json as JSON, anything else as YAML). Raises LoadError."""
    return Document(path)

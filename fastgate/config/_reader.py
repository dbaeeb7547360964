"""The generic part of the config loader: walking composed YAML nodes with typed getters that
report "FILE:LINE: key.path: message" problems, plus the small validators several sections share.

Invariant: a getter either returns a valid value or reports exactly one problem and returns None,
so one pass finds every problem and callers fall back to a default and carry on.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .units import parse_duration, parse_size

Parse = Callable[[Node, str], Any]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"
NOT_SCALAR = object()  # a mapping or list where a scalar was expected
REPORTED = object()  # a scalar that could not be built; already reported

_DNS_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 §3.3

MSG_DURATION = 'expected a duration like "1m"'
# Caps so a value always fits the C types below (timeval, int64): beyond them is a typo.
MAX_DURATION = 365 * 86400.0
MAX_INTEGER = 2**62
MSG_SIZE = 'expected a size like "16KiB"'
MSG_ADDRESS = 'expected an address like "127.0.0.1:8080"'
MSG_HTTP_URL = 'expected an http(s) URL like "https://example.com/path"'

# ---------------------------------------------------------------------------- reading nodes


def line_of(node: Node) -> int:
    return node.start_mark.line + 1


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class Reader:
    """Walks composed YAML nodes: typed getters report problems and return None when invalid,
    so one pass finds every problem and the caller falls back to a default and carries on."""

    def __init__(self, file: str, base_dir: Path) -> None:
        self.filename = file
        self.base_dir = base_dir
        self.lines: dict[str, int] = {}
        self._problems: list[tuple[int, int, int, str]] = []  # line, column, seq, text
        self._constructor = SafeConstructor()

    # -- problems
    def report(self, line: int, path: str, message: str, column: int = 0) -> None:
        text = f"{self.filename}:{line}: {path}: {message}"
        self._problems.append((line, column, len(self._problems), text))

    def bad(self, node: Node, path: str, message: str) -> None:
        self.report(line_of(node), path, message, node.start_mark.column)

    def problems(self) -> list[str]:
        """In file order: by line, then column, then the order they were found. An aliased node
        read from two places can report the same problem twice: keep the first."""
        return list(dict.fromkeys(text for *_, text in sorted(self._problems)))

    # -- structure
    def value(self, node: Node, path: str, quiet: bool = False) -> Any:
        """The Python value of a scalar node; NOT_SCALAR for a mapping/list."""
        if not isinstance(node, ScalarNode):
            return NOT_SCALAR
        try:
            return self._constructor.construct_object(node, deep=True)
        except ConstructorError:  # an application tag such as !python/object: never built
            if not quiet:
                self.bad(node, path, f'unsupported YAML tag "{node.tag}"')
            return REPORTED
        except ValueError:  # resolved as a timestamp/int but out of range: let the getter judge
            return node.value

    def is_off(self, node: Node) -> bool:
        """`false`, YAML `off`/`no`, or the string "off": a feature explicitly turned off."""
        value = self.value(node, "", quiet=True)
        return value is False or value == "off"

    def mapping(
        self, node: Node, path: str, keys: Iterable[str] | None, unsupported: Iterable[str] = ()
    ) -> Map | None:
        if not isinstance(node, MappingNode):
            self.bad(node, path, "expected a mapping")
            return None
        return Map(self, node, path, keys, unsupported)

    def items(self, node: Node, path: str) -> list[tuple[str, Node]] | None:
        """(item path, item node) of a list, each item's line recorded; None if not a list."""
        if not isinstance(node, SequenceNode):
            self.bad(node, path, "expected a list")
            return None
        out = []
        for index, item in enumerate(node.value):
            item_path = f"{path}[{index}]"
            self.lines[item_path] = line_of(item)
            out.append((item_path, item))
        return out

    # -- typed scalars: each returns None after reporting a problem
    def string(self, node: Node, path: str) -> str | None:
        value = self.value(node, path)
        if value is REPORTED:
            return None
        if not isinstance(value, str):
            self.bad(node, path, "expected a string")
            return None
        if not value.strip():
            self.bad(node, path, "must not be empty")
            return None
        return value

    def boolean(self, node: Node, path: str) -> bool | None:
        value = self.value(node, path)
        if isinstance(value, bool):
            return value
        if value is not REPORTED:
            self.bad(node, path, "expected a boolean")
        return None

    def integer(self, node: Node, path: str, minimum: int | None = None) -> int | None:
        value = self.value(node, path)
        if value is REPORTED:
            return None
        if type(value) is not int:
            self.bad(node, path, "expected an integer")
            return None
        if minimum is not None and value < minimum:
            self.bad(node, path, f"must be at least {minimum}")
            return None
        if value > MAX_INTEGER:
            self.bad(node, path, f"must be at most {MAX_INTEGER}")
            return None
        return value

    def duration(self, node: Node, path: str, positive: bool = True) -> float | None:
        value = self.value(node, path)
        if value is REPORTED:
            return None
        seconds = parse_duration(value)
        if seconds is None:
            self.bad(node, path, MSG_DURATION)
        elif positive and seconds == 0:
            self.bad(node, path, "must be > 0")
            return None
        elif seconds > MAX_DURATION:
            self.bad(node, path, "must be at most 365d")
            return None
        return seconds

    def size(self, node: Node, path: str, positive: bool = True) -> int | None:
        value = self.value(node, path)
        if value is REPORTED:
            return None
        size = parse_size(value)
        if size is None:
            self.bad(node, path, MSG_SIZE)
        elif positive and size == 0:
            self.bad(node, path, "must be > 0")
            return None
        elif size > MAX_INTEGER:
            self.bad(node, path, f"must be at most {MAX_INTEGER}")
            return None
        return size

    def choice(
        self, node: Node, path: str, choices: tuple[str, ...], aliases: dict | None = None
    ) -> str | None:
        value = self.value(node, path)
        if value is REPORTED:
            return None
        if aliases and isinstance(value, (str, bool)) and value in aliases:
            return aliases[value]
        if isinstance(value, str) and value in choices:
            return value
        self.bad(node, path, f"expected one of: {', '.join(choices)}")
        return None

    def checked(self, node: Node, path: str, check: Callable[[str], str | None]) -> str | None:
        """A string that `check` accepts (check returns an error message, or None when fine)."""
        text = self.string(node, path)
        if text is None:
            return None
        message = check(text)
        if message is not None:
            self.bad(node, path, message)
            return None
        return text

    def strings(
        self, node: Node, path: str, check: Callable[[str], str | None] | None = None
    ) -> tuple[str, ...] | None:
        items = self.items(node, path)
        if items is None:
            return None
        out = [self.checked(n, p, check) if check else self.string(n, p) for p, n in items]
        return None if None in out else tuple(s for s in out if s is not None)

    def file(self, node: Node, path: str) -> Path | None:
        """An existing file, relative paths taken from the config file's folder."""
        text = self.string(node, path)
        if text is None:
            return None
        resolved = self.resolve(text)
        if not resolved.is_file():
            self.bad(node, path, f"file not found: {text}")
            return None
        return resolved

    def resolve(self, text: str) -> Path:
        return Path(os.path.normpath(self.base_dir / text))

    def address(self, node: Node, path: str) -> tuple[str, int] | None:
        text = self.string(node, path)
        if text is None:
            return None
        match = re.fullmatch(r"\[([^\]]+)\]:([0-9]+)|([^:\[\]]+):([0-9]+)", text)
        host = match and (match[1] or match[3])
        if not match or not valid_host(host, ipv6=bool(match[1])):
            self.bad(node, path, MSG_ADDRESS)
            return None
        port = int(match[2] or match[4])
        if port > 65535:
            self.bad(node, path, "port must be between 0 and 65535")
            return None
        return host, port

    def unique(self, seen: dict[Any, str], key: Any, node: Node, path: str, what: str) -> None:
        """Report `what` already used elsewhere (seen maps value -> first path)."""
        if key in seen:
            shown = key if isinstance(key, str) else node.value
            self.bad(node, path, f'duplicate {what} "{shown}"')
        else:
            seen[key] = path


class Map:
    """One YAML mapping being read. Unknown and unsupported keys are reported up front; a key
    with a null value reads as absent, everywhere, so `tls:` and no `tls` mean the same."""

    def __init__(
        self,
        reader: Reader,
        node: MappingNode,
        path: str,
        keys: Iterable[str] | None,
        unsupported: Iterable[str] = (),
    ) -> None:
        self.r, self.path = reader, path
        self.line = reader.lines.get(path, line_of(node))
        self.entries = _flatten(reader, node, path, [])
        unsupported = set(unsupported)
        allowed = None if keys is None else set(keys) | unsupported
        for key, (key_node, value_node) in self.entries.items():
            if allowed is not None and key not in allowed:
                reader.bad(key_node, join(path, key), "unknown key")
            elif key in unsupported and not _empty(reader, value_node):
                reader.bad(key_node, join(path, key), "not supported yet")

    def sub(self, key: str) -> str:
        return join(self.path, key)

    def has(self, key: str) -> bool:
        pair = self.entries.get(key)
        return pair is not None and not is_null(pair[1])

    def get(self, key: str) -> Node | None:
        pair = self.entries.get(key)
        if pair is None:
            return None
        self.r.lines[self.sub(key)] = line_of(pair[0])
        return None if is_null(pair[1]) else pair[1]

    def need(self, key: str) -> Node | None:
        node = self.get(key)
        if node is None:
            pair = self.entries.get(key)
            self.r.report(line_of(pair[0]) if pair else self.line, self.sub(key), "required")
        return node

    def read(self, key: str, parse: Parse, default: Any = None, *, required: bool = False) -> Any:
        """Parse one key: `default` when absent (or invalid, which is already reported)."""
        node = self.need(key) if required else self.get(key)
        if node is None:
            return default
        value = parse(node, self.sub(key))
        return default if value is None else value

    def each(self) -> Iterator[tuple[str, str, Node | None]]:
        """(key, path, value node or None) for free-form mappings such as tiers."""
        for key in self.entries:
            yield key, self.sub(key), self.get(key)


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL_TAG


def _empty(reader: Reader, node: Node) -> bool:
    """null, false, [] or {}: an unsupported feature that is present but configures nothing."""
    if isinstance(node, (SequenceNode, MappingNode)):
        return not node.value
    return is_null(node) or reader.value(node, "", quiet=True) is False


def _flatten(
    reader: Reader, node: MappingNode, path: str, stack: list[MappingNode]
) -> dict[str, tuple[Node, Node]]:
    """key -> (key node, value node), YAML merge keys (`<<: *defaults`) applied: own keys win."""
    own: dict[str, tuple[Node, Node]] = {}
    merged: dict[str, tuple[Node, Node]] = {}
    stack = [*stack, node]
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG:
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, MappingNode) or source in stack:
                    reader.bad(source, path, "expected a mapping to merge")
                    continue
                for key, pair in _flatten(reader, source, path, stack).items():
                    merged.setdefault(key, pair)
            continue
        if not isinstance(key_node, ScalarNode):
            reader.bad(key_node, path or "document", "expected a string key")
            continue
        if key_node.value in own:
            reader.bad(key_node, join(path, key_node.value), "duplicate key")
            continue
        own[key_node.value] = (key_node, value_node)
    return own | {key: pair for key, pair in merged.items() if key not in own}


# ---------------------------------------------------------------------------- shared validators
# Each takes the string and returns why it is wrong, or None when it is fine (Reader.checked).


def valid_host(host: str | None, ipv6: bool = False) -> bool:
    if not host:
        return False
    if ipv6:
        try:
            return ipaddress.ip_address(host).version == 6
        except ValueError:
            return False
    return _DNS_NAME.fullmatch(host) is not None  # IPv4 literals match the DNS grammar too


def ip_or_cidr_problem(text: str) -> str | None:
    try:
        ipaddress.ip_network(text, strict=True)
        return None
    except ValueError:
        return "expected an IP address or CIDR"


def env_name_problem(text: str) -> str | None:
    return None if _ENV_NAME.fullmatch(text) else "expected an environment variable name"


def scope_problem(text: str) -> str | None:
    return None if _SCOPE_TOKEN.fullmatch(text) else "expected a scope token (RFC 6749 §3.3)"


def http_url_problem(text: str) -> str | None:
    """An absolute http(s) URL with a valid host and no user info or fragment (JWKS, OPA,
    introspection endpoints: user info would put a credential in the config and the logs)."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return MSG_HTTP_URL
    host = parts.hostname or ""
    ok = (
        parts.scheme in ("http", "https")
        and "@" not in parts.netloc
        and "#" not in text
        and not any(c.isspace() for c in text)
        and valid_host(host, ipv6=parts.netloc.startswith("["))
    )
    return None if ok else MSG_HTTP_URL


def list_of(r: Reader, parse_item: Parse, node: Node, path: str) -> tuple | None:
    """A list whose items `parse_item` builds; None when any item is invalid (reported)."""
    items = r.items(node, path)
    if items is None:
        return None
    out = [parse_item(item, item_path) for item_path, item in items]
    return None if None in out else tuple(out)


class Refs:
    """Names defined anywhere in the file, references to them, and the facts that rules across
    sections need, all checked once the whole file is read (sections come in any order).
    Facts count entries as written, valid or not, so one mistake is not reported twice."""

    def __init__(self) -> None:
        self.apis: set[str] = set()
        self.tiers: set[str] = set()
        self.applications: set[str] = set()
        self.uses: list[tuple[str, str, Node, str]] = []  # (kind, name, node, path)
        self.users = 0
        self.digest_users = 0  # users with a digest_ha1
        self.key_applications = 0  # applications with api_keys
        self.client_cert_listeners = 0  # listeners with client_certificates optional/required
        self.issuers = 0
        self.introspection = 0
        self.needs: list[tuple[str, Node, str]] = []  # (what, node, path): identity.check_needs

    def check(self, r: Reader) -> None:
        defined = {"API": self.apis, "tier": self.tiers, "application": self.applications}
        for kind, name, node, path in self.uses:
            if name not in defined[kind]:
                r.bad(node, path, f'no {kind} named "{name}"')

"""OpenAPI 3.0 / 3.1 import: resources (path templates x methods), security scopes, and request /
response validation compiled once per operation (see config/openapi.md).

Invariant: loading reads only files inside the spec's directory and fails with LoadError (a
message naming the file and place) before anything is served; matching and validation never
touch the filesystem or the network.
"""

from .loader import Document, LoadError, load
from .operations import (
    NOT_FOUND,
    Match,
    MethodNotAllowed,
    NotFound,
    Operation,
    Spec,
    compile_spec,
    load_spec,
)
from .validate import MAX_ERRORS

__all__ = [
    "MAX_ERRORS",
    "NOT_FOUND",
    "Document",
    "LoadError",
    "Match",
    "MethodNotAllowed",
    "NotFound",
    "Operation",
    "Spec",
    "compile_spec",
    "load",
    "load_spec",
]

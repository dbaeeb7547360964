"""Authorization for one API: scopes per resource, roles_to_scopes, the rule engine and OPA.

Invariant: compiled once per config load by `build` (policy.py) and shared by every request;
per-request state lives only in RequestContext. Semantics: config/authorization.md.
"""

from .policy import Authorizer, build

__all__ = ["Authorizer", "build"]

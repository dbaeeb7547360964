"""The oauth2 authentication method (issue 4): JWTs from configured issuers (JWKS or HS secret)
and opaque tokens by RFC 7662 introspection, behind one verified-token cache.

Invariant: `build(api, config, shared)` is the only entry point the pipeline needs; everything
that must outlive a config reload (JWK Sets, token cache, revocations) lives in SharedState.
"""

from .policy import OAuth2Authenticator, build
from .revocation import RevocationList

__all__ = ["build", "OAuth2Authenticator", "RevocationList"]

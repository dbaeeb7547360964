"""HTTP Digest (RFC 7616, SHA-256, qop=auth) against `users[].digest_ha1`."""

"""HTTP Basic (RFC 7617) against `users[].password_hash` (scrypt), cached and throttled."""

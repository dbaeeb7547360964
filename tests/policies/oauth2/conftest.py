"""Every oauth2 test also checks that no log record carries a bearer token (CONTRACT.md: logs)."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _no_token_in_logs(caplog):
    caplog.set_level(logging.DEBUG, logger="fastgate")
    yield
    for rec in caplog.records:
        msg = rec.getMessage()
        assert "eyJ" not in msg, msg  # every JWT starts with base64url of '{"'
        assert "opaque-" not in msg and "other-opaque" not in msg, msg  # the introspection tests' tokens

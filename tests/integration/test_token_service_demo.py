"""The demo config's token service does what `make demo` prints: a client_credentials token for
demo-service works on the orders API; a wrong secret and a scope beyond the client are refused."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from fastgate.demo import DEMO_CLIENT_SECRET, MASTER_ENV, master_key, prepare
from tests.helpers import Gateway, free_port, get
from tests.integration.ts_helpers import bearer, token

ROOT = Path(__file__).resolve().parents[2]


def test_demo_token_service(tmp_path, echo, tls_client, monkeypatch, pki):
    (tmp_path / "config").mkdir()
    prepare(tmp_path / ".demo")
    monkeypatch.setenv(MASTER_ENV, master_key(tmp_path / ".demo" / "keys"))
    text = (ROOT / "config" / "gateway.yaml").read_text()
    port = free_port()
    text = text.replace("127.0.0.1:8443", f"127.0.0.1:{port}").replace("127.0.0.1:9901", "127.0.0.1:0")
    text = text.replace("http://127.0.0.1:9000", f"http://127.0.0.1:{echo.port}")
    # the test PKI's server certificate, which the test client trusts
    text = re.sub(r"certificate: \.\./\.demo/certs/server\.crt", f"certificate: {pki['server.crt']}", text)
    text = re.sub(r"private_key: \.\./\.demo/certs/server\.key", f"private_key: {pki['server.key']}", text)
    gw = Gateway(text, tmp_path / "config")
    try:
        r = token(port, tls_client, {"grant_type": "client_credentials", "scope": "orders:read"},
                  client="demo-service", secret=DEMO_CLIENT_SECRET)
        assert r.status == 200, r.body
        at = r.json()["access_token"]
        assert get(port, "/orders/v1/orders/42", tls_client, headers=bearer(at)).status == 200
        wrong = token(port, tls_client, {"grant_type": "client_credentials"}, client="demo-service",
                      secret="wrong")
        assert wrong.status == 401 and wrong.json()["error"] == "invalid_client"
        scope = token(port, tls_client, {"grant_type": "client_credentials", "scope": "orders:write"},
                      client="demo-service", secret=DEMO_CLIENT_SECRET)
        assert scope.status == 400 and scope.json()["error"] == "invalid_scope"
        assert get(port, "/oauth2/jwks", tls_client).json()["keys"]
    finally:
        gw.stop()
    assert (tmp_path / ".demo" / "keys" / "token-service.key").exists()
    shutil.rmtree(tmp_path / ".demo")

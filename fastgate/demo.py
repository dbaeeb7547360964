"""`make demo`: dev certificates under .demo/, the echo upstream, the gateway on
config/gateway.yaml, and curl lines that work as pasted.

Invariant: everything it makes lives under .demo/ (gitignored); it stops both processes on
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import base64
import datetime
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509

from .devtools.certs import make_dev_pki
from .devtools.idp import make_idp, mint

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".demo"
CERTS = DEMO / "certs"
CONFIG = ROOT / "config" / "gateway.yaml"
DEMO_KEY = "fg_demo_key_not_secret_use_new_api_key_for_real_ones"  # its hash is in config/gateway.yaml
DEMO_PASSWORD = "alice-demo-password"
DEMO_CLIENT_SECRET = "demo-service-secret-not-for-production"  # demo-service's hash is in the config
MASTER_ENV = "FASTGATE_MASTER_KEY"  # secrets.master_key_env: seals the token service's signing key


def _certs_fresh(certs: Path = CERTS) -> bool:
    crt = certs / "server.crt"
    if not crt.exists():
        return False
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    return cert.not_valid_after_utc > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)


def _wait_for(proc: subprocess.Popen, needle: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line and proc.poll() is not None:
            break
        sys.stdout.write(line)
        if needle in line:
            return line
    raise SystemExit(f"demo: '{needle}' did not appear; see the output above")


def prepare(demo: Path = DEMO) -> Path:
    """Everything config/gateway.yaml refers to under .demo/: certificates and the IdP key."""
    certs = demo / "certs"
    if not _certs_fresh(certs):
        make_dev_pki(certs)
        print(f"demo: made development certificates in {certs}/")
    pem, _ = make_idp(demo / "keys")
    os.environ.setdefault(MASTER_ENV, master_key(demo / "keys"))  # the config needs it at load
    return pem


def master_key(keys: Path) -> str:
    """The demo's master key (base64, 32 bytes), made once under .demo/keys/ (mode 0600)."""
    path = keys / "master.key"
    if not path.exists():
        path.write_text(base64.b64encode(os.urandom(32)).decode())
        path.chmod(0o600)
    return path.read_text().strip()


def main() -> int:
    pem = prepare()
    token = mint(pem, scope="orders:read")
    py = sys.executable
    echo = subprocess.Popen([py, "-m", "fastgate.devtools.echo", "--port", "9000"],
                            stdout=subprocess.PIPE, cwd=ROOT)
    _wait_for(echo, "listening")
    env = {**os.environ, MASTER_ENV: os.environ[MASTER_ENV]}  # set by prepare()
    gw = subprocess.Popen([py, "-m", "fastgate.cli", "run", "-c", str(CONFIG)], stdout=subprocess.PIPE,
                          cwd=ROOT, env=env)
    try:
        _wait_for(gw, "admin accepting")
        ca = ".demo/certs/ca.crt"
        base = "https://localhost:8443"
        print(f"""
fastgate demo is up: TLS listener {base}, echo upstream http://127.0.0.1:9000, admin http://127.0.0.1:9901
Paste these in another terminal (from {ROOT}):

  # a public API call through the gateway (the echo upstream shows what it received)
  curl --cacert {ca} {base}/echo/v1/hello?name=world

  # the orders API needs credentials: none -> 401 with one challenge per accepted scheme
  curl -i --cacert {ca} {base}/orders/v1/orders/42

  # ... an API key (stripped before the upstream; X-Fastgate-Application is set instead)
  curl --cacert {ca} -H 'X-API-Key: {DEMO_KEY}' {base}/orders/v1/orders/42

  # ... a JWT from the demo IdP (scope orders:read, valid 1 h; forwarded unchanged)
  curl --cacert {ca} -H 'Authorization: Bearer {token}' {base}/orders/v1/orders/42

  # ... the same token may not create orders: 403 insufficient_scope
  curl -i --cacert {ca} -H 'Authorization: Bearer {token}' -d '{{}}' {base}/orders/v1/orders

  # threat protection: SQL injection in the query, a JSON depth bomb, XXE -> 400, never forwarded
  curl --cacert {ca} -H 'X-API-Key: {DEMO_KEY}' "{base}/orders/v1/orders?id=1%27%20OR%20%271%27%3D%271"
  curl --cacert {ca} -u alice:{DEMO_PASSWORD} -H 'Content-Type: application/json' -d '[[[[[[[[[[[["deep"]]]]]]]]]]]]' {base}/orders/v1/orders
  curl --cacert {ca} -u alice:{DEMO_PASSWORD} -H 'Content-Type: application/xml' -d '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>' {base}/orders/v1/orders

  # the built-in token service: a client_credentials token for demo-service (client_secret_basic),
  # then an API call with it (its JWTs are accepted without an `issuers` entry)
  curl --cacert {ca} -u demo-service:{DEMO_CLIENT_SECRET} -d grant_type=client_credentials -d scope=orders:read {base}/oauth2/token
  TOKEN=$(curl -s --cacert {ca} -u demo-service:{DEMO_CLIENT_SECRET} -d grant_type=client_credentials {base}/oauth2/token | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl --cacert {ca} -H "Authorization: Bearer $TOKEN" {base}/orders/v1/orders/42

  # ... refused: a wrong client secret (401 invalid_client), a scope the client may not have (400 invalid_scope)
  curl -i --cacert {ca} -u demo-service:wrong -d grant_type=client_credentials {base}/oauth2/token
  curl --cacert {ca} -u demo-service:{DEMO_CLIENT_SECRET} -d grant_type=client_credentials -d scope=orders:write {base}/oauth2/token

  # ... its signing keys and OpenID Connect discovery document
  curl --cacert {ca} {base}/oauth2/jwks
  curl --cacert {ca} {base}/.well-known/openid-configuration

  # CORS: the gateway answers the preflight itself, for the listed origin only
  curl -i --cacert {ca} -X OPTIONS -H 'Origin: https://app.example.com' -H 'Access-Control-Request-Method: POST' {base}/orders/v1/orders

  # ... Basic as alice (role clerk -> orders:write) may; a wrong password is 401
  curl --cacert {ca} -u alice:{DEMO_PASSWORD} -d '{{}}' {base}/orders/v1/orders
  curl --cacert {ca} -u alice:wrong {base}/orders/v1/orders/42

  # the same with a client certificate (mTLS: the listener verifies it in the handshake)
  curl --cacert {ca} --cert .demo/certs/client.crt --key .demo/certs/client.key {base}/echo/v1/mtls

  # attacks that are refused: encoded-slash traversal (400), an API that does not exist (404)
  curl --cacert {ca} '{base}/echo/v1/..%2f..%2fetc/passwd'
  curl --cacert {ca} {base}/admin/secrets

  # the anonymous rate limit (5 per 10 s per client IP): the 6th answer is 429 with Retry-After
  for i in 1 2 3 4 5 6 7; do curl -s -o /dev/null -w '%{{http_code}}\\n' --cacert {ca} {base}/echo/v1/rl; done

  # demo-app's tier (gold: 1000/min, burst 10 per 10 s): RateLimit-* headers, then 429 past the burst
  curl -s -D - -o /dev/null --cacert {ca} -H 'X-API-Key: {DEMO_KEY}' {base}/orders/v1/orders/42 | grep -i ratelimit
  for i in $(seq 12); do curl -s -o /dev/null -w '%{{http_code}}\\n' --cacert {ca} -H 'X-API-Key: {DEMO_KEY}' {base}/orders/v1/orders/42; done
  curl -s http://127.0.0.1:9901/metrics | grep fastgate_ratelimit_denials_total

  # TLS 1.1 is refused
  curl --cacert {ca} --tls-max 1.1 {base}/echo/v1/old

  # health and Prometheus metrics (admin listener, loopback only)
  curl http://127.0.0.1:9901/readyz
  curl -s http://127.0.0.1:9901/metrics | grep fastgate_requests_total

  # validate and audit the config
  # (the token service needs its master key at load: {MASTER_ENV}, made in .demo/keys/master.key)
  {MASTER_ENV}=$(cat .demo/keys/master.key) .venv/bin/fastgate check -c config/gateway.yaml
  {MASTER_ENV}=$(cat .demo/keys/master.key) .venv/bin/fastgate audit -c config/gateway.yaml

  # capacity: the highest rate the orders API holds at p99 <= 5 ms on this box (its own gateway
  # and upstream on free ports, ~1 minute; README "Capacity testing")
  {MASTER_ENV}=$(cat .demo/keys/master.key) .venv/bin/fastgate bench -c config/gateway.yaml --api orders --find-capacity --slo-p99 5ms --duration 3s --without-quotas --plot .demo/capacity.png

Access log lines (one JSON object per request) follow below. Ctrl-C stops the demo.
""", flush=True)
        stop = {"now": False}

        def on_signal(signum, frame) -> None:
            stop["now"] = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        while not stop["now"] and gw.poll() is None:
            line = gw.stdout.readline()
            if line:
                sys.stdout.write(line.decode())
                sys.stdout.flush()
    finally:
        for p in (gw, echo):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in (gw, echo):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())

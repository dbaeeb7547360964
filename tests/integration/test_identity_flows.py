"""More identity flows through the real gateway: Digest (challenge, response, replay), rules,
and monitor mode (logs what it would refuse, refuses nothing)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time

import pytest

from fastgate.credentials import hash_password
from tests.helpers import Gateway, connect, get, read_response

PASSWORD = "digest-pass-1"


@pytest.fixture(scope="module")
def gw(pki, echo, tmp_path_factory):
    d = tmp_path_factory.mktemp("flows")
    ha1 = "sha256:" + hashlib.sha256(f"carol:fastgate:{PASSWORD}".encode()).hexdigest()
    text = f"""version: 1
listeners:
  - name: public
    address: 127.0.0.1:0
    tls:
      certificate: {pki['server.crt']}
      private_key: {pki['server.key']}
admin:
  address: 127.0.0.1:0
users:
  - name: carol
    password_hash: "{hash_password(PASSWORD, n=2**12)}"
    digest_ha1: "{ha1}"
    roles: [student]
apis:
  - name: digest-api
    base_path: /d
    upstream: {{urls: ["http://127.0.0.1:{echo.port}"]}}
    authentication: [digest]
  - name: ruled
    base_path: /r
    upstream: {{urls: ["http://127.0.0.1:{echo.port}"]}}
    authentication: [basic]
    authorization:
      rules:
        - {{id: no-student-deletes, allow: false, roles: [student], methods: [DELETE]}}
        - {{id: students-read, allow: true, roles: [student], path: "/courses/**", methods: [GET]}}
        - {{id: deny-rest, allow: false}}
  - name: watched
    base_path: /m
    mode: monitor
    upstream: {{urls: ["http://127.0.0.1:{echo.port}"]}}
    authentication: [basic]
"""
    g = Gateway(text, d)
    yield g
    g.stop()


def _h(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def _digest_header(challenge: str, method: str, uri: str, nc: int, password: str = PASSWORD) -> str:
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    nonce = params["nonce"]
    cnonce = os.urandom(8).hex()
    ha1 = _h(f"carol:fastgate:{password}")
    ha2 = _h(f"{method}:{uri}")
    ncs = f"{nc:08x}"
    response = _h(f"{ha1}:{nonce}:{ncs}:{cnonce}:auth:{ha2}")
    parts = ['username="carol"', 'realm="fastgate"', f'nonce="{nonce}"', f'uri="{uri}"',
             "algorithm=SHA-256", "qop=auth", f"nc={ncs}", f'cnonce="{cnonce}"', f'response="{response}"']
    if "opaque" in params:
        parts.append(f'opaque="{params["opaque"]}"')
    return "Digest " + ", ".join(parts)


def test_digest_challenge_response_and_replay(gw, tls_client):
    port = gw.ports["public"]
    first = get(port, "/d/x", tls_client)
    assert first.status == 401
    challenge = first.header("www-authenticate")
    assert challenge.startswith("Digest ") and "SHA-256" in challenge and 'qop="auth"' in challenge
    header = _digest_header(challenge, "GET", "/d/x", 1)
    ok = get(port, "/d/x", tls_client, headers={"Authorization": header})
    assert ok.status == 200, ok.body
    assert ok.json()["headers"] and all(n != "authorization" for n, _ in ok.json()["headers"])
    replay = get(port, "/d/x", tls_client, headers={"Authorization": header})
    assert replay.status == 401
    assert replay.json()["code"] == "invalid_credentials"
    wrong = get(port, "/d/x", tls_client, headers={"Authorization": _digest_header(challenge, "GET", "/d/x", 5, "nope")})
    assert wrong.status == 401


def _basic(user: str, pw: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}


def test_rules_first_match_wins(gw, tls_client):
    port = gw.ports["public"]
    assert get(port, "/r/courses/1", tls_client, headers=_basic("carol", PASSWORD)).status == 200
    denied = get(port, "/r/courses/1", tls_client, method="DELETE", headers=_basic("carol", PASSWORD))
    assert denied.status == 403 and denied.json()["code"] == "forbidden"
    other = get(port, "/r/grades", tls_client, headers=_basic("carol", PASSWORD))
    assert other.status == 403
    time.sleep(0.3)
    decisions = {r["path"]: r["decision"] for r in gw.access_log() if r["api"] == "ruled"}
    assert "no-student-deletes" in decisions["/r/courses/1"] or "students-read" in decisions["/r/courses/1"]
    assert "deny-rest" in decisions["/r/grades"]


def test_monitor_mode_logs_and_lets_through(gw, tls_client, echo):
    port = gw.ports["public"]
    r = get(port, "/m/anything", tls_client)
    assert r.status == 200  # would be 401: monitor mode refuses nothing
    bad = get(port, "/m/other", tls_client, headers=_basic("carol", "wrong"))
    assert bad.status == 200
    assert all(n != "authorization" for n, _ in bad.json()["headers"])  # still never forwarded
    time.sleep(0.3)
    recs = [x for x in gw.access_log() if x["api"] == "watched"]
    assert any((x["decision"] or "").startswith("monitor:") for x in recs)
    metrics = get(gw.admin_port, "/metrics").body.decode()
    assert re.search(r'fastgate_policy_rejections_total\{api="watched",code="unauthenticated",policy="[^"]*:monitor"\}', metrics)


def test_basic_throttled_after_repeated_failures(gw, tls_client):
    port = gw.ports["public"]
    statuses = []
    with connect(port, tls_client) as s:
        buf = bytearray()
        for _ in range(12):
            cred = base64.b64encode(b"carol:bad-guess").decode()
            s.sendall(f"GET /r/courses/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {cred}\r\n\r\n".encode())
            statuses.append(read_response(s, buf).status)
    assert statuses[0] == 401
    assert 429 in statuses

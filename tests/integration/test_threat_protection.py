"""Threat protection through the real gateway: regex rules on path, query, headers and body;
JSON and XML limits; billion laughs and XXE; bodies cut at the limit; monitor mode. Nothing
refused ever reaches the upstream."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.helpers import Gateway, connect, get, read_response
from tests.integration.conftest import config_yaml

APIS = """
  - name: shop
    base_path: /shop
    upstream: {{urls: ["http://127.0.0.1:{port}"]}}
    max_body_bytes: 4MiB
    threat_protection:
      regex: {{sets: [sql, javascript, ssi, xpath, java_exception, path_traversal, command]}}
      json: {{max_depth: 5, max_string_length: 1000, max_bytes: 64KiB}}
      xml: {{max_depth: 5, max_bytes: 64KiB}}
  - name: typed
    base_path: /typed
    upstream: {{urls: ["http://127.0.0.1:{port}"]}}
    threat_protection:
      xml: {{schema: {xsd}}}
  - name: watched
    base_path: /watched
    mode: monitor
    upstream: {{urls: ["http://127.0.0.1:{port}"]}}
    threat_protection:
      regex: {{sets: [sql]}}
"""


XSD = b"""<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="order"><xs:complexType><xs:sequence>
    <xs:element name="sku" type="xs:string"/><xs:element name="quantity" type="xs:positiveInteger"/>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>"""


@pytest.fixture(scope="module")
def gw(pki, echo, tmp_path_factory):
    d = tmp_path_factory.mktemp("tp")
    (d / "order.xsd").write_bytes(XSD)
    g = Gateway(config_yaml(pki, echo.port, apis=APIS.format(port=echo.port, xsd=d / "order.xsd")), d)
    yield g
    g.stop()


def _marker() -> str:
    return "tp" + uuid.uuid4().hex[:10]


def _refused(r, status: int, code: str, echo, marker: str) -> None:
    assert r.status == status, (r.status, r.body)
    assert r.json()["code"] == code
    time.sleep(0.05)
    assert not echo.seen(marker)


@pytest.mark.parametrize("where", ["query", "path", "header", "body"])
def test_sql_injection_refused_everywhere(gw, tls_client, echo, where):
    m = _marker()
    attack = "1' OR '1'='1"
    port = gw.ports["public"]
    if where == "query":
        r = get(port, f"/shop/{m}?id=1%27%20OR%20%271%27%3D%271", tls_client)
    elif where == "path":
        r = get(port, f"/shop/{m}/1%27%20UNION%20SELECT%20password%20FROM%20users--", tls_client)
    elif where == "header":
        r = get(port, f"/shop/{m}", tls_client, headers={"X-Filter": attack})
    else:
        r = get(port, f"/shop/{m}", tls_client, method="POST", body=json.dumps({"q": attack}).encode(),
                headers={"Content-Type": "application/json"})
    _refused(r, 400, "threat_detected", echo, m)
    doc = r.json()
    assert doc["rule_set"] == "sql"
    assert "OR" not in r.body.decode() and "UNION" not in r.body.decode()


@pytest.mark.parametrize("payload,rule_set", [
    ("<script>alert(document.cookie)</script>", "javascript"),
    ("../../../../etc/passwd", "path_traversal"),
    ("; cat /etc/passwd", "command"),
    ('<!--#exec cmd="ls" -->', "ssi"),
])
def test_other_classes_refused_in_query(gw, tls_client, echo, payload, rule_set):
    from urllib.parse import quote

    m = _marker()
    r = get(gw.ports["public"], f"/shop/{m}?x={quote(payload)}", tls_client)
    _refused(r, 400, "threat_detected", echo, m)
    assert r.json()["rule_set"] == rule_set


def test_benign_text_passes(gw, tls_client):
    port = gw.ports["public"]
    assert get(port, "/shop/people?name=O%27Brien&sort=order%20by%20date", tls_client).status == 200
    body = json.dumps({"name": "D'Angelo", "note": "please select the blue one and drop it at the door"}).encode()
    r = get(port, "/shop/orders", tls_client, method="POST", body=body, headers={"Content-Type": "application/json"})
    assert r.status == 200 and r.json()["body_length"] == len(body)


def test_json_depth_refused_and_named(gw, tls_client, echo):
    m = _marker()
    r = get(gw.ports["public"], f"/shop/{m}", tls_client, method="POST", body=b'{"a":[[[[[1]]]]]}',
            headers={"Content-Type": "application/json"})
    _refused(r, 400, "payload_rejected", echo, m)
    assert "max_depth" in r.json()["detail"]


def test_json_with_lying_content_type_still_scanned(gw, tls_client, echo):
    m = _marker()
    r = get(gw.ports["public"], f"/shop/{m}", tls_client, method="POST", body=b'[[[[[[1]]]]]]',
            headers={"Content-Type": "text/plain"})
    _refused(r, 400, "payload_rejected", echo, m)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><lolz>&lol3;</lolz>"""
XXE = b"""<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>"""


@pytest.mark.parametrize("doc", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_dtd_attacks_never_reach_the_upstream(gw, tls_client, echo, doc):
    m = _marker()
    r = get(gw.ports["public"], f"/shop/{m}", tls_client, method="POST", body=doc,
            headers={"Content-Type": "application/xml"})
    _refused(r, 400, "payload_rejected", echo, m)
    assert "allow_dtd" in r.json()["detail"]


def test_json_over_protection_max_bytes_is_413(gw, tls_client, echo):
    m = _marker()
    body = json.dumps({"items": ["x" * 500] * 200}).encode()  # ~100 KB > 64 KiB
    r = get(gw.ports["public"], f"/shop/{m}", tls_client, method="POST", body=body,
            headers={"Content-Type": "application/json"})
    _refused(r, 413, "payload_too_large", echo, m)


def _rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_endless_chunked_body_cut_at_the_limit_memory_flat(gw, tls_client, echo):
    """A chunked body that would go on for a gigabyte is cut at the limit: 413, and the gateway
    never buffers more than the limit."""
    m = _marker()
    before = _rss_kib(gw.p.pid)
    with connect(gw.ports["public"], tls_client) as s:
        s.sendall(f"POST /shop/{m} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"%x\r\n%b\r\n" % (65536, b"a" * 65536)
        sent = 0
        try:
            while sent < 1 << 30:
                s.sendall(chunk)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        r = read_response(s)
    assert r.status == 413
    assert sent < 64 << 20  # cut long before a gigabyte
    assert _rss_kib(gw.p.pid) - before < 32 * 1024
    assert not echo.seen(m)


def test_monitor_mode_logs_and_forwards(gw, tls_client, echo):
    m = _marker()
    r = get(gw.ports["public"], f"/watched/{m}?id=1%27%20OR%20%271%27%3D%271", tls_client)
    assert r.status == 200
    time.sleep(0.3)
    recs = [x for x in gw.access_log() if x["path"].endswith(m)]
    assert recs and recs[-1]["decision"].startswith("monitor:threat_protection.regex:sql-")


def test_access_log_records_the_rule_id(gw, tls_client):
    m = _marker()
    get(gw.ports["public"], f"/shop/{m}?q=%3Cscript%3Ealert(1)%3C/script%3E", tls_client)
    time.sleep(0.3)
    recs = [x for x in gw.access_log() if x["path"].endswith(m)]
    assert recs and recs[-1]["decision"].startswith("threat_protection.regex:javascript-")
    assert recs[-1]["code"] == "threat_detected"


def test_xml_schema_validated_without_echoing_the_payload(gw, tls_client, echo):
    port = gw.ports["public"]
    ok = get(port, "/typed/o", tls_client, method="POST", body=b"<order><sku>A-1</sku><quantity>2</quantity></order>",
             headers={"Content-Type": "application/xml"})
    assert ok.status == 200
    m = _marker()
    bad = get(port, f"/typed/{m}", tls_client, method="POST",
              body=b"<order><sku>A-1</sku><quantity>SECRET-VALUE</quantity></order>",
              headers={"Content-Type": "application/xml"})
    _refused(bad, 400, "invalid_request", echo, m)
    assert bad.json()["errors"]
    assert b"SECRET-VALUE" not in bad.body

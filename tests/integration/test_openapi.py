"""OpenAPI through the real gateway: 404/405 from the definition, request validation (400
`invalid_request` with `errors`), response validation (502 `invalid_response`)."""

from __future__ import annotations

import pytest

from tests.helpers import Gateway, get
from tests.integration.conftest import config_yaml

SPEC = """openapi: 3.0.3
info: {title: items, version: "1"}
paths:
  /items:
    get:
      parameters: [{name: limit, in: query, schema: {type: integer, maximum: 50}}]
      responses: {"200": {description: ok, content: {application/json: {schema: {type: object}}}}}
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [name], additionalProperties: false,
                     properties: {name: {type: string}}}
      responses: {"200": {description: ok, content: {application/json: {schema: {type: object, required: [method]}}}}}
  /items/{id}:
    get:
      parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
      responses: {"200": {description: ok, content: {application/json: {schema: {type: object, required: [missing]}}}}}
"""

APIS = """
  - name: items
    base_path: /v1
    upstream:
      urls: [http://127.0.0.1:{port}]
    openapi: {spec}
    validation: {{request: true, response: true}}
"""


@pytest.fixture(scope="module")
def gw(pki, echo, tmp_path_factory):
    d = tmp_path_factory.mktemp("openapi")
    (d / "items.yaml").write_text(SPEC)
    g = Gateway(config_yaml(pki, echo.port, apis=APIS.format(port=echo.port, spec=d / "items.yaml")), d)
    yield g
    g.stop()


def test_declared_operation_passes(gw, tls_client):
    assert get(gw.ports["public"], "/v1/items?limit=5", tls_client).status == 200


def test_undeclared_path_is_404(gw, tls_client, echo):
    r = get(gw.ports["public"], "/v1/oa-nothing", tls_client)
    assert r.status == 404 and r.json()["code"] == "not_found"
    assert not echo.seen("/oa-nothing")


def test_undeclared_method_is_405_with_allow(gw, tls_client):
    r = get(gw.ports["public"], "/v1/items", tls_client, method="DELETE")
    assert r.status == 405 and r.json()["code"] == "method_not_allowed"
    allow = {m.strip() for m in r.header("allow").split(",")}
    assert {"GET", "POST"} <= allow


def test_bad_query_parameter_is_400_with_errors(gw, tls_client):
    r = get(gw.ports["public"], "/v1/items?limit=500", tls_client)
    assert r.status == 400
    doc = r.json()
    assert doc["code"] == "invalid_request"
    assert doc["errors"] and doc["errors"][0]["path"] == "query.limit"


def test_bad_path_parameter_is_400(gw, tls_client):
    r = get(gw.ports["public"], "/v1/items/abc", tls_client)
    assert r.status == 400 and r.json()["errors"][0]["path"].startswith("path.id")


def test_body_validated_before_the_upstream(gw, tls_client, echo):
    ok = get(gw.ports["public"], "/v1/items", tls_client, method="POST", body=b'{"name": "x"}',
             headers={"Content-Type": "application/json"})
    assert ok.status == 200, ok.body
    assert ok.json()["body_length"] == len(b'{"name": "x"}')
    bad = get(gw.ports["public"], "/v1/items?oa-bad-body=1", tls_client, method="POST",
              body=b'{"name": 1, "extra": true}', headers={"Content-Type": "application/json"})
    assert bad.status == 400
    paths = {e["path"] for e in bad.json()["errors"]}
    assert any(p.startswith("body") for p in paths)
    assert not echo.seen("oa-bad-body")


def test_response_not_matching_is_502(gw, tls_client):
    r = get(gw.ports["public"], "/v1/items/7", tls_client)
    assert r.status == 502
    assert r.json()["code"] == "invalid_response"
    assert b"target" not in r.body  # the upstream body is not forwarded

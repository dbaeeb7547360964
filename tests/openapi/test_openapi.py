"""fastgate.openapi: loading (local refs only, cycles), matching (404/405/templates), request and
response validation (error paths exact, at most 10), security scopes per operation."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastgate.openapi import (
    MAX_ERRORS,
    NOT_FOUND,
    LoadError,
    Match,
    MethodNotAllowed,
    load_spec,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "openapi"


SPEC = load_spec(DATA / "petstore.yaml")


@pytest.fixture(scope="module")
def spec():
    return SPEC


@pytest.fixture(scope="module")
def spec31():
    return load_spec(DATA / "petstore31.json")


def op(spec, method, path):
    m = spec.match(method, path)
    assert isinstance(m, Match), m
    return m


def paths(errors):
    return [e["path"] for e in errors]


ORDER = {
    "customer": {"name": "Zoë", "email": "zoe@example.com"},
    "items": [{"sku": "ABC-0001", "quantity": 1, "price": 2.5, "options": [["red"]]}] * 3,
}
TRACE = [("X-Trace", "0123abcd")]


def order_errors(spec, body, headers=TRACE, ctype="application/json", query=""):
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return op(spec, "POST", "/orders").validate_request(query, headers, ctype, raw)


# ---------------------------------------------------------------- matching
def test_templates_and_precedence(spec):
    assert op(spec, "GET", "/pets").operation.operation_id == "listPets"
    m = op(spec, "GET", "/pets/42")
    assert (m.operation.operation_id, m.path_params) == ("getPet", {"petId": "42"})
    assert op(spec, "GET", "/pets/mine").operation.operation_id == "myPets"  # concrete first
    m = op(spec, "GET", "/reports/2024.json")
    assert (m.operation.operation_id, m.path_params) == ("report", {"year": "2024"})
    assert op(spec, b"DELETE", "/pets/7").operation.operation_id == "deletePet"


def test_path_params_are_percent_decoded_after_splitting(spec):
    assert op(spec, "GET", "/pets/a%2Fb").path_params == {"petId": "a/b"}
    assert op(spec, "GET", "/pets/%31").path_params == {"petId": "1"}


_VALUE = st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=20)


@given(pet=_VALUE, year=st.integers(0, 99999))
def test_any_segment_value_round_trips(pet, year):
    s = SPEC
    m = s.match("GET", "/pets/" + quote(pet, safe=""))
    expected = "myPets" if pet == "mine" else "getPet"
    assert isinstance(m, Match) and m.operation.operation_id == expected
    if expected == "getPet":
        assert m.path_params == {"petId": pet}
    assert s.match("GET", f"/reports/{year}.json").path_params == {"year": str(year)}


def test_unknown_path_is_not_found(spec):
    for path in ("/nope", "/pets/1/toys", "", "/", "/reports/2024.xml", "pets"):
        assert spec.match("GET", path) is NOT_FOUND, path


def test_trailing_slash_and_empty_segments_are_strict(spec):
    assert spec.match("GET", "/pets/") is NOT_FOUND
    assert spec.match("GET", "//pets") is NOT_FOUND
    assert spec.match("GET", "/pets//") is NOT_FOUND


def test_undeclared_method_lists_allow(spec):
    got = spec.match("PUT", "/pets/1")
    assert got == MethodNotAllowed(("DELETE", "GET", "HEAD"))
    assert got.header == "DELETE, GET, HEAD"
    assert spec.match("DELETE", "/pets") == MethodNotAllowed(("GET", "HEAD", "POST"))
    assert spec.match("GET", "/orders") == MethodNotAllowed(("POST",))
    assert spec.match("OPTIONS", "/upload") == MethodNotAllowed(("PUT",))


def test_head_uses_get(spec):
    m = op(spec, "HEAD", "/pets/3")
    assert m.operation.operation_id == "getPet"
    assert m.operation.validate_response(200, "application/json", b"") == []  # no body to check


def test_method_falls_through_to_a_less_specific_template(spec):
    # /pets/mine declares GET only; DELETE /pets/mine is DELETE /pets/{petId}
    assert op(spec, "DELETE", "/pets/mine").path_params == {"petId": "mine"}


# ---------------------------------------------------------------- parameters
def test_valid_query_parameters(spec):
    m = op(spec, "GET", "/pets")
    assert m.validate_request("limit=10&status=sold&tags=a&tags=b", []) == []
    assert m.validate_request(b"", []) == []


def test_missing_required_query(spec):
    m = op(spec, "GET", "/search")
    assert m.validate_request("", []) == [{"path": "query.q", "message": "is required"}]


def test_wrong_type_range_and_enum(spec):
    m = op(spec, "GET", "/pets")
    assert m.validate_request("limit=abc", []) == [
        {"path": "query.limit", "message": 'value is not of type "integer"'}]
    assert m.validate_request("limit=1.5", []) == [
        {"path": "query.limit", "message": 'value is not of type "integer"'}]
    assert paths(m.validate_request("limit=0", [])) == ["query.limit"]
    assert m.validate_request("status=lost", []) == [
        {"path": "query.status", "message": 'value is not one of "available", "pending" or "sold"'}]


def test_repeated_scalar_is_refused(spec):
    m = op(spec, "GET", "/pets")
    assert m.validate_request("limit=1&limit=2", []) == [
        {"path": "query.limit", "message": "must not be repeated"}]


def test_array_explode_form_default(spec):
    m = op(spec, "GET", "/pets")
    assert m.validate_request("tags=a&tags=b&tags=c", []) == []
    assert paths(m.validate_request("tags=a&tags=b&tags=c&tags=d", [])) == ["query.tags"]


def test_array_explode_false_and_item_coercion(spec):
    m = op(spec, "GET", "/search")
    assert m.validate_request("q=x&ids=1,2,3", []) == []
    assert m.validate_request("q=x&ids=1,x,3", []) == [
        {"path": "query.ids[1]", "message": 'value is not of type "integer"'}]
    assert m.validate_request("q=x&ids=1&ids=2", []) == [
        {"path": "query.ids", "message": "must not be repeated"}]


def test_boolean_number_deep_object_cookie_and_json_content(spec):
    m = op(spec, "GET", "/search")
    ok = "q=x&exact=true&score=0.5&filter[color]=red&filter[max]=3&where=%7B%22lat%22%3A1.5%7D"
    assert m.validate_request(ok, [("Cookie", "a=b; session=abcd")]) == []
    bad = "q=&exact=yes&score=0&filter[max]=many&where=%7B%7D"
    assert m.validate_request(bad, [("Cookie", "session=ab")]) == [
        {"path": "query.q", "message": "value is shorter than 1 character"},
        {"path": "query.exact", "message": 'value is not of type "boolean"'},
        {"path": "query.score", "message": "value is less than or equal to the minimum of 0"},
        {"path": "query.filter.max", "message": 'value is not of type "integer"'},
        {"path": "cookie.session", "message": "value is shorter than 4 characters"},
        {"path": "query.where.lat", "message": "is required"}]
    assert m.validate_request("q=x&where=%7B", []) == [
        {"path": "query.where", "message": "not valid JSON"}]


def test_header_parameters(spec):
    m = op(spec, "GET", "/search")
    assert m.validate_request("q=x", [(b"X-Ids", b"1, 2"), (b"x-ids", b"3")]) == []
    assert m.validate_request("q=x", [("X-Ids", "1,two")]) == [
        {"path": "header.x-ids[1]", "message": 'value is not of type "integer"'}]
    pets = op(spec, "GET", "/pets")
    assert pets.validate_request("", [("x-trace", "XYZ")]) == [
        {"path": "header.x-trace", "message": 'value does not match "^[0-9a-f]{8}$"'}]


def test_required_header_and_ignored_content_type_parameter(spec):
    # the spec declares a Content-Type header parameter with enum [nope]: OpenAPI says ignore it
    assert order_errors(spec, ORDER) == []
    assert order_errors(spec, ORDER, headers=[]) == [
        {"path": "header.x-trace", "message": "is required"}]


def test_path_parameter_types(spec):
    assert op(spec, "GET", "/pets/abc").validate_request("", []) == [
        {"path": "path.petId", "message": 'value is not of type "integer"'}]
    assert paths(op(spec, "GET", "/pets/0").validate_request("", [])) == ["path.petId"]
    assert paths(op(spec, "GET", "/reports/1999.json").validate_request("", [])) == ["path.year"]


# ---------------------------------------------------------------- bodies
def test_body_missing_field_wrong_type_additional_nested(spec):
    body = json.loads(json.dumps(ORDER))
    del body["customer"]["email"]
    body["items"][2]["price"] = "12.00"
    body["items"][1]["options"] = [["a"], ["a", "b", "c"]]
    body["coupon"] = "FREE"
    assert order_errors(spec, body) == [
        {"path": "body.customer.email", "message": "is required"},
        {"path": "body.items[1].options[1]", "message": "value has more than 2 items"},
        {"path": "body.items[2].price", "message": 'value is not of type "number"'},
        {"path": "body", "message": "Additional properties are not allowed ('coupon' was unexpected)"},
    ]


def test_body_openapi30_translation(spec):
    assert order_errors(spec, {**ORDER, "note": None}) == []  # nullable
    assert paths(order_errors(spec, {**ORDER, "discount": 100})) == ["body.discount"]  # exclusive
    item = {**ORDER["items"][0], "price": 0}
    assert paths(order_errors(spec, {**ORDER, "items": [item]})) == ["body.items[0].price"]
    item = {**ORDER["items"][0], "quantity": 2**31}  # format int32
    assert paths(order_errors(spec, {**ORDER, "items": [item]})) == ["body.items[0].quantity"]
    assert paths(order_errors(spec, {**ORDER, "customer": {"name": "x", "email": "nope"}})) == [
        "body.customer.email"]  # formats are asserted


def test_read_only_not_required_in_requests_write_only_not_in_responses(spec):
    post = op(spec, "POST", "/pets")
    assert post.validate_request("", [], "application/json", b'{"name": "Rex"}') == []
    assert paths(post.validate_request("", [], "application/json", b'{"id": 1}')) == ["body.name"]
    get = op(spec, "GET", "/pets/1").operation
    assert paths(get.validate_response(200, "application/json", b'{"name": "Rex"}')) == ["body.id"]
    assert get.validate_response(200, "application/json", b'{"id": 1, "name": "Rex"}') == []


def test_body_required_malformed_and_media_type(spec):
    assert order_errors(spec, b"") == [{"path": "body", "message": "is required"}]
    assert order_errors(spec, b'{"customer": ') == [{"path": "body", "message": "not valid JSON"}]
    assert order_errors(spec, ORDER, ctype="text/plain") == [
        {"path": "header.content-type", "message": "must be one of: application/json"}]
    assert order_errors(spec, ORDER, ctype=None) == [
        {"path": "header.content-type", "message": "is required (one of: application/json)"}]
    assert order_errors(spec, ORDER, ctype="Application/JSON; charset=utf-8") == []
    # content type taken from the headers when not given separately
    m = op(spec, "POST", "/orders")
    assert m.validate_request("", [*TRACE, ("Content-Type", "application/json")], None,
                              orjson.dumps(ORDER)) == []


def test_plus_json_and_recursive_schema(spec):
    m = op(spec, "POST", "/tree")
    deep = {"value": 1}
    for i in range(50):
        deep = {"value": i, "children": [deep, {"value": 2}]}
    assert m.validate_request("", [], "application/vnd.tree+json", orjson.dumps(deep)) == []
    bad = {"value": 1, "children": [{"value": 2, "children": [{"value": "x"}, {}]}]}
    assert m.validate_request("", [], "application/vnd.tree+json", orjson.dumps(bad)) == [
        {"path": "body.children[0].children[0].value", "message": 'value is not of type "integer"'},
        {"path": "body.children[0].children[1].value", "message": "is required"}]
    assert m.validate_request("", [], None, None) == []  # body optional


def test_non_json_media_types_presence_only(spec):
    m = op(spec, "PUT", "/upload")
    assert m.validate_request("", [], "application/octet-stream", b"\x00\xff") == []
    assert m.validate_request("", [], "image/png", b"\x89PNG") == []
    assert m.validate_request("", [], "application/octet-stream", b"") == [
        {"path": "body", "message": "is required"}]
    assert m.validate_request("", [], "text/html", b"<p>") == [
        {"path": "header.content-type",
         "message": "must be one of: application/octet-stream, image/*"}]


def test_errors_capped_at_ten(spec):
    body = {**ORDER, "items": [{"sku": 1, "quantity": "x", "price": None}] * 30}
    errors = order_errors(spec, body, headers=[], query="dry_run=perhaps")
    assert len(errors) == MAX_ERRORS == 10
    assert errors[:3] == [
        {"path": "header.x-trace", "message": "is required"},
        {"path": "query.dry_run", "message": 'value is not of type "boolean"'},
        {"path": "body.items[0].sku", "message": 'value is not of type "string"'}]


def test_messages_never_quote_submitted_values(spec):
    errors = order_errors(spec, {**ORDER, "note": "<script>alert(1)</script>" * 20})
    assert errors == [{"path": "body.note", "message": "value is longer than 200 characters"}]
    m = op(spec, "GET", "/pets")
    assert "<svg" not in str(m.validate_request("status=%3Csvg%3E", []))


def test_odd_property_names_in_paths(spec):
    body = {**ORDER, "a.b": 1, "customer": {"name": "x", "email": "a@b.co", "x y": 2}}
    assert paths(order_errors(spec, body)) == ["body"]  # additionalProperties at the root
    m = op(spec, "POST", "/tree")
    errors = m.validate_request("", [], "application/json+x", b"{}")
    assert errors == [{"path": "header.content-type",
                       "message": "must be one of: application/vnd.tree+json"}]


# ---------------------------------------------------------------- responses
def test_response_validation_by_status(spec):
    get = op(spec, "GET", "/pets/1").operation
    assert get.validate_response(200, "application/json", b'{"id": 1, "name": "Rex"}') == []
    assert get.validate_response(200, "application/json", b'{"id": "1", "name": "Rex"}') == [
        {"path": "body.id", "message": 'value is not of type "integer"'}]
    # 4XX range
    assert get.validate_response(404, "application/problem+json", b'{"title": "gone"}') == []
    assert get.validate_response(404, "application/problem+json", b"{}") == [
        {"path": "body.title", "message": "is required"}]
    # undeclared status (no default)
    assert get.validate_response(500, "application/json", b"{}") == [
        {"path": "status", "message": "500 is not a declared response"}]
    # default
    lst = op(spec, "GET", "/pets").operation
    assert lst.validate_response(503, "application/problem+json", b'{"title": "x"}') == []
    assert lst.validate_response(200, "application/json", b'[{"id": 1, "name": ""}]') == [
        {"path": "body[0].name", "message": "value is shorter than 1 character"}]
    assert lst.validate_response(200, "text/html", b"<p>") == [
        {"path": "header.content-type", "message": "must be one of: application/json"}]
    assert lst.validate_response(200, "application/json", b"") == []
    # response without content: anything goes
    assert op(spec, "DELETE", "/pets/1").operation.validate_response(204, None, b"") == []


def test_responses_can_be_left_uncompiled():
    s = load_spec(DATA / "petstore.yaml", responses=False)
    assert s.match("GET", "/pets/1").operation.validate_response(999, "x", b"x") == []


# ---------------------------------------------------------------- security
def test_scopes(spec):
    def scopes(method, path):
        return op(spec, method, path).operation.scopes

    assert scopes("GET", "/pets") == ("pets:read",)  # global default
    assert scopes("GET", "/pets/1") == ("pets:read",)
    assert scopes("POST", "/pets") == ("pets:write",)  # per-operation override
    assert scopes("DELETE", "/pets/1") == ("pets:write", "pets:admin")
    assert scopes("POST", "/orders") == ()  # security: []
    search = op(spec, "GET", "/search").operation
    assert (search.scopes, search.anonymous) == ((), True)  # {} alternative: anonymous allowed
    assert search.security == ((), (("oauth", ("search",)),))


def test_scope_resources_feed_the_authorizer(spec):
    got = spec.scope_resources()
    assert ("/pets/{petId}", ("DELETE",), ("pets:write", "pets:admin"),
            "openapi:DELETE /pets/{petId}") in got
    assert all(r[2] for r in got)
    assert not [r for r in got if r[0] in ("/orders", "/search")]


# ---------------------------------------------------------------- OpenAPI 3.1
def test_openapi31(spec31):
    assert spec31.version == "3.1"
    lst = op(spec31, "GET", "/pets")
    assert lst.operation.scopes == ("pets:read",)
    assert lst.validate_request("limit=3", []) == []
    assert paths(lst.validate_request("limit=0", [])) == ["query.limit"]  # exclusiveMinimum: 0
    post = op(spec31, "POST", "/pets")
    assert post.operation.scopes == ("pets:write",)  # apiKey alternative adds no scopes
    ok = {"name": "Rex", "tag": None, "weight": 1.5, "kind": "pet", "position": [1, 2]}
    assert post.validate_request("", [], "application/json", orjson.dumps(ok)) == []
    bad = {"name": "Rex", "weight": 0, "kind": "dog", "position": [1, 2, 3], "x": 1}
    got = set(paths(post.validate_request("", [], "application/json", orjson.dumps(bad))))
    assert got == {"body.tag", "body.weight", "body.kind", "body.position[2]", "body"}
    one = op(spec31, "GET", "/pets/5").operation
    assert one.scopes == ()
    assert one.validate_response(201, "application/json", b'{"name": "x"}') == []  # 2XX
    assert paths(one.validate_response(200, "application/json", b'{"name": 1}')) == ["body.name"]


# ---------------------------------------------------------------- split specs, refusals
def test_split_spec_with_relative_refs():
    s = load_spec(DATA / "split" / "api.yaml")
    post = op(s, "POST", "/pets")
    body = {"name": "Rex", "owner": {"email": "a@b.co"},
            "friends": [{"name": "Tom", "owner": {"email": "t@b.co"}}]}
    assert post.validate_request("", [], "application/json", orjson.dumps(body)) == []
    body["friends"][0]["owner"] = {}
    assert post.validate_request("", [], "application/json", orjson.dumps(body)) == [
        {"path": "body.friends[0].owner.email", "message": "is required"}]
    get = op(s, "GET", "/pets/x")
    assert get.validate_request("", []) == [
        {"path": "path.petId", "message": 'value is not of type "integer"'}]


def write(tmp_path: Path, text: str, name: str = "api.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


HEAD = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\n"


def body_ref(ref: str) -> str:
    return (HEAD + "paths:\n  /x:\n    post:\n      requestBody:\n        content:\n"
            f"          application/json:\n            schema: {{$ref: '{ref}'}}\n"
            "      responses: {'200': {description: ok}}\n")


@pytest.mark.parametrize("ref", ["https://evil.example/s.yaml#/S", "http://localhost/s.json",
                                 "file:///etc/passwd", "//evil.example/s.yaml"])
def test_remote_refs_refused(tmp_path, ref):
    with pytest.raises(LoadError) as exc:
        load_spec(write(tmp_path, body_ref(ref)))
    assert "refused" in str(exc.value) or "no such file" in str(exc.value)
    if ref.startswith("http"):
        assert str(exc.value) == (
            f"api.yaml: paths./x.post.requestBody.content.application/json.schema: $ref '{ref}' "
            "refused: only local references are allowed (same document or a file next to the spec)")


def test_refs_outside_the_spec_directory_refused(tmp_path):
    write(tmp_path, "S: {type: string}\n", "outside.yaml")
    spec_dir = tmp_path / "spec"
    with pytest.raises(LoadError, match="points outside the spec's directory"):
        load_spec(write(spec_dir, body_ref("../outside.yaml#/S")))
    with pytest.raises(LoadError, match="points outside the spec's directory"):
        load_spec(write(spec_dir, body_ref(str(tmp_path / "outside.yaml") + "#/S")))
    (spec_dir / "link.yaml").symlink_to(tmp_path / "outside.yaml")
    with pytest.raises(LoadError, match="points outside the spec's directory"):
        load_spec(write(spec_dir, body_ref("link.yaml#/S")))
    # an absolute path inside the directory is local
    write(spec_dir, "S: {type: string}\n", "inside.yaml")
    s = load_spec(write(spec_dir, body_ref(str(spec_dir / "inside.yaml") + "#/S")))
    assert paths(op(s, "POST", "/x").validate_request("", [], "application/json", b"1")) == ["body"]


def test_missing_ref_target(tmp_path):
    with pytest.raises(LoadError, match="'#/components/schemas/Nope' does not exist"):
        load_spec(write(tmp_path, body_ref("#/components/schemas/Nope")))
    with pytest.raises(LoadError, match="no such file"):
        load_spec(write(tmp_path, body_ref("gone.yaml#/S")))


def test_ref_cycles(tmp_path):
    text = (HEAD + "paths:\n  /x:\n    get:\n      parameters: [{$ref: '#/components/parameters/A'}]\n"
            "      responses: {'200': {description: ok}}\n"
            "components:\n  parameters:\n    A: {$ref: '#/components/parameters/B'}\n"
            "    B: {$ref: '#/components/parameters/A'}\n")
    with pytest.raises(LoadError) as exc:
        load_spec(write(tmp_path, text))
    assert str(exc.value) == (
        "api.yaml: paths./x.get.parameters[0]: $ref cycle: api.yaml#/components/parameters/A -> "
        "api.yaml#/components/parameters/B -> api.yaml#/components/parameters/A")
    schemas = (body_ref("#/components/schemas/A") + "components:\n  schemas:\n"
               "    A: {$ref: '#/components/schemas/B'}\n    B: {$ref: '#/components/schemas/A'}\n")
    with pytest.raises(LoadError, match=r"\$ref cycle"):
        load_spec(write(tmp_path, schemas))
    path_item = (HEAD + "paths:\n  /x: {$ref: '#/paths/~1y'}\n  /y: {$ref: '#/paths/~1x'}\n")
    with pytest.raises(LoadError, match=r"\$ref cycle"):
        load_spec(write(tmp_path, path_item))


def test_recursive_schemas_across_files_are_fine(tmp_path):
    write(tmp_path, "Node: {type: object, properties: {next: {$ref: '#/Node'}, "
                    "v: {type: integer}}}\n", "node.yaml")
    s = load_spec(write(tmp_path, body_ref("node.yaml#/Node")))
    m = op(s, "POST", "/x")
    assert m.validate_request("", [], "application/json", b'{"next": {"next": {"v": "x"}}}') == [
        {"path": "body.next.next.v", "message": 'value is not of type "integer"'}]


def test_yaml_alias_bomb_is_bounded(tmp_path, monkeypatch):
    from fastgate.openapi import loader
    monkeypatch.setattr(loader, "MAX_NODES", 10_000)
    lines = ["a0: &a0 {type: string}"]
    for i in range(1, 25):
        lines.append(f"a{i}: &a{i} {{allOf: [*a{i - 1}, *a{i - 1}]}}")
    text = body_ref("#/components/schemas/Bomb") + "components:\n  schemas:\n    Bomb: *a24\n"
    text = text.replace("components:", "x-anchors:\n  " + "\n  ".join(lines) + "\ncomponents:", 1)
    with pytest.raises(LoadError, match="more than 10000 schema nodes"):
        load_spec(write(tmp_path, text))


@pytest.mark.parametrize("text,message", [
    ("swagger: '2.0'\npaths: {}\n", "api.yaml: only OpenAPI 3.0 and 3.1 are supported ('swagger: 2.0')"),
    ("openapi: 3.2.0\npaths: {}\n", "api.yaml: only OpenAPI 3.0 and 3.1 are supported ('openapi: 3.2.0')"),
    ("- a\n", "api.yaml: not an OpenAPI document (expected a mapping)"),
    (HEAD + "paths:\n  /a/{x}: {get: {responses: {}}}\n  /a/{y}: {post: {responses: {}}}\n",
     "api.yaml: paths: '/a/{y}' and '/a/{x}' are the same path with different parameter names"),
    (HEAD + "paths:\n  /a:\n    get:\n      parameters: [{name: id, in: path, required: true}]\n",
     "api.yaml: paths./a.get: path parameter 'id' is not in the path template"),
    (HEAD + "paths:\n  /a: {get: {security: [{nope: []}]}}\n",
     "api.yaml: paths./a.get.security[0]: unknown security scheme 'nope'"),
    (HEAD + "paths:\n  /a: {get: {parameters: [{name: q, in: query, schema: {pattern: '(('}}]}}\n",
     "api.yaml: paths./a.get.parameters[0].schema: invalid schema: value is not a \"regex\""),
])
def test_load_errors(tmp_path, text, message):
    with pytest.raises(LoadError) as exc:
        load_spec(write(tmp_path, text))
    assert str(exc.value) == message

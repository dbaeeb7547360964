"""Micro-benchmarks: the JSON Schema library behind fastgate.openapi, on the petstore Order schema
(customer object, items array of objects with nested arrays, $refs, formats, exclusive bounds).

Contenders, each compiled once from the same imported 2020-12 bundle: jsonschema-rs (Rust,
Draft 2020-12, the choice), fastjsonschema (compiles the schema to Python; Draft 7 at most),
jsonschema (the reference implementation, Draft 2020-12). Invariant: every library first agrees
with the expected verdict on every case in CASES (asserted); timings are never asserted.
Run: .venv/bin/pytest benchmarks/micro/test_openapi_validation_bench.py -s  (last test: table)
"""

from __future__ import annotations

import time
from pathlib import Path

import fastjsonschema
import jsonschema
import jsonschema_rs
import orjson
import pytest

from fastgate.openapi import load, load_spec
from fastgate.openapi.loader import bundle

SPEC = Path(__file__).resolve().parents[2] / "tests" / "data" / "openapi" / "petstore.yaml"
_doc = load(SPEC)
_schema, _defs = _doc.import_schema({"$ref": "#/components/schemas/Order"}, _doc.path, "bench")
BUNDLE = bundle(_schema, _defs)
DRAFT7 = {k: v for k, v in BUNDLE.items() if k != "$schema"}  # same keywords, valid draft 7

RS = jsonschema_rs.Draft202012Validator(BUNDLE, validate_formats=True, offline=True, mask="value")
FAST = fastjsonschema.compile(DRAFT7, formats={})  # default formats include email
REF = jsonschema.Draft202012Validator(BUNDLE, format_checker=jsonschema.FormatChecker())


def _order(n_items: int) -> dict:
    return {
        "customer": {"name": "Zoë O'Brien", "email": "zoe@example.com"},
        "items": [{"sku": f"ABC-{1000 + i}", "quantity": 1 + i % 4, "price": 9.99 + i,
                   "options": [["red", "large"], ["gift"]]} for i in range(n_items)],
        "note": "leave at the door, ring twice",
        "discount": 12.5,
    }


VALID = _order(8)  # ~1 KiB as JSON
INVALID = _order(8)
INVALID["items"][2]["price"] = "12.00"
del INVALID["items"][5]["sku"]
INVALID["items"][7]["options"].append(["a", "b", "c"])
INVALID["coupon"] = "X"
BODY_VALID = orjson.dumps(VALID)
BODY_INVALID = orjson.dumps(INVALID)

# (instance, valid?) — the translation and the libraries must agree on all of these.
CASES = [
    (VALID, True),
    (INVALID, False),
    ({**VALID, "note": None}, True),  # 3.0 nullable -> ["string", "null"]
    ({**VALID, "discount": 100}, False),  # 3.0 exclusiveMaximum: true
    ({**VALID, "items": []}, False),  # minItems
    ({**VALID, "items": [{**VALID["items"][0], "price": 0}]}, False),  # exclusiveMinimum: true
    ({**VALID, "items": [{**VALID["items"][0], "quantity": 2**31}]}, False),  # format int32
    ({**VALID, "items": [{**VALID["items"][0], "sku": "abc-1"}]}, False),  # pattern
    ({**VALID, "customer": {"name": "x"}}, False),  # nested required
    ({**VALID, "id": "0b9f3c6e-8d4a-4b7e-9c1d-2f5e6a7b8c9d"}, True),  # readOnly: not required
    ({**VALID, "id": "not-a-uuid"}, False),  # format: uuid is asserted
]


def _fast_valid(instance) -> bool:
    try:
        FAST(instance)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def _rs_errors(instance):
    return [] if RS.is_valid(instance) else list(RS.iter_errors(instance))


def _fast_errors(instance):
    try:
        FAST(instance)
    except fastjsonschema.JsonSchemaValueException as exc:
        return [exc]  # fastjsonschema stops at the first error
    return []


def _ref_errors(instance):
    return list(REF.iter_errors(instance))


@pytest.mark.parametrize("instance,expected", CASES)
def test_agree(instance, expected):
    assert RS.is_valid(instance) is expected
    assert _fast_valid(instance) is expected
    assert REF.is_valid(instance) is expected


def test_error_counts():
    assert len(_rs_errors(INVALID)) == 4
    assert len(_ref_errors(INVALID)) == 4
    assert len(_fast_errors(INVALID)) == 1


OP = load_spec(SPEC).match("POST", "/orders").operation
HEADERS = [(b"x-trace", b"0123abcd"), (b"content-type", b"application/json")]

ROWS = [
    ("jsonschema-rs", "valid", RS.is_valid, VALID),
    ("jsonschema-rs", "invalid, all errors", _rs_errors, INVALID),
    ("fastjsonschema", "valid", FAST, VALID),
    ("fastjsonschema", "invalid, first error", _fast_errors, INVALID),
    ("jsonschema", "valid", REF.is_valid, VALID),
    ("jsonschema", "invalid, all errors", _ref_errors, INVALID),
]


@pytest.mark.parametrize("lib,case,fn,instance", ROWS, ids=[f"{r[0]}-{r[1]}" for r in ROWS])
@pytest.mark.benchmark(group="openapi-validation")
def test_validate(benchmark, lib, case, fn, instance):
    benchmark(fn, instance)


@pytest.mark.benchmark(group="openapi-validation")
def test_operation_validate_request(benchmark):
    assert benchmark(OP.validate_request, {}, b"dry_run=true", HEADERS, None, BODY_VALID) == []


def _best(fn, arg, batch: int, rounds: int = 7) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(batch):
            fn(arg)
        best = min(best, (time.perf_counter() - t0) / batch)
    return best * 1e6


def test_print_table(capsys):
    rows = []
    for lib, case, fn, instance in ROWS:
        batch = 200 if lib == "jsonschema" else 2_000
        rows.append((lib, case, _best(fn, instance, batch)))
    rs = {case.split(",")[0]: us for lib, case, us in rows if lib == "jsonschema-rs"}
    parse = _best(orjson.loads, BODY_VALID, 2_000)
    full_ok = _best(lambda b: OP.validate_request({}, b"dry_run=true", HEADERS, None, b),
                    BODY_VALID, 2_000)
    full_bad = _best(lambda b: OP.validate_request({}, b"dry_run=true", HEADERS, None, b),
                     BODY_INVALID, 2_000)
    with capsys.disabled():
        print(f"\nOrder body: {len(BODY_VALID)} B, {len(VALID['items'])} items")
        print(f"| {'library':15} | {'instance':22} | {'µs/call':>8} | {'/ jsonschema-rs':>15} |")
        print(f"|{'-' * 17}|{'-' * 24}|{'-' * 10}|{'-' * 17}|")
        for lib, case, us in rows:
            ratio = us / rs[case.split(",")[0]]
            print(f"| {lib:15} | {case:22} | {us:8.2f} | {ratio:14.1f}x |")
        print(f"orjson.loads of the body: {parse:.2f} µs; Operation.validate_request (header, "
              f"query, parse + validate): valid {full_ok:.2f} µs, invalid {full_bad:.2f} µs")

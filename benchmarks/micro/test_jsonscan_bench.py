"""Micro-benchmarks: fastgate._native.jsonscan.scan_json against orjson.loads and json.loads.

Same bytes through each: realistic API payloads (an orders list) of exactly 1 KiB, 64 KiB and
1 MiB, generated deterministically; invariant: every payload is valid and within the limits
(asserted), and the last test prints MB/s and the orjson/scanner ratio. Timing is never asserted.
Run: .venv/bin/pytest benchmarks/micro/test_jsonscan_bench.py --benchmark-only -s
"""

from __future__ import annotations

import json
import random

import orjson
import pytest

from fastgate._native.jsonscan import JsonLimits, JsonScanner, scan_json

# What a gateway would configure for an orders API that returns up to 10k orders.
LIMITS = JsonLimits(max_depth=20, max_string_length=10_000, max_key_length=256,
                    max_array_elements=10_000, max_object_entries=1000, max_bytes=2 << 20)

_NAMES = ["Alice Smith", "Bob Jones", "Chloé Dubois", "Dmitri Ivanov", "李小龙", "Zoë O'Brien",
          "Émile Zola", "Søren Kierkegaard"]
_PRODUCTS = ["Widget", 'Gadget "Pro"', "Gizmo\\Max", "Thing", "Café crème", "Doohickey 3000"]
_STATUS = ["pending", "paid", "shipped", "delivered", "cancelled"]


def _order(rng: random.Random, i: int) -> dict:
    items = [
        {
            "sku": f"SKU-{rng.randint(1000, 9999)}",
            "name": rng.choice(_PRODUCTS),
            "qty": rng.randint(1, 5),
            "unit_price": round(rng.uniform(1, 500), 2),
            "discount": None if rng.random() < 0.7 else 0.1,
        }
        for _ in range(rng.randint(1, 4))
    ]
    return {
        "id": 100_000 + i,
        "status": rng.choice(_STATUS),
        "created_at": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z",
        "customer": {
            "id": rng.randint(1, 10**6),
            "name": rng.choice(_NAMES),
            "email": f"user{rng.randint(1, 99_999)}@example.com",
            "address": {"street": f"{rng.randint(1, 999)} Main Street", "city": "Springfield",
                        "zip": f"{rng.randint(10_000, 99_999)}", "country": "US"},
        },
        "items": items,
        "total": round(sum(x["qty"] * x["unit_price"] for x in items), 2),
        "currency": "EUR",
        "paid": rng.random() < 0.5,
        "notes": None if rng.random() < 0.8 else "Leave at the door, please.\nThanks! \U0001f4e6",
        "tags": rng.sample(["gift", "express", "fragile", "b2b", "promo"], rng.randint(0, 3)),
    }


def orders_payload(size: int, seed: int = 1234) -> bytes:
    """A compact UTF-8 JSON orders page of exactly `size` bytes (padded in a cursor string)."""
    rng = random.Random(seed)
    orders: list[dict] = []

    def render(pad: int) -> bytes:
        doc = {"orders": orders, "count": len(orders), "next_cursor": "c" * pad}
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()

    total = 64  # the envelope, generously
    while True:
        order = _order(rng, len(orders))
        total += len(json.dumps(order, ensure_ascii=False, separators=(",", ":")).encode()) + 1
        if total > size:
            break
        orders.append(order)
    while len(render(0)) > size:
        orders.pop()
    data = render(size - len(render(0)))
    assert len(data) == size
    return data


SIZES = {"1KiB": 1 << 10, "64KiB": 64 << 10, "1MiB": 1 << 20}
PAYLOADS = {name: orders_payload(n) for name, n in SIZES.items()}
CHUNK = 4096
CHUNKS_1M = [PAYLOADS["1MiB"][i : i + CHUNK] for i in range(0, len(PAYLOADS["1MiB"]), CHUNK)]

_median: dict[tuple[str, str], float] = {}


def _time(benchmark, key: tuple[str, str], fn, *args):
    size = len(PAYLOADS[key[1]])
    if size <= 4096:  # batch sub-10 µs calls so the timer is not what is measured
        result = benchmark.pedantic(fn, args=args, iterations=200, rounds=500, warmup_rounds=5)
    else:
        result = benchmark(fn, *args)
    if not benchmark.disabled and benchmark.stats is not None:
        _median[key] = benchmark.stats.stats.median
    return result


@pytest.fixture(scope="module", autouse=True)
def _payloads_are_valid_and_within_limits():
    for name, data in PAYLOADS.items():
        assert len(data) == SIZES[name]
        scan_json(data, LIMITS)
        assert orjson.loads(data) == json.loads(data)
    s = JsonScanner(LIMITS)
    for chunk in CHUNKS_1M:
        s.feed(chunk)
    s.finish()
    assert s.max_depth_seen == 5


@pytest.mark.parametrize("name", list(SIZES))
@pytest.mark.benchmark(group="json")
def test_scan_json(benchmark, name):
    _time(benchmark, ("scan_json", name), scan_json, PAYLOADS[name], LIMITS)


@pytest.mark.parametrize("name", list(SIZES))
@pytest.mark.benchmark(group="json")
def test_orjson_loads(benchmark, name):
    assert _time(benchmark, ("orjson.loads", name), orjson.loads, PAYLOADS[name])


@pytest.mark.parametrize("name", list(SIZES))
@pytest.mark.benchmark(group="json")
def test_json_loads(benchmark, name):
    assert _time(benchmark, ("json.loads", name), json.loads, PAYLOADS[name])


def _feed_chunks(chunks) -> None:
    s = JsonScanner(LIMITS)
    for chunk in chunks:
        s.feed(chunk)
    s.finish()


@pytest.mark.benchmark(group="json")
def test_scanner_feed_4k_chunks(benchmark, capsys):
    _time(benchmark, ("feed 4 KiB chunks", "1MiB"), _feed_chunks, CHUNKS_1M)
    _report(capsys)  # last in the file: every timing is in


def _report(capsys) -> None:
    """Print the table (MB/s = 10**6 bytes per second; ratio = orjson time / this time)."""
    if not _median:
        return
    rows = ["scan_json", "feed 4 KiB chunks", "orjson.loads", "json.loads"]
    with capsys.disabled():
        print("\n\n| payload | how | µs (median) | MB/s | orjson time / this |")
        print("|---|---|---:|---:|---:|")
        for name in SIZES:
            ref = _median.get(("orjson.loads", name))
            for how in rows:
                t = _median.get((how, name))
                if t is None:
                    continue
                ratio = f"{ref / t:.2f}x" if ref else "-"
                mbps = SIZES[name] / t / 1e6
                print(f"| {name} | {how} | {t * 1e6:,.1f} | {mbps:,.0f} | {ratio} |")

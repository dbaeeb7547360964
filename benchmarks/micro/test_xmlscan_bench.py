"""Micro-benchmarks: fastgate._native.xmlscan against lxml.etree.fromstring (the reference).

The same SOAP-like order payloads (namespaced elements, attributes, entities, CDATA, non-ASCII
text) of about 1 KiB, 64 KiB and 1 MiB go through scan_xml (whole, and fed in 16 KiB chunks)
and through lxml; each pair prints MB/s and the lxml/scan time ratio (the goal is >= 2x).
Invariant: both accept every payload (asserted); timings are reported, never asserted.
Run: .venv/bin/pytest benchmarks/micro/test_xmlscan_bench.py --benchmark-only -s
"""

from __future__ import annotations

import pytest
from lxml import etree

from fastgate._native.xmlscan import XmlLimits, XmlScanner, scan_xml

# A gateway in front of 1 MiB SOAP batches would raise these two; everything else is default.
LIMITS = XmlLimits(max_elements=None, max_children=None, max_bytes=None)
CHUNK = 16 * 1024

_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:ord="urn:example:orders:v2" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
    "  <soap:Header>\n"
    '    <ord:Auth token="c2VjcmV0LXRva2VuLTEyMzQ1Njc4OTA=" realm="api"/>\n'
    "  </soap:Header>\n"
    "  <soap:Body>\n"
    '    <ord:PlaceOrders batch="20240501-17">\n'
)
_ORDER = (
    '      <ord:Order id="{i}" status="open" created="2024-05-01T12:{m:02d}:00Z" currency="EUR">\n'
    '        <ord:Customer id="C{c}" tier="gold">\n'
    "          <ord:Name>Jane Doe &amp; Sons Ltd.</ord:Name>\n"
    "          <ord:Email>jane.doe{c}@example.com</ord:Email>\n"
    '          <ord:Address country="DE"><ord:Street>Hauptstra\u00dfe {i}</ord:Street>'
    "<ord:City>M\u00fcnchen</ord:City><ord:Zip>80331</ord:Zip></ord:Address>\n"
    "        </ord:Customer>\n"
    "        <ord:Items>\n"
    '          <ord:Item sku="SKU-{i}-A" qty="2" price="19.99">Widget, blue</ord:Item>\n'
    '          <ord:Item sku="SKU-{i}-B" qty="1" price="5.49">Gadget &lt;small&gt;</ord:Item>\n'
    "        </ord:Items>\n"
    "        <ord:Note><![CDATA[Leave at the door; ring twice.]]></ord:Note>\n"
    "      </ord:Order>\n"
)
_TAIL = "    </ord:PlaceOrders>\n  </soap:Body>\n</soap:Envelope>\n"


def soap_payload(target: int) -> bytes:
    """The envelope with as many orders as fit in about `target` bytes (at least one)."""
    orders: list[str] = []
    size = len((_HEAD + _TAIL).encode())
    i = 0
    while not orders or size < target:
        rec = _ORDER.format(i=i, m=i % 60, c=1000 + i)
        n = len(rec.encode())
        if orders and size + n > target:
            break
        orders.append(rec)
        size += n
        i += 1
    return (_HEAD + "".join(orders) + _TAIL).encode()


PAYLOADS = {"1k": soap_payload(1024), "64k": soap_payload(64 * 1024), "1m": soap_payload(1 << 20)}
# (iterations per round, rounds): enough work per round to time, a few seconds per test.
PLAN = {"1k": (100, 300), "64k": (5, 200), "1m": (1, 40)}
_median: dict[str, float] = {}


def scan_chunked(data: bytes) -> None:
    s = XmlScanner(LIMITS)
    view = memoryview(data)
    for k in range(0, len(data), CHUNK):
        s.feed(view[k : k + CHUNK])
    s.finish()


def _run(benchmark, key: str, size: str, fn, *args):
    iterations, rounds = PLAN[size]
    result = benchmark.pedantic(fn, args=args, iterations=iterations, rounds=rounds)
    if not benchmark.disabled and benchmark.stats is not None:
        _median[f"{key}_{size}"] = benchmark.stats.stats.median  # seconds per call
    return result


def test_payloads_are_accepted_by_both():
    for size, data in PAYLOADS.items():
        scan_xml(data, LIMITS)
        scan_chunked(data)
        root = etree.fromstring(data)
        assert root.tag == "{http://schemas.xmlsoap.org/soap/envelope/}Envelope", size
    assert 900 <= len(PAYLOADS["1k"]) <= 1200
    assert 60_000 <= len(PAYLOADS["64k"]) <= 64 * 1024
    assert 1_000_000 <= len(PAYLOADS["1m"]) <= 1 << 20


@pytest.mark.parametrize("size", PAYLOADS)
def test_scan_xml(benchmark, size):
    benchmark.group = f"xml-{size}"
    _run(benchmark, "scan", size, scan_xml, PAYLOADS[size], LIMITS)


@pytest.mark.parametrize("size", PAYLOADS)
def test_scan_xml_chunked(benchmark, size):
    benchmark.group = f"xml-{size}"
    _run(benchmark, "chunked", size, scan_chunked, PAYLOADS[size])


@pytest.mark.parametrize("size", PAYLOADS)
def test_lxml_fromstring(benchmark, size, capsys):
    benchmark.group = f"xml-{size}"
    root = _run(benchmark, "lxml", size, etree.fromstring, PAYLOADS[size])
    assert root is not None
    keys = (f"scan_{size}", f"chunked_{size}", f"lxml_{size}")
    if not all(k in _median for k in keys):
        return
    n = len(PAYLOADS[size])
    scan, chunked, ref = (_median[k] for k in keys)
    with capsys.disabled():
        print(
            f"\nxml {size:>3} ({n:>7} B): scan_xml {n / scan / 1e6:7.1f} MB/s"
            f" | 16 KiB chunks {n / chunked / 1e6:7.1f} MB/s"
            f" | lxml.fromstring {n / ref / 1e6:6.1f} MB/s"
            f" | ratio {ref / scan:4.1f}x (chunked {ref / chunked:4.1f}x)"
        )

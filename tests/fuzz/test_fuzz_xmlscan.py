"""A short run of the atheris target tests/fuzz/fuzz_xmlscan.py, in a subprocess.

Invariant: a seeded run of a few seconds (the small documents of tests/native/xml_corpus.py as
seeds, an XML token dictionary) finds no disagreement and exits 0. The long run is `make fuzz`
(see fuzz_xmlscan.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.native.xml_corpus import CASES

TARGET = Path(__file__).resolve().parent / "fuzz_xmlscan.py"

# libFuzzer dictionary: markup, references, namespace names and UTF-8 edges.
TOKENS = [
    "<", ">", "</", "/>", "<?", "?>", "<!--", "-->", "<![CDATA[", "]]>", "<!DOCTYPE", "=", "'",
    '\\"', "&lt;", "&amp;", "&#x", "&#", ";", ":", "xmlns", "xmlns:", "xml:", "<?xml ",
    "version='1.0'", "encoding='UTF-8'", "urn:a", "http://x/", "\\x0d\\x0a",
    "\\xc3\\xa9", "\\xe6\\x97\\xa5", "\\xf0\\x9f\\x98\\x80", "\\xed\\xa0\\x80", "\\xef\\xbb\\xbf",
    "\\xef\\xbf\\xbe", "\\xcc\\x80", "\\xc2\\xb7",
]  # fmt: skip


def _atheris_works() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import atheris"], capture_output=True)
    return probe.returncode == 0


def test_fuzz_xmlscan_short_run(tmp_path: Path):
    if not _atheris_works():
        pytest.skip("atheris cannot be imported by this interpreter (pip install atheris)")
    seeds = tmp_path / "corpus"
    seeds.mkdir()
    for i, case in enumerate(CASES):
        if len(case.data) <= 2048:
            # Two leading bytes pick the split and the limits preset (see check_one).
            (seeds / case.name).write_bytes(bytes([i % 256, (i * 7) % 256]) + case.data)
    (seeds / "soap").write_bytes(
        b"\x03\x00<?xml version='1.0' encoding='UTF-8'?>\n<s:Envelope xmlns:s='urn:s' "
        b"xmlns:o='urn:o'><s:Body><o:Order id='1' o:qty='2'>Zo\xc3\xab &amp; co<![CDATA[<x>]]>"
        b"<!-- c --><?pi d?></o:Order></s:Body></s:Envelope>"
    )
    dictionary = tmp_path / "xml.dict"
    dictionary.write_text("".join(f'"{t}"\n' for t in TOKENS))
    cmd = [
        sys.executable, str(TARGET),
        "-runs=300000", "-max_total_time=5", "-seed=1", "-max_len=4096", "-timeout=20",
        f"-dict={dictionary}", str(seeds),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert "Done" in proc.stderr

"""A short run of the atheris target tests/fuzz/fuzz_jsonscan.py, in a subprocess.

Invariant: a seeded run of a few seconds (JSONTestSuite files as seeds, a JSON token dictionary)
finds no disagreement and exits 0. The long run is `make fuzz` (see fuzz_jsonscan.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TARGET = Path(__file__).resolve().parent / "fuzz_jsonscan.py"
CORPUS = Path(__file__).resolve().parents[3] / "shared/data/jsontestsuite"

# libFuzzer dictionary: JSON tokens and the byte sequences at UTF-8 / surrogate edges.
TOKENS = [
    "{", "}", "[", "]", ",", ":", '\\"', "\\\\", "true", "false", "null", "-0.5e+9", "1E-2",
    "\\\\u", "\\\\ud834\\\\udd1e", "\\\\ud800", "\\\\udc00", "\\\\u0000", "\\\\n",
    "\\xc3\\xa9", "\\xe4\\xb8\\xad", "\\xf0\\x9f\\x98\\x80", "\\xed\\xa0\\x80", "\\xef\\xbb\\xbf",
    "\\xf4\\x90\\x80\\x80", "\\xc0\\x80", " \\x09\\x0a\\x0d",
]


def _atheris_works() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import atheris"], capture_output=True)
    return probe.returncode == 0


def test_fuzz_jsonscan_short_run(tmp_path: Path):
    if not _atheris_works():
        pytest.skip("atheris cannot be imported by this interpreter (pip install atheris)")
    seeds = tmp_path / "corpus"
    seeds.mkdir()
    files = sorted(CORPUS.glob("*.json")) if CORPUS.is_dir() else []
    for i, path in enumerate(files):
        data = path.read_bytes()
        if len(data) <= 4096:
            # Two leading bytes pick the split and the limits (see check_one).
            (seeds / path.name).write_bytes(bytes([i % 256, (i * 7) % 256]) + data)
    (seeds / "orders").write_bytes(
        b'\x03\x04{"orders":[{"id":1,"name":"Zo\xc3\xab","tags":["a"],"total":1.5e2}],"n":null}'
    )
    dictionary = tmp_path / "json.dict"
    dictionary.write_text("".join(f'"{t}"\n' for t in TOKENS))
    cmd = [
        sys.executable, str(TARGET),
        "-runs=300000", "-max_total_time=6", "-seed=1", "-max_len=4096", "-timeout=20",
        f"-dict={dictionary}", str(seeds),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert "Done" in proc.stderr

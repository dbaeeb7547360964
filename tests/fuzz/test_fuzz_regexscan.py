"""A short run of the atheris target tests/fuzz/fuzz_regexscan.py, in a subprocess.

Invariant: a seeded run of a few seconds (attack and benign seeds, a dictionary of encodings)
finds no disagreement, no crash, no hang and no runaway memory, and exits 0. The long run is
`make fuzz` (see fuzz_regexscan.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TARGET = Path(__file__).resolve().parent / "fuzz_regexscan.py"

# Seeds: byte 0 = kind (low bits) and number of cut bytes (bits 4-6), then the cut bytes.
SEEDS = {
    "union": b"\x21\x05\x03id=1 UN/**/ION SEL%45CT 1,2",
    "taut": b"\x11\x02%2527%20or%201%3D1--",
    "xss": b"\x33\x04\x07\x01&lt;scr&#x69;pt&gt;alert(1)",
    "json": b"\x44\x05\x05\x05\x05{\"a\": \"\\u003cscript\\u003e\", \"b\": \"..\\\\..\\\\x\"}",
    "comment": b"\x53\x02\x09\x01x/*!50000union*/ /*aaaa*/ select /* <b> */ %c0%ae%c0%ae%c0%af",
    "benign": b"\x03Mr. O'Brien ordered by date; AT&T 50% off &amp; more",
}
TOKENS = [
    "%", "%25", "%2527", "%u003c", "%c0%af", "+", "&", "&#", "&#x", "&lt;", "&lt", "&colon;",
    "&nbsp;", ";", "\\\\u", "\\\\x", "\\\\\\\\", "/*", "*/", "/**/", "/*!", "/*M!", "\\x00",
    "\\xc0", "\\xc1", " \\x09\\x0a", "union", "select", "script", "<", "'", " or ", "1=1",
]


def _atheris_works() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import atheris"], capture_output=True)
    return probe.returncode == 0


def test_fuzz_regexscan_short_run(tmp_path: Path) -> None:
    if not _atheris_works():
        pytest.skip("atheris cannot be imported by this interpreter (pip install atheris)")
    seeds = tmp_path / "corpus"
    seeds.mkdir()
    for name, data in SEEDS.items():
        (seeds / name).write_bytes(data)
    dictionary = tmp_path / "regex.dict"
    dictionary.write_text("".join(f'"{t}"\n' for t in TOKENS))
    cmd = [
        sys.executable, str(TARGET),
        "-runs=2000000", "-max_total_time=5", "-seed=1", "-max_len=4096", "-timeout=10",
        "-rss_limit_mb=1024", f"-dict={dictionary}", str(seeds),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert "Done" in proc.stderr

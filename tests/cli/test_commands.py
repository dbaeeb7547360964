"""The commands as a user runs them: real subprocesses, exit codes and exact output."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

from fastgate.credentials import verify_api_key, verify_password

ROOT = Path(__file__).resolve().parents[2]


def fastgate(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastgate.cli", *args], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def test_check_ok(tmp_path):
    cfg = tmp_path / "g.yaml"
    cfg.write_text("version: 1\nlisteners:\n  - name: a\n    address: 127.0.0.1:0\n")
    r = fastgate("check", "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{cfg}: ok"


def test_check_reports_every_problem_with_file_line_and_path(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "version: 1\n"
        "listeners:\n"
        "  - name: a\n"
        "    address: 127.0.0.1:0\n"
        "limits:\n"
        "  max_hedaers: 5\n"
        "  header_timeout: soon\n"
        "apis:\n"
        "  - name: x\n"
        "    base_path: /x\n"
        "    upstream: {urls: [ftp://h]}\n"
    )
    r = fastgate("check", "-c", str(cfg))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert lines == [
        f"{cfg}:6: limits.max_hedaers: unknown key",
        f'{cfg}:7: limits.header_timeout: expected a duration like "1m"',
        f'{cfg}:11: apis[0].upstream.urls[0]: expected a URL like "http://127.0.0.1:9000"',
    ]


def test_run_refuses_a_bad_config_with_exit_2(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("version: 2\nlisteners: []\n")
    r = fastgate("run", "-c", str(cfg))
    assert r.returncode == 2
    assert r.stderr.startswith(f"{cfg}:1: version:")


def test_hash_password_reads_stdin_and_verifies():
    r = fastgate("hash-password", stdin="correct horse battery staple\n")
    assert r.returncode == 0
    digest = r.stdout.strip()
    assert digest.startswith("scrypt$")
    assert verify_password("correct horse battery staple", digest)
    assert not verify_password("correct horse battery stapl", digest)
    assert "correct horse" not in r.stdout + r.stderr


def test_hash_password_never_takes_argv():
    r = fastgate("hash-password", "secret")
    assert r.returncode == 2  # argparse refuses extra arguments


def test_new_api_key_prints_key_then_hash():
    r = fastgate("new-api-key")
    assert r.returncode == 0
    key, digest = r.stdout.strip().splitlines()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert digest == "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    assert verify_api_key(key, digest)
    assert len(key) >= 40
    again = fastgate("new-api-key").stdout.split()[0]
    assert again != key


def test_audit_lists_findings(tmp_path):
    cfg = tmp_path / "g.yaml"
    cfg.write_text(
        "version: 1\nlisteners:\n  - name: a\n    address: 0.0.0.0:0\n"
        "apis:\n  - name: x\n    base_path: /x\n    upstream: {urls: ['http://10.0.0.1:80']}\n"
    )
    r = fastgate("audit", "-c", str(cfg))
    assert r.returncode == 0
    out = r.stdout
    assert re.search(rf"^{re.escape(str(cfg))}:3: high: listeners\[0\]", out, re.M), out
    assert "apis[0]" in out

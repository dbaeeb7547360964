"""The demo config stays valid: config/gateway.yaml loads once `make demo`'s files exist."""

from __future__ import annotations

import shutil
from pathlib import Path

from fastgate.config import load_config
from fastgate.credentials import verify_api_key, verify_password
from fastgate.demo import DEMO_KEY, DEMO_PASSWORD, prepare

ROOT = Path(__file__).resolve().parents[1]


def test_demo_config_loads_with_demo_files(tmp_path):
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config" / "gateway.yaml", tmp_path / "config" / "gateway.yaml")
    prepare(tmp_path / ".demo")
    cfg = load_config(tmp_path / "config" / "gateway.yaml")
    assert {api.name for api in cfg.apis} == {"orders", "echo"}
    orders = next(api for api in cfg.apis if api.name == "orders")
    assert orders.authentication == ("oauth2", "api_key", "basic", "mtls")
    # the secrets the demo prints match the hashes in the config
    key = cfg.applications[0].api_keys[0]
    assert verify_api_key(DEMO_KEY, key.hash)
    assert verify_password(DEMO_PASSWORD, cfg.users[0].password_hash)

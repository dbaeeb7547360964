"""Process lifecycle through real signals: SIGHUP reload (good, bad, under load) and SIGTERM drain."""

from __future__ import annotations

import signal
import threading
import time

from tests.helpers import connect, get, read_response
from tests.integration.conftest import config_yaml


def _apis(port: int, base: str) -> str:
    return f"""
  - name: echo
    base_path: {base}
    upstream:
      urls: [http://127.0.0.1:{port}]
"""


def test_sighup_applies_a_good_config(pki, echo, start_gateway, tls_client):
    g = start_gateway(config_yaml(pki, echo.port, apis=_apis(echo.port, "/one")))
    port = g.ports["public"]
    assert get(port, "/one/x", tls_client).status == 200
    text = config_yaml(pki, echo.port, apis=_apis(echo.port, "/two"))
    text = text.replace("127.0.0.1:0", f"127.0.0.1:{port}", 1)
    g.path.write_text(text)
    g.sighup()
    g.wait_line("config reloaded", stream="err")
    assert get(port, "/two/x", tls_client).status == 200
    assert get(port, "/one/x", tls_client).status == 404


def test_sighup_refuses_a_bad_config_and_keeps_serving(pki, echo, start_gateway, tls_client):
    g = start_gateway(config_yaml(pki, echo.port, apis=_apis(echo.port, "/one")))
    port = g.ports["public"]
    good = g.path.read_text()
    g.path.write_text(good.replace("upstream:", "upstream:\n      bogus: 1", 1))
    g.sighup()
    m = g.wait_line(r"reload refused: .*apis\[0\]\.upstream\.bogus: unknown key", stream="err")
    assert str(g.path) in m.string
    assert get(port, "/one/x", tls_client).status == 200
    metrics = get(g.admin_port, "/metrics").body.decode()
    assert 'fastgate_config_reloads_total{result="refused"} 1.0' in metrics


def test_reload_under_load_fails_no_request(pki, echo, start_gateway, tls_client):
    g = start_gateway(config_yaml(pki, echo.port, apis=_apis(echo.port, "/one")))
    port = g.ports["public"]
    text = g.path.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}", 1)
    failures: list[str] = []
    done = 0
    stop = threading.Event()

    def load(new_conn_each: bool) -> None:
        nonlocal done
        s = None
        buf = bytearray()
        while not stop.is_set():
            try:
                if s is None or new_conn_each:
                    if s is not None:
                        s.close()
                    s = connect(port, tls_client)
                    buf = bytearray()
                s.sendall(b"GET /one/load HTTP/1.1\r\nHost: x\r\n\r\n")
                r = read_response(s, buf)
                if r.status != 200:
                    failures.append(f"status {r.status}")
                done += 1
            except Exception as e:  # any failure is a finding
                failures.append(repr(e))
                s = None
        if s is not None:
            s.close()

    threads = [threading.Thread(target=load, args=(i % 2 == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(5):
            time.sleep(0.3)
            g.path.write_text(text + f"# reload {i}\n")
            g.sighup()
    finally:
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join()
    assert done > 50
    assert failures == []
    assert sum("config reloaded" in line for line in g.err) == 5


def test_sigterm_drains_in_flight_requests(pki, echo, start_gateway, tls_client):
    g = start_gateway(config_yaml(pki, echo.port, limits="  shutdown_grace: 5s\n"))
    port = g.ports["public"]
    result: dict = {}

    def slow() -> None:
        try:
            result["r"] = get(port, "/echo/v1/slow/1200", tls_client)
        except Exception as e:
            result["e"] = e

    idle = connect(port, tls_client)  # an idle keep-alive connection is closed at once
    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.4)
    start = time.monotonic()
    g.p.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    try:  # no new connections once draining
        refused = False
        connect(port, tls_client, timeout=1).close()
    except OSError:
        refused = True
    t.join()
    assert g.p.wait(10) == 0
    elapsed = time.monotonic() - start
    assert result.get("r") is not None and result["r"].status == 200, result
    assert refused
    assert elapsed < 4
    idle.close()


def test_sigterm_grace_bounds_the_wait(pki, echo, start_gateway, tls_client):
    g = start_gateway(config_yaml(pki, echo.port, limits="  shutdown_grace: 1s\n",
                                  apis=_apis(echo.port, "/s").replace("urls:", "timeout: 30s\n      urls:")))
    port = g.ports["public"]
    t = threading.Thread(target=lambda: _swallow(lambda: get(port, "/s/slow/10000", tls_client)))
    t.start()
    time.sleep(0.4)
    start = time.monotonic()
    g.p.send_signal(signal.SIGTERM)
    assert g.p.wait(10) == 0
    assert time.monotonic() - start < 3
    t.join()


def _swallow(fn) -> None:
    try:
        fn()
    except Exception:
        pass


def test_sighup_reloads_certificates(pki, echo, start_gateway, tmp_path):
    import shutil

    from fastgate.devtools.certs import make_dev_pki
    from tests.helpers import client_context

    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(pki["server.crt"], live / "server.crt")
    shutil.copy(pki["server.key"], live / "server.key")
    tls = f"""
      certificate: {live / 'server.crt'}
      private_key: {live / 'server.key'}"""
    g = start_gateway(config_yaml(pki, echo.port, tls=tls))
    port = g.ports["public"]
    old_ca = client_context(pki["ca.crt"])
    kept = connect(port, old_ca)  # a connection made before the reload keeps working
    fresh = make_dev_pki(tmp_path / "fresh")
    new_ca = client_context(fresh["ca.crt"])
    shutil.copy(fresh["server.crt"], live / "server.crt")
    shutil.copy(fresh["server.key"], live / "server.key")
    g.sighup()
    g.wait_line("config reloaded", stream="err")
    assert get(port, "/echo/v1/new", new_ca).status == 200
    import ssl

    import pytest
    with pytest.raises(ssl.SSLError):
        get(port, "/echo/v1/old", old_ca)
    kept.sendall(b"GET /echo/v1/kept HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(kept).status == 200
    kept.close()

"""The upstream side of the proxy against real processes: unreachable, slow, resetting and
truncating backends, concurrency limits, round robin and back-off, keep-alive reuse, HTTPS and
mTLS backends, and back-pressure on a large streamed response. Every test runs with the native
fast path and with h11 alone (`http.fast_path: false`)."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import Echo, Gateway, connect, free_port, get, read_response
from tests.integration.conftest import config_yaml


def _api(name: str, base: str, urls: list[str], extra: str = "", timeout: str = "1s") -> str:
    text = f"""
  - name: {name}
    base_path: {base}
    upstream:
      urls: [{", ".join(urls)}]
      timeout: {timeout}
      connect_timeout: 500ms"""
    for line in extra.strip().splitlines():
        text += "\n      " + line.strip()
    return text + "\n"


# ---------------------------------------------------------------- processes
@pytest.fixture(scope="module")
def echo2():
    e = Echo()
    yield e
    e.stop()


@pytest.fixture(scope="module")
def echo_tls(pki):
    e = Echo("--tls-cert", str(pki["server.crt"]), "--tls-key", str(pki["server.key"]))
    yield e
    e.stop()


@pytest.fixture(scope="module")
def echo_mtls(pki):
    e = Echo("--tls-cert", str(pki["server.crt"]), "--tls-key", str(pki["server.key"]),
             "--client-ca", str(pki["client-ca.crt"]))
    yield e
    e.stop()


@pytest.fixture(scope="module")
def blackhole():
    """A port where TCP connects hang: a listener that never accepts, with its queue full, so
    the kernel drops further SYNs. That is what `connect_timeout` is for."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(c)
    time.sleep(0.05)
    yield port
    for c in fillers:
        c.close()
    lsock.close()


RAW_ANSWERS = {
    b"garbage": b"NOT HTTP AT ALL\r\n\r\n",
    b"bighead": b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"b" * 70_000 + b"\r\n\r\n",
    b"badlength": b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\nhello",
    b"early-eof": b"HTTP/1.1 200 OK\r\nContent-",
    b"dupcl": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 11\r\n\r\nhello world",
    b"badchunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n",
    b"both": (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
}


class RawUpstream:
    def __init__(self, port: int) -> None:
        self.port = port
        self.seen: list[str] = []  # "METHOD target" of every request head received


@pytest.fixture(scope="module")
def raw_upstream():
    """A socket upstream answering fixed, broken bytes chosen by the last path segment, then
    closing: what no well-behaved echo server would send. Under /stale/ it answers the first
    request of a connection with keep-alive and drops the connection on the next one without
    a word, as an upstream closing an idle connection just as it is reused would."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    lsock.settimeout(0.2)
    stop = threading.Event()
    raw = RawUpstream(lsock.getsockname()[1])

    def serve_one(c: socket.socket) -> None:
        with c:
            c.settimeout(3)
            data = b""
            served = 0
            while True:
                while b"\r\n\r\n" not in data:
                    try:
                        chunk = c.recv(65536)
                    except OSError:
                        return
                    if not chunk:
                        return
                    data += chunk
                head, _, data = data.partition(b"\r\n\r\n")
                method, target = head.split(b" ", 2)[:2]
                raw.seen.append(f"{method.decode()} {target.decode()}")
                if b"/stale/" not in target:
                    c.sendall(RAW_ANSWERS.get(target.rsplit(b"/", 1)[-1], b"HTTP/1.1 500 X\r\n\r\n"))
                    return
                if served:
                    return  # drop the reused connection, no answer
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                served += 1

    def loop() -> None:
        while not stop.is_set():
            try:
                c, _ = lsock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve_one, args=(c,), daemon=True).start()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield raw
    stop.set()
    t.join(2)
    lsock.close()


@pytest.fixture(scope="module")
def dead_port():
    return free_port()  # nothing listens: connections are refused at once


@pytest.fixture(scope="module", params=[True, False], ids=["fast", "h11"])
def gw(request, pki, echo, echo2, echo_tls, echo_mtls, blackhole, dead_port, raw_upstream,
       tmp_path_factory):
    e, e2 = f"http://127.0.0.1:{echo.port}", f"http://127.0.0.1:{echo2.port}"
    tls_url, mtls_url = f"https://localhost:{echo_tls.port}", f"https://localhost:{echo_mtls.port}"
    ca, cert, key = pki["ca.crt"], pki["client.crt"], pki["client.key"]
    apis = "".join([
        _api("echo", "/echo/v1", [e]),
        _api("down", "/down", [f"http://127.0.0.1:{dead_port}"]),
        _api("hang", "/hang", [f"http://127.0.0.1:{blackhole}"]),
        _api("busy", "/busy", [e], "max_concurrency: 2", timeout="3s"),
        _api("rr", "/rr", [e, e2]),
        _api("half", "/half", [f"http://127.0.0.1:{dead_port}", e]),
        _api("halfhang", "/halfhang", [f"http://127.0.0.1:{blackhole}", e]),
        _api("tls-ca", "/tls-ca", [tls_url], f"tls: {{ca: {ca}}}"),
        _api("tls-system", "/tls-system", [tls_url]),
        _api("tls-noverify", "/tls-noverify", [tls_url], "tls: {verify: false}"),
        _api("mtls", "/mtls", [mtls_url], f"tls: {{ca: {ca}, certificate: {cert}, private_key: {key}}}"),
        _api("mtls-nocert", "/mtls-nocert", [mtls_url], f"tls: {{ca: {ca}}}"),
        _api("raw", "/raw", [f"http://127.0.0.1:{raw_upstream.port}"]),
    ])
    g = Gateway(config_yaml(pki, echo.port, apis=apis, fast_path=request.param),
                tmp_path_factory.mktemp("gw"))
    yield g
    g.stop()


@pytest.fixture
def port(gw):
    return gw.ports["public"]


@pytest.fixture
def tag():
    """A marker unique to this test run, for finding its lines in the echo log."""
    return "m" + uuid.uuid4().hex[:12]


# ---------------------------------------------------------------- helpers
def metric(gw: Gateway, name: str, **labels: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{gw.admin_port}/metrics", timeout=5).read().decode()
    return sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def count(e: Echo, marker: str, settle: float = 0.0) -> int:
    if settle:
        time.sleep(settle)
    return sum(1 for line in list(e.out) if line.startswith("echo: ") and marker in line)


def assert_problem(r, status: int, code: str) -> dict:
    assert r.status == status, (r.status, r.body[:200])
    assert r.header("content-type") == "application/problem+json"
    doc = r.json()
    assert doc["status"] == status and doc["code"] == code
    assert doc["request_id"] == r.header("x-request-id")
    return doc


def no_internals(r, *secrets: object) -> None:
    body = r.body.decode("latin-1")
    for s in ("Errno", "Traceback", "127.0.0.1", "localhost:", *map(str, secrets)):
        assert s not in body, s


# ---------------------------------------------------------------- failures
def test_upstream_down_is_502_and_counted(gw, port, tls_client, dead_port):
    before = metric(gw, "fastgate_upstream_errors_total", api="down", kind="bad_gateway")
    r = get(port, "/down/x", tls_client)
    assert_problem(r, 502, "bad_gateway")
    no_internals(r, dead_port)
    assert metric(gw, "fastgate_upstream_errors_total", api="down", kind="bad_gateway") == before + 1


def test_connect_timeout_is_502_in_time(gw, port, tls_client, blackhole):
    start = time.monotonic()
    r = get(port, "/hang/x", tls_client)
    elapsed = time.monotonic() - start
    assert r.status in (502, 503)  # CONTRACT: connect_timeout -> 502/503
    assert r.json()["code"] in ("bad_gateway", "unavailable")
    assert 0.4 < elapsed < 1.5, elapsed  # connect_timeout is 500ms
    no_internals(r, blackhole)


def test_slow_upstream_is_504_in_time_and_connection_survives(gw, port, tls_client):
    before = metric(gw, "fastgate_upstream_errors_total", api="echo", kind="gateway_timeout")
    with connect(port, tls_client) as s:
        start = time.monotonic()
        s.sendall(b"GET /echo/v1/slow/3000 HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = bytearray()
        r = read_response(s, buf)
        elapsed = time.monotonic() - start
        assert_problem(r, 504, "gateway_timeout")
        assert 0.9 < elapsed < 2.5, elapsed
        # the client connection is still good for the next request
        s.sendall(b"GET /echo/v1/after-504 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s, buf).status == 200
    assert metric(gw, "fastgate_upstream_errors_total", api="echo", kind="gateway_timeout") == before + 1


def test_upstream_reset_is_502(gw, port, tls_client, echo, tag):
    r = get(port, f"/echo/v1/reset/{tag}", tls_client)
    assert_problem(r, 502, "bad_gateway")
    # a GET may be retried once on a fresh connection (idempotent), never more
    assert 1 <= count(echo, tag, settle=0.1) <= 2


def test_non_idempotent_request_not_replayed_after_reset(gw, port, tls_client, echo, tag):
    """RFC 9110 §9.2.2: a POST that reached the upstream must not be sent again because the
    connection died before the answer, even on a pooled (reused) connection."""
    with connect(port, tls_client) as s:
        buf = bytearray()
        s.sendall(b"GET /echo/v1/warm HTTP/1.1\r\nHost: x\r\n\r\n")  # leaves a pooled connection
        assert read_response(s, buf).status == 200
        s.sendall(f"POST /echo/v1/reset/{tag} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert read_response(s, buf).status == 502
    assert count(echo, tag, settle=0.2) == 1


def test_upstream_closes_mid_response_cuts_client(gw, port, tls_client):
    before = metric(gw, "fastgate_upstream_errors_total", api="echo", kind="bad_gateway")
    with connect(port, tls_client) as s:
        start = time.monotonic()
        s.sendall(b"GET /echo/v1/close-early HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            r = read_response(s, timeout=5)
        except (ConnectionError, ssl.SSLError):
            r = None  # cut: the only honest signal once the head went out
        assert time.monotonic() - start < 3, "the gateway hung on a truncated upstream response"
        if r is not None:  # a gateway that had not sent the head yet may still say 502
            assert r.status == 502
    deadline = time.monotonic() + 2
    while metric(gw, "fastgate_upstream_errors_total", api="echo", kind="bad_gateway") < before + 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # the next client connection works, and so does the upstream pool
    assert get(port, "/echo/v1/after-cut", tls_client).status == 200


@pytest.mark.parametrize("kind", ["garbage", "bighead", "badlength", "early-eof", "dupcl"])
def test_malformed_upstream_response_is_502(gw, port, tls_client, kind):
    r = get(port, f"/raw/{kind}", tls_client)
    assert_problem(r, 502, "bad_gateway")
    no_internals(r)


def test_bad_chunk_mid_body_cuts_client(gw, port, tls_client):
    with connect(port, tls_client) as s:
        s.sendall(b"GET /raw/badchunk HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            r = read_response(s, timeout=5)
        except (ConnectionError, ssl.SSLError, ValueError):
            return  # cut after the head: the client cannot mistake it for a whole body
        assert r.status == 502


def _stale_pair(port, tls_client, tag: str, method: str) -> int:
    """One request that leaves a pooled connection, then `method` on it while the upstream
    drops it; returns the status of the second."""
    with connect(port, tls_client) as s:
        buf = bytearray()
        s.sendall(f"GET /raw/stale/{tag}-warm HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert read_response(s, buf).status == 200
        s.sendall(f"{method} /raw/stale/{tag}-{method} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        return read_response(s, buf).status


def test_stale_pooled_connection_retried_for_get(gw, port, tls_client, raw_upstream, tag):
    assert _stale_pair(port, tls_client, tag, "GET") == 200
    assert raw_upstream.seen.count(f"GET /stale/{tag}-GET") == 2  # dropped once, then answered


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_stale_pooled_connection_not_retried_for_non_idempotent(gw, port, tls_client, raw_upstream,
                                                                tag, method):
    assert _stale_pair(port, tls_client, tag, method) == 502
    assert raw_upstream.seen.count(f"{method} /stale/{tag}-{method}") == 1


def test_upstream_te_and_cl_not_both_forwarded(gw, port, tls_client):
    """RFC 9112 §6.3: with Transfer-Encoding the Content-Length is ignored; what the client gets
    must be framed one way only, with the chunked body decoded correctly."""
    r = get(port, "/raw/both", tls_client)
    if r.status == 502:
        return  # refusing the ambiguous response is fine too
    assert r.status == 200
    assert not (r.header("content-length") and r.header("transfer-encoding"))
    assert r.body == b"hello world"


# ---------------------------------------------------------------- concurrency
def test_max_concurrency_two_of_five(gw, port, tls_client):
    socks = [connect(port, tls_client) for _ in range(5)]
    barrier = threading.Barrier(5)
    results: list = [None] * 5

    def run(i: int) -> None:
        s = socks[i]
        barrier.wait()
        s.sendall(b"GET /busy/slow/800 HTTP/1.1\r\nHost: x\r\n\r\n")
        results[i] = read_response(s, timeout=5)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for s in socks:
        s.close()
    statuses = sorted(r.status for r in results)
    assert statuses == [200, 200, 503, 503, 503], statuses
    for r in results:
        if r.status == 503:
            assert_problem(r, 503, "backend_busy")
            assert int(r.header("retry-after")) >= 1
    # the slots are given back
    assert get(port, "/busy/after", tls_client).status == 200


# ---------------------------------------------------------------- balancing
def test_round_robin_splits_evenly(gw, port, tls_client, echo, echo2, tag):
    with connect(port, tls_client) as s:
        buf = bytearray()
        for i in range(10):
            s.sendall(f"GET /rr/{tag}/{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert read_response(s, buf).status == 200
    time.sleep(0.1)
    assert (count(echo, tag), count(echo2, tag)) == (5, 5)


def test_refused_url_is_skipped(gw, port, tls_client, echo, tag):
    for i in range(10):
        assert get(port, f"/half/{tag}/{i}", tls_client).status == 200
    assert count(echo, tag, settle=0.1) == 10


def test_hanging_url_is_backed_off(gw, port, tls_client, echo, tag):
    """The first request pays connect_timeout (500ms) once; then the URL is skipped, so the next
    ones do not each wait for it again."""
    start = time.monotonic()
    for i in range(6):
        assert get(port, f"/halfhang/{tag}/{i}", tls_client).status == 200
    elapsed = time.monotonic() - start
    assert elapsed < 1.4, elapsed  # without back-off: ~3 x 0.5s
    assert count(echo, tag, settle=0.1) == 6


# ---------------------------------------------------------------- keep-alive
def _conn_id(s, buf, i: int) -> int:
    s.sendall(f"GET /echo/v1/connid/{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    r = read_response(s, buf)
    assert r.status == 200
    return r.json()["conn_id"]


def test_upstream_keepalive_reused(gw, port, tls_client):
    with connect(port, tls_client) as s:
        buf = bytearray()
        ids = [_conn_id(s, buf, i) for i in range(20)]
    assert len(set(ids)) == 1, ids
    # the pool belongs to the API, not to the client connection
    again = set()
    for i in range(3):
        with connect(port, tls_client) as s:
            again.add(_conn_id(s, bytearray(), i))
    assert again == set(ids)


def test_pooled_connection_not_reused_after_timeout(gw, port, tls_client):
    """A connection abandoned mid-exchange (504) is closed, never handed to the next request
    (whose answer would otherwise be the late answer to the abandoned one)."""
    with connect(port, tls_client) as s:
        buf = bytearray()
        first = _conn_id(s, buf, 0)  # now the most recently pooled: the next request takes it
        s.sendall(b"GET /echo/v1/slow/1500/connid HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s, buf).status == 504
        time.sleep(0.7)  # the abandoned upstream answer would arrive now
        later = []
        for i in range(3):
            s.sendall(f"GET /echo/v1/connid/after/{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            doc = read_response(s, buf).json()
            assert doc["target"] == f"/connid/after/{i}"
            later.append(doc["conn_id"])
    assert first not in later


def test_empty_post_is_framed_for_upstream(gw, port, tls_client):
    """RFC 9110 §8.6: a POST without content still says `Content-Length: 0` upstream (servers
    answer 411 Length Required otherwise)."""
    for extra in ("Content-Length: 0\r\n", ""):
        with connect(port, tls_client) as s:
            s.sendall(f"POST /echo/v1/empty HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n".encode())
            r = read_response(s)
        assert r.status == 200
        sent = {n: v for n, v in r.json()["headers"]}
        assert sent.get("content-length") == "0", (extra, sent)


# ---------------------------------------------------------------- TLS to the backend
def test_https_upstream_with_ca(gw, port, tls_client):
    r = get(port, "/tls-ca/x", tls_client)
    assert r.status == 200
    assert r.json()["target"] == "/x"


def test_https_upstream_untrusted_is_502(gw, port, tls_client):
    before = metric(gw, "fastgate_upstream_errors_total", api="tls-system", kind="bad_gateway")
    r = get(port, "/tls-system/x", tls_client)
    assert_problem(r, 502, "bad_gateway")
    no_internals(r, "certificate", "CERTIFICATE_VERIFY")
    assert metric(gw, "fastgate_upstream_errors_total", api="tls-system", kind="bad_gateway") == before + 1


def test_https_upstream_verify_false(gw, port, tls_client):
    assert get(port, "/tls-noverify/x", tls_client).status == 200


def test_mtls_upstream_with_client_cert(gw, port, tls_client):
    with connect(port, tls_client) as s:
        buf = bytearray()
        for i in range(3):  # and the mTLS connection is pooled like any other
            s.sendall(f"GET /mtls/connid/{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            r = read_response(s, buf)
            assert r.status == 200
    assert r.json()["target"] == "/connid/2"


def test_mtls_upstream_without_client_cert_is_502(gw, port, tls_client):
    r = get(port, "/mtls-nocert/x", tls_client)
    assert_problem(r, 502, "bad_gateway")


# ---------------------------------------------------------------- streaming
def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_large_response_back_pressure(gw, port, tls_client):
    size = 20_000_000
    base = _rss_kib(gw.p.pid)
    with connect(port, tls_client) as s:
        s.sendall(b"GET /echo/v1/bytes/%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % size)
        time.sleep(0.6)  # client reads nothing: the gateway must stop reading the upstream
        stalled = _rss_kib(gw.p.pid)
        buf = bytearray()
        head_end = -1
        got = 0
        peak = stalled
        n = 0
        start = time.monotonic()
        s.settimeout(5)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            if head_end < 0:
                buf += chunk
                head_end = buf.find(b"\r\n\r\n")
                if head_end >= 0:
                    assert buf.startswith(b"HTTP/1.1 200")
                    assert b"content-length: %d" % size in bytes(buf[:head_end]).lower()
                    got = len(buf) - head_end - 4
                continue
            got += len(chunk)
            n += 1
            if n % 64 == 0:
                time.sleep(0.02)  # a slow reader throughout
                peak = max(peak, _rss_kib(gw.p.pid))
        assert got == size
        assert time.monotonic() - start < 5
    # buffering the whole body would cost ~20 MB; bounded buffers cost far less
    assert stalled - base < 8 * 1024, (base, stalled)
    assert peak - base < 12 * 1024, (base, peak)


# ---------------------------------------------------------------- trust anchors
@pytest.fixture(scope="module")
def gw_system_trust(pki, echo_tls, tmp_path_factory):
    """A gateway whose "system" trust store (SSL_CERT_FILE, honoured by OpenSSL) is the dev CA
    that signed the HTTPS echo's certificate."""
    url = f"https://localhost:{echo_tls.port}"
    apis = (_api("system", "/system", [url])
            + _api("pinned", "/pinned", [url], f"tls: {{ca: {pki['client-ca.crt']}}}"))
    saved = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = str(pki["ca.crt"])
    try:
        g = Gateway(config_yaml(pki, echo_tls.port, apis=apis), tmp_path_factory.mktemp("gw"))
    finally:
        if saved is None:
            del os.environ["SSL_CERT_FILE"]
        else:
            os.environ["SSL_CERT_FILE"] = saved
    yield g
    g.stop()


def test_upstream_without_ca_uses_system_trust(gw_system_trust, tls_client):
    assert get(gw_system_trust.ports["public"], "/system/x", tls_client).status == 200


def test_upstream_ca_replaces_system_trust(gw_system_trust, tls_client):
    """`tls.ca` names *the* trust anchor for the backend (as curl --cacert, Envoy trusted_ca,
    nginx proxy_ssl_trusted_certificate): a certificate the system store would accept but the
    configured CA did not sign is refused."""
    r = get(gw_system_trust.ports["public"], "/pinned/x", tls_client)
    assert_problem(r, 502, "bad_gateway")


def test_sighup_reloads_upstream_client_certificate(pki, echo_mtls, tmp_path, tls_client):
    """Renewing the gateway's client certificate for an mTLS backend in place (same paths) and
    sending SIGHUP must take effect, as it does for listener certificates."""
    import shutil

    cert, key = tmp_path / "gw-client.crt", tmp_path / "gw-client.key"
    shutil.copy(pki["other-client.crt"], cert)  # starts with a certificate the backend refuses
    shutil.copy(pki["other-client.key"], key)
    url = f"https://localhost:{echo_mtls.port}"
    apis = _api("mtls", "/mtls", [url], f"tls: {{ca: {pki['ca.crt']}, certificate: {cert}, private_key: {key}}}")
    g = Gateway(config_yaml(pki, echo_mtls.port, apis=apis), tmp_path)
    try:
        assert get(g.ports["public"], "/mtls/x", tls_client).status == 502
        shutil.copy(pki["client.crt"], cert)
        shutil.copy(pki["client.key"], key)
        g.sighup()
        g.wait_line(r"config reloaded", stream="err", timeout=5)
        assert get(g.ports["public"], "/mtls/x", tls_client).status == 200
    finally:
        g.stop()

"""Real redis-server processes for the quota tests: a private single server per test (started on a
free loopback port, no persistence) and a 3-node Redis Cluster created with redis-cli."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"

pytestmark = pytest.mark.skipif(not Path(REDIS_SERVER).exists(), reason="redis-server missing")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too."""
    for _ in range(200):
        port = random.randint(20000, 50000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for the cluster")


def cli(port: int, *args: str, timeout: float = 10) -> str:
    out = subprocess.run(
        [REDIS_CLI, "-p", str(port), *args], capture_output=True, text=True, timeout=timeout
    )
    return out.stdout


class RedisProc:
    """One redis-server on 127.0.0.1:<port>; stop() and start() again on the same port."""

    def __init__(self, tmp: Path, port: int | None = None, extra: tuple[str, ...] = ()) -> None:
        self.tmp = tmp
        self.port = port or free_port()
        self.extra = extra
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProc:
        args = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.tmp),
            *self.extra,
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if cli(self.port, "PING").strip() == "PONG":
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server on {self.port} did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def cli(self, *args: str) -> str:
        return cli(self.port, *args)

    def commandstat(self, cmd: str) -> int:
        for line in self.cli("INFO", "commandstats").splitlines():
            if line.startswith(f"cmdstat_{cmd}:"):
                return int(line.split("calls=")[1].split(",")[0])
        return 0


@pytest.fixture
def redis_proc(tmp_path):
    r = RedisProc(tmp_path).start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    procs: list[RedisProc] = []
    try:
        for _ in range(3):
            port = cluster_port()
            procs.append(
                RedisProc(
                    tmp,
                    port,
                    (
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(tmp / f"nodes-{port}.conf"),
                        "--cluster-node-timeout",
                        "5000",
                    ),
                ).start()
            )
        nodes = [f"127.0.0.1:{p.port}" for p in procs]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all("cluster_state:ok" in p.cli("CLUSTER", "INFO") for p in procs):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("cluster did not reach cluster_state:ok")
        yield procs
    finally:
        for p in procs:
            p.stop()

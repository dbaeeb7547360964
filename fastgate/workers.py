"""`workers: N`: a master process that supervises N gateway workers sharing the listeners.

Invariant: each worker binds its own SO_REUSEPORT socket on the same port (the kernel spreads
connections), so no worker's stall blocks another's accepts. The master serves the admin
listener with metrics summed across workers (prometheus_client multiprocess mode), forwards
SIGHUP/SIGTERM, and replaces a worker that dies; it never handles client traffic.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import tempfile
import time

from .config.model import Config
from .console import say

RESPAWN_BACKOFF = 1.0  # a worker that keeps dying is restarted at most this often


def _reserve_ports(config: Config) -> tuple[dict[str, int], list[socket.socket]]:
    """Resolve `:0` listeners once, so every worker binds the same port. The reserving sockets
    are bound but never listen, so the kernel gives them no connections."""
    ports: dict[str, int] = {}
    held: list[socket.socket] = []
    for lst in config.listeners:
        family = socket.AF_INET6 if ":" in lst.host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((lst.host, lst.port))
        ports[lst.name] = s.getsockname()[1]
        held.append(s)
    return ports, held


def _worker(config: Config, config_path: str, index: int, ports: dict[str, int], nonce_key: bytes) -> int:
    import uvloop

    from .policies.shared import SharedState
    from .server import Gateway

    async def main() -> None:
        gw = Gateway(config, config_path, reuse_port=True, serve_admin=False, announce=index == 0,
                     port_overrides=ports, shared=SharedState(nonce_key))

        def ready() -> None:
            say(f"fastgate: worker {index} ready (pid {os.getpid()})", err=True)

        await gw.serve_forever(on_started=ready)

    uvloop.run(main())
    return 0


def run_workers(config: Config, config_path: str) -> int:
    mp_dir = tempfile.mkdtemp(prefix="fastgate-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = mp_dir
    from .policies.shared import nonce_key_for

    nonce_key = nonce_key_for(config.secrets.master_key_env)  # one for all workers (Digest nonces)
    ports, held = _reserve_ports(config)
    children: dict[int, int] = {}  # pid -> worker index
    current = {"config": config}  # what a (re)started worker runs: the last config that loaded

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            import asyncio.events

            asyncio.events._set_running_loop(None)  # a respawn forks inside the master's loop
            # Until its loop handles them: a SIGHUP must not kill a starting worker (it starts on
            # the newest config anyway); SIGTERM/SIGINT may.
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL)
            code = 1
            try:
                code = _worker(current["config"], config_path, index, ports, nonce_key)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = index

    for i in range(config.workers):
        spawn(i)
    return _supervise(config, config_path, children, spawn, mp_dir, held, current)


def _supervise(config, config_path, children, spawn, mp_dir, held, current) -> int:
    import asyncio

    import uvloop

    from .admin import AdminServer
    from .config import ConfigError, load_config
    from .metrics import render_multiprocess

    class MasterView:
        """What the admin listener needs to know, from the master's side."""

        def __init__(self) -> None:
            self.draining = False
            self.metrics = self

        @property
        def listeners(self) -> dict:
            return dict(children) if len(children) == config.workers else {}

        def render(self) -> bytes:
            return render_multiprocess(mp_dir)

    view = MasterView()

    async def main() -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def forward(sig: int) -> None:
            for pid in list(children):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass

        def on_hup() -> None:
            try:
                # refused here once, not N times in the workers; kept for workers started later
                current["config"] = load_config(config_path)
            except ConfigError as e:
                for problem in e.problems:
                    say(f"fastgate: reload refused: {problem}", err=True)
                return
            forward(signal.SIGHUP)

        def on_term() -> None:
            view.draining = True
            forward(signal.SIGTERM)
            stop.set()

        loop.add_signal_handler(signal.SIGHUP, on_hup)
        loop.add_signal_handler(signal.SIGTERM, on_term)
        loop.add_signal_handler(signal.SIGINT, on_term)
        admin = None
        if config.admin is not None:
            admin = AdminServer(view, config.admin.host, config.admin.port)
            await admin.start()
        last_spawn = 0.0
        while children:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                index = children.pop(pid, None)
                if index is not None and not view.draining:
                    wait = RESPAWN_BACKOFF - (time.monotonic() - last_spawn)
                    if wait > 0:
                        await asyncio.sleep(wait)
                    say(f"fastgate: worker {index} exited; starting a new one", err=True)
                    last_spawn = time.monotonic()
                    spawn(index)
                continue
            if stop.is_set() and not children:
                break
            await asyncio.sleep(0.1)
        if admin is not None:
            await admin.stop()
        return 0

    try:
        return uvloop.run(main())
    finally:
        for s in held:
            s.close()
        import shutil

        shutil.rmtree(mp_dir, ignore_errors=True)

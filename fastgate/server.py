"""Gateway lifecycle: listeners and their accept loops, admin listener, reload and drain.

Invariant: a listener's socket is bound once and kept across reloads; each accepted connection
takes the TLS context and Runtime current at that moment, so SIGHUP swaps config and
certificates without refusing a connection; a bad new config changes nothing. SIGTERM stops
accepting, lets in-flight requests finish up to `shutdown_grace`, then returns.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl
import sys
from pathlib import Path

from . import revocations
from .accesslog import AccessLog
from .admin import AdminServer
from .config import ConfigError, load_config
from .config.model import Config, Listener
from .console import say
from .http.server import ServerConnection
from .metrics import Metrics
from .pipeline import Pipeline
from .policies.shared import SharedState, nonce_key_for
from .runtime import Runtime
from .tls import server_context

log = logging.getLogger("fastgate")

BACKLOG = 1024
TRIM_INTERVAL = 5.0  # seconds between housekeeping rounds
TRIM_AFTER_CLOSED = 1000  # connections closed since the last malloc_trim before trimming again


def _malloc_trim():
    """glibc's malloc_trim, or None elsewhere (musl, macOS)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


def bind(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


class ListenerState:
    __slots__ = ("listener", "sock", "ssl", "task", "connections")

    def __init__(self, listener: Listener, sock: socket.socket, ctx: ssl.SSLContext | None) -> None:
        self.listener = listener
        self.sock = sock
        self.ssl = ctx
        self.task: asyncio.Task | None = None
        self.connections: set[ServerConnection] = set()

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]


class Gateway:
    def __init__(self, config: Config, config_path: str | Path, reuse_port: bool = False,
                 metrics: Metrics | None = None, serve_admin: bool = True, announce: bool = True,
                 port_overrides: dict[str, int] | None = None, shared: SharedState | None = None) -> None:
        self.config_path = str(config_path)
        shared = shared or SharedState(nonce_key_for(config.secrets.master_key_env))
        self.runtime = Runtime(config, shared=shared)
        self.metrics = metrics or Metrics()
        self.access_log = AccessLog(config.logging.access_log)
        self.pipeline = Pipeline(self)
        self.reuse_port = reuse_port
        self.serve_admin = serve_admin
        self.announce = announce  # print the "accepting on" lines (one worker does, with workers > 1)
        self.port_overrides = port_overrides or {}  # ports the master resolved for `:0` listeners
        self.listeners: dict[str, ListenerState] = {}
        self.admin: AdminServer | None = None
        self.draining = False
        self.connection_count = 0
        self._capacity = asyncio.Event()
        self._capacity.set()
        self._stopped = asyncio.Event()
        self._active_gauges: dict[str, object] = {}
        self.closed_since_trim = 0
        self.revocation_sync: revocations.RevocationSync | None = None  # with `redis:` (revocations.py)
        self._background: set[asyncio.Task] = set()  # tasks started here that nobody awaits

    # ------------------------------------------------------------------ connections
    def connection_opened(self, conn: ServerConnection) -> None:
        state = self.listeners.get(conn.listener.name)
        if state is not None:
            state.connections.add(conn)
        self._gauge(conn.listener.name).inc()

    def connection_closed(self, conn: ServerConnection) -> None:
        state = self.listeners.get(conn.listener.name)
        if state is not None:
            state.connections.discard(conn)
        self._gauge(conn.listener.name).dec()
        self._release_slot()

    def _take_slot(self) -> None:
        """Counted at accept time (before the handshake), so max_connections is exact."""
        self.connection_count += 1
        if self.connection_count >= self.runtime.config.limits.max_connections:
            self._capacity.clear()

    def _release_slot(self) -> None:
        self.closed_since_trim += 1
        self.connection_count -= 1
        if self.connection_count < self.runtime.config.limits.max_connections:
            self._capacity.set()

    def _gauge(self, name: str):
        g = self._active_gauges.get(name)
        if g is None:
            g = self._active_gauges[name] = self.metrics.active_connections.labels(name)
        return g

    async def handle(self, conn: ServerConnection, req) -> bool:
        return await self.pipeline.handle(conn, req)

    async def reject_connection(self, conn: ServerConnection, err) -> None:
        await self.pipeline.reject_connection(conn, err)

    def observe(self, ctx, seconds: float) -> None:
        api = ctx.route.name if ctx.route is not None else ""
        self.metrics.observe_request(api, ctx.status, ctx.code, seconds)
        self.access_log.write(ctx, round(seconds * 1000.0, 3))

    # ------------------------------------------------------------------ listeners
    async def start(self) -> None:
        config = self.runtime.config
        # first: a fresh process must not accept a key Redis already says is revoked
        self.revocation_sync = await revocations.start(config.redis, self.runtime.shared)
        await self._start_quota()
        for listener in config.listeners:
            self._open_listener(listener)
        if config.admin is not None and self.serve_admin:
            self.admin = AdminServer(self, config.admin.host, config.admin.port)
            await self.admin.start()

    async def _start_quota(self) -> None:
        """A Redis quota store heartbeats from the start, so every node knows the live-node count
        (lease sizes, and each node's share if Redis goes away) before its first request."""
        stores = self.runtime.shared.quota_stores
        backend = stores.backend if stores is not None else None
        if backend is not None and hasattr(backend, "heartbeating") and not backend.heartbeating:
            backend.on_call = self.metrics.ratelimit_store_calls.labels("sent").inc
            await backend.start()

    def _open_listener(self, listener: Listener) -> ListenerState:
        ctx = server_context(listener.tls) if listener.tls is not None else None
        sock = bind(listener.host, self.port_overrides.get(listener.name, listener.port), self.reuse_port)
        state = ListenerState(listener, sock, ctx)
        self.listeners[listener.name] = state
        state.task = asyncio.get_running_loop().create_task(self._accept_loop(state))
        host, port = state.address
        scheme = "https" if ctx is not None else "http"
        if self.announce:
            say(f"fastgate: listener {listener.name} accepting on {scheme}://{_fmt(host)}:{port}")
        return state

    async def _accept_loop(self, state: ListenerState) -> None:
        loop = asyncio.get_running_loop()
        sock = state.sock
        while not self.draining:
            if not self._capacity.is_set():
                await self._capacity.wait()  # at max_connections: new ones wait in the backlog
                continue
            try:
                csock, _addr = await loop.sock_accept(sock)
            except asyncio.CancelledError:
                raise
            except OSError as e:
                if sock.fileno() < 0:
                    return
                log.warning("accept failed on %s: %s", state.listener.name, e)
                await asyncio.sleep(0.05)  # EMFILE and friends: back off, don't spin
                continue
            csock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._take_slot()
            loop.create_task(self._start_connection(state, csock))

    async def _start_connection(self, state: ListenerState, csock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        listener = state.listener
        try:
            if state.ssl is None:
                await loop.connect_accepted_socket(lambda: ServerConnection(self, listener), csock)
            else:
                await loop.connect_accepted_socket(
                    lambda: ServerConnection(self, listener), csock, ssl=state.ssl,
                    ssl_handshake_timeout=self.runtime.config.limits.header_timeout,
                )
        except ssl.SSLError as e:
            self._handshake_failed(listener, csock, _tls_reason(e))
        except TimeoutError:
            self._handshake_failed(listener, csock, "timeout")
        except OSError:
            self._handshake_failed(listener, csock, "connection_reset")

    def _handshake_failed(self, listener: Listener, csock: socket.socket, reason: str) -> None:
        self.metrics.tls_failures.labels(listener.name, reason).inc()
        csock.close()
        self._release_slot()

    # ------------------------------------------------------------------ reload and drain
    async def reload(self) -> bool:
        """SIGHUP: a new config (and new certificates) for new connections and requests."""
        try:
            config = await asyncio.get_running_loop().run_in_executor(None, load_config, self.config_path)
            runtime = Runtime(config, previous=self.runtime)
            contexts = {
                lst.name: server_context(lst.tls) if lst.tls is not None else None
                for lst in config.listeners
            }
        except ConfigError as e:
            for problem in e.problems:
                say(f"fastgate: reload refused: {problem}", err=True)
            self.metrics.config_reloads.labels("refused").inc()
            return False
        except (OSError, ssl.SSLError, ValueError) as e:
            say(f"fastgate: reload refused: {e}", err=True)
            self.metrics.config_reloads.labels("refused").inc()
            return False
        old = self.runtime
        new_names = {lst.name: lst for lst in config.listeners}
        # listeners: keep sockets whose address is unchanged, rebind the rest
        for name, state in list(self.listeners.items()):
            lst = new_names.get(name)
            # same host and the port we hold (":0" means "any port": the one we have)
            if lst is not None and lst.host == state.listener.host and lst.port in (0, state.address[1]):
                continue
            self._close_listener(state)
            del self.listeners[name]
        self.runtime = runtime
        for name, lst in new_names.items():
            state = self.listeners.get(name)
            if state is None:
                try:
                    self._open_listener(lst)
                except OSError as e:
                    say(f"fastgate: listener {name} could not bind: {e}", err=True)
            else:
                state.listener = lst
                state.ssl = contexts[name]
        if config.logging.access_log != old.config.logging.access_log:
            self.access_log.close()
            self.access_log = AccessLog(config.logging.access_log)
        for pool in old.retired_pools(runtime):
            pool.close()
        self._retire_token_state(old, runtime)
        self.revocation_sync = await revocations.restart(self.revocation_sync, config.redis,
                                                       runtime.shared)
        await self._start_quota()
        self.metrics.config_reloads.labels("ok").inc()
        say("fastgate: config reloaded", err=True)
        return True

    def _retire_token_state(self, old: Runtime, new: Runtime) -> None:
        """A reload that moved the token service's storage (or turned it off) leaves the old
        state unused: it is closed (its background task, its SQLite file or Redis connection)
        once requests that began before the reload had shutdown_grace to finish."""
        before = old.token_service.state if old.token_service is not None else None
        after = new.token_service.state if new.token_service is not None else None
        if before is None or before is after:
            return
        new.shared.discard(before)

        async def close_later() -> None:
            await asyncio.sleep(new.config.limits.shutdown_grace)
            try:
                await before.close()
            except Exception as e:  # noqa: BLE001 - a failed close must not end the loop's task
                log.warning("token service: closing the retired store failed: %s", type(e).__name__)

        task = asyncio.get_running_loop().create_task(close_later())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _close_listener(self, state: ListenerState) -> None:
        if state.task is not None:
            state.task.cancel()
        state.sock.close()

    async def drain(self) -> None:
        """Stop accepting, close idle connections, wait for busy ones up to shutdown_grace."""
        self.draining = True
        for state in self.listeners.values():
            self._close_listener(state)
        grace = self.runtime.config.limits.shutdown_grace
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while True:
            busy = 0
            for state in self.listeners.values():
                for conn in list(state.connections):
                    if conn.busy:
                        busy += 1
                    else:
                        conn.close()
            if busy == 0 or loop.time() >= deadline:
                break
            await asyncio.sleep(0.05)
        for state in self.listeners.values():
            for conn in list(state.connections):
                conn.close()
        if self.admin is not None:
            await self.admin.stop()
        for api in self.runtime.apis.values():
            api.pool.close()
        if self.revocation_sync is not None:
            await self.revocation_sync.stop()
        stores = self.runtime.shared.quota_stores
        if stores is not None:
            await stores.backend.close()  # a Redis store leaves the live-node set at once
        self.runtime.shared.close()
        self.access_log.close()

    async def _housekeeping(self) -> None:
        """Give freed connection buffers back to the OS: uvloop's TLS layer allocates 256 KiB per
        connection and glibc keeps freed heap gaps, so RSS after a wave of connections stays
        at its peak (benchmarks/README.md "Idle connection memory") unless trimmed."""
        trim = _malloc_trim()
        while True:
            await asyncio.sleep(TRIM_INTERVAL)
            if trim is not None and self.closed_since_trim >= TRIM_AFTER_CLOSED:
                self.closed_since_trim = 0
                trim(0)

    async def serve_forever(self, on_started=None) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))
        loop.add_signal_handler(signal.SIGTERM, self._stopped.set)
        loop.add_signal_handler(signal.SIGINT, self._stopped.set)
        await self.start()
        housekeeping = loop.create_task(self._housekeeping())
        if on_started is not None:
            on_started()
        await self._stopped.wait()
        housekeeping.cancel()
        await self.drain()


def _fmt(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _tls_reason(e: ssl.SSLError) -> str:
    reason = (getattr(e, "reason", None) or "handshake_failed").lower()
    return reason if reason.replace("_", "").isalnum() and len(reason) < 64 else "handshake_failed"


def run(config: Config, config_path: str) -> int:
    """`fastgate run -c FILE` with one worker: exit 0 after a drain."""
    import uvloop

    logging.basicConfig(level=config.logging.level.upper(), stream=sys.stderr,
                        format="fastgate: %(levelname)s %(message)s")

    async def main() -> None:
        gw = Gateway(config, config_path)
        await gw.serve_forever()

    uvloop.run(main())
    return 0

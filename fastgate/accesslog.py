"""The access log: one JSON object per request (CONTRACT.md "Logs").

Invariant: only the contract's fields are written; the path never carries a query, and no
header, cookie or credential is ever a field. Lines are buffered and flushed off the hot path
(every 100 ms or 64 KiB), so a slow log consumer costs bounded memory, not a stall per request.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime

import orjson

FLUSH_INTERVAL = 0.1
FLUSH_BYTES = 64 * 1024
MAX_PENDING = 4 * 1024 * 1024  # past this, lines are dropped (and counted) rather than queued
MAX_PATH = 2048


class AccessLog:
    def __init__(self, target: str) -> None:
        self.enabled = target != "off"
        self._fd: int | None = None
        self._own = False
        if target == "stdout":
            self._fd = sys.stdout.fileno()
        elif self.enabled:
            self._fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            self._own = True
        self._pending: list[bytes] = []
        self._size = 0
        self._handle: asyncio.TimerHandle | None = None
        self.dropped = 0
        self._sec = -1
        self._sec_text = ""

    def _now(self) -> str:
        t = time.time()
        sec = int(t)
        if sec != self._sec:
            self._sec = sec
            self._sec_text = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._sec_text}.{int((t - sec) * 1000):03d}Z"

    def write(self, ctx, total_ms: float) -> None:
        if not self.enabled:
            return
        route = ctx.route
        identity = ctx.identity
        rec = {
            "time": self._now(),
            "request_id": ctx.request_id,
            "client_ip": ctx.client_ip,
            "listener": ctx.listener,
            "api": route.name if route is not None else None,
            "method": ctx.method,
            "path": ctx.path[:MAX_PATH],
            "status": ctx.status,
            "code": ctx.code,
            "bytes_in": ctx.bytes_in,
            "bytes_out": ctx.bytes_out,
            "upstream_ms": ctx.upstream_ms,
            "total_ms": total_ms,
            "application": getattr(identity, "application", None),
            "subject": getattr(identity, "subject", None),
            "decision": ctx.decision,
        }
        line = orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE)
        if self._size + len(line) > MAX_PENDING:
            self.dropped += 1
            return
        self._pending.append(line)
        self._size += len(line)
        if self._size >= FLUSH_BYTES:
            self.flush()
        elif self._handle is None:
            try:
                self._handle = asyncio.get_running_loop().call_later(FLUSH_INTERVAL, self.flush)
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        self._handle = None
        if not self._pending or self._fd is None:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._size = 0
        try:
            while data:
                n = os.write(self._fd, data)
                data = data[n:]
        except OSError:
            self.dropped += 1

    def close(self) -> None:
        self.flush()
        if self._own and self._fd is not None:
            os.close(self._fd)
            self._fd = None

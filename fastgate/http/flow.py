"""Flow control shared by both sides of the proxy: a bounded input buffer with one waiter,
read pausing past a high-water mark, and write draining.

Invariant: a connection never buffers much more than HIGH_WATER of unread input (reading is
paused until the reader takes it below LOW_WATER), and every wait for input has a deadline.
"""

from __future__ import annotations

import asyncio

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(False)


class FlowProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        # once: in CPython 3.11 get_running_loop() costs a getpid() system call per call
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.eof = False
        self.closed = False
        self._read_paused = False
        self._write_paused = False
        self._waiter: asyncio.Future | None = None
        self._drain: asyncio.Future | None = None

    # asyncio callbacks
    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > HIGH_WATER and not self._read_paused:
            self._read_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self):
        self.eof = True
        self._wake()
        return None

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.eof = True
        self._wake()
        self._release_drain()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._release_drain()

    # helpers
    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(True)

    def _release_drain(self) -> None:
        d = self._drain
        if d is not None and not d.done():
            d.set_result(None)

    def _maybe_resume(self) -> None:
        if self._read_paused and len(self.buf) < LOW_WATER:
            self._read_paused = False
            self.transport.resume_reading()

    async def wait_input(self, deadline: float) -> bool:
        """Wait for more input (or EOF) until `deadline` in loop time; False on timeout."""
        self._maybe_resume()
        loop = self.loop
        fut = loop.create_future()
        self._waiter = fut
        handle = loop.call_at(deadline, _expire, fut)
        try:
            await fut
        finally:
            handle.cancel()
            self._waiter = None
        return fut.result()

    def take(self, n: int) -> bytes:
        data = bytes(self.buf[:n])
        del self.buf[:n]
        self._maybe_resume()
        return data

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its limit; raises once closed."""
        if self._write_paused and not self.closed:
            self._drain = self.loop.create_future()
            await self._drain
        if self.closed:
            raise ConnectionResetError("connection closed")

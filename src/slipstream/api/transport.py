"""A connection's writes within one turn of the event loop, sent as one.

uvicorn writes an answer's head and its body with two `transport.write` calls, and on an idle
socket each is a `send()` system call of its own: for a read by id answered from the cache, the
two writes were a third of the event loop's time (docs/performance.md). Held until the end of
the loop's current turn, they leave in one call. Nothing waits longer than that turn, so an
interim answer (`100 Continue`) or a streamed chunk goes out as soon as it did before; a close
sends what is held first, and an abort drops it, as the socket's own buffer would.
"""

from __future__ import annotations

import asyncio
from typing import Any


class CoalescingTransport:
    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if self._pending is None:
            self._pending = [bytes(data)]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(bytes(data))

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        # Everything else (is_closing, get_extra_info, pause_reading, …) is the transport's.
        return getattr(self._transport, name)

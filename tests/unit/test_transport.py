"""The coalescing transport (api/transport.py): writes of one loop turn leave as one, in order,
and nothing is held past the turn, a close or an abort."""

from __future__ import annotations

import asyncio
from typing import cast

from slipstream.api.transport import CoalescingTransport


class Recorder:
    """A transport that records what reaches it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str) -> object:
        return ("127.0.0.1", 1) if name == "peername" else None


def coalescing() -> tuple[CoalescingTransport, Recorder]:
    recorder = Recorder()
    loop = asyncio.get_running_loop()
    return CoalescingTransport(cast(asyncio.Transport, recorder), loop), recorder


async def next_turn() -> None:
    """Until the callbacks scheduled so far (the transport's flush among them) have run."""
    turned = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(turned.set_result, None)
    await turned


async def test_a_head_and_a_body_of_one_turn_leave_in_one_write() -> None:
    transport, recorder = coalescing()
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"")  # nothing to send adds nothing
    transport.write(memoryview(b'{"id": 1}'))
    assert recorder.writes == []
    await next_turn()
    assert recorder.writes == [b'HTTP/1.1 200 OK\r\n\r\n{"id": 1}']


async def test_a_write_is_not_held_past_the_turn() -> None:
    transport, recorder = coalescing()
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    await next_turn()
    transport.write(b"chunk")
    await next_turn()
    assert recorder.writes == [b"HTTP/1.1 100 Continue\r\n\r\n", b"chunk"]


async def test_close_sends_what_is_held_first_and_abort_drops_it() -> None:
    transport, recorder = coalescing()
    transport.write(b"last words")
    transport.close()
    assert (recorder.writes, recorder.closed) == ([b"last words"], True)
    await next_turn()
    assert recorder.writes == [b"last words"]  # the scheduled flush finds nothing more

    transport, recorder = coalescing()
    transport.write(b"never sent")
    transport.abort()
    await next_turn()
    assert (recorder.writes, recorder.aborted) == ([], True)


async def test_other_calls_are_the_transports() -> None:
    transport, recorder = coalescing()
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)
    assert transport.is_closing() is False
    recorder.closed = True
    transport.write(b"to a closed socket")
    await next_turn()
    assert recorder.writes == []

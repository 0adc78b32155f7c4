"""Gzip streams of several members, inflated in bounded pieces, whatever the chunking."""

from __future__ import annotations

import gzip
import os
import re
import zlib

import pytest

from slipstream.api.inflate import PIECE, GzipError, GzipMembers


def inflate(chunks: list[bytes]) -> tuple[bytes, list[int]]:
    """The whole output and the size of every piece, feeding `chunks` one by one."""
    members = GzipMembers()
    pieces = [piece for chunk in chunks for piece in members.inflate(chunk)]
    members.finish()
    return b"".join(pieces), [len(p) for p in pieces]


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_every_member_is_read_whatever_the_chunk_boundaries() -> None:
    parts = [b"first member\n", b"", b"third, after an empty one\n", os.urandom(3000)]
    stream = b"".join(gzip.compress(p) for p in parts)
    # A raw deflate stream flushed mid-way, as streaming compressors write: still one member.
    flushing = zlib.compressobj(wbits=31)
    stream += flushing.compress(b"streamed ") + flushing.flush(zlib.Z_SYNC_FLUSH)
    stream += flushing.compress(b"member") + flushing.flush()
    expected = b"".join(parts) + b"streamed member"
    for size in (1, 2, 7, 64, len(stream)):
        assert inflate(split(stream, size))[0] == expected, size


def test_pieces_stay_within_the_bound_for_a_bomb() -> None:
    bomb = gzip.compress(b"\0" * (20 * PIECE))
    members = GzipMembers()
    pieces = members.inflate(bomb)
    sizes = [len(next(pieces)) for _ in range(5)]  # the caller stops when its limit is passed
    assert sizes == [PIECE] * 5


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (gzip.compress(b"x") + b"trailing garbage", "bytes after its gzip data (after member 1)"),
        (gzip.compress(b"x") * 2 + b"\x1f\x8c", "after member 2"),
        (gzip.compress(b"x") + b"\0\0\0\0", "not another gzip member"),
        (b"plain text", "not gzip data"),
        (gzip.compress(b"x" * 100)[:-3], "truncated"),
        (gzip.compress(b"x") + gzip.compress(b"y")[:5], "truncated"),
        (gzip.compress(b"x")[:-8] + b"\0" * 8, "not valid gzip"),  # wrong CRC and length
    ],
    ids=["garbage", "bad magic", "zeros", "plain", "truncated", "truncated second", "bad crc"],
)
def test_a_broken_stream_is_refused_with_the_reason(stream: bytes, message: str) -> None:
    for size in (1, len(stream)):
        with pytest.raises(GzipError, match=re.escape(message)):
            inflate(split(stream, size))


def test_nothing_at_all_is_an_empty_body() -> None:
    assert inflate([b""]) == (b"", [])

"""Gzip bodies of one member or many, inflated a bounded piece at a time.

RFC 1952 (2.2) makes a gzip stream a series of members, one after another: `cat a.gz b.gz`, pigz
and compressors that flush as they stream write several. zlib stops at the end of the first and
leaves the rest aside, so each member gets a decompressor of its own here, and whatever follows
the last one must be another member or nothing.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

MAGIC = b"\x1f\x8b"
# Most bytes inflated per step. The caller counts each piece against its limit, so a gzip bomb
# is stopped within one piece past the limit, and no step holds more than this much output.
PIECE = 64 * 1024


class GzipError(ValueError):
    """The bytes are not a whole gzip stream; the message says what is wrong."""


class GzipMembers:
    def __init__(self) -> None:
        self.members = 0  # members inflated whole
        self._start_member()

    def _start_member(self) -> None:
        self._member = zlib.decompressobj(wbits=31)
        self._magic = b""  # the member's first bytes, until its magic number is checked
        self._started = False

    def inflate(self, data: bytes) -> Iterator[bytes]:
        """Inflate `data`, the next bytes of the stream, in pieces of at most PIECE bytes."""
        while True:
            if data:
                self._check_magic(data)
                self._started = True
            try:
                out = self._member.decompress(data, PIECE)
            except zlib.error as exc:
                raise GzipError(
                    f"the body is not valid gzip ({exc}); send it again whole"
                ) from None
            if self._member.eof:
                data = self._member.unused_data  # the next member's bytes, from this chunk only
                self.members += 1
                self._start_member()
            else:
                data = self._member.unconsumed_tail
            if out:
                yield out
            # A full piece may leave output inside zlib even when all input is taken: ask again.
            if not data and len(out) < PIECE:
                return

    def finish(self) -> None:
        """Raise GzipError unless the stream ended where a member ended."""
        if self._started:
            raise GzipError("the gzip body is truncated; send the whole compressed body")

    def _check_magic(self, data: bytes) -> None:
        if len(self._magic) >= len(MAGIC):
            return
        self._magic += data[: len(MAGIC) - len(self._magic)]
        if MAGIC.startswith(self._magic):
            return
        if self.members:
            raise GzipError(
                f"the body has bytes after its gzip data (after member {self.members}) that are "
                "not another gzip member; send only gzip members"
            )
        raise GzipError(
            "the body is not gzip data although Content-Encoding says gzip; compress it or drop "
            "the header"
        )

"""Keyset cursors: opaque to clients, signed by the server, bound to the query that made them.

A cursor is `PAYLOAD.MAC`. PAYLOAD is the base64url JSON list `[query, *position]`; MAC is the
first 16 bytes of HMAC-SHA256, under the deployment's cursor key (`Settings.cursor_key`), over
PAYLOAD's *text*. Checking the text rather than the decoded bytes matters: base64 leaves unused
bits in its last character, and a cursor altered there would otherwise decode to the same bytes.
So a cursor altered in any character is refused before anything in it is parsed, and what a
cursor holds (times, ids) reaches a store or broker only as the server wrote it. The position is
still type-checked after the MAC, so a cursor signed under a leaked or guessable key (an open API
whose store URL is known) can do no more than a client's own parameters can.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from starlette.requests import Request

from slipstream.api.encoding import dumps
from slipstream.api.errors import ApiError
from slipstream.api.params import utc_or_none

MAC_BYTES = 16
MAX_LENGTH = 4096  # far above any cursor this API makes; longer ones are not parsed at all
NOT_OURS = "is not one this API issued (altered, cut short, or from another deployment)"


def fingerprint(*parts: Any) -> str:
    """A short digest of a query, so a cursor cannot be carried over to a different query."""
    return hashlib.sha256(dumps(parts)).hexdigest()[:12]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Cursors:
    """Makes and checks the cursors of every list (events, quarantine, dead letters)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest()[:MAC_BYTES])

    def encode(self, query: str, position: Sequence[str | datetime]) -> str:
        payload = _b64(dumps([query, *position]))
        return f"{payload}.{self._mac(payload)}"

    def decode(self, cursor: str, query: str, kinds: Sequence[type]) -> list[Any]:
        """The position of a cursor made by `encode` for `query`, one value per kind (str or
        datetime, the latter as a UTC-aware datetime); ApiError 400 otherwise."""
        if len(cursor) > MAX_LENGTH or not cursor.isascii():
            raise _refused(NOT_OURS)
        payload, _, mac = cursor.partition(".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise _refused(NOT_OURS)
        try:
            value = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (binascii.Error, ValueError):
            raise _refused(NOT_OURS) from None
        if not isinstance(value, list) or len(value) != len(kinds) + 1:
            raise _refused(NOT_OURS)
        if value[0] != query:
            raise _refused(
                "belongs to a different query (filters or time range changed, or another list)"
            )
        return [_typed(item, kind) for item, kind in zip(value[1:], kinds, strict=True)]


def _typed(item: Any, kind: type) -> Any:
    if not isinstance(item, str):
        raise _refused(NOT_OURS)
    if kind is str:
        return item
    try:
        stamp = utc_or_none(datetime.fromisoformat(item))
    except ValueError:
        stamp = None
    if stamp is None:
        raise _refused(NOT_OURS)
    return stamp


def _refused(why: str) -> ApiError:
    return ApiError(400, f"the cursor {why}; start again without it")


def cursors_of(request: Request) -> Cursors:
    """The app's cursors, keyed once from its settings."""
    state = request.app.state
    cursors: Cursors | None = getattr(state, "cursors", None)
    if cursors is None:
        cursors = state.cursors = Cursors(state.runtime.settings.cursor_key())
    return cursors

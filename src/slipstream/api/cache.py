"""A bounded cache of encoded events for GET by id.

Stored events never change (a redelivery never overwrites a row), so a cached answer stays right
until retention deletes the row; entries also expire after `ttl` seconds, which bounds how long a
deleted event can still be served by an API process that does not run the retention sweep.
Misses are not cached: an event not yet stored may be a moment away.
"""

from __future__ import annotations

import time
from collections import OrderedDict


class ReadCache:
    def __init__(self, max_entries: int, ttl: float = 60.0) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._entries: OrderedDict[tuple[str, str], tuple[float, bytes]] = OrderedDict()

    def get(self, dataset: str, event_id: str) -> bytes | None:
        entry = self._entries.get((dataset, event_id))
        if entry is None:
            return None
        expires, body = entry
        if expires < time.monotonic():
            del self._entries[(dataset, event_id)]
            return None
        self._entries.move_to_end((dataset, event_id))
        return body

    def put(self, dataset: str, event_id: str, body: bytes) -> None:
        if self.max_entries <= 0:
            return
        self._entries[(dataset, event_id)] = (time.monotonic() + self.ttl, body)
        self._entries.move_to_end((dataset, event_id))
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

"""Key prefixes known to start no stored key, for a database that only this process writes.

A read that leaves out the keys with a prefix (`exclude_key_prefix`) tests every row's key. On
DuckDB, which reads every key of the time range for it, that is a third of a list's time, and
most tables never hold such a key. Where every write passes through this process, the test can
be left out while no key has the prefix: a prefix is looked for once, on its first read, and
marked present by the first write with such a key, before that write commits. A prefix never
turns absent again (deleting rows does not unmark it): at worst the test runs for nothing.

Both the look and the marks run on the store's writer thread, in turn with the writes, so no
write can commit between a look and the mark it would have needed. A read that took the answer
just before a write commits may list that write's rows once, as a read a moment earlier would
have.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import TypeVar

from slipstream.stores import ListQuery, StatsQuery

Q = TypeVar("Q", ListQuery, StatsQuery)
# Looks for keys with a prefix in a dataset, on the writer thread, and tells `learn` what it found
# (or nothing, when it could not look).
Look = Callable[[str], Awaitable[None]]


class AbsentPrefixes:
    def __init__(self) -> None:
        self._absent: dict[str, set[str]] = {}  # dataset → prefixes no stored key starts with
        self._known: set[tuple[str, str]] = set()  # (dataset, prefix) looked for

    def absent(self, dataset: str, prefix: str) -> bool | None:
        """Whether no stored key of `dataset` starts with `prefix`; None until looked for."""
        if prefix in self._absent.get(dataset, ()):
            return True
        return False if (dataset, prefix) in self._known else None

    def learn(self, dataset: str, prefix: str, present: bool) -> None:
        """What a look found (writer thread)."""
        self._known.add((dataset, prefix))
        if not present:
            self._absent.setdefault(dataset, set()).add(prefix)

    def note(self, dataset: str, keys: Iterable[object]) -> None:
        """Keys about to be written (writer thread, before the commit)."""
        absent = self._absent.get(dataset)
        if not absent:
            return
        texts = [key for key in keys if isinstance(key, str)]
        for prefix in list(absent):
            if any(key.startswith(prefix) for key in texts):
                absent.discard(prefix)

    async def needed(self, dataset: str, prefix: str | None, look: Look) -> str | None:
        """`prefix`, or None when no stored key starts with it."""
        if prefix is None:
            return None
        if self.absent(dataset, prefix) is None:
            await look(prefix)
        return None if self.absent(dataset, prefix) else prefix

    async def narrowed(self, dataset: str, query: Q, look: Look) -> Q:
        """`query` without its key prefix to leave out, when no stored key starts with it."""
        prefix = await self.needed(dataset, query.exclude_key_prefix, look)
        if prefix == query.exclude_key_prefix:
            return query
        return replace(query, exclude_key_prefix=prefix)

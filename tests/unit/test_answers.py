"""Answers kept while nothing is written (stores/answers.py), with reads and commits interleaved
by hand."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from slipstream.stores.answers import Answers, answer_key

ROWS: list[tuple[Any, ...]] = [(1, "a"), (2, "b")]


class Query:
    """A read that answers when the test lets it, counting how often it ran."""

    def __init__(self, rows: list[tuple[Any, ...]] = ROWS, error: Exception | None = None) -> None:
        self.rows = rows
        self.error = error
        self.runs = 0
        self.started = asyncio.Event()
        self.gate = asyncio.Event()

    async def __call__(self) -> list[tuple[Any, ...]]:
        self.runs += 1
        self.started.set()
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.rows


async def test_a_read_that_overlaps_a_commit_is_not_kept() -> None:
    answers, query = Answers(), Query()
    reading = asyncio.create_task(answers.read("flights", "k", query))
    await query.started.wait()
    answers.changed("flights")  # a commit lands while it runs
    query.gate.set()
    assert await reading == ROWS
    assert len(answers) == 0
    assert await answers.read("flights", "k", query) == ROWS
    assert query.runs == 2
    assert len(answers) == 1


async def test_a_commit_to_another_dataset_leaves_the_answer() -> None:
    answers, query = Answers(), Query()
    query.gate.set()
    await answers.read("flights", "k", query)
    answers.changed("trains")
    await answers.read("flights", "k", query)
    assert query.runs == 1


async def test_a_failed_read_reaches_every_caller_and_is_not_kept() -> None:
    answers, failing = Answers(), Query(error=RuntimeError("database gone"))
    callers = [asyncio.create_task(answers.read("flights", "k", failing)) for _ in range(3)]
    await failing.started.wait()  # the read runs once every caller has asked for it
    failing.gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert [str(r) for r in results] == ["database gone"] * 3
    assert failing.runs == 1
    assert len(answers) == 0


async def test_a_caller_going_away_leaves_the_read_to_the_others() -> None:
    answers, query = Answers(), Query()
    first = asyncio.create_task(answers.read("flights", "k", query))
    second = asyncio.create_task(answers.read("flights", "k", query))
    await query.started.wait()
    first.cancel()
    query.gate.set()
    assert await second == ROWS
    with pytest.raises(asyncio.CancelledError):
        await first
    assert query.runs == 1


async def test_answers_are_bounded_in_number_and_in_rows() -> None:
    answers = Answers(max_answers=2, max_rows=2)
    query, big = Query(), Query([(i,) for i in range(3)])
    query.gate.set()
    big.gate.set()
    for key in ("a", "b", "c"):
        await answers.read("flights", key, query)
    await answers.read("flights", "big", big)
    assert len(answers) == 2
    await answers.read("flights", "a", query)  # the oldest went first
    assert query.runs == 4


def test_a_parameter_that_cannot_be_a_key_means_no_key() -> None:
    assert answer_key("SELECT $x", {"x": 1}) == answer_key("SELECT $x", {"x": 1})
    assert answer_key("SELECT $x", {"x": [1, 2]}) is None

"""Admission by freshness (admission.py): the drain rate it measures and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipstream.admission import FLOOR, MAX_RETRY_AFTER, DrainRate
from slipstream.runtime import Runtime
from tests.helpers import flight_event
from tests.unit.test_api import error_of, make_client


def drained(samples: list[tuple[int, int]], objective: float = 10) -> DrainRate:
    """A DrainRate fed (backlog, published since the last sample) once a second."""
    rate = DrainRate(objective)
    for second, (backlog, published) in enumerate(samples):
        rate.published(published)
        rate.observe(backlog, float(second))
    return rate


def test_the_rate_is_what_left_the_backlog_counting_what_came_in() -> None:
    # 50k waiting, 20k arrive each second, the backlog shrinks by 10k: 30k drained each second.
    rate = drained([(50_000, 0), (40_000, 20_000), (30_000, 20_000), (20_000, 20_000)])
    assert rate.per_second == pytest.approx(30_000)


def test_only_intervals_with_a_backlog_measure_the_workers() -> None:
    # An empty backlog says how fast events arrive, not how fast they could be drained.
    assert drained([(0, 0), (0, 500), (0, 500)]).per_second is None
    assert drained([(0, 0), (20_000, 25_000), (0, 5_000)]).per_second is None


TEN_THOUSAND_A_SECOND = [(190_000, 0), (180_000, 0), (170_000, 0), (160_000, 0)]


def test_the_first_moments_of_a_flood_are_not_a_measure() -> None:
    # The workers' first batch is not acked yet: next to nothing drained. Refusing on that
    # would turn producers away from a backlog that drains in a second (as a CI run once did).
    onset = drained([(20_000, 0), (19_998, 0)])
    assert onset.per_second is None
    assert onset.refusal("flights", 20_000) is None
    # Once the window has seconds in it, the slow start weighs in proportion.
    settled = drained([(20_000, 0), (19_998, 0), (9_998, 0), (2, 0)])
    assert settled.per_second == pytest.approx(19_998 / 3)


def test_the_rate_follows_the_last_ten_seconds() -> None:
    slow_then_fast = [(1_000_000 - 100 * n, 0) for n in range(11)]
    last = slow_then_fast[-1][0]
    slow_then_fast += [(last - 10_000 * n, 0) for n in range(1, 11)]
    assert drained(slow_then_fast).per_second == pytest.approx(10_000)


def test_a_backlog_under_the_objective_or_the_floor_is_admitted() -> None:
    rate = drained(TEN_THOUSAND_A_SECOND)  # 10 s admits 100k
    assert rate.refusal("flights", 100_000) is None
    slow = drained([(50_000 - 100 * n, 0) for n in range(4)])  # 100/s: 10 s would be 1,000
    assert slow.refusal("flights", FLOOR) is None


def test_a_backlog_past_the_objective_is_refused_with_when_to_come_back() -> None:
    rate = drained(TEN_THOUSAND_A_SECOND)
    refusal = rate.refusal("flights", 150_000)
    assert refusal is not None
    assert refusal.retry_after == 5  # the 50k over the 100k admitted, at 10k/s
    assert "15 s of draining at the 10000 events/s measured" in refusal.message
    assert "SLIPSTREAM_ADMISSION_SECONDS" in refusal.message
    far = rate.refusal("flights", 10_000_000)
    assert far is not None
    assert far.retry_after == MAX_RETRY_AFTER


def test_no_rate_or_no_objective_refuses_nothing() -> None:
    # Workers down: nothing drains, the broker buffers up to the fixed bound.
    stalled = drained([(50_000 + 10_000 * n, 10_000 if n else 0) for n in range(5)])
    assert stalled.per_second == 0
    assert stalled.refusal("flights", 900_000) is None
    off = drained(TEN_THOUSAND_A_SECOND, objective=0)
    assert off.refusal("flights", 10_000_000) is None


def test_the_api_refuses_a_flood_by_its_drain_time(tmp_path: Path) -> None:
    with make_client(tmp_path) as client:
        runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]

        async def frozen() -> None:  # the monitor keeps the figures set here
            return None

        runtime._refresh_backlog = frozen  # type: ignore[method-assign]
        drain = runtime.drain["flights"]
        for second in range(5):  # as the monitor would see a flood draining at 1,000/s
            drain.observe(30_000 - 1_000 * second, 1_000_000.0 + second)
        runtime.backlog["flights"] = 25_000  # 25 s of draining, 10 s admitted
        answer = client.post("/v1/datasets/flights/events", json=flight_event(1))
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "15"
        assert "25 s of draining" in str(error_of(answer)["message"])
        runtime.backlog["flights"] = 9_000
        assert client.post("/v1/datasets/flights/events", json=flight_event(1)).status_code == 202

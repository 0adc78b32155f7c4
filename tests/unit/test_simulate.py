"""The flight simulator tells plausible stories, and run_simulation paces, retries and stops."""

from __future__ import annotations

import asyncio
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import httpx
import orjson
import pytest
from rich.console import Console

from slipstream import simulate
from slipstream.datasets import Dataset
from slipstream.events import EventCodec, InvalidEvent
from slipstream.flights import AIRPORTS, FLEETS, OPERATORS, FlightSimulator, block_time
from slipstream.simulate import SimulationSummary, run_simulation
from tests.services import free_port

START = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
AIRCRAFT = r"[A-Z0-9]{4} (N\d{3}[A-Z]{2}|[A-Z]{2}-[A-Z]{3}|[A-Z]-[A-Z]{4})"  # type, registration
NEXT = {
    "scheduled": {"delayed", "boarding", "cancelled"},
    "delayed": {"delayed", "boarding", "cancelled"},
    "boarding": {"departed"},
    "departed": {"landed", "diverted"},
    "landed": set(),
    "cancelled": set(),
    "diverted": set(),
}


@pytest.fixture
def codec(flights: Dataset) -> EventCodec:
    return EventCodec(flights)


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return FlightSimulator(seed=7, flights=200, start=START).next_events(10_000)


def is_valid(codec: EventCodec, event: dict[str, Any]) -> bool:
    try:
        codec.validate(event)
    except InvalidEvent:
        return False
    return True


def test_each_flight_walks_a_plausible_order(events: list[dict[str, Any]]) -> None:
    flights: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        flights[event["flight_id"]].append(event)
    for flight_id, story in flights.items():
        statuses = [e["status"] for e in story]
        assert statuses[0] == "scheduled", flight_id
        for before, after in pairwise(statuses):
            assert after in NEXT[before], f"{flight_id}: {before} then {after}"
        if "landed" in statuses:
            assert statuses.index("departed") < statuses.index("landed")
        times = [e["event_time"] for e in story]
        assert times == sorted(times), flight_id
        delays = [e["delay_minutes"] for e in story if e["status"] in ("scheduled", "delayed")]
        assert delays == sorted(delays), f"{flight_id}: delays only grow before departure"
        for field in ("origin", "destination", "aircraft"):
            assert len({e[field] for e in story}) == 1, f"{flight_id}: {field} changed"
        assert story[0]["origin"] != story[0]["destination"]
        assert {story[0]["origin"], story[0]["destination"]} <= AIRPORTS.keys()
        assert re.fullmatch(r"[A-Z0-9]{2}\d{3,4}-\d{4}-\d{2}-\d{2}", flight_id)
        assert re.fullmatch(AIRCRAFT, story[0]["aircraft"]), story[0]["aircraft"]


def test_delays_are_carried_on_later_events(events: list[dict[str, Any]]) -> None:
    last: dict[str, dict[str, Any]] = {}
    carried = 0
    for event in events:
        before = last.get(event["flight_id"])
        if before and before["status"] == "delayed" and event["status"] == "boarding":
            assert event["delay_minutes"] == before["delay_minutes"]
            carried += 1
        last[event["flight_id"]] = event
    assert carried > 0


def test_traffic_mixes_flights_in_event_time_order(events: list[dict[str, Any]]) -> None:
    times = [e["event_time"] for e in events]
    assert times == sorted(times)
    assert len({e["flight_id"] for e in events[:50]}) > 20
    assert set(Counter(e["status"] for e in events)) == set(NEXT)


def test_ids_are_unique(events: list[dict[str, Any]]) -> None:
    assert len({e["id"] for e in events}) == len(events)


def test_every_event_fits_the_flights_schema(
    codec: EventCodec, events: list[dict[str, Any]]
) -> None:
    for event in events:
        codec.validate(event)


def test_a_seed_replays_the_same_traffic() -> None:
    def story(seed: int) -> list[tuple[Any, ...]]:
        sim = FlightSimulator(seed=seed, flights=20, start=START)
        return [tuple(v for k, v in e.items() if k != "id") for e in sim.next_events(300)]

    assert story(3) == story(3)
    assert story(3) != story(4)


def valid_times(events: list[dict[str, Any]]) -> list[datetime]:
    return [
        datetime.fromisoformat(e["event_time"]) for e in events if e.get("event_time") != "soon"
    ]


@pytest.mark.parametrize("count", [1, 700, 25_000])
def test_a_story_ending_by_a_time_stays_at_or_before_it(count: int) -> None:
    end = datetime(2026, 11, 24, 6, 2, 43, 120_000, tzinfo=UTC)
    sim = FlightSimulator.ending_by(end, count, seed=9, flights=300, invalid_ratio=0.1)
    events = sim.next_events(count)
    times = valid_times(events)
    assert times == sorted(times)
    assert times[-1] <= end
    assert times[-1] > end - timedelta(minutes=5), "it ends close to the time asked for"
    later = FlightSimulator(seed=9, flights=300, start=end, invalid_ratio=0.1).next_events(count)
    assert [e["status"] for e in events] == [e.get("status") for e in later], "the same story"


def test_skipping_events_leaves_the_simulator_where_making_them_would() -> None:
    made = FlightSimulator(seed=4, flights=50, start=START, invalid_ratio=0.3)
    skipped = FlightSimulator(seed=4, flights=50, start=START, invalid_ratio=0.3)
    events = made.next_events(3000)
    assert skipped.skip(3000) == made.clock == max(valid_times(events))
    assert skipped.next_time == made.next_time

    def without_ids(sim: FlightSimulator) -> list[tuple[Any, ...]]:
        return [tuple(v for k, v in e.items() if k != "id") for e in sim.next_events(500)]

    assert without_ids(skipped) == without_ids(made)


def test_invalid_ratio_mixes_in_events_the_codec_rejects(codec: EventCodec) -> None:
    sim = FlightSimulator(seed=11, flights=50, start=START, invalid_ratio=0.2)
    events = sim.next_events(2000)
    invalid = [e for e in events if not is_valid(codec, e)]
    assert 250 < len(invalid) < 550
    assert any("flight_id" not in e for e in invalid)
    assert any(e.get("status") == "teleported" for e in invalid)


def test_routes_join_known_airports_with_plausible_block_times() -> None:
    assert {code for _, _, *airports in OPERATORS for code in airports} <= AIRPORTS.keys()
    assert {carrier for carrier, *_ in OPERATORS} == FLEETS.keys()
    assert timedelta(hours=3) <= block_time("SCL", "LIM") <= timedelta(hours=4)
    assert timedelta(hours=12) <= block_time("MAD", "SCL") <= timedelta(hours=14.5)
    assert block_time("AEP", "MVD") < timedelta(hours=1.5)


def test_settings_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="invalid_ratio"):
        FlightSimulator(invalid_ratio=1.5)


class Ingest:
    """An ingest endpoint in a MockTransport: 503 for the first `busy` requests, then 202."""

    def __init__(self, busy: int = 0, status: int = 202) -> None:
        self.busy = busy
        self.status = status
        self.requests: list[httpx.Request] = []
        self.accepted_ids: list[str] = []
        self.refused_ids: list[str] = []
        self.bodies: list[bytes] = []  # every event line posted, in order

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        lines = request.content.splitlines()
        self.bodies += lines
        ids = [orjson.loads(line)["id"] for line in lines]
        if len(self.requests) <= self.busy:
            self.refused_ids += ids
            return httpx.Response(503, headers={"Retry-After": "0"}, json={"error": {}})
        if self.status != 202:
            return httpx.Response(self.status, json={"error": {"message": "no such key"}})
        self.accepted_ids += ids
        return httpx.Response(202, json={"accepted": len(ids), "ids": ids, "rejected": []})


async def test_run_keeps_the_rate_retries_a_busy_answer_and_loses_nothing() -> None:
    ingest = Ingest(busy=1)
    async with httpx.AsyncClient(transport=httpx.MockTransport(ingest)) as client:
        summary = await run_simulation(
            "http://slipstream.test/",
            "flights",
            rate=2000,
            duration=0.5,
            api_key="k3y",
            batch_size=100,
            simulator=FlightSimulator(seed=1, start=START),
            progress=False,
            client=client,
        )
    assert 800 <= summary.sent <= 1000
    assert summary.accepted == len(ingest.accepted_ids) == summary.sent
    assert summary.retries == 1
    assert set(ingest.refused_ids) <= set(ingest.accepted_ids)  # the refused batch came again
    assert len(set(ingest.accepted_ids)) == len(ingest.accepted_ids)
    assert summary.failed == summary.failed_requests == summary.rejected == 0
    assert summary.requests == len(ingest.requests)
    assert 0.4 <= summary.elapsed < 1.5  # paced over the duration, not all at once
    assert summary.problem is None
    first = ingest.requests[0]
    assert first.url == "http://slipstream.test/v1/datasets/flights/events"
    assert first.headers["content-type"] == "application/x-ndjson"
    assert first.headers["authorization"] == "Bearer k3y"


async def test_a_run_sends_no_event_time_later_than_now() -> None:
    ingest = Ingest()
    async with httpx.AsyncClient(transport=httpx.MockTransport(ingest)) as client:
        summary = await run_simulation(
            "http://slipstream.test", "flights", 40_000, 0.5, progress=False, client=client
        )
    now = datetime.now(UTC)
    times = [datetime.fromisoformat(orjson.loads(line)["event_time"]) for line in ingest.bodies]
    assert len(times) == summary.sent > 2000  # hours of flights, at a thousand flights
    assert max(times) <= now
    assert summary.events_from == min(times)
    assert summary.events_to == max(times)
    console = Console(record=True, width=160)
    console.print(summary.table())
    assert f"{max(times):%Y-%m-%d %H:%M:%S} UTC" in console.export_text()


async def test_an_unreachable_server_ends_the_run_on_time_with_a_clear_message() -> None:
    summary = await run_simulation(
        f"http://127.0.0.1:{free_port()}", "flights", rate=500, duration=0.3, progress=False
    )
    assert summary.sent == 0
    assert summary.failed_requests > 0
    assert summary.elapsed < 0.3 + simulate._DRAIN_SECONDS + 0.5
    assert summary.problem is not None
    assert summary.problem.startswith("nothing could be sent to http://127.0.0.1:")
    console = Console(record=True, width=160)
    console.print(summary.table())
    assert "nothing could be sent" in console.export_text()


async def test_a_silent_server_does_not_hold_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(simulate, "_DRAIN_SECONDS", 0.2)

    async def silent(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(60)
        raise AssertionError("unreachable")

    async with httpx.AsyncClient(transport=httpx.MockTransport(silent)) as client:
        summary = await run_simulation(
            "http://slipstream.test",
            "flights",
            1000,
            0.3,
            batch_size=50,
            progress=False,
            client=client,
        )
    assert summary.elapsed < 1.5
    assert summary.sent == 0
    assert summary.failed_requests == summary.requests == 4  # every slot held, then cancelled
    assert summary.last_error == "no answer before the end of the run"


async def test_a_refusal_stops_the_run_early() -> None:
    ingest = Ingest(status=401)
    async with httpx.AsyncClient(transport=httpx.MockTransport(ingest)) as client:
        summary = await run_simulation(
            "http://slipstream.test", "flights", 1000, 2.0, progress=False, client=client
        )
    assert summary.elapsed < 1.0
    assert len(ingest.requests) == summary.failed_requests <= 2
    assert summary.problem is not None
    assert summary.problem.startswith("stopped early: HTTP 401")


async def test_an_all_invalid_batch_counts_as_rejected() -> None:
    def quarantine(request: httpx.Request) -> httpx.Response:
        n = len(request.content.splitlines())
        details = {"accepted": 0, "ids": [], "rejected": [{"index": i} for i in range(n)]}
        return httpx.Response(422, json={"error": {"details": details}})

    sim = FlightSimulator(seed=2, flights=10, start=START, invalid_ratio=1.0)
    async with httpx.AsyncClient(transport=httpx.MockTransport(quarantine)) as client:
        summary = await run_simulation(
            "http://slipstream.test", "flights", 200, 0.2, simulator=sim, client=client
        )
    assert summary.sent == summary.rejected == 40
    assert summary.accepted == summary.failed_requests == 0


def test_summary_table_lists_the_counts() -> None:
    summary = SimulationSummary("http://x/v1/datasets/flights/events", 100, 2, sent=150)
    summary.accepted, summary.rejected, summary.elapsed = 148, 2, 2.0
    console = Console(record=True, width=160)
    console.print(summary.table())
    text = console.export_text()
    assert "148" in text
    assert "75 events/s" in text
    assert "nothing could be sent" not in text

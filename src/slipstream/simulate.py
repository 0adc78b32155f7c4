"""Realistic flight-status traffic, and a load generator that posts it to a Slipstream API.

Flights live in a small discrete-event simulation: a heap ordered by each flight's next event
time, so events come out in event-time order and mix flights as real traffic does. Simulated
time moves with the events, not with the wall clock: at a high posting rate it runs ahead of now.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
import re
import string
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from slipstream.events import new_event_id

# IATA code, latitude, longitude.
_AIRPORTS = """
SCL -33.39 -70.79  LIM -12.02 -77.11  GRU -23.43 -46.47  GIG -22.81 -43.25  BSB -15.87 -47.92
EZE -34.82 -58.54  AEP -34.56 -58.42  COR -31.31 -64.21  MDZ -32.83 -68.79  BOG   4.70 -74.15
MDE   6.16 -75.42  CTG  10.44 -75.51  UIO  -0.13 -78.36  GYE  -2.16 -79.88  CUZ -13.54 -71.94
AQP -16.34 -71.58  ANF -23.44 -70.45  CCP -36.77 -73.06  PMC -41.44 -73.09  PUQ -53.00 -70.85
MVD -34.84 -56.03  ASU -25.24 -57.52  PTY   9.07 -79.38  MEX  19.44 -99.07  CUN  21.04 -86.87
MIA  25.79 -80.29  JFK  40.64 -73.78  ATL  33.64 -84.43  DFW  32.90 -97.04  MAD  40.49  -3.57
LIS  38.77  -9.13  CDG  49.01   2.55  FRA  50.03   8.56  AMS  52.31   4.76
"""
# Carrier, registration prefix, hub, then the airports flown to from that hub (and back).
_OPERATORS = """
LA CC SCL LIM GRU EZE BOG MIA MAD JFK ANF CCP PMC PUQ CUZ
LA OB LIM CUZ AQP BOG UIO GYE MIA JFK MAD EZE GRU MEX
LA PR GRU GIG BSB EZE ASU MVD MIA JFK MAD LIS FRA
H2 CC SCL LIM ANF CCP PMC PUQ AEP MVD
JA CC SCL LIM ANF CCP PMC PUQ AEP
AV HK BOG MDE CTG UIO GYE LIM SCL GRU EZE MIA JFK MAD MEX CUN PTY
CM HP PTY BOG MDE CTG LIM SCL GRU EZE MVD ASU UIO GYE MIA JFK MEX CUN
AR LV AEP COR MDZ MVD ASU GRU GIG SCL
AR LV EZE MAD MIA JFK LIM BOG
G3 PR GRU GIG BSB EZE MVD ASU
AA N MIA SCL LIM GRU EZE BOG UIO MDE MEX CUN JFK
AA N DFW MEX CUN GRU SCL
DL N ATL LIM SCL GRU EZE BOG MEX CUN
IB EC MAD SCL LIM GRU EZE BOG UIO GYE MEX MIA JFK
UX EC MAD LIM BOG GRU EZE MVD ASU
AF F CDG SCL LIM GRU GIG EZE BOG MEX
KL PH AMS LIM GRU EZE BOG MEX
LH D FRA GRU EZE BOG MEX
TP CS LIS GRU GIG BSB
"""
# Carrier narrow-body ICAO types / wide-body types (none: its long routes fly narrow-bodies).
_FLEETS = """
LA A320 A321 A20N / B788 B789 B763 | H2 A20N A21N / | JA A320 A21N / | AV A320 A20N / B788
CM B738 B38M / | AR B738 B38M / A332 | G3 B738 B38M / | AA A321 B738 / B772 B788
DL A321 B739 / A332 A339 | IB A321 / A359 A332 | UX B738 / B789 | AF A320 / B77W A359
KL B738 / B772 B789 | LH A321 / B748 A359 | TP A20N / A339
"""
AIRPORTS = {
    code: (float(lat), float(lon))
    for code, lat, lon in zip(*[iter(_AIRPORTS.split())] * 3, strict=True)
}
OPERATORS = [line.split() for line in _OPERATORS.strip().splitlines()]
FLEETS = {c: (n.split(), w.split()) for c, n, w in re.findall(r"(\w\w) ([^/]*)/([^|\n]*)", _FLEETS)}
TERMINAL = frozenset({"landed", "cancelled", "diverted"})
MINUTE = timedelta(minutes=1)


def block_time(origin: str, destination: str) -> timedelta:
    """Gate-to-gate time: great-circle distance at ~810 km/h plus 30 min, to 5 minutes."""
    (lat1, lon1), (lat2, lon2) = (map(math.radians, AIRPORTS[c]) for c in (origin, destination))
    h = math.sin((lat2 - lat1) / 2) ** 2
    h += math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    minutes = 2 * 6371 * math.asin(math.sqrt(h)) / 13.5 + 30
    return timedelta(minutes=5 * round(minutes / 5))


@dataclass(slots=True)
class _Flight:
    flight_id: str
    origin: str
    destination: str
    aircraft: str
    gate: str
    departure: datetime  # scheduled
    block: timedelta
    boarding_lead: timedelta
    next_time: datetime
    next_status: str = "scheduled"
    next_delay: int = 0
    status: str = "scheduled"  # the last status emitted
    delay: int = 0
    delays: int = 0


class FlightSimulator:
    """A seeded pool of flights, each walking scheduled → (delayed)* → boarding → departed →
    landed, sometimes cancelled before departure or diverted after it. A finished flight is
    replaced by a new one, so the pool keeps its size."""

    def __init__(
        self,
        seed: int | None = None,
        *,
        flights: int = 1000,
        start: datetime | None = None,
        invalid_ratio: float = 0.0,
    ) -> None:
        if flights < 1 or not 0.0 <= invalid_ratio <= 1.0:
            raise ValueError("flights must be at least 1 and invalid_ratio between 0 and 1")
        self.rng = rng = random.Random(seed)
        self.invalid_ratio = invalid_ratio
        self.clock = (start or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        # (operator, origin, destination); flight numbers even outbound, odd back, per carrier.
        self._routes: list[tuple[int, str, str]] = []
        self._numbers: dict[tuple[str, str, str], list[int]] = {}
        self._next_number = {op[0]: rng.randrange(100, 5000, 100) for op in OPERATORS}
        self._fleet: dict[tuple[int, bool], list[str]] = {}
        for i, (carrier, prefix, hub, *destinations) in enumerate(OPERATORS):
            for d in destinations:
                self._routes += [(i, hub, d), (i, d, hub)]
                self._numbers[carrier, hub, d] = [self._new_number(carrier)]
                self._numbers[carrier, d, hub] = [self._numbers[carrier, hub, d][0] + 1]
            for wide, types in enumerate(FLEETS[carrier]):
                if types:
                    fleet = (self._registration(prefix) for _ in range(5 if wide else 12))
                    self._fleet[i, bool(wide)] = [f"{rng.choice(types)} {r}" for r in fleet]
        self._blocks = {(a, b): block_time(a, b) for _, a, b in self._routes}
        self._used: dict[date, set[str]] = {}
        self._queue: list[tuple[datetime, int, _Flight]] = []
        self._seq = itertools.count()
        for _ in range(flights):
            self._spawn(self.clock + timedelta(seconds=rng.randrange(3600)))

    def next_events(self, n: int) -> list[dict[str, Any]]:
        """The next `n` events, flights mixed, in event-time order (invalid ones aside)."""
        ratio, rng = self.invalid_ratio, self.rng
        return [
            self._invalid() if ratio and rng.random() < ratio else self._next() for _ in range(n)
        ]

    def _new_number(self, carrier: str) -> int:
        self._next_number[carrier] += 2
        return self._next_number[carrier] - 2

    def _registration(self, prefix: str) -> str:
        rng, letters = self.rng, string.ascii_uppercase
        if prefix == "N":
            return f"N{rng.randint(100, 999)}{''.join(rng.choices(letters, k=2))}"
        return f"{prefix}-{''.join(rng.choices(letters, k=5 - len(prefix)))}"

    def _gate(self) -> str:
        return f"{self.rng.choice('ABCDE')}{self.rng.randint(1, 40)}"

    def _spawn(self, created: datetime) -> None:
        rng = self.rng
        op, origin, destination = rng.choice(self._routes)
        carrier = OPERATORS[op][0]
        departure = created + timedelta(minutes=rng.randint(45, 360))
        departure -= timedelta(minutes=departure.minute % 5, seconds=departure.second)
        day = departure.date()
        if day not in self._used:  # forget the flight numbers of days long gone
            self._used = {d: ids for d, ids in self._used.items() if (day - d).days < 3}
        used = self._used.setdefault(day, set())
        numbers = self._numbers[carrier, origin, destination]
        number = next((n for n in numbers if f"{carrier}{n}-{day}" not in used), None)
        if number is None:  # one more daily frequency on this route
            number = self._new_number(carrier)
            numbers.append(number)
        flight_id = f"{carrier}{number}-{day.isoformat()}"
        used.add(flight_id)
        block = self._blocks[origin, destination]
        wide = block > timedelta(hours=6) and (op, True) in self._fleet
        aircraft = rng.choice(self._fleet[op, wide])
        lead = timedelta(minutes=50 if wide else 35)
        flight = _Flight(
            flight_id, origin, destination, aircraft, self._gate(), departure, block, lead, created
        )
        heapq.heappush(self._queue, (created, next(self._seq), flight))

    def _next(self) -> dict[str, Any]:
        now, _, flight = heapq.heappop(self._queue)
        self.clock = now
        if flight.next_status == "delayed":
            flight.delays += 1
            if self.rng.random() < 0.2:
                flight.gate = self._gate()
        flight.status, flight.delay = flight.next_status, flight.next_delay
        event = self._event(flight, now)
        if flight.status in TERMINAL:
            self._spawn(now + timedelta(seconds=self.rng.randrange(600)))
        else:
            self._plan(flight, now)
            heapq.heappush(self._queue, (flight.next_time, next(self._seq), flight))
        return event

    def _plan(self, f: _Flight, now: datetime) -> None:
        """Choose the flight's next status, its time (after `now`) and the delay it carries."""
        rng, delay = self.rng, f.delay
        if f.status in ("scheduled", "delayed"):
            boarding = max(now + MINUTE, f.departure + f.delay * MINUTE - f.boarding_lead)
            cancel = 0.015 + 0.03 * f.delays  # long delays end in cancellation more often
            roll = rng.random()
            if roll < cancel:
                status, at = "cancelled", now + (boarding - now) * rng.random()
            elif roll < cancel + (0.25 / (1 + f.delays) if f.delays < 4 else 0):
                status, at = "delayed", now + (boarding - now) * rng.uniform(0.2, 0.8)
                delay += rng.choice((10, 15, 15, 20, 25, 30, 30, 45, 60, 90, 120))
            else:
                status, at = "boarding", boarding
        elif f.status == "boarding":
            at = max(now + 10 * MINUTE, f.departure + (f.delay + rng.randint(-2, 12)) * MINUTE)
            status, delay = "departed", round((at - f.departure) / MINUTE)
        elif rng.random() < 0.008:
            status, at = "diverted", now + f.block * rng.uniform(0.3, 0.9)
        else:
            at = now + f.block * rng.uniform(0.92, 1.06)
            status, delay = "landed", round((at - f.departure - f.block) / MINUTE)
        f.next_status, f.next_delay = status, delay
        f.next_time = max(at, now + MINUTE).replace(microsecond=0)

    def _event(self, f: _Flight, at: datetime) -> dict[str, Any]:
        return {
            "id": new_event_id(),
            "flight_id": f.flight_id,
            "status": f.status,
            "event_time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "origin": f.origin,
            "destination": f.destination,
            "delay_minutes": f.delay,
            "gate": f.gate,
            "aircraft": f.aircraft,
        }

    def _invalid(self) -> dict[str, Any]:
        """A deliberately broken event about a flight of the pool, to show off quarantine."""
        event = self._event(self.rng.choice(self._queue)[2], self.clock)
        field, value = self.rng.choice(_BREAKAGES)
        if value is None:
            del event[field]
        else:
            event[field] = value
        return event


_BREAKAGES = [
    ("status", "teleported"),
    ("flight_id", None),
    ("event_time", "soon"),
    ("delay_minutes", "a while"),
]
_NEWLINE = orjson.OPT_APPEND_NEWLINE
_BATCH_INTERVAL = 0.25  # longest pause between two batches, whatever the batch size
_DRAIN_SECONDS = 2.0  # how long the requests in flight at the end may take to answer


@dataclass
class SimulationSummary:
    """What a run did. `sent` counts events the server answered for (202, or 422: all invalid)."""

    url: str
    target_rate: float
    duration: float
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0  # events of batches that got no answer, or an error
    requests: int = 0
    failed_requests: int = 0
    retries: int = 0
    elapsed: float = 0.0
    last_error: str | None = None
    stopped: str | None = None  # why the run ended before its duration

    @property
    def events_per_second(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def problem(self) -> str | None:
        """What went wrong, for a person to read; None when the run went through."""
        if self.stopped:
            return f"stopped early: {self.stopped}"
        if self.sent == 0:
            return f"nothing could be sent to {self.url}: {self.last_error or 'no request made'}"
        return None

    def table(self) -> Table:
        caption = Text(self.problem, style="bold red") if self.problem else None
        table = Table(title="Simulation", show_header=False, caption=caption)
        table.add_column(style="bold")
        table.add_column(justify="right")
        table.add_row("endpoint", Text(self.url))
        table.add_row("target", f"{self.target_rate:,.0f} events/s for {self.duration:g} s")
        for name in ("sent", "accepted", "rejected", "failed", "requests", "failed_requests"):
            table.add_row(name.replace("_", " "), f"{getattr(self, name):,}")
        table.add_row("retries (server busy)", f"{self.retries:,}")
        table.add_row("elapsed", f"{self.elapsed:.2f} s")
        table.add_row("achieved", f"{self.events_per_second:,.0f} events/s")
        return table

    def _fail(self, count: int, error: str) -> None:
        self.failed += count
        self.failed_requests += 1
        self.last_error = error

    def _answered(self, response: httpx.Response, count: int) -> None:
        try:
            answer = orjson.loads(response.content)
            answer = answer if response.status_code == 202 else answer["error"]["details"]
            accepted, rejected = int(answer["accepted"]), len(answer["rejected"])
        except (ValueError, KeyError, TypeError):
            accepted, rejected = (count, 0) if response.status_code == 202 else (0, count)
        self.sent += count
        self.accepted += accepted
        self.rejected += rejected


async def run_simulation(
    base_url: str,
    dataset: str,
    rate: float,
    duration: float,
    *,
    api_key: str | None = None,
    batch_size: int = 500,
    simulator: FlightSimulator | None = None,
    progress: bool = True,
    client: httpx.AsyncClient | None = None,
    concurrency: int = 4,
) -> SimulationSummary:
    """Post simulated events as NDJSON batches at `rate` events/s for `duration` seconds.

    By time t, rate·t events have been handed to up to `concurrency` requests in flight, so one
    slow answer does not stall the pace. A busy server (503/429) gets the same batch again after
    its Retry-After. The run ends at `duration`, plus a short drain of the requests in flight,
    whether the server answers or not; a 4xx refusal ends it early, as every batch would get one.
    """
    if rate <= 0 or duration <= 0 or batch_size < 1 or concurrency < 1:
        raise ValueError("rate, duration, batch_size and concurrency must be positive")
    s = SimulationSummary(f"{base_url.rstrip('/')}/v1/datasets/{dataset}/events", rate, duration)
    simulator = simulator or FlightSimulator()
    headers = {"Content-Type": "application/x-ndjson"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    http = client or httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=3.0))
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + duration

    async def post(body: bytes, count: int) -> None:
        try:
            while True:
                s.requests += 1
                try:
                    response = await http.post(s.url, content=body, headers=headers)
                except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
                    s._fail(count, f"{type(exc).__name__}: {exc}".removesuffix(": "))
                    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
                        s.stopped = s.last_error
                    return
                code = response.status_code
                if code in (202, 422):  # 422: every event of the batch was invalid (quarantined)
                    return s._answered(response, count)
                if code in (429, 503):
                    try:
                        wait = max(0.0, float(response.headers.get("Retry-After", "1")))
                    except ValueError:  # an HTTP date: not worth parsing for a load generator
                        wait = 1.0
                    if loop.time() + wait < deadline:
                        s.retries += 1
                        await asyncio.sleep(wait)
                        continue
                s._fail(count, f"HTTP {code}: {response.text[:300]}")
                if 400 <= code < 500 and code not in (408, 429):  # the next batches: the same
                    s.stopped = s.stopped or s.last_error
                return
        except asyncio.CancelledError:
            s._fail(count, "no answer before the end of the run")
            raise

    display = Progress(
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[stats]}"),
        disable=not progress,
    )
    total = math.ceil(rate * duration - 1e-9)
    bar = display.add_task("simulate", total=total, stats="")
    slots = asyncio.Semaphore(concurrency)
    in_flight: set[asyncio.Task[None]] = set()

    def done(task: asyncio.Task[None]) -> None:
        in_flight.discard(task)
        slots.release()
        rate_now = s.sent / max(loop.time() - start, 1e-3)
        stats = (
            f"{s.accepted:,} accepted · {s.rejected:,} rejected · {s.retries:,} retries · "
            f"{s.failed_requests:,} failed · {rate_now:,.0f}/s"
        )
        display.update(bar, completed=s.sent + s.failed, stats=stats)

    per_batch = max(1, min(batch_size, int(rate * _BATCH_INTERVAL)))
    queued = 0
    try:
        with display:
            try:
                async with asyncio.timeout_at(deadline):
                    while queued < total and s.stopped is None:
                        await asyncio.sleep(max(0.0, start + queued / rate - loop.time()))
                        await slots.acquire()
                        count = min(per_batch, total - queued)
                        events = simulator.next_events(count)
                        body = b"".join(orjson.dumps(e, option=_NEWLINE) for e in events)
                        queued += count
                        task = asyncio.create_task(post(body, count))
                        in_flight.add(task)
                        task.add_done_callback(done)
            except TimeoutError:
                pass
            if in_flight:
                drain = deadline + _DRAIN_SECONDS - loop.time()
                _, late = await asyncio.wait(set(in_flight), timeout=drain)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
            if s.stopped is None:  # the last batch stands for the run's last moments
                await asyncio.sleep(deadline - loop.time())
    finally:
        for task in in_flight:  # only when the run itself is cancelled
            task.cancel()
        s.elapsed = loop.time() - start
        if client is None:
            await http.aclose()
    return s

"""Realistic flight-status traffic: a seeded model of flights walking their statuses.

Flights live in a small discrete-event simulation: a heap ordered by each flight's next event
time, so events come out in event-time order and mix flights as real traffic does. Simulated
time moves with the events, not with the wall clock: a thousand flights make about one event
every eight simulated seconds, so a load test of thousands of events a second covers days.
`FlightSimulator.ending_by` therefore starts the story early enough to end by a given time.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import re
import string
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

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
# Departures fall on five-minute marks, and nothing else in the model depends on the clock's
# reading: started a multiple of this earlier, the same seed tells the same story that much
# earlier.
DEPARTURE_GRID = timedelta(minutes=5)


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
        self.start = self.clock
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

    @classmethod
    def ending_by(
        cls,
        end: datetime,
        events: int,
        *,
        seed: int | None = None,
        flights: int = 1000,
        invalid_ratio: float = 0.0,
    ) -> FlightSimulator:
        """A simulator whose first `events` events all fall at or before `end`, the last of
        them within five minutes of it: a run replays the recent past instead of running
        into the future. A trial run of the same seed measures how much time they cover."""
        seed = random.randrange(2**63) if seed is None else seed
        trial = cls(seed, flights=flights, start=end, invalid_ratio=invalid_ratio)
        span = trial.skip(events) - trial.start
        earlier = math.ceil(span / DEPARTURE_GRID) * DEPARTURE_GRID
        return cls(seed, flights=flights, start=end - earlier, invalid_ratio=invalid_ratio)

    def next_events(self, n: int) -> list[dict[str, Any]]:
        """The next `n` events, flights mixed, in event-time order (invalid ones aside)."""
        return [
            self._invalid() if self._breaks() else self._event(*self._advance()) for _ in range(n)
        ]

    @property
    def next_time(self) -> datetime:
        """The time of the next valid event."""
        return self._queue[0][0]

    def skip(self, n: int) -> datetime:
        """Move on by `n` events without making them, exactly as `next_events(n)` would;
        return the time of the last valid one."""
        for _ in range(n):
            if self._breaks():
                self._breakage()
            else:
                self._advance()
        return self.clock

    def _breaks(self) -> bool:
        return bool(self.invalid_ratio) and self.rng.random() < self.invalid_ratio

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

    def _advance(self) -> tuple[_Flight, datetime]:
        """The flight whose event comes next, moved to its new status, and the event's time."""
        now, _, flight = heapq.heappop(self._queue)
        self.clock = now
        if flight.next_status == "delayed":
            flight.delays += 1
            if self.rng.random() < 0.2:
                flight.gate = self._gate()
        flight.status, flight.delay = flight.next_status, flight.next_delay
        if flight.status in TERMINAL:
            self._spawn(now + timedelta(seconds=self.rng.randrange(600)))
        else:
            self._plan(flight, now)  # changes only the flight's next_* fields
            heapq.heappush(self._queue, (flight.next_time, next(self._seq), flight))
        return flight, now

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
        flight, field, value = self._breakage()
        event = self._event(flight, self.clock)
        if value is None:
            del event[field]
        else:
            event[field] = value
        return event

    def _breakage(self) -> tuple[_Flight, str, str | None]:
        flight = self.rng.choice(self._queue)[2]
        field, value = self.rng.choice(_BREAKAGES)
        return flight, field, value


_BREAKAGES = [
    ("status", "teleported"),
    ("flight_id", None),
    ("event_time", "soon"),
    ("delay_minutes", "a while"),
]

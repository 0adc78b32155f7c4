"""A load generator: simulated flight events posted to a Slipstream API at a steady rate."""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import orjson
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from slipstream.flights import FlightSimulator

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
    events_from: datetime | None = None  # event times of the events made, first to last
    events_to: datetime | None = None
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
        if self.events_from and self.events_to:
            span = f"{self.events_from:%Y-%m-%d %H:%M:%S} → {self.events_to:%Y-%m-%d %H:%M:%S} UTC"
            table.add_row("event times", span)
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


def planned_events(rate: float, duration: float) -> int:
    """How many events a run at `rate` events/s for `duration` seconds sends at most."""
    return math.ceil(rate * duration - 1e-9)


class _Poster:
    """Posts batches to the run's URL, counting into its summary. A busy server (503/429) gets
    the same batch again after its Retry-After, while the run has time left."""

    def __init__(
        self, http: httpx.AsyncClient, summary: SimulationSummary, api_key: str | None
    ) -> None:
        self.http = http
        self.summary = summary
        self.headers = {"Content-Type": "application/x-ndjson"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.loop = asyncio.get_running_loop()
        self.start = self.loop.time()
        self.deadline = self.start + summary.duration

    async def post(self, body: bytes, count: int) -> None:
        s = self.summary
        try:
            while True:
                s.requests += 1
                try:
                    response = await self.http.post(s.url, content=body, headers=self.headers)
                except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
                    s._fail(count, f"{type(exc).__name__}: {exc}".removesuffix(": "))
                    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
                        s.stopped = s.last_error
                    return
                code = response.status_code
                if code in (202, 422):  # 422: every event of the batch was invalid (quarantined)
                    return s._answered(response, count)
                if code in (429, 503) and await self._waited(response):
                    continue
                s._fail(count, f"HTTP {code}: {response.text[:300]}")
                if 400 <= code < 500 and code not in (408, 429):  # the next batches: the same
                    s.stopped = s.stopped or s.last_error
                return
        except asyncio.CancelledError:
            s._fail(count, "no answer before the end of the run")
            raise

    async def _waited(self, response: httpx.Response) -> bool:
        """Wait out a busy answer's Retry-After; False when the run ends before that."""
        try:
            wait = max(0.0, float(response.headers.get("Retry-After", "1")))
        except ValueError:  # an HTTP date: not worth parsing for a load generator
            wait = 1.0
        if self.loop.time() + wait >= self.deadline:
            return False
        self.summary.retries += 1
        await asyncio.sleep(wait)
        return True


def _display(enabled: bool) -> Progress:
    return Progress(
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[stats]}"),
        disable=not enabled,
    )


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
    total = planned_events(rate, duration)
    simulator = simulator or FlightSimulator.ending_by(datetime.now(UTC), total)
    http = client or httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=3.0))
    poster = _Poster(http, s, api_key)
    per_batch = max(1, min(batch_size, int(rate * _BATCH_INTERVAL)))
    try:
        with _display(progress) as display:
            await _send_all(poster, simulator, total, per_batch, concurrency, display)
    finally:
        s.elapsed = poster.loop.time() - poster.start
        if client is None:
            await http.aclose()
    return s


async def _send_all(
    poster: _Poster,
    simulator: FlightSimulator,
    total: int,
    per_batch: int,
    concurrency: int,
    display: Progress,
) -> None:
    """Hand `total` events to `poster` at the run's rate, then drain what is still in flight."""
    s, loop, start, deadline = poster.summary, poster.loop, poster.start, poster.deadline
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

    queued = 0
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                while queued < total and s.stopped is None:
                    await asyncio.sleep(max(0.0, start + queued / s.target_rate - loop.time()))
                    await slots.acquire()
                    count = min(per_batch, total - queued)
                    s.events_from = s.events_from or simulator.next_time
                    events = simulator.next_events(count)
                    s.events_to = simulator.clock
                    body = b"".join(orjson.dumps(e, option=_NEWLINE) for e in events)
                    queued += count
                    task = asyncio.create_task(poster.post(body, count))
                    in_flight.add(task)
                    task.add_done_callback(done)
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

"""What one pair's scenarios measured, and the table rows that say it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from slipstream.bench.cpu import UNDER_LOAD
from slipstream.bench.load import IngestResult, ReadResult
from slipstream.bench.report import Row, duration, mebibytes, rate
from slipstream.bench.scenarios import (
    FAST_P99_TARGET,
    FRESHNESS_P99_FLOOR,
    GET_P99_FLOOR,
    INGEST_FLOOR,
    READS,
    Pair,
    Params,
)
from slipstream.bench.stats import Buckets, bucket_count, histogram_quantile, quantile_bucket


@dataclass
class Freshness:
    """Quantiles of the freshness histogram's growth over one phase."""

    buckets: Buckets

    @property
    def count(self) -> int:
        return int(bucket_count(self.buckets))

    def quantile(self, q: float) -> float | None:
        return histogram_quantile(q, self.buckets)

    def bucket(self, q: float) -> str:
        bounds = quantile_bucket(q, self.buckets)
        if bounds is None:
            return "?"
        lower, upper = bounds
        return f"{duration(lower) if lower else '0'}–{duration(upper)}"


@dataclass
class PairResult:
    pair: Pair
    flood: IngestResult | None = None
    flood_freshness: Freshness | None = None
    paced: IngestResult | None = None
    paced_freshness: Freshness | None = None
    fast: IngestResult | None = None
    fast_freshness: Freshness | None = None
    reads: dict[str, ReadResult] = field(default_factory=dict)
    peak_rss: list[int] = field(default_factory=list)  # per process: the server or API first
    naive: IngestResult | None = None
    failures: list[str] = field(default_factory=list)
    skipped: str | None = None  # why the pair could not run here
    other_load: list[float] = field(default_factory=list)  # cores others used, per deployment


def end_to_end_rate(outcome: IngestResult | None) -> float | None:
    """Accepted events per second, first post → all queryable; None unless all arrived."""
    if outcome is None or not outcome.complete or outcome.total_seconds <= 0:
        return None
    return outcome.accepted / outcome.total_seconds


def _met(value: float | None, ok: bool) -> bool | None:
    return None if value is None else ok


def ingest_floor(pair: Pair) -> str:
    return f"≥ {INGEST_FLOOR:,.0f} events/s" if "ingest" in pair.floors else ""


def ingest_rows(result: PairResult, params: Params) -> list[Row]:
    section = result.pair.name
    flood, naive = result.flood, result.naive
    batched_rate, naive_rate = end_to_end_rate(flood), end_to_end_rate(naive)
    ratio = batched_rate / naive_rate if batched_rate and naive_rate else None
    floor = ingest_floor(result.pair)
    batched = Row(
        f"ingest {result.pair.name} (batched)",
        rate(batched_rate, "events/s"),
        floor=floor,
        floor_met=_met(batched_rate, (batched_rate or 0) >= INGEST_FLOOR) if floor else None,
        notes=f"{flood.accepted:,} events in {flood.total_seconds:.2f} s, first post → all "
        f"queryable (posting {flood.post_seconds:.2f} s); {params.batch:,}/request, "
        f"{params.connections} connections"
        if flood
        else "failed",
        section=section,
    )
    if not result.pair.reads:
        return [batched]
    return [
        batched,
        Row(
            "ingest naive (batch 1)",
            rate(naive_rate, "events/s"),
            notes=f"{naive.accepted:,} events in {naive.total_seconds:.2f} s; 1/request, "
            f"{params.connections} connections, SLIPSTREAM_BATCH_SIZE=1"
            if naive
            else "failed",
            section=section,
        ),
        Row(
            "ratio batched / naive",
            "—" if ratio is None else f"{ratio:,.0f}×",
            notes="same end-to-end measure, same run",
            section=section,
        ),
    ]


def freshness_rows(result: PairResult, params: Params) -> list[Row]:
    rows = []
    fast = (
        f"freshness at {params.fast_rate:,.0f} events/s",
        result.fast_freshness,
        f"paced {params.paced_seconds:g} s{_achieved(result.fast)} (target: p99 ≤ "
        f"{FAST_P99_TARGET:g} s)",
        False,
    )
    for figure, fresh, context, floored in (
        ("freshness, batched flood", result.flood_freshness, "during the flood above", False),
        (
            f"freshness at {params.paced_rate:,.0f} events/s",
            result.paced_freshness,
            f"paced {params.paced_seconds:g} s{_achieved(result.paced)}",
            "freshness" in result.pair.floors and params.paced_rate >= INGEST_FLOOR,
        ),
        *([fast] if result.pair.reads else []),
    ):
        p50 = fresh.quantile(0.50) if fresh else None
        p99 = fresh.quantile(0.99) if fresh else None
        rows.append(
            Row(
                figure,
                p50=duration(p50),
                p99=duration(p99),
                floor=f"p99 ≤ {FRESHNESS_P99_FLOOR:g} s" if floored else "",
                floor_met=_met(p99, (p99 or 0) <= FRESHNESS_P99_FLOOR) if floored else None,
                notes=f"{fresh.count:,} events {context}; bucket-interpolated (p50 in "
                f"{fresh.bucket(0.5)}, p99 in {fresh.bucket(0.99)})"
                if fresh and fresh.count
                else "not measured",
                section=result.pair.name,
            )
        )
    return rows


def _achieved(paced: IngestResult | None) -> str:
    if paced is None or paced.post_seconds <= 0:
        return ""
    return f", {paced.accepted / paced.post_seconds:,.0f} events/s achieved"


def read_rows(result: PairResult, params: Params) -> list[Row]:
    rows = []
    for scenario in READS:
        reads = result.reads.get(scenario.figure)
        floored = "get" in result.pair.floors and scenario.path.endswith("{id}")
        floored = floored and scenario.hot_ids is None
        p99 = reads.p99 if reads else None
        distinct = f", {reads.distinct:,} distinct ids" if reads and "{id}" in scenario.path else ""
        rows.append(
            Row(
                scenario.figure,
                rate(reads.per_second if reads else None, "req/s"),
                p50=duration(reads.p50 if reads else None),
                p99=duration(p99),
                errors=f"{reads.errors:,}" if reads else "",
                floor=f"p99 ≤ {GET_P99_FLOOR * 1000:g} ms" if floored else "",
                floor_met=_met(p99, (p99 or 0) <= GET_P99_FLOOR) if floored else None,
                notes=f"{reads.requests:,} requests in {reads.seconds:.1f} s{distinct}; "
                f"{params.read_connections} connections"
                if reads
                else "failed",
                section=result.pair.name,
            )
        )
    return rows


def rss_row(result: PairResult) -> Row:
    sizes, workers = result.peak_rss, result.pair.workers
    total = sum(sizes) if sizes else None
    if not workers:
        notes = "server high-water mark over ingests and reads"
    elif len(sizes) == workers + 1:
        api, each = sizes[0], sizes[1:]
        low, high = mebibytes(min(each)), mebibytes(max(each))
        size = f"{low} each" if low == high else f"{low}–{high}"
        notes = f"api {mebibytes(api)} + {workers} workers {size}; high-water marks, summed"
    else:
        notes = "not measured"
    return Row("peak RSS", mebibytes(total), notes=notes, section=result.pair.name)


def load_row(result: PairResult) -> Row:
    """How much CPU other processes took while the pair ran: its figures are low if much."""
    worst = max(result.other_load) if result.other_load else None
    if worst is None:
        value, notes = "—", "not measured (no /proc)"
    else:
        value = f"{worst:.2f} cores"
        verdict = (
            "UNDER LOAD: this pair's figures are understated"
            if worst >= UNDER_LOAD
            else "a quiet machine"
        )
        notes = (
            f"{verdict}; CPU used meanwhile by processes other than the bench, its servers "
            f"and the pair's NATS/PostgreSQL (the worst of {len(result.other_load)} "
            f"deployment{'s' if len(result.other_load) > 1 else ''})"
        )
    return Row("other processes' CPU", value, notes=notes, section=result.pair.name)


def pair_legend(pairs: Sequence[Pair], params: Params) -> list[str]:
    """What differs between pairs: their sizes, the scenarios they skip, their caveats."""
    lines = []
    for pair in pairs:
        sized = pair.params(params)
        what = [f"{pair.workers} `slipstream worker` processes beside `slipstream api`"]
        if pair.scale != 1.0:
            what.append(
                f"{sized.events:,} events batched and {sized.paced_rate:,.0f} events/s paced "
                f"(×{pair.scale:g} of the others)"
            )
        if not pair.reads:
            what.append("the two ingests only (no reads, no naive baseline, no second paced run)")
        if pair.workers:
            what.append("freshness summed over the workers' histograms")
        if pair.workers or pair.scale != 1.0:
            lines.append(f"{pair.name}: {'; '.join(what)}.")
        if pair.note:
            lines.append(pair.note)
    return lines


def skipped_rows(result: PairResult) -> list[Row]:
    floor = ingest_floor(result.pair)
    return [
        Row(
            f"ingest {result.pair.name} (batched)",
            "skipped",
            floor=floor,
            notes=f"skipped: {result.skipped}",
            section=result.pair.name,
        )
    ]


def pair_rows(result: PairResult, params: Params) -> list[Row]:
    if result.skipped is not None:
        return skipped_rows(result)
    params = result.pair.params(params)
    return [
        *ingest_rows(result, params),
        *freshness_rows(result, params),
        *(read_rows(result, params) if result.pair.reads else []),
        rss_row(result),
        load_row(result),
    ]

"""What one pair's scenarios measured, and the table rows that say it."""

from __future__ import annotations

from dataclasses import dataclass, field

from slipstream.bench.load import IngestResult, ReadResult
from slipstream.bench.report import Row, duration, mebibytes, rate
from slipstream.bench.scenarios import (
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
    reads: dict[str, ReadResult] = field(default_factory=dict)
    peak_rss: int | None = None
    naive: IngestResult | None = None
    failures: list[str] = field(default_factory=list)


def end_to_end_rate(outcome: IngestResult | None) -> float | None:
    """Accepted events per second, first post → all queryable; None unless all arrived."""
    if outcome is None or not outcome.complete or outcome.total_seconds <= 0:
        return None
    return outcome.accepted / outcome.total_seconds


def _met(value: float | None, ok: bool) -> bool | None:
    return None if value is None else ok


def ingest_rows(result: PairResult, params: Params) -> list[Row]:
    section = result.pair.name
    flood, naive = result.flood, result.naive
    batched_rate, naive_rate = end_to_end_rate(flood), end_to_end_rate(naive)
    ratio = batched_rate / naive_rate if batched_rate and naive_rate else None
    return [
        Row(
            f"ingest {result.pair.name} (batched)",
            rate(batched_rate, "events/s"),
            floor=f"≥ {INGEST_FLOOR:,.0f} events/s",
            floor_met=_met(batched_rate, (batched_rate or 0) >= INGEST_FLOOR),
            notes=f"{flood.accepted:,} events in {flood.total_seconds:.2f} s, first post → all "
            f"queryable (posting {flood.post_seconds:.2f} s); {params.batch:,}/request, "
            f"{params.connections} connections"
            if flood
            else "failed",
            section=section,
        ),
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
    paced = result.paced
    achieved = (
        f", {paced.accepted / paced.post_seconds:,.0f} events/s achieved"
        if paced and paced.post_seconds > 0
        else ""
    )
    for figure, fresh, context, floored in (
        ("freshness, batched flood", result.flood_freshness, "during the flood above", False),
        (
            f"freshness at {params.paced_rate:,.0f} events/s",
            result.paced_freshness,
            f"paced {params.paced_seconds:g} s{achieved}",
            True,
        ),
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


def read_rows(result: PairResult, params: Params) -> list[Row]:
    rows = []
    for scenario in READS:
        reads = result.reads.get(scenario.figure)
        floored = scenario.path.endswith("{id}") and scenario.hot_ids is None
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


def pair_rows(result: PairResult, params: Params) -> list[Row]:
    return [
        *ingest_rows(result, params),
        *freshness_rows(result, params),
        *read_rows(result, params),
        Row(
            "peak RSS",
            mebibytes(result.peak_rss),
            notes="server high-water mark over ingests and reads",
            section=result.pair.name,
        ),
    ]

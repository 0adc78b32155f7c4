"""The arithmetic of the bench: quantiles of client-side samples and of Prometheus histograms."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from prometheus_client.parser import text_string_to_metric_families

# (upper bound, cumulative count), sorted by bound, the last bound +Inf: a Prometheus histogram.
Buckets = list[tuple[float, float]]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0 ≤ q ≤ 1) of `values`, interpolating linearly between the two closest
    ranks (numpy's default). None when there are no values."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be between 0 and 1, not {q}")
    if not values:
        return None
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def histogram_buckets(text: str, name: str, labels: Mapping[str, str] | None = None) -> Buckets:
    """The buckets of histogram `name` whose labels include `labels`, from Prometheus text.

    Series matching `labels` but differing in other labels are summed, as `sum by (le)` would.
    Empty when the histogram is not there."""
    wanted = dict(labels or {})
    counts: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name != f"{name}_bucket" or "le" not in sample.labels:
                continue
            if any(sample.labels.get(k) != v for k, v in wanted.items()):
                continue
            bound = float(sample.labels["le"])
            counts[bound] = counts.get(bound, 0.0) + sample.value
    return sorted(counts.items())


def counter_value(text: str, name: str, labels: Mapping[str, str] | None = None) -> float:
    """The sum of counter `name` (given without `_total`) over the series matching `labels`."""
    wanted = dict(labels or {})
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name != f"{name}_total":
                continue
            if all(sample.labels.get(k) == v for k, v in wanted.items()):
                total += sample.value
    return total


def subtract_buckets(after: Buckets, before: Buckets) -> Buckets:
    """What a histogram gained between two scrapes: the observations of that interval alone."""
    earlier = dict(before)
    return [(bound, count - earlier.get(bound, 0.0)) for bound, count in after]


def sum_buckets(histograms: Sequence[Buckets]) -> Buckets:
    """One histogram of several processes' (the workers of one deployment), as `sum by (le)`
    over their scrapes would give: counts of the same bound add up; a process that has not
    observed anything yet (no buckets) adds nothing."""
    counts: dict[float, float] = {}
    for buckets in histograms:
        for bound, count in buckets:
            counts[bound] = counts.get(bound, 0.0) + count
    return sorted(counts.items())


def bucket_count(buckets: Buckets) -> float:
    """How many observations the histogram holds (its +Inf bucket)."""
    return buckets[-1][1] if buckets else 0.0


def histogram_quantile(q: float, buckets: Buckets) -> float | None:
    """The q-quantile of a histogram, computed as Prometheus' `histogram_quantile` does.

    The observation of rank q·count is placed in the first bucket holding that many, and its
    value interpolated linearly between the bucket's lower and upper bounds (the lower bound of
    the first bucket is 0 when its upper bound is positive). A quantile falling in the +Inf
    bucket answers the highest finite bound. None when the histogram is empty or malformed.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be between 0 and 1, not {q}")
    ordered = sorted(buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return None
    total = ordered[-1][1]
    if total <= 0:
        return None
    rank = q * total
    index = next(i for i, (_, count) in enumerate(ordered) if count >= rank)
    if index == len(ordered) - 1:
        return ordered[-2][0]
    upper, count = ordered[index]
    if index == 0:
        if upper <= 0:
            return upper
        lower, below = 0.0, 0.0
    else:
        lower, below = ordered[index - 1]
    if count == below:
        return upper
    return lower + (upper - lower) * (rank - below) / (count - below)


def quantile_bucket(q: float, buckets: Buckets) -> tuple[float, float] | None:
    """The bounds of the bucket `histogram_quantile` interpolates in: the value's real precision."""
    ordered = sorted(buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]) or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    index = next(i for i, (_, count) in enumerate(ordered) if count >= rank)
    lower = ordered[index - 1][0] if index else min(0.0, ordered[0][0])
    return lower, ordered[index][0]

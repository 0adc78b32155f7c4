"""observe_times: the same histogram as observing one amount that many times."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram

from slipstream.metrics import FRESHNESS_BUCKETS, observe_times


def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("le", "")): s.value
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


def histogram(registry: CollectorRegistry) -> Histogram:
    family = Histogram(
        "age_seconds", "age", ["dataset"], buckets=FRESHNESS_BUCKETS, registry=registry
    )
    return family.labels("flights")


# On a bound, just past it, below the first, past the last, zero.
AMOUNTS = [0.0, 0.05, 0.0500001, 0.3, 1.0, 2.5, 899.0, 900.0, 901.0, 1e6]


@pytest.mark.parametrize("amount", AMOUNTS)
@pytest.mark.parametrize("times", [1, 3, 1000])
def test_observe_times_equals_observing_each(amount: float, times: int) -> None:
    one_by_one, at_once = CollectorRegistry(), CollectorRegistry()
    each = histogram(one_by_one)
    for _ in range(times):
        each.observe(amount)
    observe_times(histogram(at_once), amount, times)
    assert samples(at_once) == pytest.approx(samples(one_by_one))


def test_observe_times_zero_times_observes_nothing() -> None:
    untouched, registry = CollectorRegistry(), CollectorRegistry()
    histogram(untouched)
    observe_times(histogram(registry), 0.3, 0)
    assert samples(registry) == samples(untouched)

"""`slipstream bench`: ingest, freshness and read latency measured against real servers."""

from slipstream.bench.scale import run_scale_bench
from slipstream.bench.scenarios import PAIRS, Pair
from slipstream.bench.suite import run_bench

__all__ = ["PAIRS", "Pair", "run_bench", "run_scale_bench"]

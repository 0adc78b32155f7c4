"""Readiness and 503s always say why: a failure with an empty message still gets a reason."""

from __future__ import annotations

from slipstream.api.errors import unavailable
from slipstream.errors import BackendUnavailable, reason_of
from slipstream.runtime import backend_state, readiness


async def test_a_ping_failing_without_a_message_still_gives_a_reason() -> None:
    async def times_out() -> None:
        raise TimeoutError

    async def bare() -> None:
        raise BackendUnavailable

    async def answers() -> None:
        return None

    assert await backend_state(times_out) == "unavailable: no answer in time (timed out)"
    assert await backend_state(bare) == "unavailable: BackendUnavailable"
    assert await backend_state(answers) == "ok"


def test_not_ready_names_each_backend_that_is_down_and_why() -> None:
    ready, body = readiness({"broker": "ok", "store": "ok"})
    assert ready
    assert body == {"status": "ready", "broker": "ok", "store": "ok"}

    down = "unavailable: disk full: /data/warehouse.duckdb (0 bytes free on its volume)"
    ready, body = readiness({"broker": "ok", "store": down})
    assert not ready
    assert body["status"] == "not ready"
    assert body["reason"] == f"store {down}"
    assert body["store"] == down


def test_a_503_names_the_cause_even_when_the_error_has_no_message() -> None:
    assert reason_of(BackendUnavailable("disk full: /x")) == "disk full: /x"
    error = unavailable("store", BackendUnavailable())
    assert error.status == 503
    assert error.message == "the store is unavailable (BackendUnavailable); retry shortly"

"""One probe run over the HTTP API: learn the schema, publish, poll until readable, compare."""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from slipstream.datasets import Dataset
from slipstream.probe.event import build_event, differences, probe_id

Outcome = Literal["ok", "mismatch", "failed"]
_ERRNO = re.compile(r"^\[Errno -?\d+\]\s*")
_FIRST_POLL, _LONGEST_POLL = 0.01, 0.2  # seconds between reads while waiting for the event


@dataclass(frozen=True, slots=True)
class ProbeResult:
    dataset: str
    result: Outcome
    detail: str = ""
    event_id: str | None = None
    round_trip: float | None = None  # seconds from publish to readable; None when never read

    def line(self) -> str:
        parts = [self.result, self.dataset]
        if self.event_id:
            parts.append(self.event_id)
        if self.round_trip is not None:
            parts.append(f"round trip {self.round_trip:.3f}s")
        text = " ".join(parts)
        return f"{text}: {self.detail}" if self.detail else text


class ProbeFailed(Exception):
    """A run that could not complete; the message says what went wrong, in one line."""


class Stopped(Exception):
    """Shutdown was asked for during a run: the run is dropped, not counted as a failure."""


class Prober:
    def __init__(
        self,
        url: str,
        dataset: str,
        *,
        timeout: float,
        api_key: str | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.dataset = dataset
        self.timeout = timeout
        self.stop = stop or threading.Event()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=self.url, headers=headers)
        self._events = f"/v1/datasets/{quote(dataset, safe='')}/events"

    def close(self) -> None:
        self.client.close()

    def run(self) -> ProbeResult | None:
        """One round trip; None when shutdown interrupted it."""
        deadline = time.monotonic() + self.timeout
        event_id = None
        try:
            dataset = self._schema(deadline)
            event_id = probe_id()
            event = build_event(dataset, event_id, datetime.now(UTC), random.randrange(1000))
            started = time.monotonic()
            self._publish(event, deadline)
            got = self._read_back(event_id, deadline)
            round_trip = time.monotonic() - started
        except ProbeFailed as exc:
            return ProbeResult(self.dataset, "failed", str(exc), event_id)
        except Stopped:
            return None
        found = differences(dataset, event, got)
        if found:
            return ProbeResult(self.dataset, "mismatch", "; ".join(found), event_id, round_trip)
        return ProbeResult(self.dataset, "ok", "", event_id, round_trip)

    def _schema(self, deadline: float) -> Dataset:
        response = self._request("GET", "/v1/datasets", deadline)
        if response.status_code != 200:
            raise ProbeFailed(_answer(response))
        served = _json(response).get("datasets") or []
        for item in served:
            if item.get("name") == self.dataset:
                try:
                    return Dataset.model_validate(
                        {k: item.get(k) for k in ("name", "key", "event_time", "fields")}
                    )
                except ValidationError as exc:
                    first = exc.errors()[0]
                    raise ProbeFailed(
                        f"dataset {self.dataset!r}: the schema the server describes cannot be "
                        f"probed: {first['msg']}"
                    ) from None
        names = ", ".join(str(item.get("name")) for item in served) or "none"
        raise ProbeFailed(f"{self.url} serves no dataset {self.dataset!r} (it serves: {names})")

    def _publish(self, event: dict[str, Any], deadline: float) -> None:
        response = self._request("POST", self._events, deadline, json=event)
        if response.status_code != 202:
            raise ProbeFailed(_answer(response))
        body = _json(response)
        if body.get("accepted") != 1:
            rejected = body.get("rejected") or [{}]
            reason = rejected[0].get("error", "no reason given")
            raise ProbeFailed(f"the server rejected the probe event: {reason}")

    def _read_back(self, event_id: str, deadline: float) -> dict[str, Any]:
        path = f"{self._events}/{quote(event_id, safe='')}"
        delay = _FIRST_POLL
        while True:
            response = self._request("GET", path, deadline)
            if response.status_code == 200:
                return _json(response)
            # 404: not stored yet; 5xx: the store may be recovering. Either may pass in time.
            if response.status_code != 404 and response.status_code < 500:
                raise ProbeFailed(_answer(response))
            if time.monotonic() + delay >= deadline:
                raise ProbeFailed(
                    f"event {event_id} not readable within {self.timeout:g}s "
                    f"(last answer: {response.status_code})"
                )
            if self.stop.wait(delay):
                raise Stopped
            delay = min(delay * 2, _LONGEST_POLL)

    def _request(self, method: str, path: str, deadline: float, **kwargs: Any) -> httpx.Response:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProbeFailed(f"no answer within {self.timeout:g}s ({method} {path} not sent)")
        try:
            return self.client.request(method, path, timeout=remaining, **kwargs)
        except httpx.TimeoutException:
            raise ProbeFailed(
                f"{method} {self.url}{path} timed out after {self.timeout:g}s"
            ) from None
        except httpx.ConnectError as exc:
            raise ProbeFailed(f"cannot connect to {self.url}: {error_reason(exc)}") from None
        except httpx.HTTPError as exc:
            raise ProbeFailed(f"{method} {self.url}{path} failed: {error_reason(exc)}") from None


def error_reason(exc: Exception) -> str:
    """`[Errno 111] Connection refused` → `connection refused`, to end a sentence with."""
    text = _ERRNO.sub("", str(exc)).strip() or type(exc).__name__
    return text[:1].lower() + text[1:]


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        request = response.request
        raise ProbeFailed(
            f"{request.method} {request.url.path} answered {response.status_code} "
            "with a body that is not a JSON object"
        )
    return body


def _answer(response: httpx.Response) -> str:
    """`METHOD /path answered 401: message`, the message from Slipstream's error body."""
    try:
        message = str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = " ".join(response.text.split())[:200] or response.reason_phrase
    request = response.request
    return f"{request.method} {request.url.path} answered {response.status_code}: {message}"

"""Who may push: /push/pubsub is closed beside API keys unless verified (OIDC) or opened by a
setting, and a 404 for an unknown dataset names the known ones only to a caller who may read
them. On the embedded broker and store."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from slipstream.api.push_sns import SnsVerifier
from tests.helpers import flight_event, wait_until
from tests.unit.test_push import (
    PUBSUB,
    TOPIC,
    FakeSns,
    envelope,
    make_client,
    notification,
    sample,
    signed,
)

KEYS = "reader-key-1:read,ingest-key-1:ingest"
READER = {"X-API-Key": "reader-key-1"}


@pytest.mark.parametrize("path", [PUBSUB, "/push/pubsub/trains"])
@pytest.mark.parametrize("headers", [{}, READER, {"X-API-Key": "ingest-key-1"}])
def test_pubsub_push_is_refused_beside_api_keys_by_default(
    tmp_path: Path, path: str, headers: dict[str, str]
) -> None:
    with make_client(tmp_path, api_keys=KEYS) as client:
        answer = client.post(path, json=envelope(flight_event(1)), headers=headers)
        assert answer.status_code == 403, answer.text
        message = answer.json()["error"]["message"]
        for setting in (
            "SLIPSTREAM_PUBSUB_PUSH_AUDIENCE",
            "SLIPSTREAM_PUBSUB_PUSH_SERVICE_ACCOUNT",
            "SLIPSTREAM_PUBSUB_PUSH_OPEN=true",
        ):
            assert setting in message
        assert "flights" not in message, "a refused caller learns no dataset names"
        assert sample(client, "events_published") == 0


def test_a_setting_opens_pubsub_push_beside_api_keys(tmp_path: Path) -> None:
    with make_client(tmp_path, api_keys=KEYS, pubsub_push_open=True) as client:
        answer = client.post(PUBSUB, json=envelope(flight_event(1)))
        assert answer.status_code == 202, answer.text
        wait_until(
            lambda: (
                client.get("/v1/datasets/flights/events/ev-0000001", headers=READER).status_code
                == 200
            ),
            what="the pushed event",
        )


@pytest.mark.parametrize(
    ("keys", "headers", "named"),
    [
        pytest.param(KEYS, {}, False, id="anonymous"),
        pytest.param(KEYS, {"X-API-Key": "not-a-key-at-all"}, False, id="unknown-key"),
        pytest.param(KEYS, READER, True, id="reader"),
        pytest.param(KEYS, {"Authorization": "Bearer ingest-key-1"}, True, id="ingester"),
        pytest.param("", {}, True, id="open-api"),
    ],
)
def test_an_unknown_pubsub_dataset_is_named_only_to_callers_who_may_read(
    tmp_path: Path, keys: str, headers: dict[str, str], named: bool
) -> None:
    with make_client(tmp_path, api_keys=keys, pubsub_push_open=bool(keys)) as client:
        answer = client.post("/push/pubsub/trains", json=envelope(flight_event(1)), headers=headers)
        assert answer.status_code == 404
        message = answer.json()["error"]["message"]
        assert message.startswith("no dataset named 'trains'")
        assert ("known datasets: flights" in message) is named, message


def test_an_unknown_sns_dataset_is_a_plain_404_for_anonymous_callers(tmp_path: Path) -> None:
    fake = FakeSns()
    with make_client(tmp_path, api_keys=KEYS, sns_topic_arns=TOPIC) as client:
        client.app.state.sns_verifier = SnsVerifier(fake.fetch)  # type: ignore[attr-defined]
        message = signed(notification(flight_event(1)))
        answer = client.post(
            "/push/sns/trains",
            content=orjson.dumps(message),
            headers={"x-amz-sns-message-type": "Notification"},
        )
        assert answer.status_code == 404
        assert answer.json()["error"]["message"] == "no dataset named 'trains'"
        assert sample(client, "events_published") == 0

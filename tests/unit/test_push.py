"""Push endpoints on the embedded broker and store: Pub/Sub push envelopes with OIDC, and SNS
HTTP delivery with signatures — with keys and certificates the tests make, never the network."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient

from slipstream.api.app import create_app
from slipstream.api.push_access import CLOSED_PUSH, OPEN_PUSH_WARNING
from slipstream.api.push_sns import SnsVerifier
from slipstream.config import load_settings
from slipstream.errors import BackendUnavailable, ConfigError
from slipstream.runtime import Runtime
from tests import helpers
from tests.helpers import flight_event, wait_until

AUDIENCE = "https://slipstream.example.com/push"
ACCOUNT = "pusher@test-project.iam.gserviceaccount.com"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:flights"
OTHER_TOPIC = "arn:aws:sns:eu-west-1:123456789012:trains"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
SUBSCRIBE_URL = (
    "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn="
    f"{TOPIC}&Token=2336412f37fb687f5d51e6e2"
)
PUBSUB = "/push/pubsub/flights"
SNS = "/push/sns/flights"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


TRUSTED_KEY = rsa_key()
OTHER_KEY = rsa_key()


def make_client(tmp_path: Path, **values: Any) -> TestClient:
    settings = helpers.settings(
        broker_url=f"local:///{tmp_path / 'queue.db'}",
        store_url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        **values,
    )
    return TestClient(create_app(Runtime(settings)))


def sample(client: TestClient, name: str) -> float:
    registry = client.app.state.runtime.metrics.registry  # type: ignore[attr-defined]
    value = registry.get_sample_value(f"slipstream_{name}_total", {"dataset": "flights"})
    return float(value or 0)


def quarantined(client: TestClient) -> float:
    registry = client.app.state.runtime.metrics.registry  # type: ignore[attr-defined]
    return sum(
        float(
            registry.get_sample_value(
                "slipstream_events_quarantined_total", {"dataset": "flights", "reason": reason}
            )
            or 0
        )
        for reason in ("invalid_json", "schema")
    )


def rows(client: TestClient) -> int:
    count: int = client.get("/v1/datasets").json()["datasets"][0]["rows"]
    return count


def settled(client: TestClient, messages: int) -> None:
    """Wait until the worker has handled `messages` messages (written, duplicate or quarantined)."""
    wait_until(
        lambda: (
            sample(client, "events_written")
            + sample(client, "events_duplicate")
            + quarantined(client)
            >= messages
        ),
        what=f"the worker to handle {messages} messages",
    )


# --- Pub/Sub ----------------------------------------------------------------------------------


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


DEEP = _nested(300)


def envelope(data: Any, message_id: str = "1001", **message: Any) -> dict[str, Any]:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()  # any depth
    return {
        "message": {
            "data": base64.b64encode(raw).decode(),
            "attributes": {"origin": "test"},
            "messageId": message_id,
            "publishTime": "2026-11-24T10:00:00.123Z",
            **message,
        },
        "subscription": "projects/test-project/subscriptions/slipstream-push",
    }


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path) as test_client:
        yield test_client


def test_a_redelivered_push_makes_one_row_keyed_by_the_message_id(client: TestClient) -> None:
    event = flight_event(1)
    del event["id"]
    for _ in range(2):
        answer = client.post(PUBSUB, json=envelope(event, "4242"))
        assert answer.status_code == 202
        assert answer.json() == {"accepted": 1, "ids": ["4242"], "rejected": []}
    settled(client, 2)
    assert rows(client) == 1
    stored = client.get("/v1/datasets/flights/events/4242").json()
    assert stored["flight_id"] == event["flight_id"]


def test_an_event_keeps_its_own_id_and_the_snake_case_spelling_works(client: TestClient) -> None:
    body = envelope(flight_event(7))
    message = body["message"]
    message["message_id"] = message.pop("messageId")
    message["publish_time"] = message.pop("publishTime")
    answer = client.post(PUBSUB, json=body)
    assert answer.status_code == 202
    assert answer.json()["ids"] == ["ev-0000007"]
    wait_until(
        lambda: client.get("/v1/datasets/flights/events/ev-0000007").status_code == 200,
        what="the pushed event",
    )


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"flight_id": "LA1", "status": "boarded"}, id="schema"),
        pytest.param(b"{not json", id="not-json"),
        pytest.param([flight_event(1)], id="array"),
        pytest.param(b"", id="no-data"),
        # Nested past what the stores write: with or without an id of its own.
        pytest.param({"id": "d", "deep": DEEP}, id="too-deep"),
        pytest.param({"deep": DEEP}, id="too-deep-without-id"),
    ],
)
def test_an_invalid_event_is_acked_and_quarantined_once(client: TestClient, data: Any) -> None:
    for _ in range(2):
        answer = client.post(PUBSUB, json=envelope(data, "555"))
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert body["accepted"] == 0
        assert [r["index"] for r in body["rejected"]] == [0]
    settled(client, 2)
    items = client.get("/v1/datasets/flights/quarantine").json()["items"]
    assert [item["id"] for item in items] == ["555"]
    assert rows(client) == 0


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{oops", id="not-json"),
        pytest.param(b"[]", id="not-an-envelope"),
        pytest.param(b'{"message": "x"}', id="message-not-object"),
        pytest.param(b'{"message": {"data": "e30="}}', id="no-message-id"),
        pytest.param(b'{"message": {"data": "%%%", "messageId": "1"}}', id="bad-base64"),
        pytest.param(b'{"message": {"data": 12, "messageId": "1"}}', id="data-not-string"),
    ],
)
def test_a_malformed_envelope_is_400(client: TestClient, body: bytes) -> None:
    answer = client.post(PUBSUB, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert set(answer.json()["error"]) == {"code", "message", "details"}
    assert sample(client, "events_published") == 0


def test_unknown_dataset_is_404(client: TestClient) -> None:
    assert client.post("/push/pubsub/trains", json=envelope(flight_event(1))).status_code == 404


def test_a_broker_failure_is_503_so_pubsub_retries(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(*args: object) -> None:
        raise BackendUnavailable("queue.db is locked")

    monkeypatch.setattr(client.app.state.runtime.broker, "publish", down)  # type: ignore[attr-defined]
    answer = client.post(PUBSUB, json=envelope(flight_event(1)))
    assert answer.status_code == 503
    assert answer.headers["retry-after"]


# --- Pub/Sub OIDC -----------------------------------------------------------------------------


class KeySource:
    """Stands in for `jwt.PyJWKClient` on Google's certs: one key, id `k1`."""

    def __init__(self, key: rsa.RSAPublicKey) -> None:
        self.jwk = jwt.PyJWK.from_dict(
            {**jwt.algorithms.RSAAlgorithm.to_jwk(key, as_dict=True), "kid": "k1", "alg": "RS256"}
        )

    def get_signing_key_from_jwt(self, token: str) -> jwt.PyJWK:
        if jwt.get_unverified_header(token).get("kid") != "k1":
            raise jwt.PyJWKClientError("no signing key matches the token's kid")
        return self.jwk


def token(key: rsa.RSAPrivateKey = TRUSTED_KEY, **overrides: Any) -> str:
    now = dt.datetime.now(dt.UTC)
    claims = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "sub": "1234567890",
        "email": ACCOUNT,
        "email_verified": True,
        "iat": now,
        "exp": now + dt.timedelta(hours=1),
        **overrides,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(
        tmp_path, pubsub_push_audience=AUDIENCE, pubsub_push_service_account=ACCOUNT
    ) as test_client:
        test_client.app.state.pubsub_push_keys = KeySource(TRUSTED_KEY.public_key())  # type: ignore[attr-defined]
        yield test_client


def test_a_valid_oidc_token_is_accepted(secured: TestClient) -> None:
    for issuer in ("https://accounts.google.com", "accounts.google.com"):
        answer = secured.post(
            PUBSUB,
            json=envelope(flight_event(1)),
            headers={"Authorization": f"Bearer {token(iss=issuer)}"},
        )
        assert answer.status_code == 202, answer.text
    wait_until(
        lambda: secured.get("/v1/datasets/flights/events/ev-0000001").status_code == 200,
        what="the authenticated push",
    )


@pytest.mark.parametrize(
    ("headers", "status", "words"),
    [
        pytest.param({}, 401, "OIDC token is required", id="no-token"),
        pytest.param({"Authorization": "Basic abc"}, 401, "required", id="not-bearer"),
        pytest.param({"Authorization": "Bearer not-a-jwt"}, 401, "not valid", id="garbage"),
        pytest.param(
            {"Authorization": f"Bearer {token(aud='https://elsewhere.example.com')}"},
            401,
            "audience",
            id="wrong-audience",
        ),
        pytest.param(
            {"Authorization": f"Bearer {token(iss='https://evil.example.com')}"},
            401,
            "issuer",
            id="wrong-issuer",
        ),
        pytest.param(
            {
                "Authorization": "Bearer "
                + token(
                    iat=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2),
                    exp=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
                )
            },
            401,
            "expired",
            id="expired",
        ),
        pytest.param(
            {"Authorization": f"Bearer {token(OTHER_KEY)}"}, 401, "Signature", id="bad-signature"
        ),
        pytest.param(
            {"Authorization": f"Bearer {token(email='someone@gmail.com')}"},
            403,
            ACCOUNT,
            id="wrong-email",
        ),
        pytest.param(
            {"Authorization": f"Bearer {token(email_verified=False)}"},
            403,
            "verified",
            id="email-not-verified",
        ),
        pytest.param({"Authorization": f"Bearer {token(email=None)}"}, 403, ACCOUNT, id="no-email"),
    ],
)
def test_a_bad_token_is_refused_and_nothing_is_stored(
    secured: TestClient, headers: dict[str, str], status: int, words: str
) -> None:
    answer = secured.post(PUBSUB, json=envelope(flight_event(1)), headers=headers)
    assert answer.status_code == status, answer.text
    assert words.lower() in answer.json()["error"]["message"].lower()
    assert sample(secured, "events_published") == 0


def test_open_push_beside_api_keys_is_announced_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="slipstream.api")
    keys = "ingest-key-1:ingest"
    with make_client(tmp_path / "open", api_keys=keys, pubsub_push_open=True):
        assert OPEN_PUSH_WARNING in caplog.messages
    caplog.clear()
    with make_client(tmp_path / "closed", api_keys=keys):
        assert OPEN_PUSH_WARNING not in caplog.messages
        assert CLOSED_PUSH in caplog.messages
    caplog.clear()
    with make_client(
        tmp_path / "verified",
        api_keys=keys,
        pubsub_push_audience=AUDIENCE,
        pubsub_push_service_account=ACCOUNT,
    ):
        assert OPEN_PUSH_WARNING not in caplog.messages
        assert CLOSED_PUSH not in caplog.messages


# --- SNS --------------------------------------------------------------------------------------


def certificate(key: rsa.RSAPrivateKey, days: int = 30) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


# The string to sign, from the AWS documentation: "Name\nValue\n" per field, in this order.
SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
SIGNED["UnsubscribeConfirmation"] = SIGNED["SubscriptionConfirmation"]


def signed(
    message: dict[str, Any], version: str = "1", key: rsa.RSAPrivateKey = TRUSTED_KEY
) -> dict[str, Any]:
    message = {**message, "SignatureVersion": version}
    text = "".join(
        f"{name}\n{message[name]}\n" for name in SIGNED[message["Type"]] if name in message
    )
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(text.encode(), padding.PKCS1v15(), digest)
    return {**message, "Signature": base64.b64encode(signature).decode()}


def notification(
    event: dict[str, Any], message_id: str = "9f1c0d2e-0000-4000-8000-000000000001", **extra: Any
) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": TOPIC,
        "Message": orjson.dumps(event).decode(),
        "Timestamp": "2026-11-24T10:00:00.123Z",
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&x=1",
        **extra,
    }


def confirmation(kind: str = "SubscriptionConfirmation", **extra: Any) -> dict[str, Any]:
    return {
        "Type": kind,
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e2",
        "TopicArn": TOPIC,
        "Message": f"You have chosen to subscribe to the topic {TOPIC}.",
        "SubscribeURL": SUBSCRIBE_URL,
        "Timestamp": "2026-11-24T10:00:00.123Z",
        "SigningCertURL": CERT_URL,
        **extra,
    }


class FakeSns:
    """The network SNS endpoints need: certificate downloads and SubscribeURL visits."""

    def __init__(self) -> None:
        self.pem = certificate(TRUSTED_KEY)
        self.fetched: list[str] = []
        self.confirmed: list[str] = []

    async def fetch(self, url: str) -> bytes:
        self.fetched.append(url)
        return self.pem

    async def confirm(self, url: str) -> None:
        self.confirmed.append(url)


@pytest.fixture
def sns(tmp_path: Path) -> Iterator[tuple[TestClient, FakeSns]]:
    fake = FakeSns()
    with make_client(tmp_path, sns_topic_arns=f"{TOPIC}, {OTHER_TOPIC}") as test_client:
        state = test_client.app.state  # type: ignore[attr-defined]
        state.sns_verifier = SnsVerifier(fake.fetch)
        state.sns_confirm = fake.confirm
        yield test_client, fake


def post_sns(client: TestClient, message: dict[str, Any], **headers: str) -> Any:
    return client.post(
        SNS,
        content=orjson.dumps(message),
        headers={
            "x-amz-sns-message-type": str(message.get("Type")),
            "Content-Type": "text/plain; charset=UTF-8",
            **headers,
        },
    )


def test_a_subscription_confirmation_for_a_configured_topic_is_confirmed(
    sns: tuple[TestClient, FakeSns],
) -> None:
    client, fake = sns
    answer = post_sns(client, signed(confirmation()))
    assert answer.status_code == 200, answer.text
    assert fake.confirmed == [SUBSCRIBE_URL]


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(
            signed(confirmation(TopicArn="arn:aws:sns:eu-west-1:123456789012:other")),
            id="unconfigured-topic",
        ),
        pytest.param({**signed(confirmation()), "Token": "forged"}, id="tampered"),
        pytest.param(
            signed(
                confirmation(SubscribeURL="https://evil.example.com/?Action=ConfirmSubscription")
            ),
            id="subscribe-url-elsewhere",
        ),
    ],
)
def test_a_confirmation_is_not_confirmed_unless_trusted(
    sns: tuple[TestClient, FakeSns], message: dict[str, Any]
) -> None:
    client, fake = sns
    answer = post_sns(client, message)
    assert answer.status_code == 403, answer.text
    assert fake.confirmed == []


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_notification_is_stored(sns: tuple[TestClient, FakeSns], version: str) -> None:
    client, _ = sns
    answer = post_sns(client, signed(notification(flight_event(3), Subject="status"), version))
    assert answer.status_code == 202, answer.text
    assert answer.json()["ids"] == ["ev-0000003"]
    wait_until(
        lambda: client.get("/v1/datasets/flights/events/ev-0000003").status_code == 200,
        what="the SNS event",
    )


def test_an_event_without_id_gets_the_sns_message_id_once(sns: tuple[TestClient, FakeSns]) -> None:
    client, fake = sns
    event = flight_event(4)
    del event["id"]
    message = signed(notification(event, "0b7a1c3e-0000-4000-8000-00000000abcd"), "2")
    for _ in range(2):
        assert post_sns(client, message).json()["ids"] == ["0b7a1c3e-0000-4000-8000-00000000abcd"]
    settled(client, 2)
    assert rows(client) == 1
    assert fake.fetched == [CERT_URL], "the certificate is fetched once and kept"


@pytest.mark.parametrize(
    ("message", "headers"),
    [
        pytest.param(
            {**signed(notification(flight_event(5))), "Message": '{"id": "forged"}'},
            {},
            id="tampered-message",
        ),
        pytest.param(signed(notification(flight_event(5)), key=OTHER_KEY), {}, id="wrong-key"),
        pytest.param(
            signed(
                notification(
                    flight_event(5),
                    SigningCertURL="https://sns.eu-west-1.amazonaws.com.evil.com/c.pem",
                )
            ),
            {},
            id="lookalike-host",
        ),
        pytest.param(
            signed(
                notification(
                    flight_event(5),
                    SigningCertURL="https://evil.example.com/sns.eu-west-1.amazonaws.com/c.pem",
                )
            ),
            {},
            id="wrong-host",
        ),
        pytest.param(
            signed(notification(flight_event(5), SigningCertURL=CERT_URL.replace("https", "http"))),
            {},
            id="http-url",
        ),
        pytest.param(
            signed(
                notification(
                    flight_event(5), SigningCertURL=CERT_URL.replace("eu-west-1", "us-east-1")
                )
            ),
            {},
            id="other-region",
        ),
        pytest.param(
            signed(notification(flight_event(5), TopicArn="arn:aws:sns:eu-west-1:123456789012:x")),
            {},
            id="unknown-topic",
        ),
        pytest.param(signed(notification(flight_event(5)), "3"), {}, id="unknown-version"),
        pytest.param(
            signed(notification(flight_event(5))),
            {"x-amz-sns-message-type": "SubscriptionConfirmation"},
            id="header-mismatch",
        ),
        pytest.param(
            {**signed(notification(flight_event(5))), "Type": "Surprise"}, {}, id="unknown-type"
        ),
        pytest.param(
            signed(notification(flight_event(5))),
            {"x-amz-sns-rawdelivery": "true"},
            id="raw-delivery",
        ),
    ],
)
def test_an_untrusted_notification_is_403_and_nothing_is_stored(
    sns: tuple[TestClient, FakeSns], message: dict[str, Any], headers: dict[str, str]
) -> None:
    client, fake = sns
    answer = post_sns(client, message, **headers)
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"]["code"] == "forbidden"
    assert sample(client, "events_published") == 0
    assert all(url == CERT_URL for url in fake.fetched), "only SNS hosts are ever fetched"


def test_an_expired_certificate_is_refused(sns: tuple[TestClient, FakeSns]) -> None:
    client, fake = sns
    fake.pem = certificate(TRUSTED_KEY, days=-1)
    assert post_sns(client, signed(notification(flight_event(6)))).status_code == 403


def test_an_unfetchable_certificate_is_503(sns: tuple[TestClient, FakeSns]) -> None:
    client, _ = sns

    async def unreachable(url: str) -> bytes:
        raise OSError("connection refused")

    client.app.state.sns_verifier = SnsVerifier(unreachable)  # type: ignore[attr-defined]
    assert post_sns(client, signed(notification(flight_event(6)))).status_code == 503


def test_an_unsubscribe_confirmation_is_noted_and_nothing_stored(
    sns: tuple[TestClient, FakeSns],
) -> None:
    client, fake = sns
    answer = post_sns(client, signed(confirmation("UnsubscribeConfirmation")))
    assert answer.status_code == 200
    assert fake.confirmed == []
    assert sample(client, "events_published") == 0


def test_an_invalid_sns_event_is_acked_and_quarantined(sns: tuple[TestClient, FakeSns]) -> None:
    client, _ = sns
    answer = post_sns(client, signed(notification({"status": "landed"}, "bad-1")))
    assert answer.status_code == 202
    assert answer.json()["accepted"] == 0
    wait_until(
        lambda: (
            [i["id"] for i in client.get("/v1/datasets/flights/quarantine").json()["items"]]
            == ["bad-1"]
        ),
        what="the invalid SNS event in quarantine",
    )


def test_sns_without_configured_topics_refuses_everything(tmp_path: Path) -> None:
    fake = FakeSns()
    with make_client(tmp_path) as client:
        client.app.state.sns_verifier = SnsVerifier(fake.fetch)  # type: ignore[attr-defined]
        client.app.state.sns_confirm = fake.confirm  # type: ignore[attr-defined]
        assert post_sns(client, signed(confirmation())).status_code == 403
        assert post_sns(client, signed(notification(flight_event(1)))).status_code == 403
    assert fake.fetched == fake.confirmed == []


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"pubsub_push_audience": AUDIENCE}, "SLIPSTREAM_PUBSUB_PUSH_SERVICE_ACCOUNT"),
        ({"pubsub_push_service_account": ACCOUNT}, "SLIPSTREAM_PUBSUB_PUSH_AUDIENCE is not"),
        ({"sns_topic_arns": f"{TOPIC},arn:aws:sqs:eu-west-1:1:q"}, "entry 2"),
        (
            {
                "pubsub_push_audience": AUDIENCE,
                "pubsub_push_service_account": ACCOUNT,
                "pubsub_push_open": "true",
            },
            "SLIPSTREAM_PUBSUB_PUSH_OPEN",
        ),
    ],
)
def test_push_settings_fail_at_start_naming_the_variable(
    values: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None, **values)
    assert expected in str(info.value)


def test_topic_arns_and_empty_push_settings() -> None:
    settings = load_settings(
        _env_file=None,
        sns_topic_arns=f" {TOPIC} , {OTHER_TOPIC},",
        pubsub_push_audience="",
        pubsub_push_service_account=" ",
    )
    assert settings.topic_arns() == {TOPIC, OTHER_TOPIC}
    assert settings.pubsub_push_audience is None
    assert settings.pubsub_push_service_account is None

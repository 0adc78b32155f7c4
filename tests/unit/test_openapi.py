"""The OpenAPI description tells every answer: each operation documents the answers its route can
give (worked out from what the route is, so a new route cannot lack them), and every answer the
routes give, successes in every media type, refusals, and 503s with a backend down, is one its
operation describes, body included. On the real embedded broker and store."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import jsonschema
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from openapi_spec_validator import validate as validate_openapi

from slipstream.api.app import SlipstreamAPI
from slipstream.api.openapi import positive_up_to
from slipstream.api.push_sns import SnsVerifier
from slipstream.api.route_facts import described_routes
from slipstream.errors import BackendUnavailable
from tests.helpers import flight_event, wait_until
from tests.unit.test_api import KEYS, make_client
from tests.unit.test_push import TOPIC, FakeSns, confirmation, envelope, notification, signed

EVERYTHING = {"X-API-Key": "all-key-111"}
DS = "/v1/datasets/flights"
Request = dict[str, Any]  # keyword arguments of TestClient.request
SNS_HEADERS = {"x-amz-sns-message-type": "Notification"}

# A request that succeeds, for every operation of the description; more than one where the
# operation answers in more than one media type.
SUCCEEDING: dict[tuple[str, str], list[Request]] = {
    ("post", f"{DS}/events"): [{"json": flight_event(1)}],
    ("get", f"{DS}/events"): [
        {"params": {"limit": 1}},
        {"params": {"limit": 1}, "headers": {"Accept": "application/x-ndjson"}},
        {"params": {"limit": 1}, "headers": {"Accept": "text/csv"}},
    ],
    ("get", DS + "/events/{event_id}"): [{"url": f"{DS}/events/ev-0000000"}],
    ("get", f"{DS}/export"): [
        {"params": {"status": "landed"}},
        {"headers": {"Accept": "application/x-ndjson"}},
    ],
    ("get", f"{DS}/stats"): [{"params": {"group_by": "status", "bucket": "day"}}],
    ("get", "/v1/datasets"): [{}],
    ("get", f"{DS}/quarantine"): [{"params": {"limit": 1}}],
    ("post", f"{DS}/quarantine/replay"): [{"json": {"ids": ["nope"]}}],
    ("get", f"{DS}/deadletter"): [{}],
    ("post", f"{DS}/deadletter/replay"): [{"json": {"ids": ["1"]}}],
    ("get", "/healthz"): [{}],
    ("get", "/readyz"): [{}],
    ("get", "/metrics"): [{}],
    ("post", "/push/pubsub/flights"): [{"json": envelope(flight_event(2))}],
    ("post", "/push/sns/flights"): [
        {"content": json.dumps(signed(notification(flight_event(3)))), "headers": SNS_HEADERS},
        {
            "content": json.dumps(signed(confirmation())),
            "headers": {"x-amz-sns-message-type": "SubscriptionConfirmation"},
        },
    ],
    ("get", "/status"): [{}],
    ("get", "/status/series"): [{}],
}


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[TestClient]:
    values = {
        "api_keys": KEYS,
        "pubsub_push_open": True,
        "sns_topic_arns": TOPIC,
        "max_body_bytes": 64 * 1024,
    }
    with make_client(tmp_path, **values) as client:
        fake = FakeSns()
        client.app.state.sns_verifier = SnsVerifier(fake.fetch)  # type: ignore[attr-defined]
        client.app.state.sns_confirm = fake.confirm  # type: ignore[attr-defined]
        assert client.post(f"{DS}/events", json=flight_event(0), headers=EVERYTHING).is_success
        wait_until(
            lambda: client.get(f"{DS}/events/ev-0000000", headers=EVERYTHING).is_success,
            what="an event stored",
        )
        yield client


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(path, method, operation) of every operation in `document`."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def app_of(client: TestClient) -> SlipstreamAPI:
    app = client.app
    assert isinstance(app, SlipstreamAPI)
    return app


def send(client: TestClient, method: str, path: str, request: Request) -> httpx2.Response:
    """`request` to the operation at `path` (its own `url` when it names one), with every scope."""
    arguments = {"url": path, **request}
    arguments["headers"] = {**EVERYTHING, **request.get("headers", {})}
    return client.request(method, **arguments)


def conforms(document: dict[str, Any], method: str, path: str, answer: httpx2.Response) -> None:
    """Assert that `answer` is one the operation describes: status, media type, headers, body."""
    where = f"{method.upper()} {answer.request.url} answered {answer.status_code}"
    described = document["paths"][path][method]["responses"].get(str(answer.status_code))
    assert described is not None, f"{where}, which the description does not give"
    for name, header in described.get("headers", {}).items():
        header = document["components"]["headers"][header["$ref"].rpartition("/")[2]]
        assert not header.get("required") or name in answer.headers, f"{where} without {name}"
    media = answer.headers["content-type"].split(";")[0].strip()
    content = {key.split(";")[0].strip(): value for key, value in described["content"].items()}
    assert media in content, f"{where} as {media}, not one of {sorted(content)}"
    if media == "application/json":
        validate(answer.json(), content[media]["schema"], document, where)
    elif media == "application/x-ndjson":
        lines = [json.loads(line) for line in answer.text.splitlines()]
        validate(lines, content[media]["schema"], document, where)


def validate(value: Any, schema: dict[str, Any], document: dict[str, Any], where: str) -> None:
    root = {**schema, "components": document["components"]}
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    errors = list(jsonschema.Draft202012Validator(root, format_checker=checker).iter_errors(value))
    assert not errors, f"{where}: {errors[0].message} at {list(errors[0].absolute_path)}"


def test_every_operation_documents_the_answers_its_route_can_give(tmp_path: Path) -> None:
    for keys in (KEYS, ""):
        app = app_of(make_client(tmp_path / (keys[:6] or "open"), api_keys=keys))
        document = app.openapi()
        for route in described_routes(app.routes):
            facts = route.facts
            expected = {"400", "401"}
            expected |= {"403"} if keys and facts.scopes else set()
            expected |= {"404"} if facts.lookups else set()
            expected |= {"408", "413", "415"} if facts.body else set()
            expected |= {"503"} if facts.backends else set()
            path = route.path.replace("{ds}", "flights")
            for method in route.methods:
                operation = document["paths"][path][method]
                answers = operation["responses"]
                assert expected <= set(answers), (method, path, sorted(answers))
                assert ("422" in answers) == (method == "post" and path == f"{DS}/events")
                assert any(status.startswith("2") for status in answers), (method, path)
                required = [(s, a) for s, a in answers.items() if s >= "400" and path != "/readyz"]
                for status, answer in required:
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (path, status)
                for status, answer in answers.items():
                    assert "X-Request-ID" in answer["headers"], (method, path, status)
                if facts.backends:
                    assert "Retry-After" in answers["503"]["headers"], (method, path)
                secured = bool(keys and facts.scopes)
                assert ("security" in operation) == secured, (method, path)
                if secured:
                    schemes = {name for option in operation["security"] for name in option}
                    assert schemes == {"ApiKey", "BearerKey"}
                    assert set(document["components"]["securitySchemes"]) >= schemes


def test_no_operation_documents_fastapis_validation_error(keyed: TestClient) -> None:
    text = json.dumps(app_of(keyed).openapi())
    assert "HTTPValidationError" not in text
    assert "ValidationError" not in text


def test_every_answer_in_every_media_type_is_one_the_description_gives(keyed: TestClient) -> None:
    document = app_of(keyed).openapi()
    assert set(SUCCEEDING) == {(m, p) for p, m, _ in operations(document)}
    for (method, path), requests in SUCCEEDING.items():
        described: set[str] = set()
        for request in requests:
            answer = send(keyed, method, path, request)
            assert answer.is_success, (method, path, answer.text)
            conforms(document, method, path, answer)
            described.add(answer.headers["content-type"].split(";")[0])
        for status, response in document["paths"][path][method]["responses"].items():
            if status.startswith("2"):  # every media type a success is described in, produced
                types = {media.split(";")[0] for media in response["content"]}
                assert types <= described, (method, path, types - described)


def test_refusals_are_described_on_every_operation(keyed: TestClient) -> None:
    document = app_of(keyed).openapi()
    for path, method, operation in operations(document):
        concrete = path.replace("{event_id}", "ev-0000000")
        probes: list[tuple[dict[str, str], Request]] = [
            ({"X-API-Key": "reader-key-1"}, {}),  # 403 where a scope is missing
            ({"X-API-Key": "nobody"}, {}),  # 401 where a key is needed
            ({}, {"params": {"limt": "5"}}),  # 400: a parameter no route takes
        ]
        if "requestBody" in operation:
            probes.append(({"Content-Encoding": "br"}, {"content": b"{}"}))  # 415
            probes.append(({}, {"content": b"{" * 70_000}))  # 413 (the limit is 64 KiB)
        for headers, request in probes:
            answer = keyed.request(method, concrete, headers=headers, **request)
            assert not answer.is_server_error, (method, path, answer.text)
            conforms(document, method, path, answer)


def test_a_route_whose_backend_is_down_answers_a_described_503(
    keyed: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = app_of(keyed).state.runtime
    for backend, names in (
        (runtime.store, ("get", "list", "stats", "summary", "ping", "quarantined_by_id")),
        (runtime.store, ("quarantined", "release_quarantined")),
        (runtime.broker, ("publish", "dead_letters", "replay_dead_letters", "ping")),
    ):
        for name in names:
            monkeypatch.setattr(backend, name, _down)
    runtime.read_cache.clear()
    app_of(keyed).state.sns_confirm = _down  # SNS's SubscribeURL out of reach
    document = app_of(keyed).openapi()
    unavailable = set()
    for (method, path), requests in SUCCEEDING.items():
        for request in requests:
            answer = send(keyed, method, path, request)
            conforms(document, method, path, answer)
            if answer.status_code == 503:
                unavailable.add(path)
                assert path == "/readyz" or answer.headers["retry-after"]
    assert {p for p in unavailable if p.startswith("/v1/")} == {
        p for p, _, _ in operations(document) if p.startswith("/v1/")
    }


async def _down(*args: object, **kwargs: object) -> Any:
    raise BackendUnavailable("it was switched off for this test")


def test_each_dataset_gets_its_own_operations_with_its_fields(tmp_path: Path) -> None:
    datasets = tmp_path / "datasets.yaml"
    datasets.write_text(
        "datasets:\n"
        "  - name: trains\n    event_time: at\n    fields:\n"
        "      - {name: id, type: string}\n      - {name: at, type: timestamp, required: true}\n"
        "      - {name: speed, type: float}\n      - {name: cargo, type: json}\n"
    )
    document = app_of(make_client(tmp_path, datasets=datasets)).openapi()
    assert not [path for path in document["paths"] if "{ds}" in path]
    assert "/v1/datasets/trains/events" in document["paths"]
    stats = document["paths"]["/v1/datasets/trains/stats"]["get"]["parameters"]
    by_name = {p["name"]: p["schema"] for p in stats}
    assert by_name["group_by"]["enum"] == ["id", "at", "speed"]  # json fields cannot be grouped
    assert set(by_name) == {"bucket", "group_by", "since", "until", "id", "at", "speed"}
    row = document["components"]["schemas"]["StatsRow.trains"]
    assert "avg_speed" in row["properties"]
    event = document["components"]["schemas"]["Event.trains"]
    assert set(event["properties"]) == {"id", "at", "speed", "cargo", "extra"}
    assert "NewEvent.trains" in document["components"]["schemas"]


@given(st.integers(min_value=1, max_value=2**64), st.integers(min_value=-10, max_value=2**65))
def test_a_largest_id_is_one_regular_expression(largest: int, number: int) -> None:
    matches = re.fullmatch(f"(?:{positive_up_to(largest)})", str(number)) is not None
    assert matches == (1 <= number <= largest)


def test_the_regular_expression_refuses_leading_zeros() -> None:
    assert re.fullmatch(f"(?:{positive_up_to(2**63 - 1)})", "07") is None


@pytest.mark.parametrize(
    ("settings", "security", "refusals"),
    [
        ({"api_keys": KEYS}, None, {"403"}),  # closed beside API keys
        ({"api_keys": KEYS, "pubsub_push_open": True}, None, set()),
        (
            {
                "pubsub_push_audience": "https://slipstream.example.com/push",
                "pubsub_push_service_account": "pusher@test-project.iam.gserviceaccount.com",
            },
            [{"PubSubOidc": []}],
            {"401", "403"},
        ),
    ],
)
def test_pubsub_push_is_described_as_this_server_lets_it_in(
    tmp_path: Path, settings: dict[str, Any], security: Any, refusals: set[str]
) -> None:
    document = app_of(make_client(tmp_path, **settings)).openapi()
    validate_openapi(document)  # OpenAPI 3.1, in every configuration
    operation = document["paths"]["/push/pubsub/flights"]["post"]
    assert operation.get("security") == security
    assert {"401", "403"} & set(operation["responses"]) == refusals | {"401"}
    if security:
        scheme = document["components"]["securitySchemes"]["PubSubOidc"]
        assert scheme["bearerFormat"] == "JWT"
    sns = document["paths"]["/push/sns/flights"]["post"]
    assert "403" in sns["responses"]  # every untrusted message
    assert "x-amz-sns-message-type" in [p["name"] for p in sns["parameters"]]

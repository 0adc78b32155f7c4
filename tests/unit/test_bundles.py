"""Bundles: a request's events in few broker messages, each event still itself (bundles.py)."""

from __future__ import annotations

import orjson

from slipstream.brokers import BrokerCapabilities, Delivery, Outgoing
from slipstream.bundles import (
    BUNDLE,
    MAX_BUNDLE_EVENTS,
    ROOM_LEFT,
    EventsPerMessage,
    count_of,
    events_of,
    for_broker,
    pack,
    unbundled,
)

SHARED = {"dataset": "flights", "request_id": "r1"}


def messages(
    count: int, size: int = 40, attributes: dict[str, str] | None = None
) -> list[Outgoing]:
    shared = SHARED if attributes is None else attributes
    return [
        Outgoing(f"ev-{i}", orjson.dumps({"id": f"ev-{i}", "pad": "x" * size}), shared)
        for i in range(count)
    ]


def delivered(message: Outgoing) -> Delivery:
    return Delivery("1", message.key, message.data, 1, 0.0, dict(message.attributes))


def opened(packed: list[Outgoing]) -> list[tuple[str, bytes]]:
    return [event for message in packed for event in events_of(delivered(message))]


def test_a_request_becomes_one_bundle_that_opens_to_its_events_in_order() -> None:
    sent = messages(5)
    (bundle,) = pack(sent)
    assert bundle.attributes == {**SHARED, BUNDLE: "5"}
    assert count_of(bundle.attributes) == 5
    assert [data for _, data in opened([bundle])] == [m.data for m in sent]


def test_bundles_hold_to_the_byte_limit_and_the_event_limit() -> None:
    sent = messages(50, size=100)
    packed = pack(sent, max_bytes=ROOM_LEFT + 1000)
    assert len(packed) > 5
    assert all(len(m.data) <= 1000 for m in packed)
    assert [data for _, data in opened(packed)] == [m.data for m in sent]

    many = pack(messages(MAX_BUNDLE_EVENTS * 2 + 1, size=1))
    assert [count_of(m.attributes) for m in many] == [MAX_BUNDLE_EVENTS, MAX_BUNDLE_EVENTS, 1]
    assert BUNDLE not in many[-1].attributes  # one event travels as a plain message


def test_a_text_with_a_line_break_or_too_big_travels_alone_in_its_place() -> None:
    sent = messages(4)
    pretty = Outgoing("ev-x", b'{\n  "id": "ev-x"\n}', SHARED)
    big = Outgoing("ev-big", b'{"id": "ev-big", "pad": "' + b"y" * 2000 + b'"}', SHARED)
    packed = pack([*sent[:2], pretty, *sent[2:], big], max_bytes=ROOM_LEFT + 1000)
    assert [m.key for m in packed if BUNDLE not in m.attributes] == ["ev-x", "ev-big"]
    assert [data for _, data in opened(packed)] == [
        sent[0].data,
        sent[1].data,
        pretty.data,
        sent[2].data,
        sent[3].data,
        big.data,
    ]


def test_requests_with_their_own_attributes_are_never_mixed() -> None:
    other = {"dataset": "flights", "request_id": "r2"}
    packed = pack([*messages(3), *messages(3, attributes=other)])
    assert [m.attributes.get("request_id") for m in packed] == ["r1", "r2"]


def test_the_bundle_key_follows_its_events() -> None:
    assert pack(messages(3))[0].key == pack(messages(3))[0].key
    assert pack(messages(3))[0].key != pack(messages(4))[0].key


def test_lines_are_named_by_the_bundle_key_and_unbundled_by_their_own_ids() -> None:
    bundle = delivered(Outgoing("b1", b'{"id": "a"}\nnot json\n{"x": 1}', {**SHARED, BUNDLE: "3"}))
    assert [key for key, _ in events_of(bundle)] == ["b1.0", "b1.1", "b1.2"]

    def id_in(data: bytes) -> str | None:
        return "a" if data == b'{"id": "a"}' else None

    singles = unbundled(bundle, id_in)
    assert [(m.key, m.data) for m in singles] == [
        ("a", b'{"id": "a"}'),
        ("b1.1", b"not json"),
        ("b1.2", b'{"x": 1}'),
    ]
    assert all(m.attributes == SHARED for m in singles)


def test_a_count_written_by_another_client_is_held_in_range() -> None:
    assert count_of({}) == 1
    assert count_of({BUNDLE: "zero"}) == 1
    assert count_of({BUNDLE: "-4"}) == 1
    assert count_of({BUNDLE: "10000000000"}) == MAX_BUNDLE_EVENTS


def test_only_a_broker_that_takes_bundles_gets_them_no_larger_than_a_batch() -> None:
    sent = messages(10)
    assert for_broker(sent, BrokerCapabilities(), batch_size=100) == sent
    bundling = BrokerCapabilities(bundles=True)
    assert [count_of(m.attributes) for m in for_broker(sent, bundling, batch_size=4)] == [4, 4, 2]


def test_a_backlog_of_messages_is_given_in_events_at_the_ratio_seen_lately() -> None:
    ratio = EventsPerMessage()
    assert ratio.events(10) == 10  # nothing seen: a message is an event
    ratio.saw([{BUNDLE: "1000"}] * 3 + [{}])  # three bundles and a single event
    assert ratio.events(4) == 3001
    for _ in range(100):  # lately only single events: the bundles fade out
        ratio.saw([{}] * 4)
    assert ratio.events(4) == 4

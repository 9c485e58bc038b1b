"""The ingest parser: Segment's message rules, merging, timestamps, limits; never crashes."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import events
from ingest.errors import BadRequest, IngestError, PayloadTooLarge

RECEIVED = datetime(2024, 5, 1, 12, 5, 0, 123456, tzinfo=UTC)
RECEIVED_TEXT = "2024-05-01T12:05:00.123Z"


def ids() -> Any:
    counter = itertools.count(1)
    return lambda: f"gen-{next(counter)}"


def webhook(body: object, limits: events.Limits = events.DEFAULT_LIMITS) -> list[dict[str, Any]]:
    return events.parse_webhook(body, RECEIVED, ids(), limits=limits)


def batch(body: object, limits: events.Limits = events.DEFAULT_LIMITS) -> list[dict[str, Any]]:
    return events.parse_v1(None, body, RECEIVED, ids(), limits=limits)


VALID = [
    {"type": "track", "userId": "u1", "event": "Order Completed"},
    {"type": "track", "anonymousId": "a1", "event": "Viewed"},
    {"type": "identify", "userId": "u1", "traits": {"email": "x@example.com"}},
    {"type": "identify", "userId": 42},
    {"type": "page", "anonymousId": "a1", "name": "Home"},
    {"type": "screen", "userId": "u1", "name": "Home"},
    {"type": "group", "userId": "u1", "groupId": "g1"},
    {"type": "alias", "previousId": "old", "userId": "new"},
    {"type": "delete", "userId": "u1"},
    {"type": "track", "userId": None, "anonymousId": "a1", "event": "E", "context": None},
]


@pytest.mark.parametrize("message", VALID)
def test_valid_messages_are_kept_with_id_timestamp_and_received_at(message: dict[str, Any]) -> None:
    [event] = webhook(message)
    assert {k: v for k, v in event.items() if k in message} == message
    assert event["messageId"] == "gen-1"
    assert event["receivedAt"] == RECEIVED_TEXT
    assert event["timestamp"] == RECEIVED_TEXT


INVALID = [
    ({"userId": "u"}, "type: type is required"),
    ({"type": None, "userId": "u"}, "type: type is required"),
    ({"type": "purchase", "userId": "u"}, "type: must be one of track, identify"),
    ({"type": "identify"}, "userId: userId or anonymousId is required"),
    ({"type": "identify", "userId": "", "anonymousId": None}, "userId: userId or anonymousId"),
    ({"type": "identify", "userId": True}, "userId: must be a string"),
    ({"type": "identify", "userId": {"id": 1}}, "userId: must be a string"),
    ({"type": "track", "userId": "u"}, "event: event is required for track"),
    ({"type": "track", "userId": "u", "event": ""}, "event: event is required for track"),
    ({"type": "alias", "userId": "u"}, "previousId: previousId is required for alias"),
    ({"type": "alias", "previousId": "p", "anonymousId": "a"}, "userId: userId is required"),
    ({"type": "identify", "userId": "u", "messageId": "m" * 101}, "messageId: must be at most 100"),
    ({"type": "identify", "userId": "u", "messageId": 7}, "messageId: Not a valid string"),
    ({"type": "identify", "userId": "u", "timestamp": "yesterday"}, "timestamp: must be an ISO"),
    ({"type": "identify", "userId": "u", "sentAt": 1714564800}, "sentAt: must be an ISO 8601"),
    ({"type": "identify", "userId": "u", "traits": ["a"]}, "traits: must be a JSON object"),
    ({"type": "track", "userId": "u", "event": "E", "properties": 3}, "properties: must be a JSON"),
    ({"type": "identify", "userId": "u", "context": "x"}, "context: must be a JSON object"),
]


@pytest.mark.parametrize(("message", "expected"), INVALID)
def test_invalid_messages_are_rejected_naming_the_field(
    message: dict[str, Any], expected: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        webhook(message)
    assert caught.value.message.startswith(expected)
    assert caught.value.code == "validation_failed"


@pytest.mark.parametrize(
    ("parse", "body", "expected"),
    [
        (batch, {"batch": [VALID[0], VALID[2], VALID[0], {"type": "track"}]}, "batch[3].event"),
        (batch, {"batch": [VALID[0], {"type": "identify"}]}, "batch[1].userId: userId or anon"),
        (batch, {"batch": [VALID[0], "x"]}, "batch[1]: must be a JSON object"),
        (webhook, [VALID[0], {"type": "track", "userId": "u"}], "events[1].event: event is req"),
        (webhook, [None], "events[0]: must be a JSON object"),
        (batch, {"batch": "x"}, "batch: must be a list of messages"),
        (batch, {}, "batch: batch is required"),
        (batch, {"batch": [], "context": 3}, "context: must be a JSON object"),
        (batch, {"batch": [], "sentAt": "soon"}, "sentAt: must be an ISO 8601"),
        (batch, [VALID[0]], "request body must be a JSON object"),
        (webhook, "text", "request body must be a JSON object or an array"),
        (webhook, 12, "request body must be a JSON object or an array"),
    ],
)
def test_errors_in_a_batch_name_the_index_and_field(
    parse: Any, body: object, expected: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        parse(body)
    assert caught.value.message.startswith(expected), caught.value.message


def test_several_problems_of_one_message_are_all_named() -> None:
    with pytest.raises(BadRequest) as caught:
        batch({"batch": [{"type": "alias", "timestamp": "x"}]})
    assert caught.value.message == "batch[0].timestamp: must be an ISO 8601 date-time string"
    with pytest.raises(BadRequest) as caught:
        batch({"batch": [{"type": "alias"}]})
    assert caught.value.message == (
        "batch[0].previousId: previousId is required for alias; "
        "batch[0].userId: userId is required for alias"
    )


@pytest.mark.parametrize("route_type", events.V1_ROUTE_TYPES)
def test_a_v1_route_names_the_type(route_type: str) -> None:
    body = {"userId": "u", "previousId": "p", "event": "E", "type": "identify", "writeKey": "k"}
    [event] = events.parse_v1(route_type, body, RECEIVED, ids())
    assert event["type"] == route_type
    assert "writeKey" not in event


def test_an_unknown_v1_route_type_is_rejected() -> None:
    with pytest.raises(BadRequest):
        events.parse_v1("purchase", {"userId": "u"}, RECEIVED, ids())


def test_batch_context_and_integrations_are_merged_one_level_and_the_message_wins() -> None:
    body = {
        "batch": [
            {
                "type": "identify",
                "userId": "u",
                "context": {"app": {"version": "2"}, "locale": "de-DE"},
                "integrations": {"All": False},
                "writeKey": "inner",
            },
            {"type": "identify", "userId": "v"},
        ],
        "context": {"app": {"name": "shop", "version": "1"}, "library": {"name": "py"}, "ip": "1"},
        "integrations": {"All": True, "Pushwoosh": True},
        "writeKey": "outer",
    }
    first, second = batch(body)
    assert first["context"] == {
        "app": {"name": "shop", "version": "2"},
        "library": {"name": "py"},
        "ip": "1",
        "locale": "de-DE",
    }
    assert first["integrations"] == {"All": False, "Pushwoosh": True}
    assert second["context"] == body["context"]
    assert second["integrations"] == body["integrations"]
    assert "writeKey" not in first and "writeKey" not in second
    assert body["batch"][0]["writeKey"] == "inner", "the input is not modified"


@pytest.mark.parametrize(
    ("message", "batch_sent_at", "expected"),
    [
        # Segment's example: the device clock is 1 minute ahead of real time.
        (
            {"originalTimestamp": "2024-05-01T12:01:00Z", "sentAt": "2024-05-01T12:02:00Z"},
            None,
            "2024-05-01T12:04:00.123Z",
        ),
        (
            {"originalTimestamp": "2024-05-01T14:01:00+02:00"},
            "2024-05-01T12:02:00.500Z",
            "2024-05-01T12:03:59.623Z",
        ),
        ({"originalTimestamp": "2024-05-01T12:01:00Z"}, None, "2024-05-01T12:01:00Z"),
        ({"sentAt": "2024-05-01T12:02:00Z"}, None, RECEIVED_TEXT),
        (
            {
                "timestamp": "2020-01-01T00:00:00Z",
                "sentAt": "2024-05-01T12:02:00Z",
                "originalTimestamp": "2024-05-01T12:01:00Z",
            },
            None,
            "2020-01-01T00:00:00Z",
        ),
        (
            {"originalTimestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T00:00:00Z"},
            None,
            "0001-01-01T00:00:00Z",
        ),
        (
            {"originalTimestamp": "2024-05-01T12:01:00", "sentAt": "2024-05-01T12:02:00"},
            None,
            "2024-05-01T12:04:00.123Z",
        ),
    ],
)
def test_timestamp_is_kept_or_corrected_or_defaulted(
    message: dict[str, Any], batch_sent_at: str | None, expected: str
) -> None:
    body: dict[str, Any] = {"batch": [{"type": "identify", "userId": "u", **message}]}
    if batch_sent_at:
        body["sentAt"] = batch_sent_at
    [event] = batch(body)
    assert event["timestamp"] == expected
    assert event["receivedAt"] == RECEIVED_TEXT


def test_message_ids_are_kept_or_assigned() -> None:
    parsed = batch(
        {
            "batch": [
                {"type": "identify", "userId": "u", "messageId": "m" * 100},
                {"type": "identify", "userId": "u"},
                {"type": "identify", "userId": "u", "messageId": ""},
                {"type": "identify", "userId": "u", "messageId": None},
            ]
        }
    )
    assert [e["messageId"] for e in parsed] == ["m" * 100, "gen-1", "gen-2", "gen-3"]


def test_received_at_from_the_sender_is_replaced() -> None:
    [event] = webhook({"type": "identify", "userId": "u", "receivedAt": "1999-01-01T00:00:00Z"})
    assert event["receivedAt"] == RECEIVED_TEXT


@pytest.mark.parametrize(
    ("parse", "body"),
    [
        (batch, {"batch": [VALID[2]] * 4}),
        (webhook, [VALID[2]] * 4),
    ],
)
def test_too_many_events_name_the_limit(parse: Any, body: object) -> None:
    limits = events.Limits(max_batch_events=3)
    with pytest.raises(PayloadTooLarge) as caught:
        parse(body, limits)
    assert "limit is 3 events" in caught.value.message
    assert len(parse({"batch": [VALID[2]] * 3} if parse is batch else [VALID[2]] * 3, limits)) == 3


def test_an_event_over_the_size_limit_names_the_limit_and_index() -> None:
    small = {"type": "identify", "userId": "u"}
    exact = json.dumps(small, separators=(",", ":"))
    limits = events.Limits(max_event_bytes=len(exact))
    assert batch({"batch": [small]}, limits)
    big = {**small, "traits": {"name": "é"}}
    with pytest.raises(PayloadTooLarge) as caught:
        batch({"batch": [small, big]}, limits)
    assert caught.value.message.startswith("batch[1] is ")
    assert f"the limit is {len(exact)} bytes per event" in caught.value.message


def test_non_ascii_is_measured_in_utf8_bytes() -> None:
    message = {"type": "identify", "userId": "ü" * 10}
    size = len(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode())
    assert webhook(message, events.Limits(max_event_bytes=size))
    with pytest.raises(PayloadTooLarge):
        webhook(message, events.Limits(max_event_bytes=size - 1))


def test_numbers_beyond_a_double_decode_as_javascript_holds_them() -> None:
    # JSON.parse reads them as Infinity, which JSON.stringify writes as null.
    assert events.decode_json(b"1" * 5000) is None
    assert events.decode_json(b'{"a": 1e400, "b": -1e400, "c": 12, "d": 1.5}') == {
        "a": None, "b": None, "c": 12, "d": 1.5
    }  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "request body is empty"),
        (b"  \n", "request body is empty"),
        (b"\xff\xfe{}", "request body is not valid UTF-8"),
        (b"{", "request body is not valid JSON"),
        (b'{"a": NaN}', "request body is not valid JSON: NaN is not allowed"),
        (b"[Infinity]", "request body is not valid JSON: Infinity is not allowed"),
        (b"[" * 100_000 + b"]" * 100_000, "request body is nested too deeply"),
    ],
)
def test_decode_json_rejects_what_is_not_json(raw: bytes, expected: str) -> None:
    with pytest.raises(BadRequest) as caught:
        events.decode_json(raw)
    assert caught.value.message.startswith(expected)
    assert caught.value.code == "invalid_json"


def test_lone_surrogates_are_rejected_not_stored() -> None:
    body = events.decode_json(b'{"type":"identify","userId":"u","traits":{"n":"\\ud800"}}')
    with pytest.raises(BadRequest) as caught:
        webhook(body)
    assert "not valid Unicode" in caught.value.message


def test_format_timestamp_is_rfc3339_utc_with_milliseconds() -> None:
    assert events.format_timestamp(datetime(2024, 5, 1, 14, 5, tzinfo=UTC)) == (
        "2024-05-01T14:05:00.000Z"
    )
    assert events.format_timestamp(datetime(2024, 5, 1, 14, 5, 0, 999999)) == (
        "2024-05-01T14:05:00.999Z"
    )


@settings(max_examples=300, deadline=None)
@given(st.datetimes(timezones=st.just(UTC)))
def test_format_timestamp_writes_what_strftime_writes(moment: datetime) -> None:
    # The short path (isoformat) against the format it stands for, every year included
    expected = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    assert events.format_timestamp(moment) == expected


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=30,
)
message_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from([*events.EVENT_TYPES, "x", ""]) | json_values,
        "userId": st.sampled_from(["u", "", None, 5, True]) | json_values,
        "anonymousId": st.sampled_from(["a", None]),
        "previousId": st.sampled_from(["p", None]),
        "event": st.sampled_from(["E", "", None]) | json_values,
        "messageId": st.text(max_size=120) | json_values,
        "timestamp": st.sampled_from(["2024-05-01T12:00:00Z", "x", None]) | json_values,
        "sentAt": st.sampled_from(["2024-05-01T12:00:00Z", "9999-12-31T23:59:59Z", 3]),
        "originalTimestamp": st.sampled_from(["0001-01-01T00:00:00Z", "2024-05-01", "x"]),
        "context": st.dictionaries(st.text(max_size=5), json_values, max_size=3) | json_values,
        "integrations": json_values,
        "writeKey": json_values,
    },
)
bodies = (
    json_values
    | message_like
    | st.lists(message_like | json_values, max_size=5)
    | st.fixed_dictionaries(
        {"batch": st.lists(message_like | json_values, max_size=5) | json_values},
        optional={"context": json_values, "integrations": json_values, "sentAt": json_values},
    )
)
small = events.Limits(max_event_bytes=200, max_batch_events=4)


def _check_parsed(parsed: list[dict[str, Any]]) -> None:
    for event in parsed:
        assert "writeKey" not in event
        assert event["type"] in events.EVENT_TYPES
        assert isinstance(event["messageId"], str) and 0 < len(event["messageId"]) <= 100
        assert event["receivedAt"] == RECEIVED_TEXT
        assert event["timestamp"] is not None
        json.dumps(event, allow_nan=False).encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(body=bodies, route=st.sampled_from([None, "webhook", *events.V1_ROUTE_TYPES]))
def test_no_json_value_makes_the_parser_raise_anything_but_an_ingest_error(
    body: object, route: str | None
) -> None:
    try:
        if route == "webhook":
            parsed = events.parse_webhook(body, RECEIVED, ids(), limits=small)
        else:
            parsed = events.parse_v1(route, body, RECEIVED, ids(), limits=small)
    except IngestError as ex:
        assert isinstance(ex, BadRequest | PayloadTooLarge)
        assert ex.status in (400, 413) and ex.message
        return
    _check_parsed(parsed)


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300) | bodies.map(lambda b: json.dumps(b).encode()[:300]))
def test_no_bytes_make_decoding_and_parsing_raise_anything_but_an_ingest_error(raw: bytes) -> None:
    try:
        parsed = events.parse_webhook(events.decode_json(raw), RECEIVED, ids(), limits=small)
    except IngestError as ex:
        assert isinstance(ex, BadRequest | PayloadTooLarge)
        return
    _check_parsed(parsed)

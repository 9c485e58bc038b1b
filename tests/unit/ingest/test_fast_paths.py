"""The cheap paths of ingest's per-request work agree with the general ones they stand in for."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import events
from ingest.errors import BadRequest
from telemetry.trace import make_record

RECEIVED = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)

odd = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=30),
    st.sampled_from(["2024-05-01T12:05:00.000Z", "2024-05-01", "2024-13-01T00:00:00Z", ""]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
envelopes = st.fixed_dictionaries(
    {"batch": st.just([])}, optional={"context": odd, "integrations": odd, "sentAt": odd}
)


@settings(max_examples=500, deadline=None)
@given(envelopes)
def test_the_plain_envelope_check_never_accepts_what_the_schema_refuses(
    body: dict[str, Any],
) -> None:
    # Given any envelope, When the plain check accepts it, Then the schema finds no problem
    if events._plain_envelope(body):
        assert events._ENVELOPE_SCHEMA.validate(body) == {}


def _new_id() -> str:
    return str(uuid.uuid4())


def test_every_event_of_a_request_carries_the_request_receipt_time() -> None:
    # Given a batch whose messages lack timestamps, or carry one, or need the clock correction
    body = {
        "sentAt": "2024-05-01T12:00:10.000Z",
        "batch": [
            {"type": "track", "event": "E", "userId": "u"},
            {"type": "track", "event": "E", "userId": "u", "timestamp": "2024-05-01T11:00:00Z"},
            {"type": "track", "event": "E", "userId": "u",
             "originalTimestamp": "2024-05-01T12:00:00.000Z"},
        ],
    }  # fmt: skip
    # When it is parsed
    parsed = events.parse_v1(None, body, RECEIVED, _new_id)
    # Then receivedAt is the request's, formatted as before, and the corrections use it
    stamp = events.format_timestamp(RECEIVED)
    assert [event["receivedAt"] for event in parsed] == [stamp] * 3
    assert parsed[0]["timestamp"] == stamp
    assert parsed[1]["timestamp"] == "2024-05-01T11:00:00Z"
    assert parsed[2]["timestamp"] == "2024-05-01T11:59:50.123Z"  # received - (sent - original)


def test_invalid_text_in_the_envelope_still_refuses_the_batch() -> None:
    # Given a batch whose shared context holds a lone surrogate (the message's own fields are
    # fine), decoded as ingest decodes it
    raw = b'{"context":{"n":"\\ud800"},"batch":[{"type":"identify","userId":"u"}]}'
    body = events.decode_json(raw)
    # When it is parsed, Then it is refused, nothing stored
    with pytest.raises(BadRequest) as caught:
        events.parse_v1(None, body, RECEIVED, _new_id)
    assert caught.value.code == "invalid_json"
    assert "not valid Unicode" in caught.value.message


record_fields = st.dictionaries(
    st.sampled_from(["route", "reason", "mappings", "status", "ms", "size", "error", "due"]),
    st.one_of(
        st.none(),
        st.integers(-(2**53), 2**53),
        st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6).map(
            lambda x: round(x, 1)
        ),
        st.text(max_size=40),
        st.lists(st.text(max_size=10), max_size=3),
    ),
)


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 2**45), st.text(min_size=1, max_size=12), record_fields)
def test_trace_records_are_the_bytes_json_dumps_wrote(
    t_ms: int, step: str, fields: dict[str, Any]
) -> None:
    # Given any record, When it is made, Then it is what the standard library wrote before
    data = {"t": t_ms, "k": step} | {k: v for k, v in fields.items() if v is not None}
    expected = json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n"
    assert make_record(step, t_ms, **fields) == expected

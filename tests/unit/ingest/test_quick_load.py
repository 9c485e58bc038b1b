"""The fast path of message validation accepts only what the marshmallow schema accepts."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from ingest.events import _MESSAGE_SCHEMA, EVENT_TYPES, _quick_load

odd_values: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=120),
    st.sampled_from(["", "2024-05-01T12:05:00.000Z", "2024-05-01 12:05", "2024-13-01", "x" * 101]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A valid value nine times in ten, an odd one otherwise (one_of would flatten the odds in)."""
    return st.integers(0, 9).flatmap(lambda n: odd_values if n == 0 else valid)


identity = mostly(st.one_of(st.text(min_size=1, max_size=8), st.integers()))
stamp = mostly(st.sampled_from(["2024-05-01T12:05:00.000Z", "2024-05-01T12:05:00+02:00"]))
obj = mostly(st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
# Mostly valid values, so the fast path is taken often, with odd ones mixed in anywhere.
fields_by_key = {
    "userId": identity,
    "anonymousId": identity,
    "previousId": identity,
    "event": mostly(st.text(max_size=8)),
    "messageId": mostly(st.text(max_size=100)),
    "timestamp": stamp,
    "sentAt": stamp,
    "originalTimestamp": stamp,
    "context": obj,
    "integrations": obj,
    "properties": obj,
    "traits": obj,
    "name": odd_values,
}
messages = st.fixed_dictionaries(
    {"type": mostly(st.sampled_from(EVENT_TYPES))},
    optional=fields_by_key,
)


@settings(max_examples=1000, deadline=None)
@given(messages)
def test_the_fast_path_never_accepts_what_the_schema_refuses(message: dict[str, Any]) -> None:
    quick = _quick_load(message)
    if quick is None:
        return
    try:
        loaded = _MESSAGE_SCHEMA.load(message)
    except ValidationError as ex:
        raise AssertionError(f"fast path accepted {message!r}; schema says {ex.messages}") from ex
    for key in ("sentAt", "originalTimestamp", "timestamp"):
        assert quick.get(key) == loaded.get(key)


def test_ordinary_messages_take_the_fast_path() -> None:
    track = {
        "type": "track",
        "event": "E",
        "userId": "u",
        "messageId": "m",
        "timestamp": "2024-05-01T12:05:00.000Z",
        "properties": {"a": 1},
        "context": {},
    }
    assert _quick_load(track) is not None
    assert _quick_load({"type": "identify", "anonymousId": 7, "traits": {}}) is not None
    assert _quick_load({"type": "track", "userId": "u"}) is None  # no event: the schema explains
    assert _quick_load({"type": "alias", "userId": "u"}) is None

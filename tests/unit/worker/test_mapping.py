"""Event + mapping -> Pushwoosh call, rule by rule from the wire contract (docs pushwoosh.md)."""

from __future__ import annotations

import json
from collections.abc import Mapping as MappingABC
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.directives import ABSENT, DirectiveError
from config.jsdate import is_date_like
from config.mapping_file import preset_mappings
from config.mappings import (
    ACTION_SCHEMAS,
    PROFILE_DEFAULTS,
    PROFILE_FIELDS,
    TRACK_DEFAULTS,
    TRACK_EVENT,
    UPDATE_USER_PROFILE,
    Mapping,
)
from worker.mapping import (
    REQUIRED_FIELDS,
    Call,
    MappingRejected,
    Plan,
    Rejection,
    _made_call,
    _plan,
    compile_fields,
    map_delete,
    map_event,
    map_event_in_full,
    normalize_timestamp,
    plain_rfc3339,
    plan_calls,
    remove_empty_values,
    resolve_payload,
    validate_field,
    validate_payload,
)
from worker.mapping import build_profile_body as _profile_body
from worker.mapping import build_track_element as _track_element


def build_profile_body(payload: dict[str, Any]) -> dict[str, Any]:
    """A mapped payload through Segment's checks and coercions, then the track-user body."""
    return _profile_body(validate_payload(payload, UPDATE_USER_PROFILE))


def build_track_element(payload: dict[str, Any], app_code: str) -> dict[str, Any]:
    return _track_element(validate_payload(payload, TRACK_EVENT), app_code)


APP_CODE = "ABCDE-12345"


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def is_type(*types: str) -> Any:
    return lambda event: event.get("type") in types


def profile_mapping(**changes: Any) -> Mapping:
    fields_json = {**PROFILE_DEFAULTS, **changes.pop("fields", {})}
    return Mapping(
        name=changes.pop("name", "profiles"),
        action=UPDATE_USER_PROFILE,
        trigger_source='type = "identify"',
        trigger=changes.pop("trigger", is_type("identify")),
        fields=compile_fields(fields_json, "profiles.fields"),
        field_sources=fields_json,
        **changes,
    )


def track_mapping(**changes: Any) -> Mapping:
    fields_json = {**TRACK_DEFAULTS, **changes.pop("fields", {})}
    return Mapping(
        name=changes.pop("name", "events"),
        action=TRACK_EVENT,
        trigger_source='type = "track" or type = "page" or type = "screen"',
        trigger=changes.pop("trigger", is_type("track", "page", "screen")),
        fields=compile_fields(fields_json, "events.fields"),
        field_sources=fields_json,
        **changes,
    )


PROFILE = profile_mapping()
TRACK = track_mapping()

# -- worked examples -------------------------------------------------------------------------------

IDENTIFY_IN = '{"type":"identify","userId":"user-123","traits":{"email":"jane@example.com","name":"Jane Doe","plan":"premium"},"context":{"app":{"version":"2.3.1"},"device":{"id":"D1","model":"iPhone12,1","type":"ios","token":"ff15"},"os":{"version":"17.4"},"locale":"en-US","location":{"city":"Berlin","country":"DE","latitude":52.52,"longitude":13.405},"timezone":"Europe/Berlin","userAgent":"ShopApp/2.3.1"}}'  # noqa: E501
IDENTIFY_OUT = '{"attributes":{"name":"Jane Doe","plan":"premium"},"user_id":"user-123","email":"jane@example.com","app_version":"2.3.1","device_id":"D1","device_model":"iPhone12,1","device_platform":"ios","device_token":"ff15","language":"en-US","country":"DE","city":"Berlin","current_location":{"latitude":52.52,"longitude":13.405},"device_os_version":"17.4","timezone":"Europe/Berlin","user_agent":"ShopApp/2.3.1"}'  # noqa: E501
TRACK_IN = '{"type":"track","event":"Order Completed","userId":"user-123","timestamp":"2024-05-01T12:05:00.000Z","properties":{"total":59.9},"context":{"device":{"id":"D1","type":"ios"}}}'  # noqa: E501
TRACK_OUT = '{"events":[{"user_id":"user-123","device_id":"D1","device_platform":"ios","app_code":"ABCDE-12345","name":"Order Completed","timestamp":"2024-05-01T12:05:00.000Z","attributes":{"total":59.9}}]}'  # noqa: E501
PAGE_IN = '{"type":"page","name":"Pricing","userId":"user-123","timestamp":"2024-05-01T12:06:00.000Z","properties":{"path":"/pricing"}}'  # noqa: E501
PAGE_OUT = '{"user_id":"user-123","app_code":"ABCDE-12345","name":"Pricing","timestamp":"2024-05-01T12:06:00.000Z","attributes":{"path":"/pricing"}}'  # noqa: E501


def test_worked_example_identify_is_byte_identical() -> None:
    call = map_event({**json.loads(IDENTIFY_IN), "messageId": "m1"}, PROFILE, APP_CODE)
    assert (call.path, call.action, call.mapping, call.message_id) == (
        "track-user",
        "updateUserProfile",
        "profiles",
        "m1",
    )
    assert call.batchable is False
    assert compact(call.body) == IDENTIFY_OUT


def test_worked_example_track_is_byte_identical() -> None:
    call = map_event(json.loads(TRACK_IN), TRACK, APP_CODE)
    assert call.path == "post-events"
    assert compact({"events": [call.body]}) == TRACK_OUT


def test_worked_example_page_is_byte_identical() -> None:
    call = map_event(json.loads(PAGE_IN), TRACK, APP_CODE)
    assert compact(call.body) == PAGE_OUT


# -- payload resolution ----------------------------------------------------------------------------


def test_resolve_payload_drops_absent_and_validation_top_level_empty_strings() -> None:
    event = {"userId": "", "traits": {"email": None, "nested": {"empty": ""}}}
    payload = resolve_payload(event, PROFILE)
    assert payload == {
        "external_id": "",
        "email": None,
        "current_location": {},  # an object field; build_profile_body omits it when empty
        "custom_attributes": {"email": None, "nested": {"empty": ""}},
    }
    assert "external_id" not in validate_payload(payload, UPDATE_USER_PROFILE)


def test_compile_fields_names_the_field_in_errors() -> None:
    with pytest.raises(DirectiveError) as caught:
        compile_fields({"email": {"@path": "$.a"}, "name": {"@iff": {}}}, "mappings[0].fields")
    assert caught.value.where == "mappings[0].fields.name.@iff"


# -- track-user ------------------------------------------------------------------------------------

PROFILE_STRING_FIELDS = [
    f for f in PROFILE_FIELDS if f not in ("current_location", "custom_attributes")
]
BODY_KEY = {"external_id": "user_id"}


@pytest.mark.parametrize("field", [f for f in PROFILE_STRING_FIELDS if f != "external_id"])
def test_profile_nullable_fields_send_null(field: str) -> None:
    body = build_profile_body({field: None})
    assert body == {"attributes": {}, field: None}


@pytest.mark.parametrize("field", PROFILE_STRING_FIELDS)
@pytest.mark.parametrize(
    ("value", "sent"),
    [("x", "x"), (42, "42"), (52.5, "52.5"), (52.0, "52"), (True, "true"), (False, "false")],
)
def test_profile_string_fields_coerce_scalars(field: str, value: object, sent: str) -> None:
    body = build_profile_body({field: value})
    assert body[BODY_KEY.get(field, field)] == sent


@pytest.mark.parametrize("field", PROFILE_STRING_FIELDS)
@pytest.mark.parametrize("value", [{"a": 1}, [1, 2]])
def test_profile_object_where_a_string_belongs_is_rejected(field: str, value: object) -> None:
    with pytest.raises(MappingRejected, match=f"{field} must be a string"):
        build_profile_body({field: value})


def test_profile_null_external_id_is_absent() -> None:
    assert build_profile_body({"external_id": None}) == {"attributes": {}}


def test_profile_with_nothing_still_has_attributes() -> None:
    assert build_profile_body({}) == {"attributes": {}}
    assert build_profile_body({"custom_attributes": None}) == {"attributes": {}}


def test_profile_attributes_exclude_every_field_key_and_keep_values_as_they_are() -> None:
    traits = {key: f"v-{key}" for key in PROFILE_FIELDS}
    kept = {
        "name": "Jane",
        "n": None,
        "e": "",
        "arr": [1, None],
        "obj": {"x": None},
        "order_completed_last_30days": True,
        "user_id": "not a field key",
        "attributes": 1,
    }
    body = build_profile_body({"custom_attributes": {**traits, **kept}})
    assert body["attributes"] == kept


def test_profile_non_object_custom_attributes_are_rejected() -> None:
    with pytest.raises(MappingRejected, match="custom_attributes must be an object"):
        build_profile_body({"custom_attributes": "plan=premium"})


def test_identify_email_trait_goes_only_to_email() -> None:
    event = {"type": "identify", "userId": 7, "traits": {"email": "a@b.c", "age": 3}}
    body = map_event(event, PROFILE, APP_CODE).body
    assert body == {"attributes": {"age": 3}, "user_id": "7", "email": "a@b.c"}


def test_profile_body_key_order_follows_the_contract() -> None:
    payload = {key: None for key in reversed(PROFILE_FIELDS)}
    payload["external_id"] = "u"
    payload["current_location"] = {"latitude": 1}
    assert list(build_profile_body(payload)) == [
        "attributes", "user_id", "email", "app_version", "device_id", "device_model",
        "device_platform", "device_token", "language", "country", "city", "current_location",
        "device_os_version", "timezone", "user_agent",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("location", "sent"),
    [
        ({"latitude": 52.52, "longitude": 13.405}, {"latitude": 52.52, "longitude": 13.405}),
        ({"latitude": 0, "longitude": 0}, {"latitude": 0, "longitude": 0}),
        ({"latitude": 0.0, "longitude": -0.5}, {"latitude": 0, "longitude": -0.5}),
        ({"latitude": "52.5", "longitude": " 13 "}, {"latitude": 52.5, "longitude": 13}),
        ({"latitude": "1e2"}, {"latitude": 100}),
        ({"latitude": 52.52}, {"latitude": 52.52}),
        ({"longitude": 13.4, "altitude": 30, "speed": 1}, {"longitude": 13.4}),
        ({"latitude": None, "longitude": 13.4}, {"longitude": 13.4}),
        ({"latitude": "", "longitude": 13.4}, {"longitude": 13.4}),  # "" drops that one only
        ({"longitude": "0x10"}, {"longitude": 16}),  # JavaScript's Number()
        ({"latitude": True}, {"latitude": 1}),
        ({}, "omitted"),
        ({"latitude": None}, "omitted"),
        ({"altitude": 3}, "omitted"),
        (None, "omitted"),  # Segment's schema for it has no null
    ],
)
def test_current_location(location: object, sent: object) -> None:
    body = build_profile_body({"current_location": location})
    if sent == "omitted":
        assert "current_location" not in body
    else:
        assert body["current_location"] == sent


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ({"latitude": "north"}, "current_location.latitude must be a number"),
        ({"latitude": "1_0"}, "current_location.latitude must be a number"),
        (0, "current_location must be an object"),
        ({"latitude": {"deg": 1}}, "current_location.latitude must be a number"),
        ("52.5,13.4", "current_location must be an object"),
        ([52.5, 13.4], "current_location must be an object"),
    ],
)
def test_current_location_rejections(location: object, reason: str) -> None:
    with pytest.raises(MappingRejected) as caught:
        build_profile_body({"current_location": location})
    assert caught.value.reason.startswith(reason)


def test_identify_default_location_is_omitted_when_the_event_has_none() -> None:
    body = map_event({"type": "identify", "userId": "u"}, PROFILE, APP_CODE).body
    assert body == {"attributes": {}, "user_id": "u"}


# -- post-events -----------------------------------------------------------------------------------

GOOD_TRACK: dict[str, Any] = {
    "external_id": "u1",
    "name": "Signed Up",
    "timestamp": "2024-05-01T12:05:00.000Z",
}


@pytest.mark.parametrize("field", ["external_id", "name", "timestamp"])
@pytest.mark.parametrize("value", ["absent", None])
def test_track_required_fields(field: str, value: object) -> None:
    payload = dict(GOOD_TRACK)
    if value == "absent":
        del payload[field]
    else:
        payload[field] = value
    with pytest.raises(MappingRejected) as caught:
        build_track_element(payload, APP_CODE)
    assert caught.value.reason == f"missing required field {field}"


def test_track_empty_user_id_is_missing() -> None:
    event = {"type": "track", "userId": "", "event": "X", "timestamp": "2024-05-01T12:05:00Z"}
    with pytest.raises(MappingRejected, match="missing required field external_id"):
        map_event(event, TRACK, APP_CODE)


def test_track_element_key_order_and_nulls() -> None:
    payload = {
        "properties": {},
        "timestamp": "2024-05-01T12:05:00Z",
        "name": 404,
        "device_platform": None,
        "device_id": 12,
        "external_id": 7.0,
    }
    element = build_track_element(payload, APP_CODE)
    assert compact(element) == (
        '{"user_id":"7","device_id":"12","device_platform":null,"app_code":"ABCDE-12345",'
        '"name":"404","timestamp":"2024-05-01T12:05:00Z","attributes":{}}'
    )


@pytest.mark.parametrize(
    ("properties", "attributes"),
    [
        ("absent", "omitted"),
        (None, "omitted"),
        ({}, {}),
        ({"a": None, "b": "", "c": [1, {"d": None}]}, {"a": None, "b": "", "c": [1, {"d": None}]}),
    ],
)
def test_track_attributes_from_properties(properties: object, attributes: object) -> None:
    payload = dict(GOOD_TRACK)
    if properties != "absent":
        payload["properties"] = properties
    element = build_track_element(payload, APP_CODE)
    if attributes == "omitted":
        assert "attributes" not in element
    else:
        assert element["attributes"] == attributes


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("properties", "x", "properties must be an object"),
        ("properties", [1], "properties must be an object"),
        ("external_id", {"id": 1}, "external_id must be a string"),
        ("name", ["a", "b"], "name must be a string"),
        ("device_id", {"a": 1}, "device_id must be a string"),
        ("timestamp", "yesterday", "timestamp is not a date"),
    ],
)
def test_track_validation_errors(field: str, value: object, reason: str) -> None:
    with pytest.raises(MappingRejected) as caught:
        build_track_element({**GOOD_TRACK, field: value}, APP_CODE)
    assert caught.value.reason.startswith(reason)


@pytest.mark.parametrize(
    ("event", "name"),
    [
        ({"type": "track", "event": "Clicked", "name": "ignored"}, "Clicked"),
        ({"type": "page", "name": "Pricing"}, "Pricing"),
        ({"type": "screen", "event": None, "name": "Home"}, "Home"),
    ],
)
def test_track_name_default(event: dict[str, Any], name: str) -> None:
    full = {**event, "userId": "u", "timestamp": "2024-05-01T12:05:00Z"}
    assert map_event(full, TRACK, APP_CODE).body["name"] == name


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        # RFC 3339 goes unchanged, whatever its precision or offset
        ("2024-05-01T12:05:00.000Z", "2024-05-01T12:05:00.000Z"),
        ("2024-05-01T12:05:00Z", "2024-05-01T12:05:00Z"),
        ("2024-05-01T12:05:00.123456789Z", "2024-05-01T12:05:00.123456789Z"),
        ("2024-05-01T14:05:00+02:00", "2024-05-01T14:05:00+02:00"),
        ("2024-05-01T12:05:00.5-07:30", "2024-05-01T12:05:00.5-07:30"),
        # epoch seconds and milliseconds, numbers or numeric strings
        (1714565100, "2024-05-01T12:05:00.000Z"),
        (1714565100.123, "2024-05-01T12:05:00.123Z"),
        (1714565100123, "2024-05-01T12:05:00.123Z"),
        (1714565100123.9, "2024-05-01T12:05:00.123Z"),
        ("1714565100", "2024-05-01T12:05:00.000Z"),
        ("1714565100123", "2024-05-01T12:05:00.123Z"),
        (0, "1970-01-01T00:00:00.000Z"),
        (99_999_999_999, "5138-11-16T09:46:39.000Z"),  # just under the cut-off: seconds
        (100_000_000_000, "1973-03-03T09:46:40.000Z"),  # at the cut-off: milliseconds
        (-1000, "1969-12-31T23:43:20.000Z"),
        # other ISO 8601 shapes; no offset means UTC
        ("2024-05-01 12:05:00", "2024-05-01T12:05:00.000Z"),
        ("2024-05-01 12:05:00.987654", "2024-05-01T12:05:00.987Z"),
        ("2024-05-01 14:05:00+02:00", "2024-05-01T12:05:00.000Z"),
        ("2024-05-01T12:05:00", "2024-05-01T12:05:00.000Z"),
        ("2024-05-01", "2024-05-01T00:00:00.000Z"),
        ("2024-05-01T12:05:00+0200", "2024-05-01T10:05:00.000Z"),
        # what else Segment accepts, read as Segment (dayjs, then JavaScript's Date) reads it
        ("2024/05/01", "2024-05-01T00:00:00.000Z"),
        ("May 1, 2024", "2024-05-01T00:00:00.000Z"),
        ("Wed, 01 May 2024 12:05:00 GMT", "2024-05-01T12:05:00.000Z"),
        ("Wed, 01 May 2024 14:05:00 +0200", "2024-05-01T12:05:00.000Z"),
        ("2024-05-01t12:05:00z", "2024-05-01T12:05:00.000Z"),
        ("2024-02-30T12:00:00Z", "2024-03-01T12:00:00.000Z"),  # rolls over, as in Segment
    ],
)
def test_normalize_timestamp(value: object, sent: str) -> None:
    assert normalize_timestamp(value) == sent


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "",
        " 1714565100.5 ",
        "20240501T120500Z",
        "2024-05-01T25:00:00Z",
        "1_000",
        "NaN",
        "Infinity",
        float("nan"),
        float("inf"),
        1e300,
        True,
        None,
        {"seconds": 1},
        [1714565100],
    ],
)
def test_unparseable_timestamps_reject_the_event(value: object) -> None:
    with pytest.raises(MappingRejected, match="timestamp"):
        normalize_timestamp(value)


def test_batching_mapping_makes_batchable_calls() -> None:
    mapping = track_mapping(enable_batching=True)
    call = map_event(json.loads(TRACK_IN), mapping, APP_CODE)
    assert call.batchable is True
    assert map_event(json.loads(TRACK_IN), TRACK, APP_CODE).batchable is False


# -- delete and planning ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_id", "body"),
    [("user-123", {"external_id": "user-123"}), (42, {"external_id": 42})],  # sent as it is
)
def test_map_delete(user_id: object, body: dict[str, str]) -> None:
    call = map_delete({"type": "delete", "userId": user_id, "messageId": "d1"})
    assert call == Call("", "deleteUser", "delete-user", "d1", body, False)


@pytest.mark.parametrize("event", [{"type": "delete"}, {"type": "delete", "userId": None},
                                   {"type": "delete", "userId": ""}])  # fmt: skip
def test_map_delete_without_user_is_rejected(event: dict[str, Any]) -> None:
    with pytest.raises(MappingRejected, match="userId"):
        map_delete(event)


def test_plan_calls_delete_uses_only_the_builtin_delete() -> None:
    everything = track_mapping(name="all", trigger=lambda _e: True)
    calls, rejections = plan_calls(
        {"type": "delete", "userId": "u", "messageId": "d"}, [everything, PROFILE], APP_CODE
    )
    assert [c.path for c in calls] == ["delete-user"]
    assert rejections == []
    calls, rejections = plan_calls({"type": "delete", "messageId": "d"}, [everything], APP_CODE)
    assert calls == []
    assert rejections == [Rejection("", "deleteUser", "d", "missing required field userId")]


def _raise(_event: MappingABC[str, Any]) -> bool:
    raise TypeError("cannot compare")


def test_plan_calls_runs_every_enabled_matching_mapping_in_order() -> None:
    mappings = [
        track_mapping(name="first"),
        track_mapping(name="disabled", enabled=False),
        profile_mapping(name="profiles"),
        track_mapping(name="broken-trigger", trigger=_raise),
        track_mapping(name="second", enable_batching=True),
    ]
    event = {**json.loads(TRACK_IN), "messageId": "m9"}
    calls, rejections = plan_calls(event, mappings, APP_CODE)
    assert [(c.mapping, c.batchable, c.message_id) for c in calls] == [
        ("first", False, "m9"),
        ("second", True, "m9"),
    ]
    assert rejections == []


def test_plan_calls_records_rejections_and_keeps_the_other_calls() -> None:
    strict = track_mapping(name="strict", fields={"name": {"@path": "$.missing"}})
    event = {**json.loads(TRACK_IN), "messageId": "m2"}
    calls, rejections = plan_calls(event, [strict, TRACK], APP_CODE)
    assert [c.mapping for c in calls] == ["events"]
    assert rejections == [Rejection("strict", "trackEvent", "m2", "missing required field name")]


def test_plan_calls_without_a_match_is_empty() -> None:
    assert plan_calls({"type": "alias", "messageId": "a"}, [PROFILE, TRACK], APP_CODE) == ([], [])


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)
event_keys = st.sampled_from(
    ["type", "userId", "event", "name", "timestamp", "properties", "traits", "context", "x"]
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(event_keys, json_values, max_size=8),
    st.sampled_from(["identify", "track", "page", "delete", None]),
    st.dictionaries(
        st.sampled_from(["device", "location", "app", "os", "locale"]), json_values, max_size=4
    ),
)
def test_no_event_makes_planning_raise(
    event: dict[str, Any], event_type: str | None, context: dict[str, Any]
) -> None:
    event = {**event, "type": event_type, "context": context, "messageId": "p"}
    calls, rejections = plan_calls(event, [PROFILE, TRACK], APP_CODE)
    for call in calls:
        json.dumps(call.body, allow_nan=False)  # always valid JSON to send
    assert all(rejection.reason for rejection in rejections)
    assert len(calls) + len(rejections) == (1 if event_type is not None else 0)


def _validated_field_by_field(payload: dict[str, Any], action: str) -> dict[str, Any]:
    """Segment's order, written out: removeEmptyValues, then ajv's check of each field, then
    the required fields (validate_payload does it in one pass, with shortcuts)."""
    schema = ACTION_SCHEMAS[action]
    cleaned = remove_empty_values(payload, action)
    valid = {key: validate_field(key, value, schema[key]) for key, value in cleaned.items()}
    for key in REQUIRED_FIELDS[action]:
        if key not in valid:
            code = "no_user_id" if key == "external_id" else "mapping_rejected"
            raise MappingRejected(f"missing required field {key}", code)
    return valid


_DATES = st.sampled_from(
    ["2024-05-01T12:05:00.000Z", "2024-13-01T00:00:00Z", "2024-05-01", "1714565100",
     "yesterday", "", " ", "2024-02-30T00:00:00+01:00"]
)  # fmt: skip
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False)
    | st.text(max_size=5) | _DATES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=6,
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.data(), st.sampled_from([TRACK_EVENT, UPDATE_USER_PROFILE]))
def test_validating_in_one_pass_is_segments_field_by_field_order(
    data: st.DataObject, action: str
) -> None:
    keys = list(ACTION_SCHEMAS[action])
    payload = data.draw(st.dictionaries(st.sampled_from(keys), _VALUES, max_size=len(keys)))
    try:
        expected: Any = _validated_field_by_field(payload, action)
    except MappingRejected as ex:
        expected = (ex.reason, ex.code)
    try:
        got: Any = validate_payload(payload, action)
    except MappingRejected as ex:
        got = (ex.reason, ex.code)
    assert got == expected


def _outcome(make: Any) -> Any:
    try:
        return make()
    except MappingRejected as ex:
        return ("rejected", ex.reason, ex.code)
    except Exception as ex:  # the guard in plan_calls turns these into mapping errors
        return ("error", type(ex).__name__, str(ex))


_PLAIN_OR_NOT = st.one_of(
    st.sampled_from(["u-1", "Order Completed", "", " ", "2024-05-01T12:05:00.000Z"]),
    _VALUES,
)
_DEVICES = st.one_of(
    st.fixed_dictionaries({}, optional={"id": _PLAIN_OR_NOT, "type": _PLAIN_OR_NOT}), _VALUES
)
_EVENTS = st.fixed_dictionaries(
    {"type": st.just("track")},
    optional={
        "messageId": st.sampled_from(["m-1", 7, None]),
        "userId": _PLAIN_OR_NOT,
        "event": _PLAIN_OR_NOT,
        "name": _PLAIN_OR_NOT,
        "timestamp": st.one_of(_DATES, _VALUES, st.just("0001-01-01T00:00:00.000Z")),
        "context": st.one_of(
            st.fixed_dictionaries({}, optional={"device": _DEVICES, "locale": _VALUES}), _VALUES
        ),
        "properties": st.one_of(st.dictionaries(st.text(max_size=3), _VALUES, max_size=3),
                                _VALUES),
    },
)  # fmt: skip


@pytest.mark.parametrize("batching", [True, False])
@settings(max_examples=200, deadline=None)
@given(event=_EVENTS)
def test_the_preset_track_mapping_maps_a_plain_event_as_the_general_path_does(
    batching: bool, event: dict[str, Any]
) -> None:
    (mapping,) = [m for m in preset_mappings(batching) if m.action == TRACK_EVENT]
    fast = _outcome(lambda: map_event(event, mapping, APP_CODE))
    full = _outcome(lambda: map_event_in_full(event, mapping, APP_CODE))
    assert fast == full


def test_a_mapping_that_changes_a_preset_track_field_takes_the_general_path() -> None:
    (preset,) = [m for m in preset_mappings(True) if m.action == TRACK_EVENT]
    mapping = track_mapping(fields={"name": {"@path": "$.properties.title"}})
    event = {"type": "track", "userId": "u", "event": "E", "timestamp": "2024-05-01T12:05:00Z",
             "properties": {"title": "T"}}  # fmt: skip
    assert map_event(event, preset, APP_CODE).body["name"] == "E"
    assert map_event(event, mapping, APP_CODE).body["name"] == "T"


_PLAIN_EVENT: dict[str, Any] = {
    "type": "track", "messageId": "m-1", "userId": "u-1", "event": "Order Completed",
    "timestamp": "2024-05-01T12:05:00.000Z", "properties": {"a": [1, {"b": None}]},
    "context": {"device": {"id": "d-1", "type": "ios"}, "locale": "de-DE"},
}  # fmt: skip
_PLACES = [
    ("userId",), ("event",), ("name",), ("timestamp",), ("properties",), ("context",),
    ("context", "device"), ("context", "device", "id"), ("context", "device", "type"),
]  # fmt: skip


@pytest.mark.parametrize("batching", [True, False])
@settings(max_examples=200, deadline=None)
@given(place=st.sampled_from(_PLACES), value=st.one_of(st.just(ABSENT), _PLAIN_OR_NOT, _DATES))
def test_a_plain_event_with_one_value_changed_maps_as_the_general_path_does(
    batching: bool, place: tuple[str, ...], value: Any
) -> None:
    event = json.loads(json.dumps(_PLAIN_EVENT))
    *parents, key = place
    holder = event
    for parent in parents:
        holder = holder[parent]
    if value is ABSENT:
        holder.pop(key, None)
    else:
        holder[key] = value
    (mapping,) = [m for m in preset_mappings(batching) if m.action == TRACK_EVENT]
    assert _outcome(lambda: map_event(event, mapping, APP_CODE)) == _outcome(
        lambda: map_event_in_full(event, mapping, APP_CODE)
    )


def _two_digits(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map("{:02d}".format)


# RFC 3339's shape with every part a little out of its range now and then, and its near misses.
_RFC3339_LIKE = st.builds(
    "{}-{}-{}T{}:{}:{}{}{}".format,
    st.sampled_from(["0000", "0001", "1900", "2000", "2023", "2024", "9999",
                     "\uff12\uff10\uff12\uff14"]),
    _two_digits(0, 13), _two_digits(0, 32), _two_digits(0, 25), _two_digits(0, 61),
    _two_digits(0, 61),
    st.sampled_from(["", ".", ".1", ".123", ".1234567891"]),
    st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+00:60", "+23:59", "+24:00", "-25:00",
                     "+0200", "+02", "+0\u0662:00"]),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(text=_RFC3339_LIKE)
def test_a_plain_rfc3339_timestamp_is_date_like_and_sent_unchanged(text: str) -> None:
    if plain_rfc3339(text):
        assert is_date_like(text)
        assert normalize_timestamp(text) == text


@pytest.mark.parametrize(
    "text",
    ["2024-05-01T12:05:00.000Z", "2024-05-01T12:05:00Z", "2024-02-29T23:59:59.123456789+23:59",
     "2000-02-29T00:00:00-00:00", "0001-01-31T00:00:00Z", "9999-12-31T23:59:59.999Z"],
)  # fmt: skip
def test_the_usual_timestamps_are_plain_rfc3339(text: str) -> None:
    assert plain_rfc3339(text)


@pytest.mark.parametrize(
    "text",
    ["2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2024-04-31T00:00:00Z",
     "2024-05-01T12:05:00+00:60", "2024-05-01T12:05:60Z", "0000-01-01T00:00:00Z",
     "2024-05-01T12:05:00", "2024-05-01T12:05:00z"],
)  # fmt: skip
def test_odd_timestamps_are_left_to_the_general_checks(text: str) -> None:
    assert not plain_rfc3339(text)


@settings(max_examples=200, deadline=None)
@given(timestamp=_RFC3339_LIKE)
def test_a_plain_event_with_any_rfc3339_like_timestamp_maps_as_the_general_path_does(
    timestamp: str,
) -> None:
    event = {**json.loads(json.dumps(_PLAIN_EVENT)), "timestamp": timestamp}
    (mapping,) = [m for m in preset_mappings(True) if m.action == TRACK_EVENT]
    assert _outcome(lambda: map_event(event, mapping, APP_CODE)) == _outcome(
        lambda: map_event_in_full(event, mapping, APP_CODE)
    )


def test_the_preset_paths_call_has_the_fields_a_call_made_as_a_dataclass_has() -> None:
    args = ("m", TRACK_EVENT, "post-events", "id-1", {"a": 1}, True)
    made = _made_call(*args)
    assert vars(made) == vars(Call(*args))
    assert made == Call(*args) and made.encoded() == Call(*args).encoded()


def test_a_plan_made_without_its_constructor_is_a_plan_not_skipped() -> None:
    calls: list[Call] = []
    rejections: list[Rejection] = []
    plan = _plan(calls, rejections)
    assert type(plan) is Plan and plan == Plan(calls, rejections)
    assert plan.calls is calls and plan.rejections is rejections and plan.skipped is None
    assert Plan([], [], "integrations").skipped == "integrations"

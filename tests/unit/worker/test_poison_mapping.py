"""No event value can make mapping raise: it is mapped, or rejected with a reason."""

from __future__ import annotations

import pytest

from config import fastjson
from config.mapping_file import load_mappings_from_data, preset_mappings
from worker.mapping import MappingRejected, normalize_timestamp, plan_calls

PRESETS = preset_mappings(enable_batching=False)


def _identify_at(latitude: object) -> dict[str, object]:
    return {
        "type": "identify",
        "userId": "u1",
        "messageId": "m1",
        "context": {"location": {"latitude": latitude, "longitude": 13.4}},
    }


@pytest.mark.parametrize("value", [int("9" * 400), -(10**309)])
def test_numbers_beyond_a_finite_double_are_refused_as_rejections(value: object) -> None:
    calls, rejections = plan_calls(_identify_at(value), PRESETS, "ABCDE-12345")
    assert calls == []
    assert [(r.message_id, r.code) for r in rejections] == [("m1", "mapping_rejected")]
    assert "latitude" in rejections[0].reason


def test_the_largest_double_is_still_a_number() -> None:
    biggest = int(1.7976931348623157e308)
    (call,), _ = plan_calls(_identify_at(biggest), PRESETS, "ABCDE-12345")
    assert call.body["current_location"]["latitude"] == biggest


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (-62135596800, "0001-01-01T00:00:00.000Z"),
        (253402300799999, "9999-12-31T23:59:59.999Z"),
        ("1714565100", "2024-05-01T12:05:00.000Z"),
    ],
)
def test_epoch_times_at_the_ends_of_the_calendar(value: object, expected: str) -> None:
    assert normalize_timestamp(value) == expected


@pytest.mark.parametrize("value", [253402300800000, -62135596801, 1e300, int("9" * 400)])
def test_epoch_times_outside_years_1_to_9999_are_refused(value: object) -> None:
    with pytest.raises(MappingRejected, match="out of range"):
        normalize_timestamp(value)


@pytest.mark.parametrize("value", ["9e2000000", "-9e2000000", "+275760-09-13T00:00:00Z"])
def test_date_texts_no_rfc_3339_can_hold_are_refused(value: str) -> None:
    with pytest.raises(MappingRejected):
        normalize_timestamp(value)


def test_a_number_text_too_large_for_a_double_goes_out_as_json_null() -> None:
    # As Segment's own JSON round trip: Number("1e400") is Infinity, which JSON writes as null.
    (call,), _ = plan_calls(_identify_at("1e400"), PRESETS, "ABCDE-12345")
    assert fastjson.loads(fastjson.dumps(call.body))["current_location"]["latitude"] is None


def test_an_unexpected_error_in_one_mapping_is_a_mapping_error_and_others_still_map(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mappings = load_mappings_from_data(
        {
            "mappings": [
                {
                    "name": "a",
                    "action": "trackEvent",
                    "trigger": 'type = "track"',
                    "defaults": True,
                },
                {
                    "name": "b",
                    "action": "updateUserProfile",
                    "trigger": 'type = "track"',
                    "defaults": True,
                },
            ]
        },
        False,
        "test",
    )
    event = {
        "type": "track",
        "event": "E",
        "userId": "u1",
        "messageId": "m2",
        "timestamp": "2024-05-01T12:05:00.000Z",
    }

    def explode(payload: object, app_code: str, timestamp: str) -> dict[str, object]:
        raise RuntimeError("boom")

    # Where both paths build a track element: the general one and the preset's shortcut.
    monkeypatch.setattr("worker.mapping._track_element", explode)
    calls, rejections = plan_calls(event, mappings, "ABCDE-12345")
    assert [c.mapping for c in calls] == ["b"]
    assert [(r.mapping, r.code, r.reason) for r in rejections] == [
        ("a", "mapping_error", "RuntimeError: boom")
    ]

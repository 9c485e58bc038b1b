"""No event value can make mapping raise: it is mapped, or rejected with a reason."""

from __future__ import annotations

import pytest

from config.mapping_file import load_mappings_from_data, preset_mappings
from worker.mapping import MappingRejected, coerce_number, normalize_timestamp, plan_calls

PRESETS = preset_mappings(enable_batching=False)


@pytest.mark.parametrize(
    "value",
    [int("9" * 400), -(10**309), "1e400", float("inf"), float("nan")],
)
def test_numbers_beyond_a_finite_double_are_refused(value: object) -> None:
    with pytest.raises(MappingRejected):
        coerce_number("current_location.latitude", value)


def test_the_largest_double_is_still_a_number() -> None:
    assert coerce_number("x", int(1.7976931348623157e308)) == int(1.7976931348623157e308)


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


@pytest.mark.parametrize("value", ["9e2000000", "-9e2000000", 253402300800000, -62135596801, 1e300])
def test_epoch_times_outside_years_1_to_9999_are_refused(value: object) -> None:
    with pytest.raises(MappingRejected, match="out of range"):
        normalize_timestamp(value)


def test_a_huge_latitude_rejects_only_that_event() -> None:
    event = {
        "type": "identify",
        "userId": "u1",
        "messageId": "m1",
        "context": {"location": {"latitude": int("9" * 400)}},
    }
    calls, rejections = plan_calls(event, PRESETS, "ABCDE-12345")
    assert calls == []
    assert [(r.message_id, r.code) for r in rejections] == [("m1", "mapping_rejected")]
    assert "out of range" in rejections[0].reason


def test_an_unexpected_error_in_one_mapping_is_a_mapping_error_and_others_still_map(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mappings = load_mappings_from_data(
        {
            "mappings": [
                {"name": "a", "action": "trackEvent", "trigger": 'type = "track"'},
                {"name": "b", "action": "updateUserProfile", "trigger": 'type = "track"'},
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

    def explode(payload: object, app_code: str) -> dict[str, object]:
        raise RuntimeError("boom")

    monkeypatch.setattr("worker.mapping.build_track_element", explode)
    calls, rejections = plan_calls(event, mappings, "ABCDE-12345")
    assert [c.mapping for c in calls] == ["b"]
    assert [(r.mapping, r.code, r.reason) for r in rejections] == [
        ("a", "mapping_error", "RuntimeError: boom")
    ]

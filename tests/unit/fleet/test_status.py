"""`pushwoosh-fleet status`: what Redis and the live workers say, readable at a glance."""

from __future__ import annotations

import pytest

from fleet.status import FleetStatus, assess, format_status

NOW_S = 1_714_565_100.0  # 2024-05-01T12:05:00Z, minute 28576085
NOW_MS = int(NOW_S * 1000)


def _status(**changes: object) -> FleetStatus:
    base = FleetStatus(
        destination="default", queue_depths=[0], retry_scheduled=0, next_retry_ms=None,
        dead_letters=0, delivered_this_minute=0, delivered_last_minute=0, circuit={}, last_error={},
        workers=[], now_ms=NOW_MS,
    )  # fmt: skip
    for name, value in changes.items():
        setattr(base, name, value)
    return base


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, "workers       0 live: NONE: nothing is delivering"),
        ({"workers": None}, "workers       unknown (could not reach the broker)"),
        ({"workers": ["a@h", "b@h"]}, "workers       2 live: a@h, b@h"),
        ({}, "pushwoosh     sending"),
        ({}, "last error    none recorded"),
        ({"circuit": {"open_until_ms": str(NOW_MS - 1)}}, "pushwoosh     sending"),
        (
            {"last_error": {"t": str(NOW_MS - 7_200_000), "path": "track-user",
                            "status": "transport_error", "reply": "timed out", "outcome": "retry"}},
            "last error    10:05:00 UTC (2.0 h ago): track-user transport_error -> retry: "
            "timed out",
        ),
    ],
)  # fmt: skip
def test_status_lines(changes, expected) -> None:
    assert expected in format_status(_status(**changes)).splitlines()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"workers": ["w@h"]}, []),
        ({}, ["no live worker: nothing is delivering"]),
        ({"workers": None}, ["could not ask the workers (the broker did not answer)"]),
        (
            {"workers": ["w@h"], "circuit": {"open_until_ms": str(NOW_MS + 5000), "failures": "3",
                                             "reason": "HTTP 503"}},
            ["default: sending is paused (HTTP 503)"],
        ),
        ({"workers": ["w@h"], "circuit": {"open_until_ms": str(NOW_MS - 1), "failures": "3"}}, []),
        (
            {"workers": ["w@h"], "queue_depths": [4], "oldest_event_ms": NOW_MS - 600_000},
            ["default: the oldest queued event has waited 10 min"],
        ),
        ({"workers": ["w@h"], "queue_depths": [4], "oldest_event_ms": NOW_MS - 200_000}, []),
    ],
)  # fmt: skip
def test_what_makes_the_fleet_degraded(changes, expected) -> None:
    assert assess([_status(**changes)], stale_after_s=300) == expected


def test_the_oldest_queued_event_shows_with_the_queue() -> None:
    text = format_status(_status(queue_depths=[3], oldest_event_ms=NOW_MS - 90_000))
    assert "queued        3 events (shard 0: 3), oldest 2 min old" in text.splitlines()

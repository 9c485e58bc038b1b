"""Event history: hourly buckets with a cap and a TTL, lookups over the window, and the real fleet
tracing a delivered, a retried and a dead-lettered event through `pushwoosh-fleet trace`."""

from __future__ import annotations

import pytest

from config.settings import load_settings
from telemetry.trace import (
    describe,
    per_hour_budget,
)

# -- the real fleet --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window_s", "max_bytes", "budget"),
    [(86400, 256 * 2**20, 11184810), (3600, 10_000, 10_000), (7200, 10_000, 5000),
     (5400, 3, 1), (60, 5000, 5000)],
)  # fmt: skip
def test_the_budget_spreads_max_bytes_over_the_window_hours(window_s, max_bytes, budget) -> None:
    settings = load_settings({"TRACE_WINDOW_S": str(window_s), "TRACE_MAX_BYTES": str(max_bytes)})
    assert per_hour_budget(settings) == budget


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"t": 0, "k": "received", "route": "v1/batch"}, "received via v1/batch"),
        ({"t": 0, "k": "mapped", "mappings": ["A (trackEvent)"]}, "matched A (trackEvent)"),
        ({"t": 0, "k": "mapped", "mappings": []}, "matched no mapping: nothing to send"),
        (
            {"t": 0, "k": "sent", "request": "r1", "path": "post-events", "size": 100,
             "status": 503, "ms": 12.5, "outcome": "retry", "attempt": 1},
            "sent in request r1 to post-events with 100 event(s), attempt 1: HTTP 503 in 12.5 ms"
            " -> retry",
        ),
        (
            {"t": 0, "k": "sent", "request": "r2", "path": "track-user", "size": 1,
             "error": "timed out", "ms": 3000, "outcome": "retry", "attempt": 2},
            "attempt 2: timed out in 3000 ms -> retry",
        ),
        (
            {"t": 0, "k": "retry", "due": 1000, "attempt": 1, "reason": "HTTP 503"},
            "retry scheduled for 1970-01-01T00:00:01.000Z (after attempt 1): HTTP 503",
        ),
        (
            {"t": 0, "k": "dead_letter", "kind": "failed", "status": 400, "reason": "bad"},
            "dead-lettered (failed, HTTP 400): bad",
        ),
        (
            {"t": 0, "k": "rejected", "mapping": "Identify", "reason": "user_id is required"},
            "rejected by mapping 'Identify': user_id is required",
        ),
    ],
)  # fmt: skip
def test_each_record_reads_as_one_line(record, expected) -> None:
    line = describe(record)
    assert line.startswith("1970-01-01T00:00:00.000Z  ")
    assert expected in line

"""The benchmark runs end to end in its tiny mode and ends with its one JSON line."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SUMMARY_KEYS = {
    "fleet_events_per_s",
    "baseline_events_per_s",
    "speedup",
    "events_per_request",
    "ingest_p99_ms",
    "lag_p99_ms",
    "worker_rss_mb_backlog",
    "redis_bytes_per_queued_event",
    "retained_bytes_per_delivered_event",
    "history_bytes_per_delivered_event",
    "round_trip_us",
    "ingest_round_trips_per_event",
    "ingest_round_trips_per_single_event_request",
    "ingest_round_trips_per_event_e2e",
    "ingest_round_trips_per_single_event_request_e2e",
    "worker_round_trips_per_event",
    "worker_round_trips_per_event_single",
    "worker_round_trips_per_event_drain",
    "redis_round_trips_per_event",
    "redis_round_trips_per_event_single",
    "redis_round_trips_per_event_drain",
}


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_smoke_run_ends_with_the_summary_line() -> None:
    # Given the benchmark in its tiny mode (it starts its own Redis and processes)
    # When it runs to the end
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    # Then it succeeds and its last line is the summary, with exactly the promised keys
    assert done.returncode == 0, done.stderr[-4000:]
    last_line = done.stdout.strip().splitlines()[-1]
    summary = json.loads(last_line)
    assert set(summary) == SUMMARY_KEYS
    for key, value in summary.items():
        assert isinstance(value, int | float) and math.isfinite(value), (key, value)
        if key != "retained_bytes_per_delivered_event":
            assert value > 0, (key, value)
    # What Redis keeps per delivered event is a difference of two used-memory readings, over
    # the smoke run's 5,000 events: Redis' own bookkeeping moving by a few hundred KB between
    # them (its tables shrinking after the previous phase's keys went) can outweigh it.
    assert abs(summary["retained_bytes_per_delivered_event"]) < 1_000
    assert "every event delivered once" in done.stdout

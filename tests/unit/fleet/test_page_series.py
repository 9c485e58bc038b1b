"""The delivery page's charts: per-minute counters summed into buckets, and latency percentiles
read from the bucket counts the way Prometheus' histogram_quantile reads a histogram."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.page import series
from worker.settlement import LATENCY_BUCKETS_MS, latency_bucket

NOW_MINUTE = 28_576_085  # 2024-05-01T12:05Z
HOUR = NOW_MINUTE // 60


def test_fields_are_read_per_minute_and_measure_and_junk_is_ignored() -> None:
    fields = {
        f"{NOW_MINUTE}:delivered": "7",
        f"{NOW_MINUTE}:lat:250": "2",
        f"{NOW_MINUTE}:skipped:no_user_id": "1",
        f"{NOW_MINUTE - 1}:delivered": "3",
        "garbage": "1",
        f"{NOW_MINUTE}:retried": "not a number",
        f"x{NOW_MINUTE}:delivered": "4",
        f"{NOW_MINUTE}:": "4",
    }
    assert series.parse_fields(fields) == {
        NOW_MINUTE: {"delivered": 7, "lat:250": 2, "skipped:no_user_id": 1},
        NOW_MINUTE - 1: {"delivered": 3},
    }


def test_shards_add_up() -> None:
    summed: dict[int, series.Counts] = {}
    series.add(summed, {1: {"delivered": 2}, 2: {"retried": 1}})
    series.add(summed, {1: {"delivered": 3, "skipped": 1}})
    assert summed == {1: {"delivered": 5, "skipped": 1}, 2: {"retried": 1}}


@pytest.mark.parametrize(
    ("range_", "now_minute", "expected"),
    [
        (series.LAST_HOUR, HOUR * 60 + 59, [HOUR]),  # the hour's last minute: one hour
        (series.LAST_HOUR, HOUR * 60 + 5, [HOUR - 1, HOUR]),
        (series.LAST_DAY, HOUR * 60 + 5, list(range(HOUR - 23, HOUR + 1))),
    ],
)
def test_the_hours_read_hold_exactly_the_range(range_, now_minute, expected) -> None:
    assert series.hours_for(now_minute, range_) == expected


def test_minute_buckets_end_now_oldest_first() -> None:
    per_minute = {
        NOW_MINUTE: {"delivered": 5},
        NOW_MINUTE - 59: {"delivered": 1},
        NOW_MINUTE - 60: {"delivered": 100},  # just outside the hour
        NOW_MINUTE + 1: {"delivered": 100},  # a clock ahead: not shown yet
    }
    buckets = series.buckets(per_minute, NOW_MINUTE, series.LAST_HOUR)
    assert len(buckets) == 60
    assert buckets[0].start_minute == NOW_MINUTE - 59
    assert buckets[-1].start_minute == NOW_MINUTE
    assert [b.get("delivered") for b in buckets if b.counts] == [1, 5]
    assert series.total(buckets) == {"delivered": 6}


def test_hour_buckets_start_on_the_hour_and_the_last_is_the_current_one() -> None:
    start = HOUR * 60
    per_minute = {
        start + 5: {"delivered": 2},
        start: {"delivered": 1},
        start - 1: {"delivered": 10},  # the hour before
        start - 24 * 60: {"delivered": 1000},  # 24 hours before the current hour: outside
    }
    buckets = series.buckets(per_minute, start + 5, series.LAST_DAY)
    assert len(buckets) == 24
    assert [b.start_minute for b in buckets[-2:]] == [start - 60, start]
    assert buckets[-1].counts == {"delivered": 3}
    assert buckets[-2].counts == {"delivered": 10}
    assert series.total(buckets) == {"delivered": 13}


def _latencies(**counts: int) -> dict[str, int]:
    return {f"lat:{bound}": count for bound, count in counts.items()}


@pytest.mark.parametrize(
    ("counts", "q", "expected"),
    [
        ({}, 0.5, None),
        ({"delivered": 5}, 0.5, None),
        # One request in (0, 10]: the middle of the bucket, linearly.
        (_latencies(**{"10": 1}), 0.5, 5.0),
        (_latencies(**{"10": 1}), 1.0, 10.0),
        # Two buckets, 50 each: the median is the first bucket's upper bound.
        (_latencies(**{"10": 50, "25": 50}), 0.5, 10.0),
        (_latencies(**{"10": 50, "25": 50}), 0.75, 17.5),
        # Empty buckets below are skipped: the rank falls in (100, 250].
        (_latencies(**{"250": 4}), 0.5, 175.0),
        (_latencies(**{"250": 4}), 0.0, 100.0),
        # The open bucket answers with the highest finite bound, as Prometheus does.
        (_latencies(inf=3), 0.95, 10000.0),
        (_latencies(**{"10": 1, "inf": 99}), 0.5, 10000.0),
        (_latencies(**{"10": 99, "inf": 1}), 0.5, 10 * 50 / 99),
        # p95 of 20 requests in (25, 50] and one slow one: within (25, 50].
        (_latencies(**{"50": 20, "5000": 1}), 0.95, 25 + 25 * 19.95 / 20),
    ],
)
def test_quantiles_from_bucket_counts(counts, q, expected) -> None:
    got = series.quantile_ms(counts, q)
    assert got == pytest.approx(expected) if expected is not None else got is None


def test_a_quantile_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        series.quantile_ms({"lat:10": 1}, 1.5)


def test_the_buckets_are_the_drains_own() -> None:
    # Every bucket the drain writes is one the page reads, in the same order.
    assert (*map(str, LATENCY_BUCKETS_MS), "inf") == series.BOUNDS
    written = {latency_bucket(ms / 1000) for ms in (0, 9, 10, 11, 999, 10_000, 10_001, 99_999)}
    assert written <= set(series.BOUNDS)


@given(
    st.dictionaries(st.sampled_from(series.BOUNDS), st.integers(0, 1000), min_size=1),
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_quantiles_grow_with_q_and_stay_within_the_bounds(counts, q1, q2) -> None:
    latencies = {f"lat:{bound}": count for bound, count in counts.items()}
    low, high = (
        series.quantile_ms(latencies, min(q1, q2)),
        series.quantile_ms(latencies, max(q1, q2)),
    )
    if sum(counts.values()) == 0:
        assert low is None and high is None
        return
    assert low is not None and high is not None
    assert 0 <= low <= high <= LATENCY_BUCKETS_MS[-1]


@pytest.mark.parametrize(
    ("counts", "expected"),
    [({}, None), ({"sent_events": 5}, None), ({"requests": 4, "sent_events": 398}, 99.5)],
)
def test_events_per_request(counts, expected) -> None:
    assert series.events_per_request(counts) == expected


def test_skipped_events_by_reason() -> None:
    counts = {"skipped": 5, "skipped:no_user_id": 3, "skipped:integrations": 2, "skipped:x": 0}
    assert series.skipped_reasons(counts) == {"integrations": 2, "no_user_id": 3}

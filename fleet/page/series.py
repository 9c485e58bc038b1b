"""Delivery over time, from the per-minute counters the drain writes (worker/settlement.py).

Pure: the counters of each shard and hour come in as the HASH fields Redis returned
(`"<epoch minute>:<measure>" -> count`); out come per-minute or per-hour buckets summed over the
shards, their totals, and Pushwoosh's latency percentiles from the bucket counts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Final

from worker.settlement import LATENCY_BUCKETS_MS

# What the charts show, in this order; each is a measure the drain counts per minute.
OUTCOMES: Final = ("delivered", "retried", "skipped", "dead_lettered")
LATENCY_PREFIX: Final = "lat:"
# The latency buckets' upper bounds (ms), the last one open ("inf").
BOUNDS: Final = (*(str(b) for b in LATENCY_BUCKETS_MS), "inf")

Counts = dict[str, int]


@dataclasses.dataclass(frozen=True)
class Range:
    """What a chart covers: `buckets` buckets of `width_min` minutes, ending now."""

    name: str
    label: str
    buckets: int
    width_min: int

    @property
    def minutes(self) -> int:
        return self.buckets * self.width_min


LAST_HOUR: Final = Range("hour", "last hour, per minute", 60, 1)
LAST_DAY: Final = Range("day", "last day, per hour", 24, 60)
RANGES: Final = {r.name: r for r in (LAST_HOUR, LAST_DAY)}


@dataclasses.dataclass(frozen=True)
class Bucket:
    start_minute: int  # epoch minute the bucket starts at
    counts: Counts

    def get(self, measure: str) -> int:
        return self.counts.get(measure, 0)


def parse_fields(fields: Mapping[str, str]) -> dict[int, Counts]:
    """One minutes HASH as {epoch minute: {measure: count}}; fields that are not
    `<minute>:<measure>` with an integer count are ignored (Redis holds what it was given)."""
    found: dict[int, Counts] = {}
    for name, value in fields.items():
        minute, _, measure = name.partition(":")
        if not measure or not minute.isdigit():
            continue
        try:
            count = int(value)
        except (TypeError, ValueError):
            continue
        per_minute = found.setdefault(int(minute), {})
        per_minute[measure] = per_minute.get(measure, 0) + count
    return found


def add(into: dict[int, Counts], other: Mapping[int, Counts]) -> None:
    """Sum `other`'s counts into `into` (shards, hours)."""
    for minute, counts in other.items():
        target = into.setdefault(minute, {})
        for measure, count in counts.items():
            target[measure] = target.get(measure, 0) + count


def hours_for(now_minute: int, range_: Range) -> list[int]:
    """The epoch hours whose counters hold the range's minutes."""
    first_minute = _last_start(now_minute, range_) - range_.width_min * (range_.buckets - 1)
    return list(range(first_minute // 60, now_minute // 60 + 1))


def _last_start(now_minute: int, range_: Range) -> int:
    return now_minute - now_minute % range_.width_min


def buckets(per_minute: Mapping[int, Counts], now_minute: int, range_: Range) -> list[Bucket]:
    """The range's buckets, oldest first; the last one holds `now_minute`. Hour-wide buckets
    start on the hour, so the newest hour is the current, partial one."""
    width = range_.width_min
    last_start = _last_start(now_minute, range_)
    starts = [last_start - width * i for i in range(range_.buckets - 1, -1, -1)]
    by_start: dict[int, Counts] = {start: {} for start in starts}
    for minute, counts in per_minute.items():
        start = minute - minute % width
        target = by_start.get(start)
        if target is None or minute > now_minute:
            continue
        for measure, count in counts.items():
            target[measure] = target.get(measure, 0) + count
    return [Bucket(start, by_start[start]) for start in starts]


def total(items: Iterable[Bucket]) -> Counts:
    summed: Counts = {}
    for bucket in items:
        for measure, count in bucket.counts.items():
            summed[measure] = summed.get(measure, 0) + count
    return summed


def latency_counts(counts: Mapping[str, int]) -> list[tuple[float, int]]:
    """(upper bound in ms, requests) per latency bucket, in order; the open one is inf."""
    return [(float(bound), counts.get(LATENCY_PREFIX + bound, 0)) for bound in BOUNDS]


def quantile_ms(counts: Mapping[str, int], q: float) -> float | None:
    """The q-quantile of Pushwoosh's latency from the bucket counts, as Prometheus'
    histogram_quantile reads a histogram: linear within the bucket the rank falls in (from 0
    for the first); in the open bucket, the highest finite bound. None without requests."""
    if not 0 <= q <= 1:
        raise ValueError(f"a quantile is between 0 and 1, not {q}")
    rows = latency_counts(counts)
    seen = sum(count for _, count in rows)
    if seen == 0:
        return None
    rank = q * seen
    below, lower = 0, 0.0
    for upper, count in rows:
        if count and below + count >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * max(0.0, rank - below) / count
        below += count
        if upper != float("inf"):
            lower = upper
    return lower


def events_per_request(counts: Mapping[str, int]) -> float | None:
    requests = counts.get("requests", 0)
    return counts.get("sent_events", 0) / requests if requests else None


def skipped_reasons(counts: Mapping[str, int]) -> dict[str, int]:
    """Skipped events by reason (`skipped:<reason>` measures)."""
    return {
        measure.partition(":")[2]: count
        for measure, count in sorted(counts.items())
        if measure.startswith("skipped:") and count
    }

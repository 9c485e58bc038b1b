"""What the delivery page reads from Redis: every read bounded, whatever the backlog.

Queue depths are XLEN, the oldest event one XRANGE COUNT 1 per shard, the retry schedule ZCARD
and its first entry (fleet/status.py); the charts read the per-minute counter hashes (each at
most 60 minutes of a few dozen measures) of the hours shown; errors their hourly hashes
(telemetry/error_groups.py); dead letters a page at a time (worker/dlq.py). A 1,000,000-event
backlog costs the page the same as an empty queue.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any, Final

import redis

from config.destinations import Destination
from config.redis_keys import RedisKeys
from fleet.page import series
from fleet.status import FleetStatus, delivery_paused, read_status
from telemetry.fleet_gauges import live_workers
from worker.ratelimit import MIN_FACTOR

# A finished hour's counters no longer change: the page keeps them instead of reading them
# again. The hour before the current one may still take a late commit, so it is read anew.
_SETTLED_HOURS_AGO: Final = 2
_KEEP_HOURS: Final = 26


class MinuteCounters:
    """The per-minute counters of a destination's shards, summed; finished hours cached."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settled: dict[tuple[str, int], dict[int, series.Counts]] = {}

    def read(
        self, client: redis.Redis, keys: RedisKeys, shards: int, hours: list[int], now_hour: int
    ) -> dict[int, series.Counts]:
        summed: dict[int, series.Counts] = {}
        wanted: list[tuple[str, int]] = []
        with self._lock:
            for key, hour in ((keys.shard(s).minutes(h), h) for s in range(shards) for h in hours):
                cached = self._settled.get((key, hour))
                if cached is None:
                    wanted.append((key, hour))
                else:
                    series.add(summed, cached)
        pipe = client.pipeline(transaction=False)
        for key, _ in wanted:
            pipe.hgetall(key)
        fresh = [series.parse_fields(fields) for fields in pipe.execute()] if wanted else []
        with self._lock:
            for (key, hour), parsed in zip(wanted, fresh, strict=True):
                series.add(summed, parsed)
                if hour <= now_hour - _SETTLED_HOURS_AGO:
                    self._settled[(key, hour)] = parsed
            for cached_key in [k for k in self._settled if k[1] < now_hour - _KEEP_HOURS]:
                del self._settled[cached_key]
        return summed


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """The shared rate limit in force: the configured limits (0: none) and the share of them
    allowed now (below 1 after Pushwoosh answered 429, recovering)."""

    requests_per_s: float
    events_per_s: float
    factor: float

    @property
    def enabled(self) -> bool:
        return self.requests_per_s > 0 or self.events_per_s > 0


def rate_limit_now(
    state: Mapping[str, str], requests_per_s: float, events_per_s: float,
    recovery_per_s: float, now_ms: int,
) -> RateLimit:  # fmt: skip
    """The limit in force from the shared buckets' hash, recovered to `now_ms` the way the
    acquiring script recovers it (store/lua/rate_limit_acquire.lua)."""
    try:
        factor = float(state.get("factor") or 1.0)
        stamped_ms = int(float(state.get("ts") or now_ms))
    except ValueError:
        factor, stamped_ms = 1.0, now_ms
    elapsed_s = max(0, now_ms - stamped_ms) / 1000
    factor = max(MIN_FACTOR, min(1.0, factor + elapsed_s * recovery_per_s))
    return RateLimit(requests_per_s, events_per_s, factor)


@dataclasses.dataclass(frozen=True)
class Now:
    status: FleetStatus
    workers: list[tuple[str, int]]
    rate_limit: RateLimit
    paused: bool


def read_now(client: redis.Redis, destination: Destination, now_s: float) -> Now:
    settings = destination.settings
    now_ms = int(now_s * 1000)
    workers = live_workers(client, settings.redis_key_prefix, now_ms)
    status = read_status(
        client, settings, destination=destination.name,
        list_workers=lambda: [name for name, _ in workers], now_s=now_s,
    )  # fmt: skip
    keys = RedisKeys(settings.redis_key_prefix, destination.name)
    state: dict[str, Any] = client.hgetall(keys.rate_limit)
    limit = rate_limit_now(
        {str(k): str(v) for k, v in state.items()},
        settings.rate_limit_requests_per_s, settings.rate_limit_events_per_s,
        settings.rate_limit_recovery_per_s, now_ms,
    )  # fmt: skip
    return Now(status, workers, limit, delivery_paused(status))

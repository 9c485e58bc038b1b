"""The fleet's state, read from Redis at each scrape and served by ONE process.

Queue depth and the oldest queued event's age per shard, the retry schedule, dead letters,
whether delivery is paused, and the workers whose pump beat lately. These describe the shared
Redis, not any process, so `pushwoosh-fleet metrics` alone serves them: per-pod scrapes of
ingest and workers never carry them, and summing pods can never count them twice. (Were a second
exporter started by mistake, it would report the same values; the shipped rules and dashboard
take `max` per destination and shard before summing, so even then nothing doubles.)

A Redis that does not answer gives `pushwoosh_fleet_redis_up 0` and no other gauge, instead of
failing the scrape.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from config.redis_keys import RedisKeys, worker_heartbeats
from telemetry.metrics import NAMESPACE

logger = logging.getLogger(__name__)

# A worker counts as live while its pump beat within this window (it beats every few seconds).
LIVE_WORKER_WINDOW_S = 30.0


# The most workers a page lists by name (the gauge counts them all).
MAX_LISTED_WORKERS = 100


def live_workers(client: redis.Redis, prefix: str, now_ms: int) -> list[tuple[str, int]]:
    """(node name, last heartbeat in ms) of the workers whose pump beat lately, the latest
    first; at most MAX_LISTED_WORKERS."""
    window_ms = int(LIVE_WORKER_WINDOW_S * 1000)
    rows = client.zrevrangebyscore(
        worker_heartbeats(prefix), "+inf", now_ms - window_ms, start=0,
        num=MAX_LISTED_WORKERS, withscores=True,
    )  # fmt: skip
    return [(_text(name), int(score)) for name, score in rows]


@dataclasses.dataclass(frozen=True)
class GaugeSpec:
    name: str
    help: str
    labels: tuple[str, ...]


GAUGES: dict[str, GaugeSpec] = {
    spec.name: spec
    for spec in (
        GaugeSpec("queue_depth", "events waiting in a shard's stream", ("destination", "shard")),
        GaugeSpec(
            "oldest_event_age_seconds",
            "age of the oldest event still in a shard's stream (0 when empty)",
            ("destination", "shard"),
        ),
        GaugeSpec("retry_scheduled", "requests waiting on the retry schedule", ("destination",)),
        GaugeSpec(
            "retry_overdue_seconds",
            "how long the most overdue retry has been due (0 when none is due)",
            ("destination",),
        ),
        GaugeSpec("dead_letters", "entries in the dead-letter queue", ("destination",)),
        GaugeSpec(
            "delivery_paused",
            "1 while sending is paused: cause=backoff (Pushwoosh failing) or cause=auth (the API "
            "key was refused)",
            ("destination", "cause"),
        ),
        GaugeSpec(
            "workers_live",
            f"workers whose pump beat within the last {LIVE_WORKER_WINDOW_S:g} s",
            (),
        ),
        GaugeSpec("redis_up", "1 when Redis answered this scrape", ()),
    )
}


@dataclasses.dataclass(frozen=True)
class Target:
    """One destination to report: its keys and its number of shards."""

    keys: RedisKeys
    shards: int


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry_ms(entry_id: object) -> int:
    return int(_text(entry_id).split("-", 1)[0])


class FleetGauges(Collector):
    """Reads every destination's state in one pipeline per scrape."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        targets: Iterable[Target],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._targets = list(targets)
        self._clock = clock

    def _family(self, name: str) -> GaugeMetricFamily:
        spec = GAUGES[name]
        return GaugeMetricFamily(f"{NAMESPACE}_{spec.name}", spec.help, labels=list(spec.labels))

    def _read(self, now_ms: int) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for target in self._targets:
            for shard in range(target.shards):
                shard_keys = target.keys.shard(shard)
                pipe.xlen(shard_keys.stream)
                pipe.xrange(shard_keys.stream, count=1)
                pipe.zcard(shard_keys.retry)
                pipe.zrange(shard_keys.retry, 0, 0, withscores=True)
                pipe.xlen(shard_keys.dlq)
            pipe.hgetall(target.keys.circuit)
        window_ms = int(LIVE_WORKER_WINDOW_S * 1000)
        pipe.zcount(worker_heartbeats(self._prefix), now_ms - window_ms, "+inf")
        return list(pipe.execute())

    def collect(self) -> Iterator[Metric]:
        now_ms = int(self._clock() * 1000)
        up = self._family("redis_up")
        try:
            results: Iterator[Any] = iter(self._read(now_ms))
        except redis.RedisError as ex:
            logger.warning("fleet metrics: Redis did not answer: %s", ex)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        families = {name: self._family(name) for name in GAUGES if name != "redis_up"}
        for target in self._targets:
            self._add_target(families, target, results, now_ms)
        families["workers_live"].add_metric([], float(next(results)))
        yield up
        yield from families.values()

    @staticmethod
    def _add_target(
        families: dict[str, GaugeMetricFamily], target: Target, results: Iterator[Any], now_ms: int
    ) -> None:
        name = target.keys.destination
        scheduled = dead_letters = 0.0
        first_due: float | None = None
        for shard in range(target.shards):
            depth, first, retries, due, dlq = (next(results) for _ in range(5))
            families["queue_depth"].add_metric([name, str(shard)], float(depth))
            age_s = max(0, now_ms - _entry_ms(first[0][0])) / 1000 if first else 0.0
            families["oldest_event_age_seconds"].add_metric([name, str(shard)], age_s)
            scheduled += float(retries)
            dead_letters += float(dlq)
            if due and (first_due is None or float(due[0][1]) < first_due):
                first_due = float(due[0][1])
        families["retry_scheduled"].add_metric([name], scheduled)
        overdue_s = max(0.0, now_ms - first_due) / 1000 if first_due is not None else 0.0
        families["retry_overdue_seconds"].add_metric([name], overdue_s)
        families["dead_letters"].add_metric([name], dead_letters)
        circuit = {_text(k): _text(v) for k, v in next(results).items()}
        paused = int(circuit.get("failures") or 0) > 0 and (
            int(circuit.get("open_until_ms") or 0) > now_ms
        )
        auth = circuit.get("kind") == "auth"
        families["delivery_paused"].add_metric([name, "backoff"], float(paused and not auth))
        families["delivery_paused"].add_metric([name, "auth"], float(paused and auth))

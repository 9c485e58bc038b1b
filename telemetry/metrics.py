"""Fleet-wide Prometheus metrics, correct with any number of processes and machines.

Every process (gunicorn workers, Celery pool processes) counts locally, which is cheap and
thread-safe, and a daemon thread adds its increments to Redis hashes about once a second in one
pipeline (`RedisKeys.metric`, one field per label set). Histograms are
stored as per-bucket counters plus a sum and a count. So no process holds the fleet's numbers,
and none needs a shared multiprocess directory: any process can serve them, because
`FleetCollector` reads the hashes (plus live gauges: queue depth, retry schedule, dead letters)
and yields ordinary Prometheus metric families. Increments that cannot be written (Redis away)
stay in memory and go out with the next flush.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import redis
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from config.redis_keys import RedisKeys

logger = logging.getLogger(__name__)

NAMESPACE = "pushwoosh_fleet"
FLUSH_INTERVAL_S = 1.0
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Events per request: 100 is Pushwoosh's limit for post-events.
BATCH_SIZE_BUCKETS = (1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 75.0, 99.0, 100.0)


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    name: str  # without the namespace, and without `_total` for counters
    kind: str  # "counter" or "histogram"
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


SPECS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("ingest_requests", "counter", "HTTP requests to ingest", ("route", "status")),
        MetricSpec("ingest_events_accepted", "counter", "events stored by ingest", ("route",)),
        MetricSpec(
            "ingest_events_rejected",
            "counter",
            "events in refused requests, by error code (an unreadable request counts as one)",
            ("route", "reason"),
        ),
        MetricSpec(
            "ingest_events_deduplicated",
            "counter",
            "events dropped as repeats of a messageId already seen",
            ("route",),
        ),
        MetricSpec(
            "ingest_events_shed",
            "counter",
            "events refused because the backlog is over INGEST_MAX_QUEUED_EVENTS",
            ("route",),
        ),
        MetricSpec(
            "ingest_request_duration_seconds",
            "histogram",
            "time to answer an ingest request",
            ("route",),
            LATENCY_BUCKETS_S,
        ),
        MetricSpec("events_read", "counter", "events read from the streams by workers", ("src",)),
        MetricSpec(
            "events_unmatched", "counter", "events no mapping matched (nothing to send)", ()
        ),
        MetricSpec(
            "events_skipped",
            "counter",
            "events (or calls) not sent by design: no_user_id, integrations",
            ("reason",),
        ),
        MetricSpec("events_delivered", "counter", "calls Pushwoosh accepted", ("action",)),
        MetricSpec("events_retried", "counter", "calls put on the retry schedule", ("action",)),
        MetricSpec(
            "events_dead_lettered",
            "counter",
            "calls or events moved to the dead-letter queue",
            ("action", "reason"),
        ),
        MetricSpec(
            "batch_size",
            "histogram",
            "events per Pushwoosh request",
            ("path",),
            BATCH_SIZE_BUCKETS,
        ),
        MetricSpec(
            "pushwoosh_requests",
            "counter",
            "requests sent to Pushwoosh, by HTTP status (or transport_error)",
            ("path", "status"),
        ),
        MetricSpec(
            "pushwoosh_request_duration_seconds",
            "histogram",
            "Pushwoosh request latency",
            ("path",),
            LATENCY_BUCKETS_S,
        ),
        MetricSpec(
            "trace_dropped",
            "counter",
            "event history records not kept because the hour's trace cap was reached",
        ),
    )
}


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else f"{bound:g}"


def _field(values: Sequence[str], suffix: str | None = None) -> str:
    """Label values (and a histogram part) as one hash field; JSON, so any value is safe."""
    return json.dumps([*values, suffix] if suffix is not None else list(values))


class Recorder:
    """Counts in this process; a daemon thread adds the increments to Redis every second.

    `extra_writers` get the same pipeline at each flush (the trace buffer uses it), so a flush is
    one round trip. A forked child starts afresh: it never flushes what its parent counted.
    """

    def __init__(
        self,
        client: redis.Redis | None,
        keys: RedisKeys,
        *,
        interval_s: float = FLUSH_INTERVAL_S,
    ) -> None:
        self._client = client
        self._keys = keys
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], float] = {}
        self._fields: dict[tuple[str, tuple[str, ...]], tuple[str, str]] = {}
        self._writers: list[PipelineWriter] = []
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._failures = 0
        if client is not None:
            atexit.register(self.flush_at_exit)

    def add_writer(self, writer: PipelineWriter) -> None:
        self._writers.append(writer)

    # -- counting ------------------------------------------------------------------------------
    def inc(self, name: str, *labels: str, amount: float = 1) -> None:
        # Called for every event: the (key, field) pair is built once per label set.
        cache_key = (name, labels)
        field = self._fields.get(cache_key)
        if field is None:
            field = self._fields[cache_key] = (self._keys.metric(name), _field(labels))
        with self._lock:
            self._ensure_started()
            self._counts[field] = self._counts.get(field, 0) + amount

    def observe(self, name: str, value: float, *labels: str) -> None:
        spec = SPECS[name]
        key = self._keys.metric(name)
        bucket = next((b for b in spec.buckets if value <= b), float("inf"))
        with self._lock:
            self._ensure_started()
            for suffix, amount in ((_le(bucket), 1.0), ("count", 1.0), ("sum", float(value))):
                field = (key, _field(labels, suffix))
                self._counts[field] = self._counts.get(field, 0) + amount

    def _ensure_started(self) -> None:
        """Start the flusher on first use in this process (called with the lock held)."""
        if self._pid != os.getpid():  # a forked child: the parent's counts are not ours
            self._pid = os.getpid()
            self._counts.clear()
            self._thread = None
        if self._thread is None and self._client is not None:
            self._thread = threading.Thread(
                target=self._loop, name="pushwoosh-metrics", daemon=True
            )
            self._thread.start()

    def wake(self) -> None:
        """Ask the flusher to write now instead of at the next tick."""
        with self._lock:
            self._ensure_started()
        self._wake.set()

    # -- flushing ------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the flusher must outlive anything a flush meets
                logger.exception("metrics: flush failed")

    def flush(self) -> None:
        if self._client is None or self._pid != os.getpid():
            return
        with self._lock:
            counts, self._counts = self._counts, {}
        batches = [(writer, writer.take()) for writer in self._writers]
        batches = [(writer, batch) for writer, batch in batches if batch]
        if not counts and not batches:
            return
        pipe = self._client.pipeline(transaction=False)
        for (key, field), amount in counts.items():
            # Sums are floats; every other field only ever holds integers.
            if field.endswith('"sum"]'):
                pipe.hincrbyfloat(key, field, amount)
            else:
                pipe.hincrby(key, field, int(amount))
        calls = [writer.write(pipe, batch) for writer, batch in batches]
        try:
            # A failed command (a key of the wrong type) must not undo or repeat the others.
            results = pipe.execute(raise_on_error=False)
        except redis.RedisError as ex:
            self._failures += 1
            if self._failures in (1, 10) or self._failures % 100 == 0:
                logger.warning("metrics: cannot write to Redis (%d times): %s", self._failures, ex)
            with self._lock:
                for key_field, amount in counts.items():
                    self._counts[key_field] = self._counts.get(key_field, 0) + amount
            for writer, batch in batches:
                writer.restore(batch)
            return
        self._failures = 0
        position = len(counts)
        for (writer, _), count in zip(batches, calls, strict=True):
            writer.written(results[position : position + count], self)
            position += count

    def flush_at_exit(self) -> None:
        try:
            self.flush()
        except Exception:  # at exit, Redis may be gone already
            logger.debug("metrics: final flush failed", exc_info=True)


class PipelineWriter:
    """Something that writes its own buffered data in the recorder's flush pipeline."""

    def take(self) -> Any:
        """Return (and forget) what to write; falsy when there is nothing."""
        raise NotImplementedError

    def write(self, pipe: Any, batch: Any) -> int:
        """Queue commands on pipe; return how many replies they produce."""
        raise NotImplementedError

    def restore(self, batch: Any) -> None:
        """The write failed: keep the batch for the next flush (within bounds)."""

    def written(self, replies: list[Any], recorder: Recorder) -> None:
        """The write went through; replies are those of the commands queued in `write`."""


# -- exposition ------------------------------------------------------------------------------
def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclasses.dataclass(frozen=True)
class Target:
    """One destination to report: its keys, its shards, and whether to read its queue gauges
    (not for the counters of requests that never reached a destination)."""

    keys: RedisKeys
    shards: int
    gauges: bool = True


class FleetCollector:
    """Yields the fleet-wide metrics from Redis, so any process can serve them.

    Every series carries a `destination` label; one collector serves one or several
    destinations, each read from its own keys.
    """

    def __init__(
        self, client: redis.Redis, targets: Iterable[Target], specs: Iterable[MetricSpec] = ()
    ) -> None:
        self._client = client
        self._targets = list(targets)
        self._specs = list(specs) or list(SPECS.values())

    def describe(self) -> list[Metric]:
        return []  # nothing to describe ahead: the families come from Redis at each scrape

    def collect(self) -> Iterator[Metric]:
        pipe = self._client.pipeline(transaction=False)
        for target in self._targets:
            for spec in self._specs:
                pipe.hgetall(target.keys.metric(spec.name))
            if target.gauges:
                for shard in range(target.shards):
                    pipe.xlen(target.keys.shard(shard).stream)
                    pipe.zcard(target.keys.shard(shard).retry)
                    pipe.xlen(target.keys.shard(shard).dlq)
        results = iter(pipe.execute())
        per_spec: dict[str, list[tuple[str, dict[str, float]]]] = {s.name: [] for s in self._specs}
        depth = GaugeMetricFamily(
            f"{NAMESPACE}_queue_depth",
            "events waiting in a shard's stream",
            labels=["destination", "shard"],
        )
        retry = GaugeMetricFamily(
            f"{NAMESPACE}_retry_scheduled",
            "requests waiting on the retry schedule",
            labels=["destination"],
        )
        dead = GaugeMetricFamily(
            f"{NAMESPACE}_dead_letters", "entries in the dead-letter queue", labels=["destination"]
        )
        for target in self._targets:
            name = target.keys.destination
            for spec in self._specs:
                raw = next(results)
                per_spec[spec.name].append(
                    (name, {_text(k): float(_text(v)) for k, v in raw.items()})
                )
            if not target.gauges:
                continue
            scheduled = dead_letters = 0.0
            for shard in range(target.shards):
                depth.add_metric([name, str(shard)], float(next(results)))
                scheduled += float(next(results))
                dead_letters += float(next(results))
            retry.add_metric([name], scheduled)
            dead.add_metric([name], dead_letters)
        for spec in self._specs:
            data = per_spec[spec.name]
            yield _counter(spec, data) if spec.kind == "counter" else _histogram(spec, data)
        yield depth
        yield retry
        yield dead


def _counter(spec: MetricSpec, per_destination: list[tuple[str, dict[str, float]]]) -> Metric:
    family = CounterMetricFamily(
        f"{NAMESPACE}_{spec.name}", spec.help, labels=["destination", *spec.labels]
    )
    for destination, data in per_destination:
        for field, value in sorted(data.items()):
            labels = [str(v) for v in json.loads(field)]
            if len(labels) == len(spec.labels):
                family.add_metric([destination, *labels], value)
    return family


def _histogram(spec: MetricSpec, per_destination: list[tuple[str, dict[str, float]]]) -> Metric:
    family = HistogramMetricFamily(
        f"{NAMESPACE}_{spec.name}", spec.help, labels=["destination", *spec.labels]
    )
    for destination, data in per_destination:
        series: dict[tuple[str, ...], dict[str, float]] = {}
        for field, value in data.items():
            *values, part = (str(v) for v in json.loads(field))
            if len(values) == len(spec.labels):
                series.setdefault(tuple(values), {})[part] = value
        for labels, parts in sorted(series.items()):
            cumulative = 0.0
            buckets: list[tuple[str, float]] = []
            for bound in (*spec.buckets, float("inf")):
                cumulative += parts.get(_le(bound), 0.0)
                buckets.append((_le(bound), cumulative))
            family.add_metric([destination, *labels], buckets, parts.get("sum", 0.0))
    return family


def render(client: redis.Redis, targets: Iterable[Target]) -> tuple[bytes, str]:
    """The fleet-wide metrics in Prometheus text format, and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(client, targets))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def serve(
    client: redis.Redis, targets: Iterable[Target], port: int, addr: str
) -> Callable[[], None]:
    """Serve /metrics on its own port (a worker-only machine); returns a stop function."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(client, targets))
    server, thread = start_http_server(port, addr=addr, registry=registry)

    def stop() -> None:
        server.shutdown()
        thread.join(timeout=5)

    return stop

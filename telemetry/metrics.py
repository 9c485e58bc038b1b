"""Each process's own Prometheus metrics: what it counted, for a per-pod scrape.

Every process counts what it did (requests answered, events read, calls delivered...) in
prometheus-client counters and histograms, and a listener of its own serves them
(`telemetry/exposition.py`): nothing is shared through Redis, so Prometheus sums processes with
`sum()` and nothing is counted twice. Processes that fork workers (gunicorn, Celery's prefork
pool) use prometheus-client's multiprocess mode, so one listener serves them all.

Every series a delivery counts carries a `destination` label; ingest counts requests that
reached no destination under `(none)`.
"""

from __future__ import annotations

import asyncio
import atexit
import bisect
import dataclasses
import threading
from collections.abc import Sequence
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

NAMESPACE = "pushwoosh_fleet"
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Events per request: 100 is Pushwoosh's limit for post-events.
BATCH_SIZE_BUCKETS = (1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 75.0, 99.0, 100.0)
# From acceptance to delivery: milliseconds on a healthy fleet (the benchmark's p99 at half
# saturation is 34 ms), up to RETRY_MAX_AGE_S (4 h) for a call retried to the end.
LAG_BUCKETS_S = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
    14400.0,
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    name: str  # without the namespace, and without `_total` for counters
    kind: str  # "counter" or "histogram"
    help: str
    labels: tuple[str, ...] = ()  # besides `destination`
    buckets: tuple[float, ...] = ()
    per_destination: bool = True

    @property
    def full_name(self) -> str:
        return f"{NAMESPACE}_{self.name}"

    @property
    def label_names(self) -> tuple[str, ...]:
        return ("destination", *self.labels) if self.per_destination else self.labels


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
        MetricSpec("events_unmatched", "counter", "events no mapping matched (nothing to send)"),
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
            "delivery_lag_seconds",
            "histogram",
            "from ingest storing an event to Pushwoosh accepting a call made from it",
            ("action",),
            LAG_BUCKETS_S,
        ),
        MetricSpec(
            "batch_size", "histogram", "events per Pushwoosh request", ("path",), BATCH_SIZE_BUCKETS
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
            per_destination=False,
        ),
    )
}


class FleetMetrics:
    """The prometheus-client objects of every spec, registered in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.families: dict[str, Counter | Histogram] = {}
        for spec in SPECS.values():
            if spec.kind == "counter":
                self.families[spec.name] = Counter(
                    spec.full_name, spec.help, spec.label_names, registry=registry
                )
            else:
                self.families[spec.name] = Histogram(
                    spec.full_name, spec.help, spec.label_names, registry=registry,
                    buckets=spec.buckets,
                )  # fmt: skip


class Counts:
    """Counting for one destination: `inc` and `observe` by metric name and label values.

    Each label set's child is looked up once and kept, so a count costs about a microsecond.
    """

    def __init__(self, metrics: FleetMetrics, destination: str | None) -> None:
        self._metrics = metrics
        self._destination = destination
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}

    def child(self, name: str, *labels: str) -> Any:
        """The counter or histogram of one label set, to count with directly on hot paths."""
        return self._child(name, labels)

    def _child(self, name: str, labels: tuple[str, ...]) -> Any:
        key = (name, labels)
        child = self._children.get(key)
        if child is None:
            values = labels if not SPECS[name].per_destination else (self._destination, *labels)
            family = self._metrics.families[name]
            child = family.labels(*values) if values else family
            self._children[key] = child
        return child

    def inc(self, name: str, *labels: str, amount: float = 1) -> None:
        self._child(name, labels).inc(amount)

    def observe(self, name: str, value: float, *labels: str) -> None:
        self._child(name, labels).observe(value)


def observe_many(histogram: Any, values: Sequence[float]) -> None:
    """`histogram.observe(value)` for each value (a histogram without labels, or one label
    set's child), adding to each bucket and to the sum once.

    The delivery lag is observed for every delivered event: 0.7 µs each, as much as the rest
    of what a delivery counts. prometheus-client has no bulk observe, so this adds to the
    values its `observe` adds to (`_upper_bounds`, `_buckets`, `_sum`; in every mode, the
    multiprocess one too), and observes one by one should a version not have them. A test holds
    it to `observe`.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            histogram.observe(value)
        return
    if not values:
        return
    # The first bound at or above the value, as `observe` picks it (the last one is +Inf).
    counts: dict[int, int] = {}
    for value in values:
        index = bisect.bisect_left(bounds, value)
        counts[index] = counts.get(index, 0) + 1
    total.inc(sum(values))
    for index, count in counts.items():
        buckets[index].inc(count)


# How long a Tally keeps what it counted before writing it (see there).
TALLY_FLUSH_S: Final = 0.1


class Tally:
    """Counts made on an event loop, written to the process's metrics a moment later, together.

    Every update of a multiprocess metric takes a lock and asks the kernel for the process id
    (to notice a fork); ingest updates four per request (two counters, a histogram's bucket and
    sum), about 10 µs of a single-event request measured in one process. A tally adds them up
    in plain dicts and writes each counter once and each histogram through `observe_many`,
    TALLY_FLUSH_S after the first count of a batch, and at exit. So the metrics lag by at most
    that, and a process killed outright loses at most that much of its counts (never events).
    Used from one thread (the loop's); outside a running loop it writes at once.
    """

    def __init__(self, flush_s: float = TALLY_FLUSH_S) -> None:
        self._flush_s = flush_s
        self._added: dict[Any, float] = {}
        self._observed: dict[Any, list[float]] = {}
        self._scheduled = False
        atexit.register(self.flush)

    def inc(self, child: Any, amount: float = 1) -> None:
        """`child.inc(amount)`, soon (child: a counter of one label set)."""
        self._added[child] = self._added.get(child, 0) + amount
        if not self._scheduled:
            self._schedule()

    def observe(self, child: Any, value: float) -> None:
        """`child.observe(value)`, soon (child: a histogram of one label set)."""
        values = self._observed.get(child)
        if values is None:
            self._observed[child] = [value]
        else:
            values.append(value)
        if not self._scheduled:
            self._schedule()

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._scheduled = True
        loop.call_later(self._flush_s, self.flush)

    def flush(self) -> None:
        """Write everything counted so far."""
        self._scheduled = False
        added, self._added = self._added, {}
        observed, self._observed = self._observed, {}
        for child, amount in added.items():
            child.inc(amount)
        for child, values in observed.items():
            observe_many(child, values)


_lock = threading.Lock()
_process_metrics: FleetMetrics | None = None
PROCESS_REGISTRY = CollectorRegistry(auto_describe=True)


def process_metrics() -> FleetMetrics:
    """This process's metrics, in PROCESS_REGISTRY, made on first use.

    First use comes after any switch to multiprocess mode (`exposition.use_multiprocess`), in
    the process that counts: a gunicorn worker, a Celery worker or pool process.
    """
    global _process_metrics
    with _lock:
        if _process_metrics is None:
            # `_created` series double the exposition and no dashboard here reads them.
            disable_created_metrics()  # type: ignore[no-untyped-call]
            _process_metrics = FleetMetrics(PROCESS_REGISTRY)
        return _process_metrics

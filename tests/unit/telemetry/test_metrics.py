"""Per-process metrics, the fleet-wide gauges read from Redis, and what a listener serves."""

from __future__ import annotations

import asyncio
import os

import fakeredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from config.redis_keys import RedisKeys, worker_heartbeats
from telemetry import exposition
from telemetry.fleet_gauges import FleetGauges, Target
from telemetry.flusher import Flusher, PipelineWriter
from telemetry.metrics import SPECS, Counts, FleetMetrics, Tally, observe_many
from tests.support.prometheus import samples, value

NOW_S = 1_714_565_100.0
NOW_MS = int(NOW_S * 1000)


def _text(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def test_counts_are_per_destination_and_label_set() -> None:
    # Given one process's metrics and two destinations counting into them
    metrics = FleetMetrics(CollectorRegistry())
    ios, web = Counts(metrics, "ios"), Counts(metrics, "web")
    ios.inc("events_delivered", "trackEvent", amount=3)
    ios.inc("events_delivered", "trackEvent", amount=4)
    web.inc("events_delivered", "updateUserProfile")
    ios.observe("delivery_lag_seconds", 0.2, "trackEvent")
    ios.observe("delivery_lag_seconds", 7.0, "trackEvent")
    # Then the exposition has each series once, with its destination
    text = _text(metrics.registry)
    delivered = "pushwoosh_fleet_events_delivered_total"
    assert value(text, delivered, "ios", action="trackEvent") == 7
    assert value(text, delivered, "web", action="updateUserProfile") == 1
    lag = "pushwoosh_fleet_delivery_lag_seconds"
    assert value(text, f"{lag}_count", "ios", action="trackEvent") == 2
    assert value(text, f"{lag}_bucket", "ios", action="trackEvent", le="0.25") == 1
    assert value(text, f"{lag}_bucket", "ios", action="trackEvent", le="10.0") == 2
    assert value(text, f"{lag}_sum", "ios", action="trackEvent") == pytest.approx(7.2)


def test_trace_drops_are_counted_without_a_destination() -> None:
    metrics = FleetMetrics(CollectorRegistry())
    Counts(metrics, None).inc("trace_dropped", amount=5)
    found = samples(_text(metrics.registry))
    assert found[("pushwoosh_fleet_trace_dropped_total", ())] == 5


def test_every_spec_is_exposed_with_its_labels() -> None:
    metrics = FleetMetrics(CollectorRegistry())
    for spec in SPECS.values():
        labels = ["x"] * len(spec.label_names)
        child = metrics.families[spec.name].labels(*labels) if labels else None
        if child is not None:
            child.inc() if spec.kind == "counter" else child.observe(1)  # type: ignore[func-returns-value]
    text = _text(metrics.registry)
    for spec in SPECS.values():
        suffix = "_total" if spec.kind == "counter" else "_count"
        assert f"{spec.full_name}{suffix}" in text, spec.name


# -- the fleet-wide gauges -----------------------------------------------------------------------
def _gauges(client: fakeredis.FakeRedis, shards: int = 2) -> str:
    registry = CollectorRegistry(auto_describe=False)
    target = Target(RedisKeys("g", "default"), shards)
    registry.register(FleetGauges(client, "g", [target], clock=lambda: NOW_S))
    return _text(registry)


def test_gauges_read_queues_oldest_event_retries_dead_letters_and_workers() -> None:
    # Given a backlog whose oldest entry was stored 90 s ago, retries, dead letters and beats
    client = fakeredis.FakeRedis(decode_responses=True)
    keys = RedisKeys("g", "default")
    client.xadd(keys.stream(1), {"e": "{}"}, id=f"{NOW_MS - 90_000}-0")
    client.xadd(keys.stream(1), {"e": "{}"}, id=f"{NOW_MS - 1_000}-0")
    client.xadd(keys.stream(0), {"e": "{}"}, id=f"{NOW_MS - 5_000}-0")
    client.zadd(keys.shard(1).retry, {"a": NOW_MS - 30_000})
    client.zadd(keys.shard(0).retry, {"b": NOW_MS + 60_000, "c": NOW_MS - 10_000})
    client.xadd(keys.shard(0).dlq, {"d": "{}"})
    client.xadd(keys.shard(1).dlq, {"d": "{}"})
    client.hset(keys.circuit, mapping={"open_until_ms": NOW_MS + 10_000, "failures": 2,
                                       "kind": "auth"})  # fmt: skip
    client.zadd(worker_heartbeats("g"), {"w1@a": NOW_MS - 2_000, "w2@b": NOW_MS - 600_000})
    # When the gauges are read
    text = _gauges(client)
    # Then each is the state of Redis now
    assert value(text, "pushwoosh_fleet_queue_depth", shard="0") == 1
    assert value(text, "pushwoosh_fleet_queue_depth", shard="1") == 2
    assert value(text, "pushwoosh_fleet_oldest_event_age_seconds", shard="1") == 90
    assert value(text, "pushwoosh_fleet_oldest_event_age_seconds", shard="0") == 5
    assert value(text, "pushwoosh_fleet_retry_scheduled") == 3  # summed over the shards
    assert value(text, "pushwoosh_fleet_retry_overdue_seconds") == 30  # the most overdue shard
    assert value(text, "pushwoosh_fleet_dead_letters") == 2
    assert value(text, "pushwoosh_fleet_delivery_paused", cause="auth") == 1
    assert value(text, "pushwoosh_fleet_delivery_paused", cause="backoff") == 0
    found = samples(text)
    assert found[("pushwoosh_fleet_workers_live", ())] == 1
    assert found[("pushwoosh_fleet_redis_up", ())] == 1


def test_an_empty_fleet_reads_zero_everywhere() -> None:
    text = _gauges(fakeredis.FakeRedis(decode_responses=True), shards=1)
    assert value(text, "pushwoosh_fleet_oldest_event_age_seconds", shard="0") == 0
    assert value(text, "pushwoosh_fleet_retry_overdue_seconds") == 0
    assert value(text, "pushwoosh_fleet_delivery_paused", cause="backoff") == 0
    assert samples(text)[("pushwoosh_fleet_workers_live", ())] == 0


def test_a_redis_that_does_not_answer_is_a_gauge_not_a_failed_scrape() -> None:
    server = fakeredis.FakeServer()
    server.connected = False
    text = _gauges(fakeredis.FakeRedis(server=server))
    assert samples(text) == {("pushwoosh_fleet_redis_up", ()): 0.0}


# -- what a listener serves ----------------------------------------------------------------------
def test_a_listener_serves_build_info_and_the_process_trees_metrics() -> None:
    text = _text(exposition.serving_registry("worker"))
    found = samples(text)
    (build,) = [labels for name, labels in found if name == "pushwoosh_fleet_build_info"]
    assert dict(build)["role"] == "worker" and dict(build)["version"]
    assert found[("process_cpu_seconds_total", ())] > 0
    assert found[("process_resident_memory_bytes", ())] > 0


def test_the_process_tree_sums_the_children(tmp_path) -> None:
    # Given a /proc with this process (pid 10) and two children (11, 12) and a stranger (13)
    def stat(pid: int, ppid: int, utime: int, rss_pages: int) -> str:
        fields = ["S", str(ppid)] + ["0"] * 9 + [str(utime), "0"] + ["0"] * 6
        fields += ["100", "4096", str(rss_pages)]
        return f"{pid} (python) " + " ".join(fields)

    (tmp_path / "stat").write_text("btime 1700000000\n")
    for pid, ppid, utime, rss in ((10, 1, 100, 10), (11, 10, 200, 20), (12, 10, 300, 30),
                                  (13, 1, 999, 99)):  # fmt: skip
        (tmp_path / str(pid) / "fd").mkdir(parents=True)
        (tmp_path / str(pid) / "stat").write_text(stat(pid, ppid, utime, rss))
        (tmp_path / str(pid) / "limits").write_text("Max open files  1024  1024  files\n")
    collector = exposition.ProcessTree(proc=str(tmp_path), pid=lambda: 10)
    # When it is collected
    found = {s.name: s.value for family in collector.collect() for s in family.samples}
    # Then CPU and memory are the sum of the three, the stranger left out
    ticks = os.sysconf("SC_CLK_TCK")
    assert found["process_cpu_seconds_total"] == pytest.approx(600 / ticks)
    assert found["process_resident_memory_bytes"] == 60 * exposition.page_size()
    assert found["process_max_fds"] == 1024


# -- the flusher ---------------------------------------------------------------------------------
class _Lines(PipelineWriter):
    def __init__(self) -> None:
        self.pending: list[str] = []
        self.replies: list[object] = []

    def take(self) -> list[str]:
        pending, self.pending = self.pending, []
        return pending

    def write(self, pipe, batch: list[str]) -> int:  # type: ignore[no-untyped-def]
        pipe.rpush("lines", *batch)
        return 1

    def restore(self, batch: list[str]) -> None:
        self.pending[:0] = batch

    def written(self, replies: list[object]) -> None:
        self.replies += replies


def test_a_failed_flush_keeps_the_batch_for_the_next() -> None:
    # Given a writer whose Redis refuses the first flush
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    flusher = Flusher(client, interval_s=3600)
    lines = _Lines()
    flusher.add_writer(lines)
    lines.pending += ["a", "b"]
    server.connected = False
    flusher.flush()
    # When Redis is back and the next flush goes through
    server.connected = True
    lines.pending.append("c")
    flusher.flush()
    # Then nothing was lost or written twice, and the writer saw the reply
    assert client.lrange("lines", 0, -1) == ["a", "b", "c"]
    assert lines.replies == [3]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=20_000, allow_nan=False), max_size=120))
def test_observing_many_at_once_counts_what_observing_each_counts(values: list[float]) -> None:
    # Given two processes' metrics, one observing each lag, the other all of them at once
    one_by_one, at_once = FleetMetrics(CollectorRegistry()), FleetMetrics(CollectorRegistry())
    each = Counts(one_by_one, "ios").child("delivery_lag_seconds", "trackEvent")
    for value_s in values:
        each.observe(value_s)
    observe_many(Counts(at_once, "ios").child("delivery_lag_seconds", "trackEvent"), values)
    # Then every bucket and the count are the same (bounds included: 0.01 <= 0.01), and the sum

    def lag(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        name = "pushwoosh_fleet_delivery_lag_seconds"
        found = samples(text).items()
        return {k: v for k, v in found if k[0].startswith(name) and k[0] != f"{name}_created"}

    expected, got = lag(_text(one_by_one.registry)), lag(_text(at_once.registry))
    assert set(got) == set(expected)
    for key, total in expected.items():
        assert got[key] == (pytest.approx(total) if key[0].endswith("_sum") else total)


def test_observing_many_at_once_hits_each_bound_as_observe_does() -> None:
    metrics = FleetMetrics(CollectorRegistry())
    lag = Counts(metrics, "ios").child("delivery_lag_seconds", "trackEvent")
    observe_many(lag, [0.01, 0.010001, 14400.0, 14400.5, 0.0])
    text = _text(metrics.registry)
    name = "pushwoosh_fleet_delivery_lag_seconds_bucket"
    assert value(text, name, "ios", action="trackEvent", le="0.01") == 2
    assert value(text, name, "ios", action="trackEvent", le="0.025") == 3
    assert value(text, name, "ios", action="trackEvent", le="14400.0") == 4
    assert value(text, name, "ios", action="trackEvent", le="+Inf") == 5


def test_a_tally_off_the_loop_writes_at_once() -> None:
    metrics = FleetMetrics(CollectorRegistry())
    tally = Tally()
    tally.inc(Counts(metrics, "ios").child("ingest_requests", "v1/batch", "200"))
    assert value(_text(metrics.registry), "pushwoosh_fleet_ingest_requests_total", "ios",
                 route="v1/batch", status="200") == 1  # fmt: skip


def test_a_tally_on_a_loop_writes_its_counts_together_a_moment_later() -> None:
    # Given a tally on an event loop, counting requests and timing them
    metrics = FleetMetrics(CollectorRegistry())
    counts = Counts(metrics, "ios")
    requests_ok = counts.child("ingest_requests", "webhook", "200")
    duration = counts.child("ingest_request_duration_seconds", "webhook")
    name = "pushwoosh_fleet_ingest_requests_total"

    async def count() -> tuple[float, float, float]:
        tally = Tally(flush_s=0.05)
        for seconds in (0.001, 0.002, 0.2):
            tally.inc(requests_ok)
            tally.observe(duration, seconds)
        tally.inc(requests_ok, 2)
        # When no time has passed: nothing is written yet
        before = value(_text(metrics.registry), name, "ios", route="webhook", status="200")
        await asyncio.sleep(0.2)
        text = _text(metrics.registry)
        after = value(text, name, "ios", route="webhook", status="200")
        timed = value(text, "pushwoosh_fleet_ingest_request_duration_seconds_count", "ios",
                      route="webhook")  # fmt: skip
        return before, after, timed

    before, after, timed = asyncio.run(count())
    # Then everything counted is there a moment later, each count once
    assert (before, after, timed) == (0, 5, 3)

"""Fleet-wide metrics: processes count locally, flush to Redis, and any process serves the sum."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from config.redis_keys import RedisKeys
from fleet.embedded_redis import free_port
from telemetry.metrics import Recorder, Target, render
from tests.support.harness import BIN, ROOT, WRITE_KEY, FleetProcesses, fleet_env
from tests.support.prometheus import value
from tests.support.pushwoosh_stub import PushwooshStub

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


# -- the real fleet --------------------------------------------------------------------------
@pytest.fixture
def fleet(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> Iterator[FleetProcesses]:
    env = fleet_env(
        redis_url, key_prefix, stub.url, PUSHWOOSH_SHARDS="2", PUSHWOOSH_ENABLE_BATCHING="true"
    )
    processes = FleetProcesses(env, tmp_path)
    try:
        processes.start_ingest(web_workers=2)
        processes.start_worker(concurrency=1)
        processes.start_worker(concurrency=1)
        yield processes
    finally:
        processes.stop_all()


def _events(count: int, offset: int = 0) -> list[dict[str, object]]:
    return [
        {
            "type": "track",
            "messageId": f"metrics-{offset + i}",
            "event": "Item Viewed",
            "userId": f"user-{i % 11}",
            "properties": {"i": i},
        }
        for i in range(count)
    ]


def test_two_processes_counts_add_up_in_redis(client: redis.Redis, key_prefix: str) -> None:
    # Given two recorders (as two processes would have), counting the same series
    keys = RedisKeys(key_prefix, "default")
    first, second = Recorder(client, keys), Recorder(client, keys)
    first.inc("events_delivered", "trackEvent", amount=3)
    second.inc("events_delivered", "trackEvent", amount=4)
    second.inc("events_delivered", "updateUserProfile")
    # When both flush
    first.flush()
    second.flush()
    # Then the exposition shows the sums, by label
    text = render(client, [Target(keys, 1)])[0].decode()
    assert value(text, "pushwoosh_fleet_events_delivered_total", action="trackEvent") == 7
    assert value(text, "pushwoosh_fleet_events_delivered_total", action="updateUserProfile") == 1


@pytest.mark.parametrize(
    ("observations", "buckets", "count", "total"),
    [
        ([1, 1, 100], {"1": 2, "2": 2, "99": 2, "100": 3, "+Inf": 3}, 3, 102),
        ([50, 150], {"25": 0, "50": 1, "100": 1, "+Inf": 2}, 2, 200),
        ([], {}, 0, 0),
    ],
)
def test_histogram_buckets_are_cumulative(
    client: redis.Redis, key_prefix: str, observations, buckets, count, total
) -> None:
    keys = RedisKeys(key_prefix, "default")
    recorder = Recorder(client, keys)
    for observed in observations:
        recorder.observe("batch_size", observed, "post-events")
    recorder.flush()
    text = render(client, [Target(keys, 1)])[0].decode()
    for le, expected in buckets.items():
        got = value(text, "pushwoosh_fleet_batch_size_bucket", path="post-events", le=le)
        assert got == expected, le
    assert value(text, "pushwoosh_fleet_batch_size_count", path="post-events") == count
    assert value(text, "pushwoosh_fleet_batch_size_sum", path="post-events") == total


def test_latency_sums_are_fractional(client: redis.Redis, key_prefix: str) -> None:
    keys = RedisKeys(key_prefix, "default")
    recorder = Recorder(client, keys)
    for elapsed in (0.0, 0.25, 0.125):  # a whole 0.0 first must not make the sum an integer field
        recorder.observe("pushwoosh_request_duration_seconds", elapsed, "track-user")
        recorder.flush()
    text = render(client, [Target(keys, 1)])[0].decode()
    name = "pushwoosh_fleet_pushwoosh_request_duration_seconds"
    assert value(text, f"{name}_sum", path="track-user") == pytest.approx(0.375)
    assert value(text, f"{name}_count", path="track-user") == 3


def test_label_values_with_odd_characters_round_trip(client: redis.Redis, key_prefix: str) -> None:
    keys = RedisKeys(key_prefix, "default")
    recorder = Recorder(client, keys)
    recorder.inc("ingest_events_rejected", "v1/batch", 'we"ird,|reason\n')
    recorder.flush()
    text = render(client, [Target(keys, 1)])[0].decode()
    assert (
        value(
            text,
            "pushwoosh_fleet_ingest_events_rejected_total",
            route="v1/batch",
            reason='we"ird,|reason\n',
        )
        == 1
    )


def test_live_gauges_read_queue_retry_and_dead_letters(
    client: redis.Redis, key_prefix: str
) -> None:
    keys = RedisKeys(key_prefix, "default")
    for _ in range(3):
        client.xadd(keys.stream(1), {"e": "{}"})
    client.xadd(keys.stream(0), {"e": "{}"})
    client.zadd(keys.shard(0).retry, {"a": 1, "b": 2})
    client.xadd(keys.shard(0).dlq, {"d": "{}"})
    text = render(client, [Target(keys, 2)])[0].decode()
    assert value(text, "pushwoosh_fleet_queue_depth", shard="0") == 1
    assert value(text, "pushwoosh_fleet_queue_depth", shard="1") == 3
    assert value(text, "pushwoosh_fleet_retry_scheduled") == 2
    assert value(text, "pushwoosh_fleet_dead_letters") == 1


def test_the_background_thread_flushes_within_a_second_or_two(
    client: redis.Redis, key_prefix: str
) -> None:
    keys = RedisKeys(key_prefix, "default")
    recorder = Recorder(client, keys, interval_s=0.1)
    recorder.inc("events_unmatched")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if value(
            render(client, [Target(keys, 1)])[0].decode(), "pushwoosh_fleet_events_unmatched_total"
        ):
            return
        time.sleep(0.05)
    raise AssertionError("the recorder's thread never flushed")


def test_metrics_move_as_events_flow_through_two_worker_processes(
    fleet: FleetProcesses, stub: PushwooshStub
) -> None:
    # Given a fleet of two gunicorn processes and two worker processes
    assert fleet.ingest_url
    url = fleet.ingest_url
    # When 300 events arrive (one repeated request, one refused request) and are delivered
    events = _events(300)
    for start in range(0, 300, 60):
        response = requests.post(
            f"{url}/v1/batch", json={"batch": events[start : start + 60]}, auth=(WRITE_KEY, "")
        )
        assert response.status_code == 200, response.text
    repeat = requests.post(f"{url}/v1/batch", json={"batch": events[:10]}, auth=(WRITE_KEY, ""))
    assert repeat.status_code == 200
    refused = requests.post(f"{url}/v1/batch", json={"batch": [{"type": "track"}]}, auth=("x", ""))
    assert refused.status_code == 401
    try:
        stub.wait_for(lambda got: sum(len(r.json["events"]) for r in got) >= 300, timeout_s=30)
    except AssertionError:
        raise AssertionError(fleet.logs("worker")) from None
    # Then the fleet-wide numbers on /metrics equal what Pushwoosh received
    received = stub.snapshot()
    delivered = sum(len(r.json["events"]) for r in received)
    assert delivered == 300
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:
        text = requests.get(f"{url}/metrics", timeout=5).text
        got = value(text, "pushwoosh_fleet_events_delivered_total", action="trackEvent")
        if got == delivered and value(text, "pushwoosh_fleet_ingest_events_accepted_total",
                                      route="v1/batch") == 300:  # fmt: skip
            break
        time.sleep(0.2)
    assert value(text, "pushwoosh_fleet_events_delivered_total", action="trackEvent") == 300
    assert value(text, "pushwoosh_fleet_ingest_events_accepted_total", route="v1/batch") == 300
    assert value(text, "pushwoosh_fleet_ingest_events_deduplicated_total", route="v1/batch") == 10
    # A request with no valid key reached no destination: it counts under "(none)".
    assert (
        value(
            text, "pushwoosh_fleet_ingest_events_rejected_total", destination="(none)",
            route="v1/batch", reason="unauthorized",
        )
        == 1
    )  # fmt: skip
    assert value(text, "pushwoosh_fleet_ingest_requests_total", route="v1/batch", status="200") == 6
    unrouted = {"destination": "(none)", "route": "v1/batch"}
    assert value(text, "pushwoosh_fleet_ingest_requests_total", status="401", **unrouted) == 1
    durations = "pushwoosh_fleet_ingest_request_duration_seconds_count"
    assert value(text, durations, route="v1/batch") == 6
    assert value(text, durations, **unrouted) == 1
    assert value(
        text, "pushwoosh_fleet_pushwoosh_requests_total", path="post-events", status="200"
    ) == len(received)
    assert value(text, "pushwoosh_fleet_batch_size_count", path="post-events") == len(received)
    assert value(text, "pushwoosh_fleet_batch_size_sum", path="post-events") == 300
    assert value(
        text, "pushwoosh_fleet_pushwoosh_request_duration_seconds_count", path="post-events"
    ) == len(received)
    assert value(text, "pushwoosh_fleet_events_read_total", src="v1/batch") == 300
    assert value(text, "pushwoosh_fleet_queue_depth", shard="0") == 0
    assert value(text, "pushwoosh_fleet_queue_depth", shard="1") == 0


def test_the_metrics_command_serves_the_same_numbers(
    client: redis.Redis, key_prefix: str, redis_url: str
) -> None:
    # Given counts in Redis and the standalone metrics server (a worker-only machine)
    recorder = Recorder(client, RedisKeys(key_prefix, "default"))
    recorder.inc("events_delivered", "deleteUser", amount=4)
    recorder.flush()
    port = free_port()
    env = fleet_env(redis_url, key_prefix, "http://127.0.0.1:9")
    server = subprocess.Popen(
        [str(BIN / "pushwoosh-fleet"), "metrics", "--port", str(port)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        text = ""
        while time.monotonic() < deadline and not text:
            try:
                text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except requests.RequestException:
                time.sleep(0.1)
        # Then it serves what every process flushed, plus the live gauges
        assert value(text, "pushwoosh_fleet_events_delivered_total", action="deleteUser") == 4
        assert "pushwoosh_fleet_queue_depth" in text
    finally:
        server.terminate()
        server.wait(timeout=10)

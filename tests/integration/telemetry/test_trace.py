"""Event history: hourly buckets with a cap and a TTL, lookups over the window, and the real fleet
tracing a delivered, a retried and a dead-lettered event through `pushwoosh-fleet trace`."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from config.redis_keys import trace_bucket, trace_bucket_bytes
from config.settings import load_settings
from telemetry import trace
from telemetry.flusher import Flusher
from telemetry.trace import (
    FLUSH_SOON_RECORDS,
    HOUR_S,
    MAX_BYTES_PER_EVENT,
    TraceBuffer,
    attach_trace,
    hour_of,
    lookup,
    make_record,
)
from tests.support.harness import BIN, ROOT, WRITE_KEY, FleetProcesses, fleet_env
from tests.support.pushwoosh_stub import PushwooshStub, RecordedRequest, Reply

pytestmark = pytest.mark.integration

NOW_S = 1_714_565_100.0  # 2024-05-01T12:05:00Z


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def traced(
    key_prefix: str, client: redis.Redis, dropped: list[int] | None = None, **env: str
) -> tuple[Flusher, TraceBuffer]:
    settings = load_settings({"REDIS_KEY_PREFIX": key_prefix, **env})
    flusher = Flusher(client, interval_s=3600)
    on_dropped = dropped.append if dropped is not None else None
    buffer = attach_trace(flusher, client, settings, on_dropped=on_dropped)
    assert buffer is not None
    return flusher, buffer


# -- the real fleet --------------------------------------------------------------------------
class FlakyPushwoosh:
    """503 once for user-retry, 400 always for user-dead, 200 otherwise."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failed_once = False

    def __call__(self, request: RecordedRequest) -> Reply | None:
        body = request.body.decode()
        if "user-dead" in body:
            return Reply(400, {"status_code": 400, "status_message": "bad attribute"})
        if "user-retry" in body:
            with self._lock:
                if not self.failed_once:
                    self.failed_once = True
                    return Reply(503, "busy")
        return None


@pytest.fixture
def fleet(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> Iterator[FleetProcesses]:
    env = fleet_env(redis_url, key_prefix, stub.url, RETRY_BASE_DELAY_S="0.1")
    processes = FleetProcesses(env, tmp_path)
    try:
        processes.start_ingest()
        processes.start_worker(concurrency=1)
        yield processes
    finally:
        processes.stop_all()


def trace_cli(fleet: FleetProcesses, message_id: str, until: str) -> str:
    deadline = time.monotonic() + 10
    output = ""
    while time.monotonic() < deadline:
        result = subprocess.run(
            [str(BIN / "pushwoosh-fleet"), "trace", message_id],
            env=fleet.env, cwd=ROOT, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        output = result.stdout + result.stderr
        if until in result.stdout:
            assert result.returncode == 0, output
            # stderr names the Redis the command read; the history is on stdout alone
            assert "Redis redis://" in result.stderr and "(REDIS_URL)" in result.stderr
            return result.stdout
        time.sleep(0.2)
    raise AssertionError(f"trace never showed {until!r}:\n{output}\n{fleet.logs('worker')}")


def test_tracing_off_attaches_nothing(client: redis.Redis, key_prefix: str) -> None:
    settings = load_settings({"REDIS_KEY_PREFIX": key_prefix, "TRACE_WINDOW_S": "0"})
    assert attach_trace(Flusher(client), client, settings) is None


def test_records_append_in_order_and_the_bucket_expires_after_the_window(
    client: redis.Redis, key_prefix: str
) -> None:
    flusher, buffer = traced(key_prefix, client, TRACE_WINDOW_S="7200")
    now_ms = int(NOW_S * 1000)
    buffer.add("m1", "received", now_ms, route="v1/track")
    flusher.flush()
    buffer.add("m1", "mapped", now_ms + 5, mappings=["Track Event (trackEvent)"])
    flusher.flush()
    records = lookup(client, load_settings({"REDIS_KEY_PREFIX": key_prefix}), "m1", NOW_S)
    assert [r["k"] for r in records] == ["received", "mapped"]
    assert records[0]["route"] == "v1/track"
    ttl = client.ttl(trace_bucket(key_prefix, hour_of(now_ms)))
    assert 7200 < ttl <= 7200 + HOUR_S


FIELD_COST = 64  # what store/lua/trace_append.lua counts for a message's hash field


def cost(message_id: str, *lines: str) -> int:
    return len(message_id) + FIELD_COST + sum(len(line) for line in lines)


def test_over_the_hours_budget_new_records_are_dropped_and_counted(
    client: redis.Redis, key_prefix: str
) -> None:
    now_ms = int(NOW_S * 1000)
    received = make_record("received", now_ms, route="webhook")
    mapped = make_record("mapped", now_ms + 1, mappings=[])
    # Given an hour's budget of exactly two messages and one more record
    budget = cost("a", received) + cost("b", received) + len(mapped)
    dropped: list[int] = []
    flusher, buffer = traced(
        key_prefix, client, dropped, TRACE_WINDOW_S="3600", TRACE_MAX_BYTES=str(budget)
    )
    # When three messages are traced in one hour, and the first gets a second record
    for message_id in ("a", "b", "c"):
        buffer.add_line(message_id, now_ms, received)
    flusher.flush()
    buffer.add_line("a", now_ms + 1, mapped)
    buffer.add_line("d", now_ms + 1, received)
    flusher.flush()
    settings = load_settings({"REDIS_KEY_PREFIX": key_prefix, "TRACE_WINDOW_S": "3600"})
    # Then the first two are kept (and grow), the others are not, and the drops are counted
    assert [r["k"] for r in lookup(client, settings, "a", NOW_S)] == ["received", "mapped"]
    assert len(lookup(client, settings, "b", NOW_S)) == 1
    assert lookup(client, settings, "c", NOW_S) == []
    assert lookup(client, settings, "d", NOW_S) == []
    assert sum(dropped) == 2
    name = hour_of(now_ms)
    assert int(client.get(trace_bucket_bytes(key_prefix, name))) == budget


def test_a_large_flush_is_written_in_bounded_scripts_that_keep_the_budget(
    client: redis.Redis, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given appends of at most three messages per script and a budget of eight messages an hour
    monkeypatch.setattr(trace, "MESSAGES_PER_APPEND", 3)
    now_ms = int(NOW_S * 1000)
    line = make_record("received", now_ms, route="v1/batch")
    _flusher, buffer = traced(
        key_prefix, client, TRACE_WINDOW_S="3600", TRACE_MAX_BYTES=str(8 * cost("m0", line))
    )
    buffer.add_many([f"m{i}" for i in range(10)], "received", now_ms, route="v1/batch")
    # When the ten messages are written
    pipe = client.pipeline(transaction=False)
    batch = buffer.take()
    calls = buffer.write(pipe, batch)
    replies = pipe.execute()
    # Then four scripts carried them, and together they kept exactly the budget
    assert calls == 4 and len(replies) == 4
    assert sum(int(r) for r in replies) == 2
    assert client.hlen(trace_bucket(key_prefix, hour_of(now_ms))) == 8


def test_a_first_write_is_held_to_the_per_message_limit_too(
    client: redis.Redis, key_prefix: str
) -> None:
    # A request repeating one messageId thousands of times once wrote all of its records at
    # once, past every limit, on the message's first write.
    flusher, buffer = traced(key_prefix, client)
    now_ms = int(NOW_S * 1000)
    buffer.add_many(["same"] * 2500, "received", now_ms, route="v1/batch")
    flusher.flush()
    stored = client.hget(trace_bucket(key_prefix, hour_of(now_ms)), "same")
    assert stored is None or len(stored) <= trace.MAX_BYTES_PER_EVENT


def test_a_growing_buffer_wakes_the_flusher_before_its_tick(
    client: redis.Redis, key_prefix: str
) -> None:
    # Given a flusher that would otherwise write once an hour
    settings = load_settings({"REDIS_KEY_PREFIX": key_prefix})
    flusher = Flusher(client, interval_s=3600)
    buffer = attach_trace(flusher, client, settings)  # starts the flusher's thread, which waits
    assert buffer is not None
    now_ms = int(time.time() * 1000)
    time.sleep(0.2)
    key = trace_bucket(key_prefix, hour_of(now_ms))
    # When fewer records than the mark wait, nothing is written; when the mark is crossed, it is
    buffer.add_many([f"a{i}" for i in range(FLUSH_SOON_RECORDS - 1)], "received", now_ms)
    time.sleep(0.5)
    assert client.hlen(key) == 0
    buffer.add("last", "received", now_ms)
    deadline = time.monotonic() + 10
    while client.hlen(key) < FLUSH_SOON_RECORDS and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.hlen(key) == FLUSH_SOON_RECORDS


def test_one_events_history_stops_growing_at_its_byte_limit(
    client: redis.Redis, key_prefix: str
) -> None:
    flusher, buffer = traced(key_prefix, client)
    now_ms = int(NOW_S * 1000)
    for attempt in range(400):
        buffer.add("busy", "retry", now_ms, due=now_ms, attempt=attempt, reason="x" * 80)
        if attempt % 5 == 4:
            flusher.flush()  # five records (about 800 bytes) per append
    flusher.flush()
    stored = client.hget(trace_bucket(key_prefix, hour_of(now_ms)), "busy")
    assert stored is not None
    assert MAX_BYTES_PER_EVENT - 1000 < len(stored) <= MAX_BYTES_PER_EVENT


def test_lookup_reads_every_hour_of_the_window_and_sorts(
    client: redis.Redis, key_prefix: str
) -> None:
    flusher, buffer = traced(key_prefix, client)
    settings = load_settings({"REDIS_KEY_PREFIX": key_prefix})
    now_ms = int(NOW_S * 1000)
    buffer.add("m", "retry", now_ms - 1000, due=now_ms, attempt=1, reason="HTTP 503")
    buffer.add("m", "received", now_ms - 3 * HOUR_S * 1000, route="v1/batch")
    buffer.add("m", "sent", now_ms, path="post-events", size=1, status=200, outcome="delivered")
    buffer.add("m", "received", now_ms - 30 * HOUR_S * 1000, route="too-old")
    flusher.flush()
    records = lookup(client, settings, "m", NOW_S)
    assert [r["k"] for r in records] == ["received", "retry", "sent"]
    assert records[0]["route"] == "v1/batch"


def test_trace_shows_the_history_of_delivered_retried_and_dead_lettered_events(
    fleet: FleetProcesses, stub: PushwooshStub
) -> None:
    # Given Pushwoosh that fails user-retry's first call and refuses user-dead's
    stub.set_handler(FlakyPushwoosh())
    assert fleet.ingest_url
    # When three events arrive on different routes
    for route, event in (
        ("/v1/track", {"type": "track", "event": "Ok", "userId": "user-ok", "messageId": "t-ok"}),
        ("/v1/batch", {"batch": [{"type": "track", "event": "Again", "userId": "user-retry",
                                  "messageId": "t-retry"}]}),
        ("/webhook", {"type": "track", "event": "Bad", "userId": "user-dead",
                      "messageId": "t-dead"}),
    ):  # fmt: skip
        response = requests.post(f"{fleet.ingest_url}{route}", json=event, auth=(WRITE_KEY, ""))
        assert response.status_code == 200, response.text
    stub.wait_for(lambda got: len(got) >= 4, timeout_s=30)
    # Then `trace` tells each one's story, step by step
    ok = trace_cli(fleet, "t-ok", "-> delivered")
    assert "received via v1/track" in ok
    assert "matched Track Events (trackEvent)" in ok
    assert "to post-events with 1 event(s), attempt 1: HTTP 200" in ok

    retried = trace_cli(fleet, "t-retry", "attempt 2: HTTP 200")
    steps = [line.split("  ", 2)[-1] for line in retried.splitlines()[1:]]
    assert steps[0] == "received via v1/batch"
    assert steps[1] == "matched Track Events (trackEvent)"
    assert "attempt 1: HTTP 503" in steps[2] and steps[2].endswith("-> retry")
    assert steps[3].startswith("retry scheduled for ") and "(after attempt 1)" in steps[3]
    # (the shared back-off may hold the retry back again before it goes out)
    assert all(step.startswith("retry scheduled for ") for step in steps[4:-1])
    assert "attempt 2: HTTP 200" in steps[-1] and steps[-1].endswith("-> delivered")

    dead = trace_cli(fleet, "t-dead", "dead-lettered")
    assert "received via webhook" in dead
    assert "attempt 1: HTTP 400" in dead and "-> dead_letter" in dead
    assert "dead-lettered (failed, HTTP 400)" in dead
    assert "bad attribute" in dead


def test_trace_of_an_unknown_message_says_so(redis_url: str, key_prefix: str) -> None:
    env = fleet_env(redis_url, key_prefix, "http://127.0.0.1:9")
    result = subprocess.run(
        [str(BIN / "pushwoosh-fleet"), "trace", "never-sent"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    assert "nothing known about 'never-sent'" in result.stderr

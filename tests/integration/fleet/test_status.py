"""`pushwoosh-fleet status`: what Redis and the live workers say, readable at a glance."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import redis

from config.redis_keys import RedisKeys
from config.settings import load_settings
from fleet.status import format_status, read_status
from tests.support.harness import BIN, ROOT, FleetProcesses, fleet_env

pytestmark = pytest.mark.integration

NOW_S = 1_714_565_100.0  # 2024-05-01T12:05:00Z, minute 28576085
NOW_MS = int(NOW_S * 1000)


def test_read_status_gathers_every_number_in_one_look(redis_url: str, key_prefix: str) -> None:
    # Given two shards with a backlog, a retry schedule, dead letters, deliveries and a failure
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    settings = load_settings({"REDIS_KEY_PREFIX": key_prefix, "PUSHWOOSH_SHARDS": "2"})
    keys = RedisKeys(key_prefix, "default")
    for shard, count in ((0, 2), (1, 5)):
        for _ in range(count):
            client.xadd(keys.stream(shard), {"e": "{}"})
    client.zadd(keys.shard(0).retry, {"late": NOW_MS + 60_000, "soon": NOW_MS + 5_000})
    client.xadd(keys.shard(0).dlq, {"d": "{}"})
    minute = int(NOW_S // 60)
    for shard, (now, before) in ((0, (30, 200)), (1, (10, 50))):
        shard_keys = keys.shard(shard)
        client.hset(shard_keys.minutes(minute // 60), f"{minute}:delivered", now)
        client.hset(shard_keys.minutes((minute - 1) // 60), f"{minute - 1}:delivered", before)
    client.hset(
        keys.circuit,
        mapping={
            "open_until_ms": NOW_MS + 30_000,
            "failures": 3,
            "reason": "HTTP 503",
            "kind": "r",
        },
    )
    client.hset(
        keys.last_error,
        mapping={"t": NOW_MS - 2000, "path": "post-events", "status": "503", "reply": "busy",
                 "outcome": "retry"},
    )  # fmt: skip
    # When the status is read
    status = read_status(
        client, settings, destination="default", list_workers=lambda: ["w1@host"], now_s=NOW_S
    )
    # Then every number is there, and reads as one line each
    assert status.queue_depths == [2, 5]
    assert status.retry_scheduled == 2
    assert status.next_retry_ms == NOW_MS + 5_000
    assert status.dead_letters == 1
    assert (status.delivered_this_minute, status.delivered_last_minute) == (40, 250)
    text = format_status(status)
    assert "queued        7 events (shard 0: 2, shard 1: 5)" in text
    assert "retry         2 requests scheduled, next due 12:05:05 UTC (in 5 s)" in text
    assert "dead letters  1" in text
    assert "workers       1 live: w1@host" in text
    assert "delivered     40 this minute, 250 the minute before" in text
    assert "BACKING OFF until 12:05:30 UTC (in 30 s), 3 failures in a row" in text
    assert "last error    12:04:58 UTC (2 s ago): post-events HTTP 503 -> retry: busy" in text
    json.dumps(status.as_dict())  # --json output is plain JSON


def test_status_reads_garbage_in_redis_without_crashing(redis_url: str, key_prefix: str) -> None:
    # A reply can put anything in the back-off record (Retry-After: 1e13 once did): status
    # still prints.
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    settings = load_settings({"REDIS_KEY_PREFIX": key_prefix})
    keys = RedisKeys(key_prefix, "default")
    client.hset(keys.circuit, mapping={"open_until_ms": "1e13", "failures": "x"})
    client.hset(keys.last_error, mapping={"t": str(10**30), "status": "503"})
    status = read_status(
        client, settings, destination="default", list_workers=lambda: [], now_s=NOW_S
    )
    text = format_status(status)
    assert "pushwoosh     sending" in text and "last error" in text


def test_status_command_lists_the_live_worker(
    redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    # Given a running worker on this prefix
    env = fleet_env(redis_url, key_prefix, "http://127.0.0.1:9")
    fleet = FleetProcesses(env, tmp_path)
    try:
        worker = fleet.start_worker(concurrency=1)
        # When `status` runs, Then it lists that worker (once it is up)
        deadline = time.monotonic() + 20
        output = ""
        while time.monotonic() < deadline:
            result = subprocess.run(
                [str(BIN / "pushwoosh-fleet"), "status"],
                env=env, cwd=ROOT, capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            # 1 (degraded: no live worker) until the worker answers, then 0 (healthy)
            assert result.returncode in (0, 1), result.stderr
            output = result.stdout
            if "1 live: w0-" in output:
                assert result.returncode == 0 and output.rstrip().endswith("HEALTHY"), output
                break
            assert worker.poll() is None, fleet.logs("worker")
            time.sleep(0.3)
        assert "workers       1 live: w0-" in output, output + fleet.logs("worker")
        assert "queued        0 events (shard 0: 0)" in output
        assert "dead letters  0" in output
    finally:
        fleet.stop_all()

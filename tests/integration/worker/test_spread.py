"""Work spreads over worker processes: two Procfile workers (threads pool, two threads each) and
four shards with a backlog; each process takes only the drain tasks it can start, so both drain.

The same run drains a backlog with one process and then with two, and prints the ratio of the
two rates; it asserts only what a busy machine cannot break: both processes delivered events.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import redis

from config.redis_keys import RedisKeys, shard_of, worker_heartbeats
from config.settings import load_settings
from ingest.publish import Publisher
from tests.support.harness import WRITE_KEY, FleetProcesses, fleet_env
from tests.support.pushwoosh_stub import PushwooshStub

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHARDS = 4
BACKLOG = 8_000
DELIVERED = re.compile(r"drained shard \d+: .*'delivered': (\d+)")


def backlog(start: int) -> list[dict[str, object]]:
    return [
        {"type": "track", "messageId": f"s-{i}", "event": "Item Viewed", "userId": f"u-{i % 64}",
         "timestamp": "2024-05-01T12:05:00.000Z", "properties": {"i": i}}
        for i in range(start, start + BACKLOG)
    ]  # fmt: skip


def delivered_by(log: Path, skip_chars: int) -> int:
    text = log.read_text(errors="replace")[skip_chars:]
    return sum(int(n) for n in DELIVERED.findall(text))


def wait_workers(client: redis.Redis, key_prefix: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while client.zcard(worker_heartbeats(key_prefix)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} workers came up"
        time.sleep(0.1)


def drain_rate(client: redis.Redis, keys: RedisKeys, publisher: Publisher, stub: PushwooshStub,
               start: int) -> float:  # fmt: skip
    """Queue a backlog while the shared back-off holds every pump, then let go and time it."""
    client.hset(keys.circuit, mapping={"open_until_ms": int(time.time() * 1000) + 600_000})
    time.sleep(0.3)  # every pump has seen the back-off
    before = stub.delivered_message_count()
    publisher.publish(backlog(start), "v1/batch", f"write-key:{WRITE_KEY}")
    started = time.monotonic()
    client.delete(keys.circuit)
    stub.wait_for(lambda _: stub.delivered_message_count() >= before + BACKLOG, timeout_s=120)
    return BACKLOG / (time.monotonic() - started)


def test_two_worker_processes_both_drain(
    redis_url: str, key_prefix: str, stub: PushwooshStub, tmp_path: Path
) -> None:
    env = fleet_env(redis_url, key_prefix, stub.url, PUSHWOOSH_SHARDS=str(SHARDS),
                    PUSHWOOSH_ENABLE_BATCHING="true", TRACE_WINDOW_S="0")  # fmt: skip
    settings = load_settings({k: v for k, v in env.items() if not k.startswith("PYTHON")})
    assert {shard_of(e, SHARDS) for e in backlog(0)} == set(range(SHARDS))
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = RedisKeys(key_prefix, "default")
    publisher = Publisher(client, settings, "default")
    fleet = FleetProcesses(env, tmp_path)
    try:
        fleet.start_worker(concurrency=2)
        wait_workers(client, key_prefix, 1)
        one = drain_rate(client, keys, publisher, stub, 0)
        fleet.start_worker(concurrency=2)
        wait_workers(client, key_prefix, 2)
        logs = sorted(tmp_path.glob("worker-*.log"))
        offsets = [len(log.read_text(errors="replace")) for log in logs]
        two = drain_rate(client, keys, publisher, stub, BACKLOG)
        time.sleep(0.5)  # the last tasks log what they drained
        drained = [delivered_by(log, at) for log, at in zip(logs, offsets, strict=True)]
    finally:
        fleet.stop_all()
    print(f"drain rate: one process {one:.0f} events/s, two {two:.0f} ({two / one:.2f}x); "
          f"per process with two: {drained}")  # fmt: skip
    assert all(n > 0 for n in drained), f"a worker process drained nothing: {drained}"
    assert sum(drained) >= BACKLOG

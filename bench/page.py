"""`python -m bench.page`: the delivery page's answer times, empty and under a large backlog.

On a Redis of its own (the embedded one `run` uses), the page's views are timed in-process (no
network between the page and the timer) in three states: an empty fleet; the same with a
backlog of `--events` queued events (1,000,000 by default, over two shards); and with, on top,
`DLQ_MAX_ENTRIES` (10,000) dead letters of ten events each and a full day of per-minute counters
with every measure set. Each view is asked seven times; the median and the slowest are printed
(the slowest includes the first drawing of the charts). Takes about a minute and 400 MB of RAM.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import falcon.testing
import redis

from config.destinations import load_destinations
from config.redis_keys import RedisKeys
from config.settings import load_settings
from fleet.embedded_redis import EmbeddedRedis
from fleet.page.app import create_page
from worker.dlq import DeadLetter
from worker.settlement import LATENCY_BUCKETS_MS

ADMIN_KEY = "bench-admin-key"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_KEY}".encode()).decode()}
SHARDS = 2
VIEWS = (
    ("overview, last hour", "/delivery/default", {"range": "hour"}),
    ("overview, last day", "/delivery/default", {"range": "day"}),
    ("dead letters", "/delivery/default/dead-letters", None),
    ("dead letters, a filter matching none", "/delivery/default/dead-letters", {"status": "599"}),
    ("trace", "/delivery/default/trace", {"message_id": "m-1"}),
)
EVENT = {
    "type": "track", "event": "Order Completed", "userId": "user-1", "messageId": "m-1",
    "properties": {"total": 59.9, "sku": "x" * 200}, "timestamp": "2024-05-01T12:05:00Z",
}  # fmt: skip


def _client(url: str, prefix: str, client: redis.Redis) -> falcon.testing.TestClient:
    env = {"REDIS_URL": url, "REDIS_KEY_PREFIX": prefix, "INGEST_WRITE_KEYS": "w",
           "INGEST_ADMIN_KEYS": ADMIN_KEY, "PUSHWOOSH_SHARDS": str(SHARDS)}  # fmt: skip
    settings = load_settings(env)
    return falcon.testing.TestClient(
        create_page(settings, load_destinations(settings, env), client)
    )


def _times(page: falcon.testing.TestClient) -> dict[str, tuple[float, float]]:
    found = {}
    for name, path, params in VIEWS:
        times = []
        for _ in range(7):
            started = time.perf_counter()
            answer = page.simulate_get(path, headers=AUTH, params=params)
            times.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, (path, answer.status)
        found[name] = (statistics.median(times), max(times))
    return found


def _backlog(client: redis.Redis, keys: RedisKeys, events: int) -> None:
    text = json.dumps(EVENT)
    for shard in range(SHARDS):
        for start in range(0, events // SHARDS, 10_000):
            pipe = client.pipeline(transaction=False)
            for _ in range(min(10_000, events // SHARDS - start)):
                pipe.xadd(keys.shard(shard).stream, {"e": text, "src": "v1/batch"})
            pipe.execute()


def _dead_letters_and_counters(client: redis.Redis, keys: RedisKeys, letters: int) -> None:
    now_ms = int(time.time() * 1000)
    ids = [f"m-{i}" for i in range(10)]
    request: dict[str, Any] = {"path": "post-events", "body": {"events": [EVENT] * 10},
                               "message_ids": ids, "mapping": "Track Events",
                               "action": "trackEvent"}  # fmt: skip
    letter = DeadLetter(
        kind="failed", mapping="Track Events", action="trackEvent", path="post-events",
        status=400, reason="HTTP 400: bad", reply="{}", attempts=1, first_attempt_ms=now_ms,
        last_attempt_ms=now_ms, message_ids=ids, destination="default", request=request,
    ).to_json()  # fmt: skip
    minute = now_ms // 60_000
    measures = ["delivered", "requests", "sent_events", "retried", "skipped", "dead_lettered",
                "skipped:no_user_id", "rejected", *(f"lat:{b}" for b in LATENCY_BUCKETS_MS),
                "lat:inf"]  # fmt: skip
    for shard in range(SHARDS):
        pipe = client.pipeline(transaction=False)
        for _ in range(letters // SHARDS):
            pipe.xadd(keys.shard(shard).dlq, {"d": letter})
        for m in range(minute - 25 * 60, minute + 1):
            pipe.hset(keys.shard(shard).minutes(m // 60), mapping={f"{m}:{x}": 7 for x in measures})
        pipe.execute()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--dead-letters", type=int, default=10_000)
    args = parser.parse_args()
    server = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="bench-page-")) / "redis").start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        keys = RedisKeys("bench", "default")
        page = _client(server.url, "bench", client)
        states = {"empty": _times(page)}
        _backlog(client, keys, args.events)
        states[f"{args.events:,} queued"] = _times(page)
        _dead_letters_and_counters(client, keys, args.dead_letters)
        states[f"+ {args.dead_letters:,} dead letters, a day of counters"] = _times(page)
        memory = client.info("memory")["used_memory_human"]
    finally:
        server.stop()
    print(f"milliseconds per answer, median (slowest of 7); Redis held {memory} at the end\n")
    print("| view | " + " | ".join(states) + " |")
    print("|---|" + "---|" * len(states))
    for name, _, _ in VIEWS:
        cells = (f"{found[name][0]:.0f} ({found[name][1]:.0f})" for found in states.values())
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

"""Traffic for integration tests: numbered track events, posted like a Segment client, and
accounted for at the Pushwoosh stand-in and in the dead-letter queue by messageId."""

from __future__ import annotations

import collections
import time

import redis
import requests

from config.redis_keys import RedisKeys
from tests.support.harness import WRITE_KEY
from tests.support.pushwoosh_stub import PushwooshStub
from worker.dlq import DeadLetterFilter, DeadLetterQueue


def tracks(count: int, start: int = 0, **properties: object) -> list[dict[str, object]]:
    """Track events m-<start> on, numbered in properties.i; `properties`: more for each."""
    return [
        {
            "type": "track",
            "messageId": f"m-{i:06d}",
            "event": "Item Viewed",
            "userId": f"user-{i % 13}",
            "timestamp": "2024-05-01T12:05:00.000Z",
            "properties": {"i": i, **properties},
        }
        for i in range(start, start + count)
    ]


def delivered_ids(stub: PushwooshStub) -> list[str]:
    ids = []
    for request in stub.snapshot():
        if request.path.endswith("post-events") and 200 <= request.status < 300:
            ids.extend(f"m-{e['attributes']['i']:06d}" for e in request.json["events"])
    return ids


def post_batches(url: str, events: list[dict[str, object]], size: int = 100) -> list[str]:
    """Post like a Segment client: retry until 200; return the messageIds accepted."""
    accepted: list[str] = []
    session = requests.Session()
    for start in range(0, len(events), size):
        chunk = events[start : start + size]
        for _ in range(200):
            try:
                response = session.post(
                    f"{url}/v1/batch", json={"batch": chunk}, auth=(WRITE_KEY, ""), timeout=10
                )
                if response.status_code == 200:
                    accepted.extend(str(e["messageId"]) for e in chunk)
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
    return accepted


def dead_lettered_ids(client: redis.Redis, key_prefix: str, shards: int = 1) -> list[str]:
    queue = DeadLetterQueue(client, RedisKeys(key_prefix, "default"), shards)
    now_ms = int(time.time() * 1000)
    return [m for letter in queue.iter(DeadLetterFilter(), now_ms) for m in letter.message_ids]


def wait_all_accounted(
    stub: PushwooshStub, client: redis.Redis, key_prefix: str, accepted: list[str], timeout_s: float
) -> tuple[collections.Counter[str], list[str]]:
    """Wait until every accepted messageId was delivered or dead-lettered; fail otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = collections.Counter(delivered_ids(stub))
        try:
            dead = dead_lettered_ids(client, key_prefix)
        except redis.ConnectionError:
            # Redis is failing over or restarting: ask again until the deadline
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
            continue
        missing = set(accepted) - set(counts) - set(dead)
        if not missing or time.monotonic() > deadline:
            assert not missing, (
                f"{len(missing)} accepted events neither delivered nor dead-lettered"
            )
            return counts, dead
        time.sleep(0.2)

"""The drain loop in-process for integration tests: a Runtime on a real Redis and the stand-in,
events put straight on a shard's stream, and what ended up dead-lettered."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import redis

from config.mapping_file import mappings_from_settings
from config.redis_keys import CONSUMER_GROUP
from config.settings import load_settings
from tests.support.harness import API_KEY, APP_CODE
from tests.support.pushwoosh_stub import PushwooshStub
from worker.dlq import DeadLetter, DeadLetterFilter, DeadLetterQueue
from worker.observer import NullObserver
from worker.pushwoosh import PushwooshClient
from worker.runtime import Runtime


def now_ms() -> int:
    return int(time.time() * 1000)


def make_runtime(redis_url: str, key_prefix: str, stub: PushwooshStub, **env: str) -> Runtime:
    settings = load_settings(
        {
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": key_prefix,
            "PUSHWOOSH_API_KEY": API_KEY,
            "PUSHWOOSH_APPLICATION_CODE": APP_CODE,
            "PUSHWOOSH_BASE_URL": stub.url,
            "PUSHWOOSH_ENABLE_BATCHING": "true",
            "PUSHWOOSH_BATCH_FLUSH_DELAY_S": "0.2",
            "PUSHWOOSH_TIMEOUT_S": "1",
            "DRAIN_LEASE_S": "5",
            "DRAIN_SLICE_S": "3",
            "RETRY_BASE_DELAY_S": "0.1",
            "RETRY_MAX_DELAY_S": "0.5",
            **env,
        }
    )
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    return Runtime(
        settings,
        client,
        mappings_from_settings(settings),
        PushwooshClient(settings),
        "default",
        NullObserver(),
    )


def track(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": f"m-{i}",
        "event": "Viewed",
        "userId": "u1",
        "timestamp": "2024-05-01T12:05:00.000Z",
        "properties": {"i": i},
        **extra,
    }


def enqueue(runtime: Runtime, events: list[dict[str, Any]], shard: int = 0) -> None:
    stream = runtime.keys.stream(shard)
    with contextlib.suppress(redis.ResponseError):
        runtime.redis.xgroup_create(stream, CONSUMER_GROUP, id="0", mkstream=True)
    pipe = runtime.redis.pipeline()
    for event in events:
        pipe.xadd(stream, {"e": json.dumps(event), "src": "test"})
    pipe.execute()


def dead_letters(runtime: Runtime) -> list[DeadLetter]:
    queue = DeadLetterQueue(runtime.redis, runtime.keys, runtime.settings.shards)
    return list(queue.iter(DeadLetterFilter(), now_ms()))

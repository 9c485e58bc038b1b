"""Publishing to Redis Streams: all or nothing, atomic dedupe, backlog cap, Redis away."""

from __future__ import annotations

import json
import threading
from typing import Any

import fakeredis
import pytest
import redis

from config.redis_keys import CONSUMER_GROUP, RedisKeys, shard_for
from config.settings import Settings, load_settings
from fleet.embedded_redis import free_port
from ingest.errors import QueueFull, StoreUnavailable
from ingest.publish import Publisher, PublishResult

pytestmark = pytest.mark.integration


def make_settings(redis_url: str, key_prefix: str, **env: str) -> Settings:
    return load_settings({"REDIS_URL": redis_url, "REDIS_KEY_PREFIX": key_prefix, **env})


def event(message_id: str, user: str = "u1") -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": "E", "messageId": message_id}


def stored(client: redis.Redis, keys: RedisKeys, shards: int = 1) -> list[tuple[dict, str]]:
    out = []
    for shard in range(shards):
        for _, fields in client.xrange(keys.stream(shard)):
            out.append((json.loads(fields["e"]), fields["src"]))
    return out


@pytest.fixture
def keys(key_prefix: str) -> RedisKeys:
    return RedisKeys(key_prefix, "default")


def test_events_are_stored_in_order_with_their_route(
    redis_url: str, key_prefix: str, keys: RedisKeys, redis_client: redis.Redis
) -> None:
    publisher = Publisher(redis_client, make_settings(redis_url, key_prefix), "default")
    result = publisher.publish([event("m1"), event("m2")], "v1/batch")
    assert result == PublishResult(accepted=2, duplicates=0)
    assert stored(redis_client, keys) == [(event("m1"), "v1/batch"), (event("m2"), "v1/batch")]
    raw = redis_client.xrange(keys.stream(0))[0][1]["e"]
    assert raw == json.dumps(event("m1"), separators=(",", ":"))
    assert redis_client.ttl(keys.seen("m1")) > 24 * 3600 - 10


def test_duplicates_across_and_inside_requests_are_stored_once(
    redis_url: str, key_prefix: str, keys: RedisKeys, redis_client: redis.Redis
) -> None:
    publisher = Publisher(redis_client, make_settings(redis_url, key_prefix), "default")
    assert publisher.publish([event("m1")], "webhook") == PublishResult(1, 0)
    assert publisher.publish([event("m1"), event("m2"), event("m2")], "webhook") == (
        PublishResult(1, 2)
    )
    assert [e["messageId"] for e, _ in stored(redis_client, keys)] == ["m1", "m2"]


def test_without_dedupe_only_duplicates_inside_a_request_collapse(
    redis_url: str, key_prefix: str, keys: RedisKeys, redis_client: redis.Redis
) -> None:
    publisher = Publisher(
        redis_client, make_settings(redis_url, key_prefix, DEDUPE_WINDOW_S="0"), "default"
    )
    assert publisher.publish([event("m1"), event("m1")], "webhook") == PublishResult(1, 1)
    assert publisher.publish([event("m1")], "webhook") == PublishResult(1, 0)
    assert redis_client.xlen(keys.stream(0)) == 2
    assert not redis_client.exists(keys.seen("m1"))


def test_concurrent_requests_with_the_same_message_ids_store_each_once(
    redis_url: str, key_prefix: str, keys: RedisKeys
) -> None:
    settings = make_settings(redis_url, key_prefix)
    batch = [event(f"m{i}") for i in range(50)]
    results: list[PublishResult] = []

    def send() -> None:
        client = redis.Redis.from_url(redis_url)
        results.append(Publisher(client, settings, "default").publish(batch, "v1/batch"))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.accepted for r in results) == 50
    assert sum(r.duplicates for r in results) == 50 * 7
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert sorted(e["messageId"] for e, _ in stored(client, keys)) == sorted(
        e["messageId"] for e in batch
    )


def test_a_full_queue_refuses_the_whole_request_and_writes_nothing(
    redis_url: str, key_prefix: str, keys: RedisKeys, redis_client: redis.Redis
) -> None:
    publisher = Publisher(
        redis_client, make_settings(redis_url, key_prefix, INGEST_MAX_QUEUED_EVENTS="3"), "default"
    )
    # Given two events waiting
    publisher.publish([event("m1"), event("m2")], "webhook")
    # When a request of two new events arrives
    with pytest.raises(QueueFull) as caught:
        publisher.publish([event("m3"), event("m4")], "webhook")
    # Then nothing of it is stored, not even its dedupe markers
    assert caught.value.status == 429 and caught.value.retry_after_s
    assert redis_client.xlen(keys.stream(0)) == 2
    assert not redis_client.exists(keys.seen("m3"))
    # and duplicates alone do not count towards the cap
    assert publisher.publish([event("m1"), event("m3")], "webhook") == PublishResult(1, 1)
    assert publisher.backlog() == 3


def test_events_are_sharded_by_user_and_the_backlog_sums_all_shards(
    redis_url: str, key_prefix: str, keys: RedisKeys, redis_client: redis.Redis
) -> None:
    settings = make_settings(redis_url, key_prefix, PUSHWOOSH_SHARDS="4")
    publisher = Publisher(redis_client, settings, "default")
    batch = [event(f"m{i}", user=f"user-{i % 6}") for i in range(24)]
    batch.append({"type": "identify", "anonymousId": "anon-7", "messageId": "a7"})
    publisher.publish(batch, "v1/batch")
    for item in batch:
        shard = shard_for(item.get("userId") or item.get("anonymousId"), 4)
        in_shard = [e for e, _ in stored_shard(redis_client, keys, shard)]
        assert item in in_shard
    assert publisher.backlog() == 25


def stored_shard(client: redis.Redis, keys: RedisKeys, shard: int) -> list[tuple[dict, str]]:
    return [(json.loads(f["e"]), f["src"]) for _, f in client.xrange(keys.stream(shard))]


def test_ensure_streams_creates_the_group_on_every_shard_and_is_idempotent(
    redis_url: str, key_prefix: str, keys: RedisKeys, redis_client: redis.Redis
) -> None:
    publisher = Publisher(
        redis_client, make_settings(redis_url, key_prefix, PUSHWOOSH_SHARDS="3"), "default"
    )
    publisher.ensure_streams()
    publisher.ensure_streams()
    for shard in range(3):
        groups = redis_client.xinfo_groups(keys.stream(shard))
        assert [g["name"] for g in groups] == [CONSUMER_GROUP]


def test_a_key_of_the_wrong_type_fails_before_anything_is_written(
    redis_url: str, key_prefix: str, keys: RedisKeys, redis_client: redis.Redis
) -> None:
    publisher = Publisher(
        redis_client, make_settings(redis_url, key_prefix, PUSHWOOSH_SHARDS="2"), "default"
    )
    publisher.ensure_streams()
    redis_client.delete(keys.stream(1))
    redis_client.set(keys.stream(1), "not a stream")
    with pytest.raises(StoreUnavailable):
        publisher.publish([event("m1", "a"), event("m2", "b"), event("m3", "c")], "webhook")
    assert redis_client.xlen(keys.stream(0)) == 0
    assert not redis_client.exists(keys.seen("m1"), keys.seen("m2"), keys.seen("m3"))


def test_redis_away_is_store_unavailable(redis_url: str, key_prefix: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    client = redis.Redis.from_url(dead, socket_connect_timeout=1)
    publisher = Publisher(client, make_settings(dead, key_prefix), "default")
    assert publisher.try_ensure_streams() is False
    with pytest.raises(StoreUnavailable) as caught:
        publisher.publish([event("m1")], "webhook")
    assert caught.value.status == 503 and caught.value.retry_after_s == 5


def test_nothing_to_publish_touches_nothing() -> None:
    client = fakeredis.FakeRedis()
    publisher = Publisher(client, load_settings({}), "default")
    assert publisher.publish([], "webhook") == PublishResult(0, 0)
    assert client.keys() == []


def test_ensure_streams_on_fakeredis() -> None:
    # fakeredis runs Lua only with `lupa`; the script itself is tested on the real Redis above.
    client = fakeredis.FakeRedis(decode_responses=True)
    publisher = Publisher(client, load_settings({"PUSHWOOSH_SHARDS": "2"}), "default")
    assert publisher.try_ensure_streams() is True
    assert client.exists("pwf:default:stream:0", "pwf:default:stream:1") == 2
    assert publisher.backlog() == 0

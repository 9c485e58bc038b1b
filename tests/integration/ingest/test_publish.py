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
from ingest.dedupe import generation_s
from ingest.errors import QueueFull, StoreUnavailable
from ingest.publish import Publisher, PublishResult
from tests.support.dedupe import is_seen, seen_keys

pytestmark = pytest.mark.integration


SENDER = "write:test"


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
    result = publisher.publish([event("m1"), event("m2")], "v1/batch", SENDER)
    assert result == PublishResult(accepted=2, duplicates=0)
    assert stored(redis_client, keys) == [(event("m1"), "v1/batch"), (event("m2"), "v1/batch")]
    raw = redis_client.xrange(keys.stream(0))[0][1]["e"]
    assert raw == json.dumps(event("m1"), separators=(",", ":"))
    assert is_seen(redis_client, keys, SENDER, "m1") and is_seen(redis_client, keys, SENDER, "m2")
    for bucket in seen_keys(redis_client, keys):  # kept a day at least, and a quarter more
        assert 24 * 3600 - 10 < redis_client.ttl(bucket) <= 30 * 3600


def test_duplicates_across_and_inside_requests_are_stored_once(
    redis_url: str, key_prefix: str, keys: RedisKeys, redis_client: redis.Redis
) -> None:
    publisher = Publisher(redis_client, make_settings(redis_url, key_prefix), "default")
    assert publisher.publish([event("m1")], "webhook", SENDER) == PublishResult(1, 0)
    assert publisher.publish([event("m1"), event("m2"), event("m2")], "webhook", SENDER) == (
        PublishResult(1, 2)
    )
    assert [e["messageId"] for e, _ in stored(redis_client, keys)] == ["m1", "m2"]


def test_without_dedupe_only_duplicates_inside_a_request_collapse(
    redis_url: str, key_prefix: str, keys: RedisKeys, redis_client: redis.Redis
) -> None:
    publisher = Publisher(
        redis_client, make_settings(redis_url, key_prefix, DEDUPE_WINDOW_S="0"), "default"
    )
    assert publisher.publish([event("m1"), event("m1")], "webhook", SENDER) == PublishResult(1, 1)
    assert publisher.publish([event("m1")], "webhook", SENDER) == PublishResult(1, 0)
    assert redis_client.xlen(keys.stream(0)) == 2
    assert seen_keys(redis_client, keys) == []


def test_concurrent_requests_with_the_same_message_ids_store_each_once(
    redis_url: str, key_prefix: str, keys: RedisKeys
) -> None:
    settings = make_settings(redis_url, key_prefix)
    batch = [event(f"m{i}") for i in range(50)]
    results: list[PublishResult] = []

    def send() -> None:
        client = redis.Redis.from_url(redis_url)
        results.append(Publisher(client, settings, "default").publish(batch, "v1/batch", SENDER))

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
    publisher.publish([event("m1"), event("m2")], "webhook", SENDER)
    # When a request of two new events arrives
    with pytest.raises(QueueFull) as caught:
        publisher.publish([event("m3"), event("m4")], "webhook", SENDER)
    # Then nothing of it is stored, not even its dedupe markers
    assert caught.value.status == 429 and caught.value.retry_after_s
    assert redis_client.xlen(keys.stream(0)) == 2
    assert not is_seen(redis_client, keys, SENDER, "m3")
    # and duplicates alone do not count towards the cap
    assert publisher.publish([event("m1"), event("m3")], "webhook", SENDER) == PublishResult(1, 1)
    assert publisher.backlog() == 3


def test_events_are_sharded_by_user_and_the_backlog_sums_all_shards(
    redis_url: str, key_prefix: str, keys: RedisKeys, redis_client: redis.Redis
) -> None:
    settings = make_settings(redis_url, key_prefix, PUSHWOOSH_SHARDS="4")
    publisher = Publisher(redis_client, settings, "default")
    batch = [event(f"m{i}", user=f"user-{i % 6}") for i in range(24)]
    batch.append({"type": "identify", "anonymousId": "anon-7", "messageId": "a7"})
    publisher.publish(batch, "v1/batch", SENDER)
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
        publisher.publish([event("m1", "a"), event("m2", "b"), event("m3", "c")], "webhook", SENDER)
    assert redis_client.xlen(keys.stream(0)) == 0
    assert seen_keys(redis_client, keys) == []


def test_redis_away_is_store_unavailable(redis_url: str, key_prefix: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    client = redis.Redis.from_url(dead, socket_connect_timeout=1)
    publisher = Publisher(client, make_settings(dead, key_prefix), "default")
    assert publisher.try_ensure_streams() is False
    with pytest.raises(StoreUnavailable) as caught:
        publisher.publish([event("m1")], "webhook", SENDER)
    assert caught.value.status == 503 and caught.value.retry_after_s == 5


def test_nothing_to_publish_touches_nothing() -> None:
    client = fakeredis.FakeRedis()
    publisher = Publisher(client, load_settings({}), "default")
    assert publisher.publish([], "webhook", SENDER) == PublishResult(0, 0)
    assert client.keys() == []


def test_ensure_streams_on_fakeredis() -> None:
    # fakeredis runs Lua only with `lupa`; the script itself is tested on the real Redis above.
    client = fakeredis.FakeRedis(decode_responses=True)
    publisher = Publisher(client, load_settings({"PUSHWOOSH_SHARDS": "2"}), "default")
    assert publisher.try_ensure_streams() is True
    keys = RedisKeys("pwf", "default")
    assert client.exists(keys.stream(0), keys.stream(1)) == 2
    assert publisher.backlog() == 0


def test_one_senders_message_ids_never_suppress_anothers_events(
    redis_url: str, key_prefix: str, keys: RedisKeys, redis_client: redis.Redis
) -> None:
    publisher = Publisher(redis_client, make_settings(redis_url, key_prefix), "default")
    # Given an attacker who posts the order id a real sender will use later
    assert publisher.publish([event("order-1001")], "v1/batch", "write:attacker") == (
        PublishResult(1, 0)
    )
    # Then the real event is still stored, and each sender's repeat is still dropped
    assert publisher.publish([event("order-1001")], "v1/batch", SENDER) == PublishResult(1, 0)
    assert publisher.publish([event("order-1001")], "v1/batch", SENDER) == PublishResult(0, 1)
    assert publisher.publish([event("order-1001")], "v1/batch", "write:attacker") == (
        PublishResult(0, 1)
    )


def test_fingerprints_are_packed_integer_sets_of_about_eight_bytes_each(
    redis_url: str, key_prefix: str, keys: RedisKeys, redis_client: redis.Redis
) -> None:
    # Given 20,000 events
    publisher = Publisher(redis_client, make_settings(redis_url, key_prefix), "default")
    for start in range(0, 20_000, 500):
        batch = [event(f"fp-{i}") for i in range(start, start + 500)]
        assert publisher.publish(batch, "v1/batch", SENDER).accepted == 500
    # Then their fingerprints sit in packed integer sets (Redis' intset encoding) ...
    buckets = seen_keys(redis_client, keys)
    encodings = {redis_client.object("encoding", key) for key in buckets}
    assert encodings == {"intset"}
    members = sum(redis_client.scard(key) for key in buckets)
    assert members == 20_000
    # ... whose values cost about 8 bytes a fingerprint, plus each set's own overhead (the
    # buckets are sized for hundreds of members each; at 20 per bucket the overhead shows).
    bytes_used = sum(redis_client.memory_usage(key) for key in buckets)
    values = sum(redis_client.scard(key) * 8 for key in buckets)
    overhead_per_set = (bytes_used - values) / len(buckets)
    assert overhead_per_set < 120, overhead_per_set


def test_a_generation_gets_as_many_buckets_as_the_last_one_needed(
    redis_url: str, key_prefix: str, keys: RedisKeys, redis_client: redis.Redis
) -> None:
    # Given a previous generation that held a million fingerprints
    settings = make_settings(redis_url, key_prefix)
    sizes = keys.shard(0).seen_sizes
    generation = int(redis_client.time()[0]) // generation_s(settings.dedupe_window_s)
    redis_client.hset(sizes, f"n:{generation - 1}", 1_000_000)
    # When the current generation starts
    Publisher(redis_client, settings, "default").publish([event("x")], "v1/batch", SENDER)
    # Then it spreads its fingerprints over enough buckets for ~256 each
    assert redis_client.hget(sizes, f"b:{generation}") == "4096"
    (bucket,) = seen_keys(redis_client, keys)
    assert f":seen:{generation}:4096:" in bucket

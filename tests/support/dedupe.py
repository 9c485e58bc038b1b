"""Looking into the dedupe store from tests: is a (sender, messageId) fingerprint stored?"""

from __future__ import annotations

import redis

from config.redis_keys import RedisKeys
from ingest.dedupe import fingerprint


def seen_keys(client: redis.Redis, keys: RedisKeys, shard: int = 0) -> list[str]:
    prefix = keys.shard(shard).seen_prefix
    return [k if isinstance(k, str) else k.decode() for k in client.scan_iter(f"{prefix}*")]


def is_seen(
    client: redis.Redis, keys: RedisKeys, sender: str, message_id: str, shard: int = 0
) -> bool:
    fp = fingerprint(sender, message_id)
    return any(client.sismember(key, fp) for key in seen_keys(client, keys, shard))

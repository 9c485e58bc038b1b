"""Put accepted events on the Redis Streams: all or nothing, deduplicated, under a backlog cap.

One Lua script (store/lua/publish.lua) does the whole request atomically: it measures the
backlog, decides which events are new, and only then writes. So a request is stored entirely or
not at all, the dedupe marker and the stream entry are written together, and two concurrent
requests with the same messageId cannot both get through.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import redis

from config import fastjson
from config.redis_keys import CONSUMER_GROUP, RedisKeys, shard_of
from config.settings import Settings
from ingest.dedupe import bucket_hash, fingerprint, generation_s
from ingest.errors import QueueFull, StoreUnavailable
from ingest.memory import MemoryGuard
from store import scripts

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PublishResult:
    """What one request did: events written, and events dropped as already seen."""

    accepted: int
    duplicates: int


REPLICA_ACK_TIMEOUT_MS = 1000


class Publisher:
    """Writes events of one destination to its shard streams."""

    def __init__(self, client: redis.Redis, settings: Settings, destination: str) -> None:
        self._redis = client
        self._settings = settings
        self._keys = RedisKeys(settings.redis_key_prefix, destination)
        self._shard_keys = [self._keys.shard(shard) for shard in range(settings.shards)]
        self._streams = [shard.stream for shard in self._shard_keys]
        self._generation_s = generation_s(settings.dedupe_window_s)
        self._memory = MemoryGuard(client, settings.redis_memory_headroom)
        self._script = scripts.script(client, "publish")
        self._streams_ready = False

    def ensure_streams(self) -> None:
        """Create the consumer group on every shard stream (and the stream); idempotent."""
        for stream in self._streams:
            try:
                self._redis.xgroup_create(stream, CONSUMER_GROUP, id="0", mkstream=True)
            except redis.ResponseError as ex:
                if "BUSYGROUP" not in str(ex):
                    raise
        self._streams_ready = True

    def try_ensure_streams(self) -> bool:
        """ensure_streams at start-up, where Redis being away must not stop the server."""
        try:
            self.ensure_streams()
        except redis.RedisError as ex:
            logger.warning("could not create the consumer groups yet, will retry: %s", ex)
            return False
        return True

    def backlog(self) -> int:
        """Events waiting on all shard streams of this destination."""
        with self._redis.pipeline(transaction=False) as pipe:
            for stream in self._streams:
                pipe.xlen(stream)
            return sum(int(n) for n in pipe.execute())

    def ping(self) -> bool:
        return bool(self._redis.ping())

    @property
    def shards(self) -> int:
        return len(self._streams)

    def publish(self, events: list[dict[str, Any]], route: str, sender: str) -> PublishResult:
        """Store every event or none; raise QueueFull or StoreUnavailable when none were.

        `sender` names the credential that sent them: repeats are recognised per sender, so
        one sender's messageIds never suppress another's events.
        """
        items = [
            (shard_of(event, len(self._streams)), str(event["messageId"]), fastjson.dumps(event))
            for event in events
        ]
        return self.publish_encoded(items, route, sender)

    def publish_encoded(
        self,
        items: list[tuple[int, str, bytes]],
        route: str,
        sender: str,
        max_queued: int | None = None,
    ) -> PublishResult:
        """`publish` for events already placed and encoded: (shard, messageId, JSON) each."""
        if not items:
            return PublishResult(0, 0)
        keys: list[str] = [*self._streams, *(shard.seen_sizes for shard in self._shard_keys)]
        args: list[str | int | bytes] = [
            len(self._streams),
            max_queued or self._settings.ingest_max_queued_events,
            self._settings.dedupe_window_s,
            self._generation_s,
            route,
            *(shard.seen_prefix for shard in self._shard_keys),
        ]
        for shard, message_id, encoded in items:
            fp = fingerprint(sender, message_id)
            args += [shard + 1, fp, bucket_hash(fp), encoded]
        try:
            self._memory.check(sum(len(encoded) for _, _, encoded in items))
            if not self._streams_ready:
                self.ensure_streams()
            written, other, acked = self._run(keys, args)
        except (redis.ConnectionError, redis.TimeoutError) as ex:
            logger.warning("Redis unavailable, %d events not stored: %s", len(items), ex)
            raise StoreUnavailable("the event store is unavailable; retry later") from ex
        except redis.RedisError as ex:
            # OOM, READONLY replica, LOADING...: nothing was written, and a retry may succeed.
            logger.error("Redis refused %d events: %s", len(items), ex)
            raise StoreUnavailable("the event store refused the write; retry later") from ex
        if int(written) < 0:
            logger.warning(
                "queue full: %d events waiting, limit %d; %d events refused",
                int(other),
                self._settings.ingest_max_queued_events,
                len(items),
            )
            raise QueueFull(
                f"the queue holds {int(other)} events, the limit is "
                f"{self._settings.ingest_max_queued_events}; retry later"
            )
        wanted = self._settings.redis_min_replicas_ack
        # Also when every event was a repeat: the first copy may not have reached a replica yet
        # (its request got a 503 for that), and a 200 now would promise what Redis did not.
        if wanted and acked < wanted:
            logger.warning("%d events not replicated to %d replicas in time", len(items), wanted)
            raise StoreUnavailable("the event store could not replicate the events; retry later")
        return PublishResult(int(written), int(other))

    def _run(self, keys: list[str], args: list[str | int | bytes]) -> tuple[int, int, int]:
        """Run the script; with REDIS_MIN_REPLICAS_ACK, WAIT for replicas on the same connection.

        With replicas (Sentinel), 200 is answered only once a replica has the events too: Redis
        replicates asynchronously, and a failover would otherwise drop acknowledged events. If
        the replicas are too slow, 503 makes the sender retry; dedupe makes the retry harmless
        when the first copy survived, and stores it again when it did not.
        """
        wanted = self._settings.redis_min_replicas_ack
        if not wanted:
            written, other = self._script(keys=keys, args=args)
            return int(written), int(other), 0
        pipe = self._redis.pipeline(transaction=False)  # one connection: WAIT is per connection
        self._script(keys=keys, args=args, client=pipe)
        pipe.wait(wanted, REPLICA_ACK_TIMEOUT_MS)
        (written, other), acked = pipe.execute()
        return int(written), int(other), int(acked)

"""Put accepted events on the Redis Streams: deduplicated, under a backlog cap.

On one Redis, one Lua script (store/lua/publish.lua) does the whole request atomically: it
measures the backlog, decides which events are new, and only then writes. So a request is stored
entirely or not at all, the dedupe marker and the stream entry are written together, and two
concurrent requests with the same messageId cannot both get through.

On a Redis Cluster the shards of one destination live on several nodes, and no script or
transaction spans nodes. The same script then runs once per shard the request touches, each run
atomic on its node (its shard's dedupe markers share the stream's slot), all in one pipelined
round trip per node. The request is answered 200 only when every shard's write succeeded;
otherwise some shards may hold their part, and the sender's retry (which every Segment client
makes on 429/503) writes the rest while the dedupe recognises what is already there: each event
is stored exactly once. The backlog cap is then checked per shard, against an even share of
INGEST_MAX_QUEUED_EVENTS, so the whole backlog stays under the cap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

import redis
from redis.exceptions import RedisClusterException

from config import fastjson
from config.redis_keys import CONSUMER_GROUP, RedisKeys, shard_of
from config.settings import Settings
from ingest.dedupe import bucket_hash, fingerprint, generation_s
from ingest.errors import QueueFull, StoreUnavailable
from ingest.memory import MemoryGuard
from store import async_lane, scripts
from store.client import MemoryReader, is_cluster

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PublishResult:
    """What one request did: events written, and events dropped as already seen."""

    accepted: int
    duplicates: int


REPLICA_ACK_TIMEOUT_MS = 1000

Arg = str | int | bytes


class Publisher:
    """Writes events of one destination to its shard streams."""

    def __init__(self, client: redis.Redis, settings: Settings, destination: str) -> None:
        self._redis = client
        self._settings = settings
        self._keys = RedisKeys(settings.redis_key_prefix, destination)
        self._shard_keys = [self._keys.shard(shard) for shard in range(settings.shards)]
        self._streams = [shard.stream for shard in self._shard_keys]
        self._generation_s = generation_s(settings.dedupe_window_s)
        self._memory = MemoryGuard(MemoryReader(client), settings.redis_memory_headroom)
        self._per_shard = is_cluster(client)
        self._script = scripts.script(client, "publish", direct=True)
        self._lane = async_lane.for_client(client)
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
        return self.publish_encoded(self._encode(events), route, sender)

    async def publish_async(
        self, events: list[dict[str, Any]], route: str, sender: str
    ) -> PublishResult:
        """`publish` for an event loop: through the lane on a plain Redis, else in a thread.

        The lane serves the common case (one Redis, no replica acknowledgement asked for).
        A cluster's per-shard writes and the WAIT for replicas keep redis-py's client, run
        in a thread so the loop serves other requests meanwhile.
        """
        lane = self._lane
        if lane is None or self._settings.redis_min_replicas_ack or not self._streams_ready:
            return await asyncio.to_thread(self.publish, events, route, sender)
        items = self._encode(events)
        if not items:
            return PublishResult(0, 0)
        try:
            incoming = sum(len(encoded) for _, _, encoded in items)
            if self._memory.due(incoming):
                self._memory.update(parse_info(await lane.execute("INFO", "memory")))
            self._memory.admit(incoming)
            keys, args = self._single_call(items, route, sender, self._limit(None))
            written, other = await lane.evalsha(self._script.sha, self._script.text, keys, args)
        except (redis.ConnectionError, redis.TimeoutError) as ex:
            raise _unavailable(ex, len(items)) from ex
        except redis.RedisError as ex:
            raise _refused(ex, len(items)) from ex
        return self._result(int(written), int(other), 0, len(items))

    def _encode(self, events: list[dict[str, Any]]) -> list[tuple[int, str, bytes]]:
        shards = len(self._streams)
        return [
            (shard_of(event, shards), str(event["messageId"]), fastjson.dumps(event))
            for event in events
        ]

    def _limit(self, max_queued: int | None) -> int:
        return max_queued or self._settings.ingest_max_queued_events

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
        limit = self._limit(max_queued)
        try:
            self._memory.check(sum(len(encoded) for _, _, encoded in items))
            if not self._streams_ready:
                self.ensure_streams()
            if self._per_shard:
                return self._publish_per_shard(items, route, sender, limit)
            keys, args = self._single_call(items, route, sender, limit)
            written, other, acked = self._run(keys, args)
        except (redis.ConnectionError, redis.TimeoutError) as ex:
            raise _unavailable(ex, len(items)) from ex
        except (redis.RedisError, RedisClusterException) as ex:
            raise _refused(ex, len(items)) from ex
        return self._result(written, other, acked, len(items))

    def _single_call(
        self, items: list[tuple[int, str, bytes]], route: str, sender: str, limit: int
    ) -> tuple[list[str], list[Arg]]:
        """The publish script's keys and arguments for the whole request, on one Redis."""
        keys = [*self._streams, *(shard.seen_sizes for shard in self._shard_keys)]
        args = self._script_args(range(len(self._streams)), limit, route)
        for shard, message_id, encoded in items:
            args += self._event_args(shard + 1, sender, message_id, encoded)
        return keys, args

    def _result(self, written: int, other: int, acked: int, events: int) -> PublishResult:
        """What the script's reply means for the request: stored, or why not."""
        if written < 0:
            logger.warning(
                "queue full: %d events waiting, limit %d; %d events refused",
                other,
                self._settings.ingest_max_queued_events,
                events,
            )
            raise QueueFull(
                f"the queue holds {other} events, the limit is "
                f"{self._settings.ingest_max_queued_events}; retry later"
            )
        wanted = self._settings.redis_min_replicas_ack
        # Also when every event was a repeat: the first copy may not have reached a replica yet
        # (its request got a 503 for that), and a 200 now would promise what Redis did not.
        if wanted and acked < wanted:
            logger.warning("%d events not replicated to %d replicas in time", events, wanted)
            raise StoreUnavailable("the event store could not replicate the events; retry later")
        return PublishResult(written, other)

    def _script_args(self, shards: Iterable[int], limit: int, route: str) -> list[Arg]:
        """The script's leading arguments for these shards (0-based), before the events."""
        prefixes = [self._shard_keys[shard].seen_prefix for shard in shards]
        window, generation = self._settings.dedupe_window_s, self._generation_s
        return [len(prefixes), limit, window, generation, route, *prefixes]

    @staticmethod
    def _event_args(position: int, sender: str, message_id: str, encoded: bytes) -> list[Arg]:
        """One event's arguments: its shard's position among the script's (1-based) and more."""
        fp = fingerprint(sender, message_id)
        return [position, fp, bucket_hash(fp), encoded]

    def _publish_per_shard(
        self, items: list[tuple[int, str, bytes]], route: str, sender: str, limit: int
    ) -> PublishResult:
        """One script per shard (a cluster): 200 only when every shard's write succeeded."""
        by_shard: dict[int, list[Arg]] = {}
        for shard, message_id, encoded in items:
            by_shard.setdefault(shard, []).extend(self._event_args(1, sender, message_id, encoded))
        share = -(-limit // len(self._streams))  # every shard under its share: all under limit
        pipe = self._redis.pipeline(transaction=False)
        for shard, events in by_shard.items():
            keys = [self._streams[shard], self._shard_keys[shard].seen_sizes]
            self._script(
                keys=keys, args=self._script_args([shard], share, route) + events, client=pipe
            )
        replies = pipe.execute(raise_on_error=False)
        return self._settle_shards(list(by_shard), replies, len(items))

    def _settle_shards(self, shards: list[int], replies: list[Any], events: int) -> PublishResult:
        written = duplicates = 0
        failed: list[tuple[int, BaseException]] = []
        full: list[tuple[int, int]] = []
        for shard, reply in zip(shards, replies, strict=True):
            if isinstance(reply, BaseException):
                failed.append((shard, reply))
            elif int(reply[0]) < 0:
                full.append((shard, int(reply[1])))
            else:
                written, duplicates = written + int(reply[0]), duplicates + int(reply[1])
        if not failed and not full:
            return PublishResult(written, duplicates)
        logger.warning(
            "%d of %d events stored, on %d of %d shards; not stored on shards %s: %s. The "
            "sender's retry stores the rest (what is stored now counts as a repeat then)",
            written, events, len(shards) - len(failed) - len(full), len(shards),
            sorted(shard for shard, _ in failed + full),
            "; ".join([f"{shard}: {ex}" for shard, ex in failed]
                      + [f"{shard}: {n} queued, over its share" for shard, n in full]),
        )  # fmt: skip
        if failed:
            raise StoreUnavailable("the event store did not take every event; retry later")
        raise QueueFull(
            f"a shard holds {max(n for _, n in full)} events, over its share of the "
            f"{self._settings.ingest_max_queued_events} limit; retry later"
        )

    def _run(self, keys: list[str], args: list[Arg]) -> tuple[int, int, int]:
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


def _unavailable(ex: BaseException, events: int) -> StoreUnavailable:
    logger.warning("Redis unavailable, %d events not stored: %s", events, ex)
    return StoreUnavailable("the event store is unavailable; retry later")


def _refused(ex: BaseException, events: int) -> StoreUnavailable:
    # OOM, READONLY replica, LOADING...: nothing was written, and a retry may succeed.
    logger.error("Redis refused %d events: %s", events, ex)
    return StoreUnavailable("the event store refused the write; retry later")


def parse_info(raw: bytes) -> dict[str, str]:
    """An INFO reply's `field:value` lines (what redis-py's client parses for `info()`)."""
    fields = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition(":")
        if sep and not name.startswith("#"):
            fields[name] = value
    return fields

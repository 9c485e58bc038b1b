"""Every Redis key and Celery name the fleet uses, in this one place, so no two parts disagree.

Everything one shard's drain touches in a step lives under one hash tag, `{<prefix>:<dest>:<n>}`,
so the unit of work that settles a step (XACK/XDEL, dead letters, retries, counters) is one
script call on one Redis Cluster slot, and a shard's owner can fence it with its lease.

Per shard (prefix `pwf`, destination `default`, shard 0):
  {pwf:default:0}:stream        Redis Stream of accepted events, field `e` = event JSON,
                                field `src` = ingest route; consumer group `pwf`
  {pwf:default:0}:seen:<g>:<B>:<b>  dedupe fingerprints of generation g, bucket b of B
                                (ingest/dedupe.py); sizes in {pwf:default:0}:seen-sizes
  {pwf:default:0}:lease         which drain task owns the shard right now (token, PX ttl)
  {pwf:default:0}:retry         ZSET retry id -> due time (ms); records in ...:retry-data,
                                the users each one holds up in ...:holds
  {pwf:default:0}:dlq           Redis Stream of dead-lettered calls (bounded)
  {pwf:default:0}:stats         HASH: delivered, requests, retried, skipped, rejected,
                                dead_lettered since the start
  {pwf:default:0}:minutes:<h>   HASH "<minute>:<measure>" -> count for epoch hour h (kept a day)
Per destination:
  pwf:default:queued:<shard>    a drain task for the shard is already on the Celery queue
  {pwf:default}:circuit         HASH: open_until_ms, failures, reason (shared back-off);
                                {pwf:default}:circuit:probe, the one probe allowed when it
                                passes (one slot: they change in one transaction)
  pwf:default:rate-limit        HASH: the shared token buckets (worker/ratelimit.py)
  pwf:default:last-error        the last Pushwoosh error, for `status`
  pwf:default:errors:<h>        HASH of failed calls by kind for epoch hour h (kept a day): per
                                kind n:/e:/t:/s:<kind> = calls, events, last time, one sample
                                (key masked); at most 50 kinds (telemetry/error_groups.py)
Per fleet:
  {pwf:trace:<yyyymmddhh>}      HASH messageId -> NDJSON history, one per hour, and its size in
                                {pwf:trace:<yyyymmddhh>}:bytes (telemetry/trace.py)
  pwf:workers                   ZSET worker node name -> its pump's last heartbeat (ms)
  pwf:celery:*                  Celery's own keys (kombu's global_keyprefix); queue `pwf.drain`
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping
from typing import Any, Final

CONSUMER_GROUP: Final = "pwf"


@dataclasses.dataclass(frozen=True)
class ShardKeys:
    """The keys of one shard: one hash tag, so one Redis Cluster slot."""

    tag: str
    shard: int

    @property
    def stream(self) -> str:
        return f"{self.tag}:stream"

    @property
    def seen_prefix(self) -> str:
        """The start of every dedupe bucket key; the publish script adds `<g>:<B>:<b>`."""
        return f"{self.tag}:seen:"

    @property
    def seen_sizes(self) -> str:
        """HASH generation -> how many fingerprints it holds (sizes the next one's buckets)."""
        return f"{self.tag}:seen-sizes"

    @property
    def lease(self) -> str:
        return f"{self.tag}:lease"

    @property
    def retry(self) -> str:
        return f"{self.tag}:retry"

    @property
    def retry_data(self) -> str:
        return f"{self.tag}:retry-data"

    @property
    def holds(self) -> str:
        return f"{self.tag}:holds"

    @property
    def dlq(self) -> str:
        return f"{self.tag}:dlq"

    @property
    def stats(self) -> str:
        return f"{self.tag}:stats"

    def minutes(self, epoch_hour: int) -> str:
        """HASH "<epoch minute>:<measure>" -> count, for one hour (expires after a day)."""
        return f"{self.tag}:minutes:{epoch_hour}"


@dataclasses.dataclass(frozen=True)
class RedisKeys:
    """The keys of one destination under one prefix."""

    prefix: str
    destination: str

    @property
    def base(self) -> str:
        return f"{self.prefix}:{self.destination}"

    def shard(self, shard: int) -> ShardKeys:
        return ShardKeys(f"{{{self.prefix}:{self.destination}:{shard}}}", shard)

    def stream(self, shard: int) -> str:
        return self.shard(shard).stream

    def queued(self, shard: int) -> str:
        return f"{self.base}:queued:{shard}"

    @property
    def circuit(self) -> str:
        return f"{{{self.base}}}:circuit"

    @property
    def circuit_probe(self) -> str:
        return f"{{{self.base}}}:circuit:probe"

    @property
    def rate_limit(self) -> str:
        return f"{self.base}:rate-limit"

    @property
    def last_error(self) -> str:
        return f"{self.base}:last-error"

    def errors(self, epoch_hour: int) -> str:
        """HASH of one hour's failed calls by kind, each with one sample (expires after a day)."""
        return f"{self.base}:errors:{epoch_hour}"


def trace_bucket(prefix: str, hour: str) -> str:
    """One hour's event history (hour as yyyymmddhh, UTC); shared by every destination."""
    return f"{{{prefix}:trace:{hour}}}"


def trace_bucket_bytes(prefix: str, hour: str) -> str:
    """What one hour's history holds, in bytes (same slot as the hour's hash)."""
    return f"{{{prefix}:trace:{hour}}}:bytes"


def worker_heartbeats(prefix: str) -> str:
    """Each worker's last pump heartbeat (ms), by node name; shared by every destination."""
    return f"{prefix}:workers"


def celery_queue(prefix: str) -> str:
    """The Celery queue drain tasks go through."""
    return f"{prefix}.drain"


def celery_key_prefix(prefix: str) -> str:
    """kombu's global_keyprefix: Celery's keys and channels of one fleet, apart from any other
    fleet (or test) on the same Redis."""
    return f"{prefix}:celery:"


def identity_of(event: Mapping[str, Any]) -> str | None:
    """Whose event it is: userId, else anonymousId, as text (numeric ids are common)."""
    identity = event.get("userId")
    if identity is None or identity == "":
        identity = event.get("anonymousId")
    if identity is None or identity == "":
        return None
    return str(identity)


def shard_for(identity: str | None, shards: int) -> int:
    """The shard of an identity: all events of one user go to one shard, so stay in order."""
    if shards <= 1 or not identity:
        return 0
    return zlib.crc32(identity.encode("utf-8")) % shards


def shard_of(event: Mapping[str, Any], shards: int) -> int:
    """The shard an event belongs on; the one rule ingest, replays and deletions all use."""
    return shard_for(identity_of(event), shards)

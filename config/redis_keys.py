"""Every Redis key and Celery name the fleet uses, in this one place, so no two parts disagree.

Layout (prefix `pwf`, destination `default`):
  pwf:default:stream:<shard>   Redis Stream of accepted events, field `e` = event JSON,
                               field `src` = ingest route; consumer group `pwf`
  pwf:default:seen:<messageId> dedupe marker, set together with the XADD (same script)
  pwf:default:lease:<shard>    which drain task owns a shard right now (token, PX ttl)
  pwf:default:queued:<shard>   a drain task for the shard is already on the Celery queue
  pwf:default:retry            ZSET call id -> due time (ms); data in pwf:default:retry-data
  pwf:default:dlq              Redis Stream of dead-lettered calls
  pwf:default:circuit          HASH: open_until_ms, failures, reason (shared back-off);
                               pwf:default:circuit:probe, the one probe allowed when it passes
  pwf:default:rate-limit       HASH: the shared token buckets (worker/ratelimit.py)
  pwf:default:stats            HASH: delivered, requests, retried, rejected, dead_lettered
  pwf:default:delivered:<min>  events delivered in one minute (epoch minutes), for `status`
  pwf:default:last-error       the last Pushwoosh error, for `status`
  pwf:trace:<yyyymmddhh>       HASH messageId -> NDJSON history, one per hour (telemetry/trace.py)
  pwf:workers                  ZSET worker node name -> its pump's last heartbeat (ms)
  pwf:celery:*                 Celery's own keys (kombu's global_keyprefix); queue `pwf.drain`
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping
from typing import Any, Final

CONSUMER_GROUP: Final = "pwf"
# How long a minute's delivered count is kept: `status` shows this minute and the one before.
DELIVERED_MINUTE_TTL_S: Final = 180


@dataclasses.dataclass(frozen=True)
class RedisKeys:
    """The keys of one destination under one prefix."""

    prefix: str
    destination: str

    @property
    def base(self) -> str:
        return f"{self.prefix}:{self.destination}"

    def stream(self, shard: int) -> str:
        return f"{self.base}:stream:{shard}"

    def seen(self, message_id: str) -> str:
        return f"{self.base}:seen:{message_id}"

    def lease(self, shard: int) -> str:
        return f"{self.base}:lease:{shard}"

    def queued(self, shard: int) -> str:
        return f"{self.base}:queued:{shard}"

    @property
    def retry(self) -> str:
        return f"{self.base}:retry"

    @property
    def retry_data(self) -> str:
        return f"{self.base}:retry-data"

    @property
    def dlq(self) -> str:
        return f"{self.base}:dlq"

    @property
    def circuit(self) -> str:
        return f"{self.base}:circuit"

    @property
    def circuit_probe(self) -> str:
        return f"{self.base}:circuit:probe"

    @property
    def rate_limit(self) -> str:
        return f"{self.base}:rate-limit"

    @property
    def stats(self) -> str:
        return f"{self.base}:stats"

    def delivered_minute(self, epoch_minute: int) -> str:
        return f"{self.base}:delivered:{epoch_minute}"

    @property
    def last_error(self) -> str:
        return f"{self.base}:last-error"


def trace_bucket(prefix: str, hour: str) -> str:
    """One hour's event history (hour as yyyymmddhh, UTC); shared by every destination."""
    return f"{prefix}:trace:{hour}"


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

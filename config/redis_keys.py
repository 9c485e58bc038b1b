"""Every Redis key the fleet uses, in one place, so ingest and workers cannot disagree.

Layout (prefix `pwf`, destination `default`):
  pwf:default:stream:<shard>   Redis Stream of accepted events, field `e` = event JSON,
                               field `src` = ingest route; consumer group `pwf`
  pwf:default:seen:<messageId> dedupe marker, set together with the XADD (same script)
  pwf:default:lease:<shard>    which drain task owns a shard right now (token, PX ttl)
  pwf:default:queued:<shard>   a drain task for the shard is already on the Celery queue
  pwf:default:retry            ZSET call id -> due time (ms); data in pwf:default:retry-data
  pwf:default:dlq              Redis Stream of dead-lettered calls
  pwf:default:circuit          HASH: open_until_ms, failures, reason (shared back-off)
  pwf:default:rate-limit       HASH: the shared token buckets (worker/ratelimit.py)
  pwf:default:metrics:<name>   HASH per metric, a field per label set (fleet/metrics.py)
  pwf:default:last-error       the last Pushwoosh error, for `status`
  pwf:trace:<yyyymmddhh>       HASH messageId -> NDJSON history, one per hour (fleet/trace.py)
"""

from __future__ import annotations

import dataclasses

CONSUMER_GROUP = "pwf"
DEFAULT_DESTINATION = "default"


@dataclasses.dataclass(frozen=True)
class RedisKeys:
    prefix: str = "pwf"
    destination: str = DEFAULT_DESTINATION

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
    def rate_limit(self) -> str:
        return f"{self.base}:rate-limit"

    @property
    def stats(self) -> str:
        return f"{self.base}:stats"


def shard_for(identity: str | None, shards: int) -> int:
    """Pick the shard of an event: all events of one user go to one shard, so stay in order."""
    if shards <= 1 or not identity:
        return 0
    import zlib

    return zlib.crc32(identity.encode("utf-8")) % shards

"""The retry schedule: requests waiting to be tried again, kept in Redis, not in a worker.

A ZSET maps each record's id to when it is due (ms) and a HASH holds the records. A drain task
claims due records by pushing their due time to a claim deadline, sends them and settles each
(delivered, parked again, dead-lettered) in its unit of work. Nothing depends on Celery
countdowns or a worker's memory, so an outage of any length holds no retries in a process.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any, Final

import redis

from config.redis_keys import RedisKeys
from store import scripts
from worker.batcher import Outgoing
from worker.batching import PlannedRequest

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RetryRecord:
    """One request on the retry schedule; the only form retries are written and read in."""

    id: str
    request: PlannedRequest
    accepted_ms: tuple[int, ...]  # one per event of the request
    attempts: int
    last_status: int | None = None
    last_reason: str = ""
    replayed_from: str | None = None  # the dead letter it came from, when replayed

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "id": self.id,
            "request": self.request.to_dict(),
            "entry_times_ms": list(self.accepted_ms),
            "attempts": self.attempts,
            "last_status": self.last_status,
            "last_reason": self.last_reason,
        }
        if self.replayed_from is not None:
            data["replayed_from"] = self.replayed_from
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, retry_id: str, raw: str) -> RetryRecord:
        """Read a stored record; ValueError (or KeyError) when it is not one."""
        data = json.loads(raw)
        request = PlannedRequest.from_dict(data["request"])
        times = tuple(int(t) for t in data.get("entry_times_ms") or ())
        if len(times) != len(request.message_ids):
            if not times:
                raise ValueError("a retry record needs the acceptance time of its events")
            times = (min(times),) * len(request.message_ids)
        return cls(
            id=retry_id,
            request=request,
            accepted_ms=times,
            attempts=int(data.get("attempts", 0)),
            last_status=data.get("last_status"),
            last_reason=str(data.get("last_reason") or ""),
            replayed_from=data.get("replayed_from"),
        )

    @classmethod
    def of(
        cls, out: Outgoing, retry_id: str, attempts: int, status: int | None, reason: str
    ) -> RetryRecord:
        return cls(retry_id, out.request, out.accepted_ms, attempts, status, reason)

    def outgoing(self) -> Outgoing:
        return Outgoing(
            request=self.request,
            entry_ids=(),
            accepted_ms=self.accepted_ms,
            attempts=self.attempts,
            retry_id=self.id,
        )


# Records claimed per round: a round is sent, then settled, before the next one is claimed.
RETRIES_PER_ROUND: Final = 20


class RetrySchedule:
    def __init__(self, client: redis.Redis, keys: RedisKeys) -> None:
        self._client = client
        self._keys = keys
        self._claim = scripts.script(client, "retry_claim")

    def claim_due(self, now_ms: int, claim_until_ms: int) -> list[RetryRecord]:
        """Due records, earliest first; unreadable or vanished ones are dropped from the ZSET."""
        ids = self._claim(keys=[self._keys.retry], args=[now_ms, claim_until_ms, RETRIES_PER_ROUND])
        if not ids:
            return []
        raws = self._client.hmget(self._keys.retry_data, ids)
        records: list[RetryRecord] = []
        for retry_id, raw in zip(ids, raws, strict=True):
            try:
                records.append(RetryRecord.from_json(retry_id, raw))
            except (TypeError, ValueError, KeyError):
                # Only something outside the fleet can write such a record: say so, drop it.
                logger.error("retry record %s is missing or unreadable; dropped", retry_id)
                self._client.zrem(self._keys.retry, retry_id)
                self._client.hdel(self._keys.retry_data, retry_id)
        return records

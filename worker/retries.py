"""The retry schedule of one shard: requests waiting to be tried again, in Redis, not in a worker.

A ZSET maps each record's id to when it is due (ms), a HASH holds the records, and the shard's
`holds` hash says which (action, user) pairs each one holds up (worker/holds.py). All three
live under the shard's hash tag and only the shard's lease holder touches them, so a record is
never sent by two tasks at once; the drain's unit of work writes and removes records together
with the stream entries they settle. Nothing depends on Celery countdowns or a worker's memory,
so an outage of any length holds no retries in a process.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any, Final

import redis

from config.redis_keys import ShardKeys
from store import scripts
from worker.batcher import Outgoing
from worker.batching import PlannedRequest
from worker.holds import pairs_of

logger = logging.getLogger(__name__)

# Records sent per round: a round is sent, then settled, before the next one is read.
RETRIES_PER_ROUND: Final = 100


@dataclasses.dataclass(frozen=True)
class RetryRecord:
    """One request on the retry schedule; the only form retries are written and read in."""

    id: str
    request: PlannedRequest
    accepted_ms: tuple[int, ...]  # one per event of the request
    attempts: int
    last_status: int | None = None
    last_reason: str = ""
    order: str = ""  # where its oldest event stood in the stream
    replayed_from: str | None = None  # the dead letter it came from, when replayed

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "id": self.id,
            "request": self.request.to_dict(),
            "entry_times_ms": list(self.accepted_ms),
            "attempts": self.attempts,
            "last_status": self.last_status,
            "last_reason": self.last_reason,
            "order": self.order,
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
            order=str(data.get("order") or ""),
            replayed_from=data.get("replayed_from"),
        )

    @classmethod
    def of(
        cls, out: Outgoing, retry_id: str, attempts: int, status: int | None, reason: str
    ) -> RetryRecord:
        return cls(retry_id, out.request, out.accepted_ms, attempts, status, reason, out.order)

    @property
    def pairs(self) -> tuple[str, ...]:
        return pairs_of(self.request)

    def outgoing(self) -> Outgoing:
        return Outgoing(
            request=self.request,
            entry_ids=(),
            accepted_ms=self.accepted_ms,
            attempts=self.attempts,
            retry_id=self.id,
            order=self.order,
        )


class RetrySchedule:
    """Reads one shard's retry schedule (its lease holder's unit of work writes it)."""

    def __init__(self, client: redis.Redis, keys: ShardKeys) -> None:
        self._client = client
        self._keys = keys
        # Asked every drain step, mostly to learn there is nothing due: through the client's
        # lane, which costs a fraction of redis-py's layers.
        self._lane = scripts.lane_for(client)

    def due(self, now_ms: int) -> list[RetryRecord]:
        """Due records, earliest due first; unreadable or vanished ones are dropped."""
        if self._lane is not None:
            ids = self._lane.execute(
                "ZRANGEBYSCORE", self._keys.retry, "-inf", now_ms, "LIMIT", 0, RETRIES_PER_ROUND
            )
        else:
            ids = self._client.zrangebyscore(
                self._keys.retry, "-inf", now_ms, start=0, num=RETRIES_PER_ROUND
            )
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
                pipe = self._client.pipeline(transaction=True)
                pipe.zrem(self._keys.retry, retry_id)
                pipe.hdel(self._keys.retry_data, retry_id)
                pipe.hdel(self._keys.holds, retry_id)
                pipe.execute()
        return records

    def holds(self) -> tuple[dict[str, str], dict[str, float]]:
        """The shard's holds hash (retry id -> encoded order and pairs) and its schedule."""
        pipe = self._client.pipeline(transaction=False)
        pipe.hgetall(self._keys.holds)
        pipe.zrange(self._keys.retry, 0, -1, withscores=True)
        stored, schedule = pipe.execute()
        return dict(stored), dict(schedule)

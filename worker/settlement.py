"""The unit of work of a drain: what one step settled, written to Redis in one transaction.

Entries stay pending in the stream's consumer group until every call made from them is settled:
delivered, dead-lettered or parked on the retry schedule. `Settlement` collects those outcomes,
then `commit` writes the dead letters, the retry records, the counters and the XACK/XDEL of the
entries they settle in one MULTI/EXEC: all of them or none. A worker that dies at any point
leaves its entries pending, and the next owner of the shard reads them again (at least once).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis

from config.redis_keys import CONSUMER_GROUP, DELIVERED_MINUTE_TTL_S, RedisKeys
from worker.dlq import DeadLetter, reason_code
from worker.retries import RetryRecord


class Settlement:
    def __init__(self, keys: RedisKeys, stream: str) -> None:
        self._keys = keys
        self._stream = stream
        self._outstanding: dict[str, int] = {}  # entry -> its calls not settled yet
        self._acks: list[str] = []
        self._dead_letters: list[DeadLetter] = []
        self._scheduled: list[tuple[RetryRecord, int]] = []
        self._unscheduled: list[str] = []
        self._stats: dict[str, int] = {}
        self._delivered_by_minute: dict[int, int] = {}

    def __bool__(self) -> bool:
        return bool(
            self._acks
            or self._dead_letters
            or self._scheduled
            or self._unscheduled
            or self._stats
            or self._delivered_by_minute
        )

    # -- stream entries ----------------------------------------------------------------------
    def expect(self, entry_id: str, calls: int) -> None:
        """An entry made `calls` calls; it is acknowledged when the last one is settled."""
        self._outstanding[entry_id] = calls

    def ack(self, entry_id: str) -> None:
        """An entry with nothing (left) to send."""
        self._acks.append(entry_id)

    def settle(self, entry_ids: Iterable[str]) -> None:
        """One call of each of these entries is settled."""
        for entry_id in entry_ids:
            left = self._outstanding.get(entry_id, 1) - 1
            if left <= 0:
                self._outstanding.pop(entry_id, None)
                self._acks.append(entry_id)
            else:
                self._outstanding[entry_id] = left

    # -- outcomes ------------------------------------------------------------------------------
    def delivered(self, events: int, now_ms: int) -> None:
        self.count("delivered", events)
        self.count("requests", 1)
        minute = now_ms // 60_000
        self._delivered_by_minute[minute] = self._delivered_by_minute.get(minute, 0) + events

    def dead_letter(self, letter: DeadLetter) -> None:
        self._dead_letters.append(letter)
        self.count("dead_lettered", len(letter.message_ids) or 1)
        if reason_code(letter) in ("mapping_rejected", "mapping_error"):
            self.count("rejected", 1)

    def schedule(self, record: RetryRecord, due_ms: int) -> None:
        self._scheduled.append((record, due_ms))
        self.count("retried", len(record.request.message_ids))

    def unschedule(self, retry_id: str) -> None:
        self._unscheduled.append(retry_id)

    def count(self, field: str, amount: int) -> None:
        self._stats[field] = self._stats.get(field, 0) + amount

    # -- writing ---------------------------------------------------------------------------------
    def commit(self, client: redis.Redis) -> bool:
        """Write everything collected in one transaction; False when there was nothing."""
        if not self:
            return False
        keys = self._keys
        pipe = client.pipeline(transaction=True)
        for retry_id in self._unscheduled:
            pipe.zrem(keys.retry, retry_id)
            pipe.hdel(keys.retry_data, retry_id)
        for record, due_ms in self._scheduled:
            pipe.hset(keys.retry_data, record.id, record.to_json())
            pipe.zadd(keys.retry, {record.id: due_ms})
        for letter in self._dead_letters:
            pipe.xadd(keys.dlq, {"d": letter.to_json()})
        self._write_counters(pipe)
        if self._acks:
            pipe.xack(self._stream, CONSUMER_GROUP, *self._acks)
            pipe.xdel(self._stream, *self._acks)
        pipe.execute()
        self._clear()
        return True

    def _write_counters(self, pipe: Any) -> None:
        for field, amount in self._stats.items():
            pipe.hincrby(self._keys.stats, field, amount)
        for minute, events in self._delivered_by_minute.items():
            key = self._keys.delivered_minute(minute)
            pipe.incrby(key, events)
            pipe.expire(key, DELIVERED_MINUTE_TTL_S)

    def _clear(self) -> None:
        self._acks.clear()
        self._dead_letters.clear()
        self._scheduled.clear()
        self._unscheduled.clear()
        self._stats.clear()
        self._delivered_by_minute.clear()

"""The unit of work of a drain: what one step settled, written to Redis in one transaction.

Entries stay pending in the stream's consumer group until every call made from them is settled:
delivered, skipped, dead-lettered or parked on the retry schedule. `Settlement` collects those
outcomes, then `commit` writes the dead letters, the retry records and their holds, the
counters and the XACK/XDEL of the entries they settle in one MULTI/EXEC: all of them or none,
and only while the drain still holds the shard's lease (the transaction WATCHes it and checks
the token, so a task that lost its lease settles nothing). Every key it writes is the shard's
(one hash tag). A worker that dies at any point leaves its entries pending, and the next owner
of the shard reads them again (at least once).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any, Final

import redis

from config.redis_keys import CONSUMER_GROUP, ShardKeys
from worker.dlq import DeadLetter
from worker.holds import encode
from worker.lease import Lease, LeaseLost
from worker.retries import RetryRecord

# Per-minute counters are kept for a day and an hour (the delivery page shows the last day).
MINUTES_TTL_S: Final = 25 * 3600
# Pushwoosh latency buckets (ms) of the per-minute histogram.
LATENCY_BUCKETS_MS: Final = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


def latency_bucket(elapsed_s: float) -> str:
    ms = elapsed_s * 1000
    index = bisect.bisect_left(LATENCY_BUCKETS_MS, ms)
    return str(LATENCY_BUCKETS_MS[index]) if index < len(LATENCY_BUCKETS_MS) else "inf"


class Settlement:
    def __init__(self, keys: ShardKeys, dlq_max_entries: int, dlq_retention_ms: int) -> None:
        self._keys = keys
        self._dlq_max_entries = dlq_max_entries
        self._dlq_retention_ms = dlq_retention_ms
        self._outstanding: dict[str, int] = {}  # entry -> its calls not settled yet
        self._acks: list[str] = []
        self._dead_letters: list[DeadLetter] = []
        self._scheduled: list[tuple[RetryRecord, int]] = []
        self._rescheduled: dict[str, int] = {}
        self._unscheduled: list[str] = []
        self._stats: dict[str, int] = {}
        self._minutes: dict[tuple[int, str], int] = {}

    def __bool__(self) -> bool:
        return bool(
            self._acks
            or self._dead_letters
            or self._scheduled
            or self._rescheduled
            or self._unscheduled
            or self._stats
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
    def sent(self, events: int, elapsed_s: float, now_ms: int) -> None:
        """A request went out (whatever came back)."""
        self.count("requests", 1, now_ms)
        self.count("sent_events", events, now_ms)
        self._minute(now_ms, "lat:" + latency_bucket(elapsed_s), 1)

    def delivered(self, events: int, now_ms: int) -> None:
        self.count("delivered", events, now_ms)

    def skipped(self, reason: str, now_ms: int) -> None:
        """An event that is not sent, by design (no user id, switched off by integrations)."""
        self.count("skipped", 1, now_ms)
        self.count(f"skipped:{reason}", 1, now_ms)

    def dead_letter(self, letter: DeadLetter, now_ms: int) -> None:
        self._dead_letters.append(letter)
        self.count("dead_lettered", len(letter.message_ids) or 1, now_ms)
        if letter.kind == "rejected":
            self.count("rejected", 1, now_ms)

    def schedule(self, record: RetryRecord, due_ms: int, now_ms: int, retried: bool = True) -> None:
        """Put a record on the schedule; `retried` False for a call only waiting its turn."""
        self._scheduled.append((record, due_ms))
        if retried:
            self.count("retried", len(record.request.message_ids), now_ms)

    def reschedule(self, retry_id: str, due_ms: int) -> None:
        """Move a record's due time (it stays as it is otherwise)."""
        self._rescheduled[retry_id] = due_ms

    def unschedule(self, retry_id: str) -> None:
        self._unscheduled.append(retry_id)

    def count(self, field: str, amount: int, now_ms: int) -> None:
        self._stats[field] = self._stats.get(field, 0) + amount
        self._minute(now_ms, field, amount)

    def _minute(self, now_ms: int, measure: str, amount: int) -> None:
        key = (now_ms // 60_000, measure)
        self._minutes[key] = self._minutes.get(key, 0) + amount

    # -- writing ---------------------------------------------------------------------------------
    def commit(self, client: redis.Redis, lease: Lease, now_ms: int) -> bool:
        """Write everything in one transaction while the lease is ours; False when there was
        nothing. LeaseLost (and nothing written) when another task may own the shard now."""
        if not self:
            return False
        with client.pipeline(transaction=True) as pipe:
            pipe.watch(lease.key)
            if pipe.get(lease.key) != lease.token:
                raise LeaseLost(lease.key)
            pipe.multi()
            self._write_schedule(pipe)
            self._write_dead_letters(pipe, now_ms)
            self._write_counters(pipe)
            if self._acks:
                pipe.xack(self._keys.stream, CONSUMER_GROUP, *self._acks)
                pipe.xdel(self._keys.stream, *self._acks)
            try:
                pipe.execute()
            except redis.WatchError as ex:
                raise LeaseLost(lease.key) from ex
        self._clear()
        return True

    def _write_schedule(self, pipe: Any) -> None:
        keys = self._keys
        for retry_id in self._unscheduled:
            pipe.zrem(keys.retry, retry_id)
            pipe.hdel(keys.retry_data, retry_id)
            pipe.hdel(keys.holds, retry_id)
        for record, due_ms in self._scheduled:
            pipe.hset(keys.retry_data, record.id, record.to_json())
            pipe.hset(keys.holds, record.id, encode(record.order, record.pairs))
            pipe.zadd(keys.retry, {record.id: due_ms})
        if self._rescheduled:
            pipe.zadd(keys.retry, self._rescheduled, xx=True)

    def _write_dead_letters(self, pipe: Any, now_ms: int) -> None:
        if not self._dead_letters:
            return
        # Trimmed exactly: dead letters are few, and the bound is a promise (README).
        for letter in self._dead_letters:
            pipe.xadd(
                self._keys.dlq,
                {"d": letter.to_json()},
                maxlen=self._dlq_max_entries,
                approximate=False,
            )
        pipe.xtrim(self._keys.dlq, minid=now_ms - self._dlq_retention_ms, approximate=False)

    def _write_counters(self, pipe: Any) -> None:
        for field, amount in self._stats.items():
            pipe.hincrby(self._keys.stats, field, amount)
        hours: set[str] = set()
        for (minute, measure), amount in self._minutes.items():
            key = self._keys.minutes(minute // 60)
            pipe.hincrby(key, f"{minute}:{measure}", amount)
            hours.add(key)
        for key in hours:
            pipe.expire(key, MINUTES_TTL_S)

    def _clear(self) -> None:
        self._acks.clear()
        self._dead_letters.clear()
        self._scheduled.clear()
        self._rescheduled.clear()
        self._unscheduled.clear()
        self._stats.clear()
        self._minutes.clear()

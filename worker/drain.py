"""Draining one shard: read events from its stream, map them, batch them, send them, settle them.

One drain task holds a shard's lease at a time, so a shard is read and sent in order. Entries
stay pending in the consumer group until every call made from them is settled: delivered,
dead-lettered or parked on the retry schedule. The dead-letter and retry writes go to Redis in
the same transaction as the XACK/XDEL of the entries they settle, so a worker that dies at any
point leaves its entries pending, and the next owner of the shard reads them again (at least
once: a call delivered just before a crash may be sent twice).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from config import fastjson
from config.redis_keys import CONSUMER_GROUP
from worker.batching import PlannedRequest, plan_requests, split_request
from worker.circuit import Circuit
from worker.dlq import DeadLetter, add_to_pipeline
from worker.errors import AuthenticationFailed, DeliveryError, RetryableDeliveryError
from worker.lease import Lease, LeaseLost
from worker.mapping import Call, plan_calls
from worker.observer import GuardedObserver
from worker.pushwoosh import Reply
from worker.ratelimit import SharedRateLimit
from worker.retry import classify, retry_delay_s
from worker.runtime import Runtime

logger = logging.getLogger(__name__)

# A drain task owns its shard under one fixed consumer name: the lease makes it exclusive, and a
# new owner finds what a dead one left pending simply by reading this consumer's history.
CONSUMER_NAME = "shard-owner"
IDLE_WAIT_MS = 1000
RETRIES_PER_ROUND = 20
DRY_RUN_APP_CODE = "DRYRN-00000"

Write = Callable[[Any], None]


def entry_time_ms(entry_id: str) -> int:
    """A stream entry id starts with the time Redis stored it: the event's acceptance time."""
    return int(entry_id.split("-", 1)[0])


@dataclasses.dataclass(frozen=True)
class Outgoing:
    """A planned request plus what delivery needs to know about it."""

    request: PlannedRequest
    entry_ids: tuple[str, ...]  # stream entries it settles (empty for a retry)
    entry_times_ms: tuple[int, ...]  # acceptance time of each element
    attempts: int = 0
    retry_id: str | None = None

    @property
    def size(self) -> int:
        return len(self.request.message_ids)

    @property
    def first_accepted_ms(self) -> int:
        return min(self.entry_times_ms) if self.entry_times_ms else int(time.time() * 1000)

    def split(self) -> tuple[Outgoing, Outgoing]:
        left, right = split_request(self.request)
        cut = len(left.message_ids)
        return (
            dataclasses.replace(
                self,
                request=left,
                entry_ids=self.entry_ids[:cut],
                entry_times_ms=self.entry_times_ms[:cut],
                retry_id=None,
            ),
            dataclasses.replace(
                self,
                request=right,
                entry_ids=self.entry_ids[cut:],
                entry_times_ms=self.entry_times_ms[cut:],
                retry_id=None,
            ),
        )

    def retry_record(self, retry_id: str, attempts: int, error: DeliveryError | None) -> str:
        return json.dumps(
            {
                "id": retry_id,
                "request": self.request.to_dict(),
                "entry_times_ms": list(self.entry_times_ms),
                "attempts": attempts,
                "last_status": error.status if error else None,
                "last_reason": error.reason if error else "waiting for the circuit to close",
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_retry_record(cls, retry_id: str, raw: str) -> Outgoing:
        data = json.loads(raw)
        request = PlannedRequest.from_dict(data["request"])
        times = tuple(data.get("entry_times_ms") or [int(time.time() * 1000)])
        if len(times) != len(request.message_ids):
            times = (min(times),) * len(request.message_ids)
        return cls(
            request=request,
            entry_ids=(),
            entry_times_ms=times,
            attempts=int(data.get("attempts", 0)),
            retry_id=retry_id,
        )


@dataclasses.dataclass
class DrainReport:
    shard: int
    entries: int = 0
    requests: int = 0
    delivered: int = 0
    parked: int = 0
    dead_lettered: int = 0
    rejected: int = 0
    unmatched: int = 0
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, 0)} | {
            "shard": self.shard
        }


_CLAIM_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return due
"""


class ShardDrainer:
    def __init__(
        self,
        runtime: Runtime,
        shard: int,
        *,
        rng: random.Random | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self._rt = runtime
        self._settings = runtime.settings
        self._redis: redis.Redis = runtime.redis
        self._keys = runtime.keys
        self._stream = self._keys.stream(shard)
        self._rng = rng or random.Random()
        self._should_stop = should_stop
        self._circuit = Circuit(self._redis, self._keys.circuit, self._settings, self._rng)
        self._lease = Lease(self._redis, self._keys.lease(shard), self._settings.drain_lease_s)
        self._claim_due = self._redis.register_script(_CLAIM_DUE)
        self._rate_limit = SharedRateLimit(
            self._redis,
            self._keys.rate_limit,
            self._settings.rate_limit_requests_per_s,
            self._settings.rate_limit_events_per_s,
            self._settings.rate_limit_recovery_per_s,
        )
        self._observer = GuardedObserver(runtime.observer)
        self._app_code = self._settings.pushwoosh_application_code or DRY_RUN_APP_CODE
        self._max_events = self._settings.batch_max_events
        self._flush_delay_ms = int(self._settings.batch_flush_delay_s * 1000)
        self._buffers: dict[str, list[tuple[str, int, Call]]] = {}
        self._outstanding: dict[str, int] = {}
        self._acks: list[str] = []
        self._writes: list[Write] = []
        self.report = DrainReport(shard)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> DrainReport:
        if not self._lease.acquire():
            self.report.skipped = "another drain task holds this shard"
            return self.report
        try:
            self._ensure_group()
            self._run_slice()
            self._flush(force=True, caught_up=True)
            self._commit()
        except LeaseLost:
            logger.warning(
                "lost the lease on %s; stopping (its pending events stay pending)", self._stream
            )
            self._commit()
        finally:
            self._lease.release()
        return self.report

    def _ensure_group(self) -> None:
        try:
            self._redis.xgroup_create(self._stream, CONSUMER_GROUP, id="0", mkstream=True)
        except redis.ResponseError as ex:
            if "BUSYGROUP" not in str(ex):
                raise

    def _run_slice(self) -> None:
        deadline = time.monotonic() + self._settings.drain_slice_s
        history_from: str | None = "0"  # first, what a previous owner left pending
        while not self._should_stop() and time.monotonic() < deadline:
            self._lease.renew()
            self._retry_due()
            if self._circuit.open_until_ms(time.time()) > time.time() * 1000:
                break  # Pushwoosh is failing: leave new events in the stream until it recovers
            if history_from is not None:
                entries = self._read(history_from, block_ms=0)
                if not entries:
                    history_from = None
                    continue
                history_from = entries[-1][0]
                caught_up = False
            else:
                entries = self._read(">", block_ms=self._block_ms(deadline))
                caught_up = len(entries) < self._max_events
            self._take(entries)
            self._flush(force=False, caught_up=caught_up)
            self._commit()
            if not entries and not self._buffers and caught_up:
                break  # idle: the pump starts a new drain when events arrive

    def _read(self, start: str, block_ms: int) -> list[tuple[str, dict[str, str] | None]]:
        kwargs: dict[str, Any] = {"count": self._max_events}
        if block_ms > 0:
            kwargs["block"] = block_ms
        result = self._redis.xreadgroup(
            CONSUMER_GROUP, CONSUMER_NAME, {self._stream: start}, **kwargs
        )
        return list(result[0][1]) if result else []

    def _block_ms(self, deadline: float) -> int:
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            return 0
        if not self._buffers:
            return min(IDLE_WAIT_MS, remaining_ms)
        oldest_ms = min(buffer[0][1] for buffer in self._buffers.values())
        wait_ms = oldest_ms + self._flush_delay_ms - int(time.time() * 1000)
        return max(0, min(wait_ms, remaining_ms))

    # -- mapping and batching ----------------------------------------------------------------
    def _take(self, entries: list[tuple[str, dict[str, str] | None]]) -> None:
        for entry_id, fields in entries:
            self.report.entries += 1
            if not fields or "e" not in fields:
                self._acks.append(entry_id)  # deleted under us: nothing left to deliver
                continue
            try:
                event = fastjson.loads(fields["e"])
                if not isinstance(event, dict):
                    raise ValueError("not an object")
            except (ValueError, RecursionError):
                self._reject_unreadable(entry_id, fields["e"])
                continue
            # plan_calls turns whatever goes wrong with one event into a rejection of it.
            calls, rejections = plan_calls(event, self._rt.mappings, self._app_code)
            self._observer.on_mapped(event, entry_id, fields.get("src", ""), calls)
            for rejection in rejections:
                self._dead_letter_rejection(event, rejection, entry_id)
            if not calls:
                if not rejections:
                    self.report.unmatched += 1
                self._acks.append(entry_id)
                continue
            self._outstanding[entry_id] = len(calls)
            accepted_ms = entry_time_ms(entry_id)
            for call in calls:
                if call.batchable:
                    buffer = self._buffers.setdefault(call.mapping, [])
                    buffer.append((entry_id, accepted_ms, call))
                    if len(buffer) >= self._max_events:
                        self._send_buffered(call.mapping, self._max_events)
                else:
                    self._attempt(self._outgoing([(entry_id, accepted_ms, call)]))

    def _flush(self, *, force: bool, caught_up: bool) -> None:
        now_ms = int(time.time() * 1000)
        for mapping in list(self._buffers):
            buffer = self._buffers[mapping]
            while len(buffer) >= self._max_events:
                self._send_buffered(mapping, self._max_events)
            aged = caught_up and now_ms - buffer[0][1] >= self._flush_delay_ms if buffer else False
            if buffer and (force or aged):
                self._send_buffered(mapping, len(buffer))
            if not self._buffers.get(mapping):
                self._buffers.pop(mapping, None)

    def _send_buffered(self, mapping: str, count: int) -> None:
        buffer = self._buffers[mapping]
        chunk, self._buffers[mapping] = buffer[:count], buffer[count:]
        self._attempt(self._outgoing(chunk))

    def _outgoing(self, items: list[tuple[str, int, Call]]) -> Outgoing:
        requests = plan_requests([call for _, _, call in items], self._max_events)
        # One mapping, at most max_events calls: plan_requests packs them into one request.
        assert len(requests) == 1, requests
        return Outgoing(
            request=requests[0],
            entry_ids=tuple(entry_id for entry_id, _, _ in items),
            entry_times_ms=tuple(accepted for _, accepted, _ in items),
        )

    # -- delivery ----------------------------------------------------------------------------
    def _attempt(self, out: Outgoing) -> None:
        if not self._circuit.allows_send():
            self._park(out, None, out.attempts, self._circuit.open_until_ms(time.time()))
            return
        self._lease.renew()
        self._rate_limit.acquire(out.size, keep_alive=self._lease.renew)
        reply: Reply = self._rt.sender.send(out.request.path, out.request.body)
        self.report.requests += 1
        now_s = time.time()
        error = classify(reply.status, reply.body, reply.headers, reply.transport_error, now_s)
        attempts = out.attempts + 1
        if error is None:
            self._observer.on_attempt(out.request, reply, "delivered", attempts)
            self._circuit.record_success()
            self._delivered(out)
        elif isinstance(error, RetryableDeliveryError):
            if error.status == 429:
                self._rate_limit.slow_down()
            open_until_ms = self._circuit.record_failure(error)
            if self._exhausted(out, attempts, now_s):
                self._observer.on_attempt(out.request, reply, "dead_letter", attempts)
                self._dead_letter(out, error, attempts, reply, gave_up=True)
            else:
                self._observer.on_attempt(out.request, reply, "retry", attempts)
                self._park(out, error, attempts, open_until_ms)
        elif isinstance(error, AuthenticationFailed):
            self._observer.on_attempt(out.request, reply, "auth_failed", attempts)
            self._circuit.record_failure(error)
            self._dead_letter(out, error, attempts, reply)
        elif error.status == 400 and out.size > 1:
            self._observer.on_attempt(out.request, reply, "split", attempts)
            # A poisoned batch: split it and send the halves, so only the bad events are
            # dead-lettered (with Pushwoosh's own reason) and the good ones are delivered.
            left, right = out.split()
            if out.retry_id:
                self._remove_retry(out.retry_id)
            self._attempt(left)
            self._attempt(right)
        else:
            self._observer.on_attempt(out.request, reply, "dead_letter", attempts)
            self._dead_letter(out, error, attempts, reply)

    def _exhausted(self, out: Outgoing, attempts: int, now_s: float) -> bool:
        age_s = now_s - out.first_accepted_ms / 1000
        return (
            attempts >= self._settings.retry_max_attempts or age_s >= self._settings.retry_max_age_s
        )

    def _delivered(self, out: Outgoing) -> None:
        self.report.delivered += out.size
        keys = self._keys
        minute = int(time.time() // 60)
        size = out.size

        def write(pipe: Any) -> None:
            pipe.hincrby(keys.stats, "delivered", size)
            pipe.hincrby(keys.stats, "requests", 1)
            pipe.incrby(f"{keys.base}:delivered:{minute}", size)
            pipe.expire(f"{keys.base}:delivered:{minute}", 180)

        self._writes.append(write)
        if out.retry_id:
            self._remove_retry(out.retry_id)
        self._settle(out.entry_ids)

    def _park(
        self, out: Outgoing, error: DeliveryError | None, attempts: int, not_before_ms: int
    ) -> None:
        retry_after = error.retry_after_s if isinstance(error, RetryableDeliveryError) else None
        delay_s = retry_delay_s(
            max(0, attempts - 1),
            retry_after,
            self._settings.retry_base_delay_s,
            self._settings.retry_max_delay_s,
            self._rng,
        )
        now_ms = int(time.time() * 1000)
        due_ms = max(now_ms + int(delay_s * 1000), not_before_ms)
        retry_id = uuid.uuid4().hex
        record = out.retry_record(retry_id, attempts, error)
        keys = self._keys
        size = out.size

        def write(pipe: Any) -> None:
            pipe.hset(keys.retry_data, retry_id, record)
            pipe.zadd(keys.retry, {retry_id: due_ms})
            pipe.hincrby(keys.stats, "retried", size)

        self._writes.append(write)
        self._observer.on_parked(
            out.request, due_ms, attempts, error.reason if error else "waiting for the back-off"
        )
        self.report.parked += out.size
        if out.retry_id:
            self._remove_retry(out.retry_id)
        self._settle(out.entry_ids)

    def _dead_letter(
        self,
        out: Outgoing,
        error: DeliveryError,
        attempts: int,
        reply: Reply,
        *,
        gave_up: bool = False,
    ) -> None:
        now_ms = int(time.time() * 1000)
        reason = error.reason
        if gave_up:
            reason = f"gave up after {attempts} attempts: {reason}"
        letter = DeadLetter(
            kind="failed",
            mapping=out.request.mapping,
            action=out.request.action,
            path=out.request.path,
            status=error.status,
            reason=reason,
            reply=reply.body,
            attempts=attempts,
            first_attempt_ms=out.first_accepted_ms,
            last_attempt_ms=now_ms,
            message_ids=list(out.request.message_ids),
            request=out.request.to_dict(),
            destination=self._rt.destination,
        )
        keys = self._keys
        self._writes.append(lambda pipe: add_to_pipeline(pipe, keys, letter))
        self._observer.on_dead_lettered(letter)
        self.report.dead_lettered += out.size
        logger.warning(
            "dead-lettered %d event(s) of %s (%s): %s",
            out.size,
            out.request.action,
            out.request.path,
            reason,
        )
        if out.retry_id:
            self._remove_retry(out.retry_id)
        self._settle(out.entry_ids)

    def _dead_letter_rejection(self, event: dict[str, Any], rejection: Any, entry_id: str) -> None:
        now_ms = int(time.time() * 1000)
        letter = DeadLetter(
            kind="rejected",
            mapping=rejection.mapping,
            action=rejection.action,
            path="",
            status=None,
            reason=rejection.reason,
            reply="",
            attempts=0,
            first_attempt_ms=entry_time_ms(entry_id),
            last_attempt_ms=now_ms,
            message_ids=[rejection.message_id],
            event=event,
            destination=self._rt.destination,
            code=rejection.code,
        )
        keys = self._keys
        self._writes.append(lambda pipe: add_to_pipeline(pipe, keys, letter))
        self._writes.append(lambda pipe: pipe.hincrby(keys.stats, "rejected", 1))
        self._observer.on_rejected(rejection)
        self._observer.on_dead_lettered(letter)
        self.report.rejected += 1

    def _reject_unreadable(self, entry_id: str, raw: str) -> None:
        letter = DeadLetter(
            kind="rejected",
            mapping="",
            action="",
            path="",
            status=None,
            reason="stored event is not a JSON object",
            reply=raw[:200],
            attempts=0,
            first_attempt_ms=entry_time_ms(entry_id),
            last_attempt_ms=int(time.time() * 1000),
            message_ids=[],
            destination=self._rt.destination,
        )
        keys = self._keys
        self._writes.append(lambda pipe: add_to_pipeline(pipe, keys, letter))
        self._acks.append(entry_id)

    def _remove_retry(self, retry_id: str) -> None:
        keys = self._keys

        def write(pipe: Any) -> None:
            pipe.zrem(keys.retry, retry_id)
            pipe.hdel(keys.retry_data, retry_id)

        self._writes.append(write)

    def _settle(self, entry_ids: tuple[str, ...]) -> None:
        for entry_id in entry_ids:
            left = self._outstanding.get(entry_id, 1) - 1
            if left <= 0:
                self._outstanding.pop(entry_id, None)
                self._acks.append(entry_id)
            else:
                self._outstanding[entry_id] = left

    def _commit(self) -> None:
        """Write dead letters, retries and acks in one transaction: all of them or none."""
        if not self._writes and not self._acks:
            return
        pipe = self._redis.pipeline(transaction=True)
        for write in self._writes:
            write(pipe)
        if self._acks:
            pipe.xack(self._stream, CONSUMER_GROUP, *self._acks)
            pipe.xdel(self._stream, *self._acks)
        pipe.execute()
        self._writes.clear()
        self._acks.clear()
        self._observer.flush()

    # -- the retry schedule -----------------------------------------------------------------
    def _retry_due(self) -> None:
        now_ms = int(time.time() * 1000)
        if self._circuit.open_until_ms(now_ms / 1000) > now_ms:
            return
        claim_until_ms = now_ms + int(self._settings.drain_lease_s * 1000)
        due = self._claim_due(
            keys=[self._keys.retry], args=[now_ms, claim_until_ms, RETRIES_PER_ROUND]
        )
        for retry_id in due:
            raw = self._redis.hget(self._keys.retry_data, retry_id)
            if raw is None:
                self._redis.zrem(self._keys.retry, retry_id)
                continue
            self._attempt(Outgoing.from_retry_record(retry_id, raw))
        self._commit()

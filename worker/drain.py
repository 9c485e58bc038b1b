"""Draining one shard: read events from its stream, map them, batch them, send them, settle them.

The loop only wires the parts: the lease (one drain task per shard, so a shard is sent in
order), the mapper (`plan_calls`), the batcher, the policy (`classify` then `decide`), the
shared back-off and rate limit, the retry schedule with its per-user holds, and the unit of
work (`Settlement`) that writes each step's outcomes with the XACK/XDEL of the entries they
settle in one transaction fenced by the lease. Time is Redis' (`RedisClock`).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import uuid
from collections.abc import Callable
from typing import Any, Final

import redis

from config import fastjson
from config.redis_keys import CONSUMER_GROUP
from worker import dlq, policy
from worker.batcher import Batcher, Outgoing
from worker.batching import PlannedRequest
from worker.circuit import Circuit
from worker.clock import Clock, RedisClock
from worker.errors import AuthenticationFailed, DeliveryError, RetryableDeliveryError
from worker.holds import Holds, call_pairs, pairs_of
from worker.lease import Lease, LeaseLost
from worker.mapping import Rejection, plan_calls
from worker.observer import GuardedObserver
from worker.pushwoosh import Reply
from worker.ratelimit import SharedRateLimit
from worker.retries import RetryRecord, RetrySchedule
from worker.runtime import Runtime
from worker.settlement import Settlement

logger = logging.getLogger(__name__)

# A drain task owns its shard under one fixed consumer name: the lease makes it exclusive, and a
# new owner finds what a dead one left pending simply by reading this consumer's history.
CONSUMER_NAME: Final = "shard-owner"
IDLE_WAIT_MS: Final = 1000
# A parked call whose user still waits on an older one is looked at again this much later.
HOLD_RECHECK_MS: Final = 1000
# Below this much lease left, a send first renews the lease.
MIN_SEND_WINDOW_S: Final = 2.0
WAITING_FOR_BACKOFF: Final = "waiting for the back-off"
WAITING_FOR_USER: Final = "waiting behind an earlier call of the same user"
SKIP_CODES: Final = frozenset({"no_user_id"})
Entry = tuple[str, dict[str, str] | None]


def entry_time_ms(entry_id: str) -> int:
    """A stream entry id starts with the time Redis stored it: the event's acceptance time."""
    return int(entry_id.split("-", 1)[0])


@dataclasses.dataclass
class DrainReport:
    shard: int
    entries: int = 0
    requests: int = 0
    delivered: int = 0
    parked: int = 0
    dead_lettered: int = 0
    rejected: int = 0
    skipped: int = 0
    unmatched: int = 0
    not_started: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, 0)} | {
            "shard": self.shard
        }


def ensure_group(client: redis.Redis, stream: str) -> None:
    try:
        client.xgroup_create(stream, CONSUMER_GROUP, id="0", mkstream=True)
    except redis.ResponseError as ex:
        if "BUSYGROUP" not in str(ex):
            raise


class ShardDrainer:
    def __init__(
        self,
        runtime: Runtime,
        shard: int,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        settings, client = runtime.settings, runtime.redis
        keys = runtime.keys.shard(shard)
        self._rt, self._redis, self._keys = runtime, client, keys
        self._clock = clock or RedisClock(client)
        self._rng = rng or random.Random()
        self._should_stop = should_stop
        self._policy = policy.RetryPolicy.from_settings(settings)
        probe_ttl_s = settings.pushwoosh_timeout_s + 5
        self._circuit = Circuit(client, runtime.keys, self._policy, self._rng, probe_ttl_s)
        self._lease = Lease(client, keys.lease, settings.drain_lease_s)
        self._retries = RetrySchedule(client, keys)
        self._holds = Holds()
        self._rate_limit = SharedRateLimit(
            client, runtime.keys.rate_limit, settings.rate_limit_requests_per_s,
            settings.rate_limit_events_per_s, settings.rate_limit_recovery_per_s,
        )  # fmt: skip
        self._observer = GuardedObserver(runtime.observer)
        self._batcher = Batcher(settings.batch_max_events, int(settings.batch_flush_delay_s * 1000))
        dlq_per_shard = max(1, settings.dlq_max_entries // settings.shards)
        self._work = Settlement(keys, dlq_per_shard, settings.dlq_retention_s * 1000)
        self.report = DrainReport(shard)

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> DrainReport:
        if not self._lease.acquire():
            self.report.not_started = "another drain task holds this shard"
            return self.report
        try:
            ensure_group(self._redis, self._keys.stream)
            self._holds.load(*self._retries.holds())
            self._run_slice()
            self._send_all(self._batcher.flush())
            self._commit()
        except LeaseLost:
            # Nothing of this step was written; its entries stay pending for the next owner.
            logger.warning("lost the lease on %s; its pending events stay pending", self._keys.tag)
        finally:
            self._lease.release()
        return self.report

    def _run_slice(self) -> None:
        settings, clock = self._rt.settings, self._clock
        deadline = clock.monotonic_s() + settings.drain_slice_s
        history_from: str | None = "0"  # first, what a previous owner left pending
        while not self._should_stop() and clock.monotonic_s() < deadline:
            self._lease.renew()
            self._send_due_retries()
            now_ms = clock.now_ms()
            if self._circuit.open_until_ms(now_ms) > now_ms:
                break  # Pushwoosh is failing: leave new events in the stream until it recovers
            if history_from is not None:
                entries = self._read(history_from, block_ms=0)
                if not entries:
                    history_from = None
                    continue
                history_from, caught_up = entries[-1][0], False
            else:
                entries = self._read(">", block_ms=self._block_ms(deadline))
                caught_up = len(entries) < settings.batch_max_events
            self._take(entries)
            if caught_up:
                self._send_all(self._batcher.due(clock.now_ms()))
            self._commit()
            if not entries and not self._batcher and caught_up:
                break  # idle: the pump starts a new drain when events arrive

    def _read(self, start: str, block_ms: int) -> list[Entry]:
        count = self._rt.settings.batch_max_events
        kwargs: dict[str, Any] = (
            {"count": count, "block": block_ms} if block_ms else {"count": count}
        )
        stream = {self._keys.stream: start}
        result = self._redis.xreadgroup(CONSUMER_GROUP, CONSUMER_NAME, stream, **kwargs)
        return list(result[0][1]) if result else []

    def _block_ms(self, deadline_s: float) -> int:
        remaining_ms = int((deadline_s - self._clock.monotonic_s()) * 1000)
        wait_ms = self._batcher.wait_ms(self._clock.now_ms())
        return max(0, min(IDLE_WAIT_MS if wait_ms is None else wait_ms, remaining_ms))

    def _commit(self) -> None:
        if self._work.commit(self._redis, self._lease, self._clock.now_ms()):
            self._observer.flush()

    # -- mapping -------------------------------------------------------------------------------
    def _take(self, entries: list[Entry]) -> None:
        for entry_id, fields in entries:
            self.report.entries += 1
            raw, accepted_ms = (fields or {}).get("e"), entry_time_ms(entry_id)
            if raw is None:
                self._work.ack(entry_id)  # deleted under us: nothing left to deliver
                continue
            event = _parse(raw)
            if event is None:
                now_ms, destination = self._clock.now_ms(), self._rt.destination
                letter = dlq.unreadable_entry(
                    raw, accepted_ms=accepted_ms, now_ms=now_ms, destination=destination
                )
                self._work.dead_letter(letter, now_ms)
                self._work.ack(entry_id)
                continue
            plan = plan_calls(event, self._rt.mappings, self._rt.app_code)
            src = fields.get("src", "") if fields else ""
            self._observer.on_mapped(event, entry_id, src, plan.calls)
            skipped = plan.skipped is not None
            if skipped:
                self._skip(str(event.get("messageId", "")), plan.skipped or "")
            for rejection in plan.rejections:
                self._reject(event, rejection, accepted_ms)
            if not plan.calls:
                self.report.unmatched += not plan.rejections and not skipped
                self._work.ack(entry_id)
                continue
            self._work.expect(entry_id, len(plan.calls))
            for call in plan.calls:
                self._send_all(self._batcher.add(call, entry_id, accepted_ms))

    def _skip(self, message_id: str, reason: str) -> None:
        self._work.skipped(reason, self._clock.now_ms())
        self._observer.on_skipped(message_id, reason)
        self.report.skipped += 1

    def _reject(self, event: dict[str, Any], rejection: Rejection, accepted_ms: int) -> None:
        if rejection.code in SKIP_CODES:
            self._skip(rejection.message_id, rejection.code)
            return
        now_ms, destination = self._clock.now_ms(), self._rt.destination
        letter = dlq.rejected_event(
            event, rejection, accepted_ms=accepted_ms, now_ms=now_ms, destination=destination
        )
        self._work.dead_letter(letter, now_ms)
        self._observer.on_rejected(rejection)
        self._observer.on_dead_lettered(letter)
        self.report.rejected += 1

    # -- delivery ------------------------------------------------------------------------------
    def _send_all(self, requests: list[Outgoing]) -> None:
        for out in requests:
            self._send(out)

    def _send(self, out: Outgoing) -> None:
        if out.retry_id is None and self._holds:
            out = self._hold_back(out)
            if not out.size:
                return
        now_ms = self._clock.now_ms()
        if not self._circuit.allows_send(now_ms):
            due_ms = self._circuit.open_until_ms(now_ms)
            self._park(out, policy.Park(due_ms, WAITING_FOR_BACKOFF), out.attempts, None)
            return
        self._lease.renew(force=self._lease.remaining_s() < MIN_SEND_WINDOW_S)
        self._rate_limit.acquire(out.size, keep_alive=self._lease.renew)
        # Cut off before the lease could run out: no send outlives it (worker/lease.py).
        reply = self._rt.sender.send(out.request.path, out.request.body, self._lease.remaining_s())
        self.report.requests += 1
        now_ms = self._clock.now_ms()
        self._work.sent(out.size, reply.elapsed_s, now_ms)
        outcome = policy.classify(
            reply.status, reply.body, reply.headers, reply.transport_error, now_ms / 1000
        )
        opens_at_ms = self._note_outcome(outcome, now_ms)
        attempts = out.attempts + 1
        attempt = policy.Attempt(attempts, out.first_accepted_ms, out.size)
        action = policy.decide(outcome, attempt, now_ms, self._policy, self._rng)
        self._observer.on_attempt(out.request, reply, _OUTCOME_NAMES[type(action)], attempts)
        if isinstance(action, policy.Deliver):
            self.report.delivered += out.size
            self._work.delivered(out.size, now_ms)
            self._settle(out)
        elif isinstance(action, policy.Park):
            due = policy.Park(max(action.due_ms, opens_at_ms), action.reason)
            self._park(out, due, attempts, outcome)
        elif isinstance(action, policy.Split):
            self._unschedule(out)
            self._send_all(list(out.split()))
        else:  # DeadLetter, or Pause: the circuit took note of the credentials failure
            code = action.code if isinstance(action, policy.DeadLetter) else "auth_failed"
            self._dead_letter(out, code, action.reason, outcome, reply, attempts)

    def _hold_back(self, out: Outgoing) -> Outgoing:
        """Park the calls of users with an older call parked (they follow it, in stream order);
        return the rest, to send now."""
        pairs = call_pairs(out.request)
        waiting = [i for i, each in enumerate(pairs) if self._holds.is_held(each)]
        if not waiting:
            return out
        behind = out.take(waiting)
        due_ms = max(self._clock.now_ms(), self._holds.wait_until_ms(pairs_of(behind.request)))
        self._park(behind, policy.Park(due_ms, WAITING_FOR_USER), out.attempts, None, retried=False)
        free = [i for i in range(len(pairs)) if i not in set(waiting)]
        return out.take(free) if free else dataclasses.replace(out, request=_EMPTY, entry_ids=())

    def _note_outcome(self, outcome: DeliveryError | None, now_ms: int) -> int:
        """Tell the shared back-off and rate limit; returns when the back-off opens (or 0)."""
        if outcome is None:
            self._circuit.record_success()
            return 0
        if isinstance(outcome, RetryableDeliveryError):
            if outcome.status == 429:
                self._rate_limit.slow_down()
            return self._circuit.record_failure(outcome, now_ms)
        if isinstance(outcome, AuthenticationFailed):
            return self._circuit.record_failure(outcome, now_ms)
        return 0

    def _park(
        self,
        out: Outgoing,
        park: policy.Park,
        attempts: int,
        error: DeliveryError | None,
        *,
        retried: bool = True,
    ) -> None:
        """Put a request on the retry schedule; its stream entries are settled by that."""
        status = error.status if error else None
        # Ids start with the stream order, so records due together come out oldest first.
        retry_id = f"{out.order}:{uuid.uuid4().hex[:12]}"
        record = RetryRecord.of(out, retry_id, attempts, status, park.reason)
        self._unschedule(out)
        self._work.schedule(record, park.due_ms, self._clock.now_ms(), retried)
        self._holds.add(record.id, record.order, record.pairs, park.due_ms)
        self._observer.on_parked(out.request, park.due_ms, attempts, park.reason)
        self.report.parked += out.size
        self._work.settle(out.entry_ids)

    def _dead_letter(
        self, out: Outgoing, code: str, reason: str, error: DeliveryError | None,
        reply: Reply, attempts: int,
    ) -> None:  # fmt: skip
        now_ms = self._clock.now_ms()
        letter = dlq.failed_request(
            out, code=code, reason=reason, status=error.status if error else None,
            reply=reply.body, attempts=attempts, now_ms=now_ms, destination=self._rt.destination,
        )  # fmt: skip
        self._work.dead_letter(letter, now_ms)
        self._observer.on_dead_lettered(letter)
        self.report.dead_lettered += out.size
        logger.warning("dead-lettered %d event(s) of %s (%s): %s",
                       out.size, out.request.action, out.request.path, reason)  # fmt: skip
        self._settle(out)

    def _settle(self, out: Outgoing) -> None:
        self._unschedule(out)
        self._work.settle(out.entry_ids)

    def _unschedule(self, out: Outgoing) -> None:
        if out.retry_id:
            self._work.unschedule(out.retry_id)
            self._holds.remove(out.retry_id)

    # -- the retry schedule --------------------------------------------------------------------
    def _send_due_retries(self) -> None:
        now_ms = self._clock.now_ms()
        if self._circuit.open_until_ms(now_ms) > now_ms:
            return
        # Oldest first by stream order, so each user's calls go in the order they came.
        for record in sorted(self._retries.due(now_ms), key=lambda r: r.order):
            if self._holds.blocked(record.id):
                ahead_ms = self._holds.wait_until_ms(record.pairs, exclude=record.id)
                due_ms = max(ahead_ms, now_ms + HOLD_RECHECK_MS)
                self._work.reschedule(record.id, due_ms)
                self._holds.set_due(record.id, due_ms)
            else:
                self._send(record.outgoing())
        self._commit()


_EMPTY: Final = PlannedRequest("", {}, (), "", "")
_OUTCOME_NAMES: Final = {
    policy.Deliver: "delivered",
    policy.Park: "retry",
    policy.Split: "split",
    policy.DeadLetter: "dead_letter",
    policy.Pause: "auth_failed",
}


def _parse(raw: str) -> dict[str, Any] | None:
    try:
        event = fastjson.loads(raw)
    except (ValueError, RecursionError):
        return None
    return event if isinstance(event, dict) else None

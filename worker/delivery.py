"""Sending one shard's requests and acting on each reply: deliver, park, split or dead-letter.

`ShardDelivery` is the drain loop's sending half (worker/drain.py reads and maps). For each
request it checks the per-user holds (a user's calls go in order, so a call whose user has an
older call parked waits behind it), the shared back-off (worker/circuit.py) and rate limit, sends
with a deadline inside the lease, classifies the reply and lets `policy.decide` say what to do;
the outcomes go into the step's unit of work (`Settlement`), written with the entries they settle.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import uuid
from typing import Final

from telemetry.logs import maskable, redact
from worker import dlq, policy
from worker.batcher import Outgoing
from worker.batching import PlannedRequest
from worker.circuit import Circuit
from worker.clock import Clock
from worker.errors import AuthenticationFailed, DeliveryError, RetryableDeliveryError
from worker.holds import Holds, call_pairs, pairs_of
from worker.lease import Lease
from worker.observer import GuardedObserver
from worker.pushwoosh import Reply
from worker.ratelimit import SharedRateLimit
from worker.report import DrainReport
from worker.retries import RETRIES_PER_ROUND, RetryRecord, RetrySchedule
from worker.runtime import Runtime
from worker.settlement import Settlement

logger = logging.getLogger(__name__)

# A parked call whose user still waits on an older one is looked at again this much later.
HOLD_RECHECK_MS: Final = 1000
# The retry schedule is read at most this often (Redis time): every record this drain parks
# is looked at again from its due time on, and one written by someone else (a replay from the
# dead-letter queue) within this long. Reading it on every step was a round trip a step.
RETRY_LOOK_MS: Final = 100
# Below this much lease left, a send first renews the lease.
MIN_SEND_WINDOW_S: Final = 2.0
WAITING_FOR_BACKOFF: Final = "waiting for the back-off"
WAITING_FOR_USER: Final = "waiting behind an earlier call of the same user"


@dataclasses.dataclass
class StepParts:
    """What the reading and the sending halves of one drain share."""

    runtime: Runtime
    clock: Clock
    lease: Lease
    work: Settlement
    observer: GuardedObserver


class ShardDelivery:
    def __init__(
        self, parts: StepParts, report: DrainReport, retries: RetrySchedule, rng: random.Random
    ) -> None:
        runtime, settings, client = parts.runtime, parts.runtime.settings, parts.runtime.redis
        self._rt, self._clock, self._lease = runtime, parts.clock, parts.lease
        self._work, self._observer, self.report = parts.work, parts.observer, report
        self._retries = retries
        self._rng = rng
        self._policy = policy.RetryPolicy.from_settings(settings)
        probe_ttl_s = settings.pushwoosh_timeout_s + 5
        self.circuit = Circuit(client, runtime.keys, self._policy, rng, probe_ttl_s)
        self._holds = Holds()
        self._next_retry_look_ms = 0  # when to read the retry schedule next
        self._secrets = maskable(settings.secrets())
        self._rate_limit = SharedRateLimit(
            client, runtime.keys.rate_limit, settings.rate_limit_requests_per_s,
            settings.rate_limit_events_per_s, settings.rate_limit_recovery_per_s,
        )  # fmt: skip

    def load_holds(self) -> None:
        """Learn which users wait behind a parked call (from the schedule a previous owner left)."""
        self._holds.load(*self._retries.holds())

    def send_all(self, requests: list[Outgoing]) -> None:
        for out in requests:
            self._send(out)

    def _send(self, out: Outgoing) -> None:
        if out.retry_id is None and self._holds:
            out = self._hold_back(out)
            if not out.size:
                return
        now_ms = self._clock.now_ms()
        if not self.circuit.allows_send(now_ms):
            due_ms = self.circuit.open_until_ms(now_ms)
            self._park(out, policy.Park(due_ms, WAITING_FOR_BACKOFF), out.attempts, None)
            return
        self._lease.renew(force=self._lease.remaining_s() < MIN_SEND_WINDOW_S)
        self._rate_limit.acquire(out.size, keep_alive=self._lease.renew)
        # Cut off before the lease could run out: no send outlives it (worker/lease.py).
        request = out.request
        reply = self._rt.sender.send(
            request.path, request.body, self._lease.remaining_s(), data=request.encoded()
        )
        if reply.body:  # a reply quoting a secret back must not carry it anywhere we keep things
            reply = dataclasses.replace(reply, body=redact(reply.body, self._secrets))
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
            self.send_all(list(out.split()))
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
            self.circuit.record_success()
            return 0
        if isinstance(outcome, RetryableDeliveryError):
            if outcome.status == 429:
                self._rate_limit.slow_down()
            return self.circuit.record_failure(outcome, now_ms)
        if isinstance(outcome, AuthenticationFailed):
            return self.circuit.record_failure(outcome, now_ms)
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
        self._look_at_retries_by(park.due_ms)
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
            reply=reply.body, attempts=attempts, now_ms=now_ms,
            destination=self._rt.destination,
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
    def _look_at_retries_by(self, due_ms: int) -> None:
        self._next_retry_look_ms = min(self._next_retry_look_ms, due_ms)

    def send_due_retries(self) -> None:
        now_ms = self._clock.now_ms()
        if self.circuit.open_until_ms(now_ms) > now_ms or now_ms < self._next_retry_look_ms:
            return
        due = self._retries.due(now_ms)
        # A full round may leave more due: the next step looks again.
        self._next_retry_look_ms = now_ms + (RETRY_LOOK_MS if len(due) < RETRIES_PER_ROUND else 0)
        # Oldest first by stream order, so each user's calls go in the order they came.
        for record in sorted(due, key=lambda r: r.order):
            if self._holds.blocked(record.id):
                ahead_ms = self._holds.wait_until_ms(record.pairs, exclude=record.id)
                due_ms = max(ahead_ms, now_ms + HOLD_RECHECK_MS)
                self._work.reschedule(record.id, due_ms)
                self._holds.set_due(record.id, due_ms)
                self._look_at_retries_by(due_ms)
            else:
                self._send(record.outgoing())


_EMPTY: Final = PlannedRequest("", {}, (), "", "")
_OUTCOME_NAMES: Final = {
    policy.Deliver: "delivered",
    policy.Park: "retry",
    policy.Split: "split",
    policy.DeadLetter: "dead_letter",
    policy.Pause: "auth_failed",
}

"""The worker's delivery observer: metrics and event history for every step of the drain loop.

Each hook counts in this process's metrics (served by the worker's own listener, see
worker/celery_app.py) and buffers trace records, which a background flusher writes to Redis
about once a second, so observing adds no round trip to delivery. The delivery lag (accepted by
ingest -> delivered) comes from each event's stream entry id, the time Redis stored it (read
once, by the drain).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import redis
from celery.signals import worker_process_shutdown

from config.destinations import Destination
from config.redis_keys import RedisKeys
from config.settings import Settings
from telemetry.error_groups import ErrorGroups, ErrorKind, cut, reply_code
from telemetry.flusher import Flusher, PipelineWriter
from telemetry.lag import AcceptedTimes
from telemetry.logs import maskable, redact
from telemetry.metrics import Counts, FleetMetrics, observe_many, process_metrics
from telemetry.trace import TraceBuffer, attach_trace, make_record
from worker.batching import PlannedRequest
from worker.dlq import DeadLetter, reason_code
from worker.mapping import Call, Rejection
from worker.observer import Mapped
from worker.pushwoosh import Reply
from worker.wire import Endpoint

# Outcomes of an attempt that are failures noted here (a dead letter is noted with its reason
# code by on_dead_lettered, where the code is known).
_NOTED_ATTEMPTS = {"retry": "retried", "split": "split"}
SAMPLE_MESSAGE_IDS = 3


class LastError(PipelineWriter):
    """The latest failed Pushwoosh request, kept in a HASH for `pushwoosh-fleet status` (the
    circuit's own record is cleared when Pushwoosh recovers; this one stays)."""

    def __init__(self, keys: RedisKeys) -> None:
        self._key = keys.last_error
        self._lock = threading.Lock()
        self._latest: dict[str, str] | None = None

    def set(self, fields: dict[str, str]) -> None:
        with self._lock:
            self._latest = fields

    def take(self) -> dict[str, str] | None:
        with self._lock:
            latest, self._latest = self._latest, None
        return latest

    def write(self, pipe: Any, batch: dict[str, str]) -> int:
        pipe.delete(self._key)
        pipe.hset(self._key, mapping=batch)
        return 2

    def restore(self, batch: dict[str, str]) -> None:
        with self._lock:
            self._latest = self._latest or batch


class ErrorSamples:
    """Failed calls noted by kind for the delivery page, each with a sample request and reply
    whose API key is masked and whose every secret is replaced before anything is kept."""

    def __init__(self, groups: ErrorGroups, endpoint: Endpoint, secrets: Sequence[str]) -> None:
        self.groups = groups
        self._endpoint = endpoint
        self._secrets = maskable(secrets)

    def _clean(self, text: str) -> str:
        return cut(redact(text, self._secrets))

    def _request(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        http = self._endpoint.request(path, body)  # the key masked: never revealed here
        text = json.dumps(http.json, ensure_ascii=False, indent=1)
        return {"method": http.method, "url": http.url, "headers": http.headers,
                "body": self._clean(text)}  # fmt: skip

    def reply(self, request: PlannedRequest, reply: Reply, outcome: str, t_ms: int) -> None:
        kind = ErrorKind(outcome, reply_code(reply.status, reply.transport_error), reply.status)

        def sample() -> dict[str, Any]:
            return {
                "action": request.action, "mapping": request.mapping,
                "events": len(request.message_ids),
                "message_ids": list(request.message_ids[:SAMPLE_MESSAGE_IDS]),
                "request": self._request(request.path, request.body),
                "reply": {"status": reply.status,
                          "body": self._clean(reply.transport_error or reply.body or "")},
            }  # fmt: skip

        self.groups.note(kind, len(request.message_ids), t_ms, sample)

    def dead_letter(self, letter: DeadLetter, t_ms: int) -> None:
        kind = ErrorKind("dead_lettered", reason_code(letter), letter.status)

        def sample() -> dict[str, Any]:
            data: dict[str, Any] = {
                "action": letter.action, "mapping": letter.mapping,
                "events": len(letter.message_ids) or 1,
                "message_ids": letter.message_ids[:SAMPLE_MESSAGE_IDS],
                "reason": self._clean(letter.reason),
            }  # fmt: skip
            if letter.request is not None:
                data["request"] = self._request(letter.path, letter.request.get("body") or {})
                data["reply"] = {"status": letter.status, "body": self._clean(letter.reply)}
            elif letter.event is not None:
                text = json.dumps(letter.event, ensure_ascii=False, indent=1)
                data["event"] = self._clean(text)
            return data

        self.groups.note(kind, len(letter.message_ids) or 1, t_ms, sample)


class FleetObserver:
    def __init__(
        self,
        counts: Counts,
        trace: TraceBuffer | None,
        last_error: LastError | None = None,
        *,
        errors: ErrorSamples | None = None,
        clock: Callable[[], float] = time.time,
        new_request_id: Callable[[], str] = lambda: uuid.uuid4().hex[:12],
        accepted: AcceptedTimes | None = None,
    ) -> None:
        self.counts = counts
        self.trace = trace
        self.last_error = last_error
        self.errors = errors
        self.accepted = accepted if accepted is not None else AcceptedTimes()
        self._clock = clock
        self._new_request_id = new_request_id
        # Each source's counter of events read, looked up once.
        self._read: dict[str, Any] = {}

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def on_mapped(self, mapped: Sequence[Mapped]) -> None:
        # Once per read, for up to a batch of events: each metric, lock and record text is
        # touched once for them all, not once per event.
        if not mapped:
            return
        now_ms = self._now_ms()
        reads: dict[str, int] = {}
        unmatched = 0
        accepted: list[tuple[str, int, int]] = []
        traced: list[tuple[str, str]] = []
        lines: dict[Any, str] = {}  # record texts by the mappings they name
        for message_id, accepted_ms, src, calls in mapped:
            reads[src] = reads.get(src, 0) + 1
            if message_id is None:
                unmatched += not calls
                continue
            message_id = str(message_id)
            if not calls:
                unmatched += 1
            else:
                accepted.append((message_id, accepted_ms, len(calls)))
            if self.trace is not None:
                traced.append((message_id, _mapped_line(calls, now_ms, lines)))
        self._count_reads(reads)
        if unmatched:
            self.counts.inc("events_unmatched", amount=unmatched)
        self.accepted.note_many(accepted)
        if traced and self.trace is not None:
            self.trace.add_lines(traced, now_ms)

    def _count_reads(self, reads: dict[str, int]) -> None:
        for src, count in reads.items():
            read = self._read.get(src)
            if read is None:
                read = self._read[src] = self.counts.child("events_read", src or "unknown")
            read.inc(count)

    def on_rejected(self, rejection: Rejection) -> None:
        self.accepted.settle((rejection.message_id,))
        if self.trace is not None:
            self.trace.add(
                rejection.message_id,
                "rejected",
                self._now_ms(),
                mapping=rejection.mapping,
                action=rejection.action,
                reason=rejection.reason,
            )

    def on_skipped(self, message_id: str, reason: str) -> None:
        self.counts.inc("events_skipped", reason)
        if self.trace is not None and message_id:
            self.trace.add(message_id, "skipped", self._now_ms(), reason=reason)

    def on_attempt(
        self, request: PlannedRequest, reply: Reply, outcome: str, attempts: int
    ) -> None:
        size = len(request.message_ids)
        status = str(reply.status) if reply.status is not None else "transport_error"
        self.counts.inc("pushwoosh_requests", request.path, status)
        self.counts.observe("pushwoosh_request_duration_seconds", reply.elapsed_s, request.path)
        self.counts.observe("batch_size", size, request.path)
        if outcome == "delivered":
            self.counts.inc("events_delivered", request.action, amount=size)
            now_ms = self._now_ms()
            lags = [max(0, now_ms - t) / 1000 for t in self.accepted.settle(request.message_ids)]
            observe_many(self.counts.child("delivery_lag_seconds", request.action), lags)
        else:
            self._note_failure(request, reply, outcome, status)
        if self.trace is not None:
            self.trace.add_many(
                request.message_ids,
                "sent",
                self._now_ms(),
                request=self._new_request_id(),
                path=request.path,
                size=size,
                status=reply.status,
                error=reply.transport_error,
                ms=round(reply.elapsed_s * 1000, 1),
                outcome=outcome,
                attempt=attempts,
            )

    def _note_failure(
        self, request: PlannedRequest, reply: Reply, outcome: str, status: str
    ) -> None:
        now_ms = self._now_ms()
        if self.last_error is not None:
            self.last_error.set(
                {
                    "t": str(now_ms),
                    "path": request.path,
                    "status": status,
                    "reply": (reply.transport_error or reply.body or "")[:300],
                    "outcome": outcome,
                }
            )
        if self.errors is not None and outcome in _NOTED_ATTEMPTS:
            self.errors.reply(request, reply, _NOTED_ATTEMPTS[outcome], now_ms)

    def on_parked(self, request: PlannedRequest, due_ms: int, attempts: int, reason: str) -> None:
        self.counts.inc("events_retried", request.action, amount=len(request.message_ids))
        if self.trace is not None:
            self.trace.add_many(
                request.message_ids,
                "retry",
                self._now_ms(),
                due=due_ms,
                attempt=attempts,
                reason=reason[:300],
            )

    def on_dead_lettered(self, letter: DeadLetter) -> None:
        reason = reason_code(letter)
        if self.errors is not None:
            self.errors.dead_letter(letter, self._now_ms())
        self.accepted.settle(letter.message_ids)
        self.counts.inc(
            "events_dead_lettered", letter.action or "none", reason,
            amount=len(letter.message_ids) or 1,
        )  # fmt: skip
        if self.trace is not None and letter.message_ids:
            self.trace.add_many(
                letter.message_ids,
                "dead_letter",
                self._now_ms(),
                kind=letter.kind,
                status=letter.status,
                why=reason,
                reason=letter.reason[:500],
                attempts=letter.attempts,
            )

    def flush(self) -> None:
        # Counts are already in the process's metrics; the flusher writes history within a second.
        return


def _mapped_line(calls: Sequence[Call], now_ms: int, lines: dict[Any, str]) -> str:
    """The `mapped` record of an event with these calls; events read together usually share
    their mappings, so one text (kept in `lines`) serves them all."""
    which = (
        (calls[0].mapping, calls[0].action)
        if len(calls) == 1
        else tuple((call.mapping, call.action) for call in calls)
    )
    line = lines.get(which)
    if line is None:
        names = [f"{call.mapping or 'delete'} ({call.action})" for call in calls]
        line = lines[which] = make_record("mapped", now_ms, mappings=names)
    return line


class _ProcessTelemetry:
    """One flusher and one trace buffer per worker process, shared by its destinations."""

    def __init__(self, settings: Settings, client: redis.Redis, metrics: FleetMetrics) -> None:
        self.client = client
        self.flusher = Flusher(client)
        dropped = Counts(metrics, None)
        self.trace = attach_trace(
            self.flusher,
            client,
            settings,
            on_dropped=lambda n: dropped.inc("trace_dropped", amount=n),
        )
        self.accepted = AcceptedTimes()
        _flush_when_the_pool_process_exits(self.flusher)


_lock = threading.Lock()
_shared: dict[tuple[int, int], _ProcessTelemetry] = {}


def build_observer(
    settings: Settings, client: redis.Redis, destination: Destination
) -> FleetObserver:
    """The observer a worker process installs in its Runtime (settings: the destination's)."""
    metrics = process_metrics()
    with _lock:
        key = (os.getpid(), id(client))
        shared = _shared.get(key)
        if shared is None or shared.client is not client:
            shared = _shared[key] = _ProcessTelemetry(settings, client, metrics)
    keys = RedisKeys(settings.redis_key_prefix, destination.name)
    last_error = LastError(keys)
    shared.flusher.add_writer(last_error)
    groups = ErrorGroups(client, keys)
    shared.flusher.add_writer(groups)
    errors = ErrorSamples(
        groups, Endpoint.of(settings), [*settings.secrets(), *destination.secrets()]
    )
    return FleetObserver(
        Counts(metrics, destination.name), shared.trace, last_error, errors=errors,
        accepted=shared.accepted,
    )  # fmt: skip


def _flush_when_the_pool_process_exits(flusher: Flusher) -> None:
    """Celery's pool processes leave with os._exit (no atexit): flush on their shutdown signal,
    so a warm shutdown keeps the last second of history."""

    def flush(**_: Any) -> None:
        flusher.flush_at_exit()

    worker_process_shutdown.connect(flush, weak=False)

"""Event history: what happened to one messageId, kept for TRACE_WINDOW_S with bounded memory.

Records are compact JSON objects (`t` = time in ms, `k` = kind, then a few fields) kept in one
Redis HASH per hour (`config.redis_keys.trace_bucket`): field = messageId, value = the event's
records as NDJSON, appended by a small script (store/lua/trace_append.lua). Each hour's hash
expires one hour after the window and holds at most TRACE_MAX_BYTES spread over the window's
hours, and one message's history at most MAX_BYTES_PER_EVENT: every write is held to both, a
message's first one too, and what does not fit is dropped (counted as `trace_dropped`). So the
history stays inside its budget whatever the traffic. A lookup reads the window's hashes in one
pipeline.

Processes buffer records (`TraceBuffer`) and a background flusher (`telemetry/flusher.py`)
writes them about once a second, so tracing costs no round trip on the delivery path.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import redis

from config import fastjson
from config.redis_keys import trace_bucket, trace_bucket_bytes
from config.settings import Settings
from store import scripts
from telemetry.flusher import Flusher, PipelineWriter

HOUR_S = 3600
# One event's history stops growing here (a call retried 50 times stays readable).
MAX_BYTES_PER_EVENT = 16 * 1024
# Records waiting for a flush; beyond this (Redis away for long) the oldest are dropped.
MAX_PENDING_RECORDS = 200_000
# Past this many waiting records the flusher is woken instead of waiting for its tick: under
# load a second's worth is tens of thousands of records, and one big write both holds memory
# the process never gives back and stalls Redis for everyone while its script runs.
FLUSH_SOON_RECORDS = 2_000
# Messages per append script: each call runs alone in Redis, so a bounded call keeps the
# pause it causes other clients (ingest's publish, the drain's reads) well under a millisecond.
MESSAGES_PER_APPEND = 200

Record = tuple[str, int, str]  # messageId, time (ms), JSON line


def hour_of(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms / 1000, UTC).strftime("%Y%m%d%H")


def per_hour_budget(settings: Settings) -> int:
    """Bytes one hour's history may hold: TRACE_MAX_BYTES spread over the window's hours."""
    hours = max(1, math.ceil(settings.trace_window_s / HOUR_S))
    return max(1, settings.trace_max_bytes // hours)


def make_record(step: str, t_ms: int, **fields: Any) -> str:
    """One record line: compact JSON (the bytes `json.dumps` with (",", ":") separators and
    ensure_ascii=False writes), newline-terminated."""
    data = {"t": t_ms, "k": step}
    data.update({k: v for k, v in fields.items() if v is not None})
    return fastjson.dumps(data).decode() + "\n"


class TraceBuffer(PipelineWriter):
    """Records waiting to be written; a `Flusher` writes them in its pipeline."""

    def __init__(
        self,
        client: redis.Redis,
        settings: Settings,
        on_backlog: Callable[[], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self._on_backlog = on_backlog
        self._on_dropped = on_dropped
        self._prefix = settings.redis_key_prefix
        self._budget = per_hour_budget(settings)
        self._ttl_s = settings.trace_window_s + HOUR_S
        self._script = scripts.script(client, "trace_append")
        self._lock = threading.Lock()
        self._pending: list[Record] = []

    def add(self, message_id: str, step: str, t_ms: int | None = None, **fields: Any) -> None:
        t_ms = int(time.time() * 1000) if t_ms is None else t_ms
        self.add_line(message_id, t_ms, make_record(step, t_ms, **fields))

    def add_line(self, message_id: str, t_ms: int, line: str) -> None:
        """Add a record made earlier with `make_record` (callers reuse one for many events)."""
        with self._lock:
            self._pending.append((message_id, t_ms, line))
            waiting = len(self._pending)
            if waiting > MAX_PENDING_RECORDS:
                del self._pending[: waiting - MAX_PENDING_RECORDS]
        self._note_waiting(waiting - 1, waiting)

    def add_lines(self, records: Iterable[tuple[str, str]], t_ms: int) -> None:
        """`add_line` for each (message id, line) at one time, under one lock."""
        with self._lock:
            before = len(self._pending)
            self._pending.extend((message_id, t_ms, line) for message_id, line in records)
            waiting = len(self._pending)
            if waiting > MAX_PENDING_RECORDS:
                del self._pending[: waiting - MAX_PENDING_RECORDS]
        self._note_waiting(before, waiting)

    def add_many(
        self, message_ids: Iterable[str], step: str, t_ms: int | None = None, **fields: Any
    ) -> None:
        t_ms = int(time.time() * 1000) if t_ms is None else t_ms
        line = make_record(step, t_ms, **fields)
        with self._lock:
            before = len(self._pending)
            self._pending.extend((message_id, t_ms, line) for message_id in message_ids)
            waiting = len(self._pending)
            if waiting > MAX_PENDING_RECORDS:
                del self._pending[: waiting - MAX_PENDING_RECORDS]
        self._note_waiting(before, waiting)

    def _note_waiting(self, before: int, after: int) -> None:
        # Wake the flusher once, when the buffer crosses the mark (take() empties it).
        if before < FLUSH_SOON_RECORDS <= after and self._on_backlog is not None:
            self._on_backlog()

    # -- PipelineWriter ------------------------------------------------------------------------
    def take(self) -> list[Record]:
        with self._lock:
            pending, self._pending = self._pending, []
        return pending

    def write(self, pipe: Any, batch: list[Record]) -> int:
        # One append per message and hour: an event's records of one flush (mapped, sent,
        # delivered...) are usually together, and each append costs Redis a read and a write.
        # Records come in runs of one time (a read's or a request's): the hour's table is
        # looked up once per run, not per record.
        by_hour: dict[int, dict[str, str]] = {}
        run_ms, chunks = None, {}
        for message_id, t_ms, line in batch:
            if t_ms != run_ms:
                run_ms, chunks = t_ms, by_hour.setdefault(t_ms // (HOUR_S * 1000), {})
            previous = chunks.get(message_id)
            chunks[message_id] = line if previous is None else previous + line
        calls = 0
        for hour, chunks in by_hour.items():
            name = hour_of(hour * HOUR_S * 1000)
            keys = [trace_bucket(self._prefix, name), trace_bucket_bytes(self._prefix, name)]
            items = list(chunks.items())
            for start in range(0, len(items), MESSAGES_PER_APPEND):
                args: list[str | int] = [self._budget, self._ttl_s, MAX_BYTES_PER_EVENT]
                args.extend(chain.from_iterable(items[start : start + MESSAGES_PER_APPEND]))
                self._script(keys=keys, args=args, client=pipe)
                calls += 1
        return calls

    def restore(self, batch: list[Record]) -> None:
        with self._lock:
            self._pending[:0] = batch
            if len(self._pending) > MAX_PENDING_RECORDS:
                del self._pending[: len(self._pending) - MAX_PENDING_RECORDS]

    def written(self, replies: list[Any]) -> None:
        dropped = sum(int(r) for r in replies if isinstance(r, int | str | bytes))
        if dropped and self._on_dropped is not None:
            self._on_dropped(dropped)


def attach_trace(
    flusher: Flusher,
    client: redis.Redis,
    settings: Settings,
    on_dropped: Callable[[int], None] | None = None,
) -> TraceBuffer | None:
    """A trace buffer written by `flusher`, or None when tracing is off (TRACE_WINDOW_S=0).

    on_dropped(n): n records were not kept (the hour's cap); processes count them in
    `trace_dropped_total`."""
    if settings.trace_window_s <= 0:
        return None
    buffer = TraceBuffer(client, settings, on_backlog=flusher.wake, on_dropped=on_dropped)
    flusher.add_writer(buffer)
    return buffer


def lookup(
    client: redis.Redis, settings: Settings, message_id: str, now_s: float | None = None
) -> list[dict[str, Any]]:
    """Every record kept for message_id, oldest first (one round trip)."""
    now_ms = int((time.time() if now_s is None else now_s) * 1000)
    hours = max(1, math.ceil(settings.trace_window_s / HOUR_S)) + 1
    pipe = client.pipeline(transaction=False)
    for back in range(hours, -1, -1):
        pipe.hget(trace_bucket(settings.redis_key_prefix, hour_of(now_ms - back * HOUR_S * 1000)),
                  message_id)  # fmt: skip
    records: list[dict[str, Any]] = []
    for text in pipe.execute():
        if not text:
            continue
        raw = text.decode() if isinstance(text, bytes) else text
        for line in raw.splitlines():
            if line.strip():
                records.append(json.loads(line))
    records.sort(key=lambda r: r.get("t", 0))
    return records


def _when(t_ms: int) -> str:
    moment = datetime.fromtimestamp(t_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def describe(record: dict[str, Any]) -> str:
    """One record as one readable line."""
    kind = record.get("k", "?")
    if kind == "received":
        text = f"received via {record.get('route', '?')}"
        if record.get("duplicates"):
            text += f" (request had {record['duplicates']} repeated messageIds, dropped)"
    elif kind == "skipped":
        text = f"skipped, not sent: {record.get('reason', '?')}"
    elif kind == "mapped":
        maps = record.get("mappings") or []
        text = "matched " + (", ".join(maps) if maps else "no mapping: nothing to send")
    elif kind == "sent":
        status = record.get("status")
        answer = f"HTTP {status}" if status is not None else record.get("error", "no answer")
        text = (
            f"sent in request {record.get('request')} to {record.get('path')} with "
            f"{record.get('size')} event(s), attempt {record.get('attempt')}: {answer} "
            f"in {record.get('ms')} ms -> {record.get('outcome')}"
        )
    elif kind == "retry":
        text = (
            f"retry scheduled for {_when(int(record.get('due', 0)))} "
            f"(after attempt {record.get('attempt')}): {record.get('reason')}"
        )
    elif kind == "dead_letter":
        status = record.get("status")
        text = f"dead-lettered ({record.get('kind')}"
        text += f", HTTP {status}): " if status is not None else "): "
        text += str(record.get("reason"))
    elif kind == "rejected":
        text = f"rejected by mapping {record.get('mapping')!r}: {record.get('reason')}"
    else:
        text = json.dumps(record)
    return f"{_when(int(record.get('t', 0)))}  {text}"

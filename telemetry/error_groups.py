"""Failed calls grouped by kind (what happened, why, HTTP status), each kind with one sample.

What the delivery page shows under "Errors": how many calls of each kind failed in the last day,
when the last one did, and one request with Pushwoosh's reply. Workers note each failure in
memory (`ErrorGroups.note`, no I/O); the background flusher writes what a second gathered in
one script call per hour (store/lua/error_groups.lua), so the delivery path gains no round trip.

Bounded: one HASH per destination and hour (`RedisKeys.errors`), kept a day, holding at most
MAX_KINDS kinds (any further kind is counted as OVERFLOW_KIND), each sample cut to a few
kilobytes. A sample is built by the caller with the API key masked and every secret replaced
(telemetry/logs.py `redact`) before it is handed here: the key is never stored.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from typing import Any, Final

import redis

from config.redis_keys import RedisKeys
from store import scripts
from telemetry.flusher import PipelineWriter

MAX_KINDS: Final = 50
OVERFLOW_KIND: Final = "other"
# A day and an hour, like the per-minute counters: the page looks back a day.
ERRORS_TTL_S: Final = 25 * 3600
HOUR_MS: Final = 3_600_000
# What one sample may hold: the request body (up to 100 events) and the reply are cut here.
MAX_SAMPLE_TEXT_CHARS: Final = 4000
# Kinds noted between two flushes; more (a flood of new kinds) are counted as OVERFLOW_KIND.
MAX_PENDING_KINDS: Final = 200
_SCAN_MATCH: Final = "[net]:*"


@dataclasses.dataclass(frozen=True)
class ErrorKind:
    """What happened to a call (`retried`, `split`, `dead_lettered`), why (a short code:
    http_503, timeout, retries_exhausted, mapping_rejected...) and Pushwoosh's HTTP status."""

    outcome: str
    code: str
    status: int | None = None

    @property
    def id(self) -> str:
        return f"{self.outcome}|{self.code}|{'' if self.status is None else self.status}"

    @staticmethod
    def parse(text: str) -> ErrorKind:
        """The kind an id names; the overflow kind (or anything unreadable) as outcome only."""
        outcome, _, rest = text.partition("|")
        code, _, status = rest.partition("|")
        return ErrorKind(outcome, code, int(status) if status.isdigit() else None)


def reply_code(status: int | None, transport_error: str | None) -> str:
    """A short code for a reply that did not deliver: http_<status>, timeout, connection_error."""
    if status is not None:
        return f"http_{status}"
    text = (transport_error or "").lower()
    if "timed out" in text:
        return "timeout"
    if "connection" in text:
        return "connection_error"
    return "no_response"


def cut(text: str, limit: int = MAX_SAMPLE_TEXT_CHARS) -> str:
    """At most `limit` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"… ({len(text) - limit} more characters)"


@dataclasses.dataclass
class _Pending:
    calls: int
    events: int
    last_ms: int
    sample: str


class ErrorGroups(PipelineWriter):
    """One destination's failures of the last second, waiting for the flusher."""

    def __init__(self, client: redis.Redis, keys: RedisKeys) -> None:
        self._keys = keys
        self._script = scripts.script(client, "error_groups")
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, str], _Pending] = {}

    def note(
        self, kind: ErrorKind, events: int, t_ms: int, sample: Callable[[], dict[str, Any]]
    ) -> None:
        """Count one failed call of `events` events; `sample` is called (and its result kept)
        only for the first call of a kind in each flush, so a flood costs one sample a second."""
        hour = t_ms // HOUR_MS
        with self._lock:
            key = (hour, kind.id)
            if key not in self._pending and len(self._pending) >= MAX_PENDING_KINDS:
                key = (hour, OVERFLOW_KIND)
            pending = self._pending.get(key)
            if pending is None:
                text = json.dumps({"kind": kind.id, "t": t_ms, **sample()}, ensure_ascii=False)
                self._pending[key] = _Pending(1, events, t_ms, text)
            else:
                pending.calls += 1
                pending.events += events
                pending.last_ms = max(pending.last_ms, t_ms)

    # -- PipelineWriter ------------------------------------------------------------------------
    def take(self) -> dict[tuple[int, str], _Pending]:
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending

    def write(self, pipe: Any, batch: dict[tuple[int, str], _Pending]) -> int:
        by_hour: dict[int, list[str | int]] = {}
        for (hour, kind), pending in batch.items():
            by_hour.setdefault(hour, []).extend(
                [kind, pending.calls, pending.events, pending.last_ms, pending.sample]
            )
        for hour, args in by_hour.items():
            self._script(
                keys=[self._keys.errors(hour)],
                args=[MAX_KINDS, ERRORS_TTL_S, OVERFLOW_KIND, *args],
                client=pipe,
            )
        return len(by_hour)

    def restore(self, batch: dict[tuple[int, str], _Pending]) -> None:
        with self._lock:
            for key, pending in batch.items():
                current = self._pending.get(key)
                if current is None:
                    if len(self._pending) < MAX_PENDING_KINDS:
                        self._pending[key] = pending
                    continue
                current.calls += pending.calls
                current.events += pending.events
                current.last_ms = max(current.last_ms, pending.last_ms)


@dataclasses.dataclass
class ErrorGroup:
    """One kind of failure over the hours read: counts, last time, the latest sample."""

    kind: ErrorKind
    calls: int = 0
    events: int = 0
    last_ms: int = 0
    sample: dict[str, Any] | None = None
    newest_hour: int = -1


def _number(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def add_fields(groups: dict[str, ErrorGroup], hour: int, fields: dict[str, str]) -> None:
    """Fold one hour's counting fields (n:/e:/t:<kind>) into `groups`."""
    for name, value in fields.items():
        prefix, _, kind = name.partition(":")
        if prefix not in ("n", "e", "t") or not kind:
            continue
        group = groups.setdefault(kind, ErrorGroup(ErrorKind.parse(kind)))
        group.newest_hour = max(group.newest_hour, hour)
        if prefix == "n":
            group.calls += _number(value)
        elif prefix == "e":
            group.events += _number(value)
        else:
            group.last_ms = max(group.last_ms, _number(value))


def read_error_groups(
    client: redis.Redis, keys: RedisKeys, now_ms: int, hours: int = 24
) -> list[ErrorGroup]:
    """Every kind of the last `hours` hours (and the current one), the latest first.

    Two round trips whatever happened: the counting fields of each hour (HSCAN, samples left
    on the server), then the newest sample of each kind (at most MAX_KINDS + 1 per hour)."""
    now_hour = now_ms // HOUR_MS
    hour_list = list(range(now_hour - hours, now_hour + 1))
    groups: dict[str, ErrorGroup] = {}
    pipe = client.pipeline(transaction=False)
    for hour in hour_list:
        pipe.hscan(keys.errors(hour), 0, match=_SCAN_MATCH, count=1000)
    for hour, (cursor, fields) in zip(hour_list, pipe.execute(), strict=True):
        add_fields(groups, hour, fields)
        while int(cursor):  # a hash past its one-call size: rare, and bounded by MAX_KINDS
            cursor, fields = client.hscan(keys.errors(hour), cursor, match=_SCAN_MATCH, count=1000)
            add_fields(groups, hour, fields)
    found = sorted(groups.items(), key=lambda item: item[1].last_ms, reverse=True)
    pipe = client.pipeline(transaction=False)
    for kind, group in found:
        pipe.hget(keys.errors(group.newest_hour), f"s:{kind}")
    for (_, group), text in zip(found, pipe.execute(), strict=True):
        group.sample = _sample(text)
    return [group for _, group in found]


def _sample(text: Any) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None

"""`pushwoosh-fleet status`: the fleet at a glance.

Queue depth per shard, the oldest queued event, the retry schedule (size, next due), dead
letters, live workers (the Celery workers that answer a ping and consume this prefix's queue),
events delivered this minute and the one before, and the shared back-off with the last Pushwoosh
error. `assess` turns that into healthy or degraded, with the reasons, for the exit code:
0 healthy, 1 degraded, 2 unreachable (cli.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis

from config.redis_keys import RedisKeys
from config.settings import Settings
from worker.celery_app import app


@dataclasses.dataclass
class FleetStatus:
    destination: str
    queue_depths: list[int]
    retry_scheduled: int
    next_retry_ms: int | None
    dead_letters: int
    delivered_this_minute: int
    delivered_last_minute: int
    circuit: dict[str, str]
    last_error: dict[str, str]
    workers: list[str] | None  # None: could not ask the workers
    now_ms: int
    oldest_event_ms: int | None = None  # when the oldest queued event was stored
    oldest_by_shard_ms: list[int | None] = dataclasses.field(default_factory=list)

    @property
    def oldest_age_s(self) -> float:
        if self.oldest_event_ms is None:
            return 0.0
        return max(0, self.now_ms - self.oldest_event_ms) / 1000

    @property
    def queued(self) -> int:
        return sum(self.queue_depths)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_status(
    client: redis.Redis,
    settings: Settings,
    *,
    destination: str,
    list_workers: Callable[[], list[str] | None],
    now_s: float,
) -> FleetStatus:
    """Everything from Redis in one round trip, plus the live workers from `list_workers`."""
    keys = RedisKeys(settings.redis_key_prefix, destination)
    minute = int(now_s // 60)
    pipe = client.pipeline(transaction=False)
    for shard in range(settings.shards):
        shard_keys = keys.shard(shard)
        pipe.xlen(shard_keys.stream)
        pipe.xrange(shard_keys.stream, count=1)
        pipe.zcard(shard_keys.retry)
        pipe.zrange(shard_keys.retry, 0, 0, withscores=True)
        pipe.xlen(shard_keys.dlq)
        for each in (minute, minute - 1):
            pipe.hget(shard_keys.minutes(each // 60), f"{each}:delivered")
    pipe.hgetall(keys.circuit)
    pipe.hgetall(keys.last_error)
    results = pipe.execute()
    per_shard = [results[i * 7 : i * 7 + 7] for i in range(settings.shards)]
    circuit, last_error = results[-2:]
    dues = [int(row[3][0][1]) for row in per_shard if row[3]]
    by_shard = [int(_text(row[1][0][0]).split("-", 1)[0]) if row[1] else None for row in per_shard]
    firsts = [first for first in by_shard if first is not None]
    return FleetStatus(
        destination=destination,
        queue_depths=[int(row[0]) for row in per_shard],
        retry_scheduled=sum(int(row[2]) for row in per_shard),
        next_retry_ms=min(dues) if dues else None,
        dead_letters=sum(int(row[4]) for row in per_shard),
        delivered_this_minute=sum(int(row[5] or 0) for row in per_shard),
        delivered_last_minute=sum(int(row[6] or 0) for row in per_shard),
        circuit={_text(k): _text(v) for k, v in circuit.items()},
        last_error={_text(k): _text(v) for k, v in last_error.items()},
        workers=list_workers(),
        now_ms=int(now_s * 1000),
        oldest_event_ms=min(firsts) if firsts else None,
        oldest_by_shard_ms=by_shard,
    )


def delivery_paused(status: FleetStatus) -> bool:
    circuit = status.circuit
    return int(circuit.get("failures") or 0) > 0 and (
        int(circuit.get("open_until_ms") or 0) > status.now_ms
    )


def assess(statuses: list[FleetStatus], stale_after_s: float) -> list[str]:
    """Why the fleet is degraded (empty: healthy): no live worker, delivery paused, or an event
    queued longer than stale_after_s."""
    problems = []
    workers = statuses[0].workers if statuses else []
    if workers is None:
        problems.append("could not ask the workers (the broker did not answer)")
    elif not workers:
        problems.append("no live worker: nothing is delivering")
    for status in statuses:
        name = status.destination
        if delivery_paused(status):
            why = status.circuit.get("reason") or "Pushwoosh failing"
            problems.append(f"{name}: sending is paused ({why})")
        if status.oldest_age_s > stale_after_s:
            problems.append(
                f"{name}: the oldest queued event has waited {_duration(status.oldest_age_s)}"
            )
    return problems


def celery_workers(queue: str, timeout_s: float) -> list[str] | None:
    """Hostnames of live workers consuming `queue` (one broadcast), or None if unreachable."""
    try:
        replies = app.control.inspect(timeout=timeout_s).active_queues() or {}
    except Exception:  # the broker is away: status still shows what Redis has
        return None
    return sorted(
        host
        for host, queues in replies.items()
        if any(q.get("name") == queue for q in queues or [])
    )


def _when(ms: int, now_ms: int) -> str:
    try:
        moment = datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):  # a time no calendar holds: say so, go on
        return f"at {ms} ms since 1970"
    delta_s = (ms - now_ms) / 1000
    return f"{moment} ({'in ' if delta_s >= 0 else ''}{_duration(abs(delta_s))}" + (
        ")" if delta_s >= 0 else " ago)"
    )


def _number(text: str | None) -> int:
    """A stored integer, or 0 for anything that is not one (Redis holds what it was given)."""
    try:
        return int(text or 0)
    except ValueError:
        return 0


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_status(status: FleetStatus) -> str:
    lines = [f"destination   {status.destination}"]
    depths = ", ".join(f"shard {i}: {n}" for i, n in enumerate(status.queue_depths))
    oldest = f", oldest {_duration(status.oldest_age_s)} old" if status.queued else ""
    lines.append(f"queued        {status.queued} events ({depths}){oldest}")
    retry = f"retry         {status.retry_scheduled} requests scheduled"
    if status.next_retry_ms is not None:
        retry += f", next due {_when(status.next_retry_ms, status.now_ms)}"
    lines.append(retry)
    lines.append(f"dead letters  {status.dead_letters}  (pushwoosh-fleet dlq list)")
    if status.workers is None:
        lines.append("workers       unknown (could not reach the broker)")
    else:
        names = ", ".join(status.workers) if status.workers else "NONE: nothing is delivering"
        lines.append(f"workers       {len(status.workers)} live: {names}")
    lines.append(
        f"delivered     {status.delivered_this_minute} this minute, "
        f"{status.delivered_last_minute} the minute before"
    )
    circuit = status.circuit
    open_until_ms = _number(circuit.get("open_until_ms"))
    if open_until_ms > status.now_ms:
        lines.append(
            f"pushwoosh     BACKING OFF until {_when(open_until_ms, status.now_ms)}, "
            f"{circuit.get('failures', '?')} failures in a row"
        )
    else:
        lines.append("pushwoosh     sending")
    if circuit.get("reason"):
        kind = f" ({circuit['kind']})" if circuit.get("kind") else ""
        lines.append(f"back-off on   {circuit['reason']}{kind}")
    error = status.last_error
    if error:
        when = _when(_number(error.get("t")), status.now_ms)
        status_text = error.get("status", "?")
        answer = f"HTTP {status_text}" if status_text.isdigit() else status_text
        lines.append(
            f"last error    {when}: {error.get('path')} {answer} -> {error.get('outcome')}: "
            f"{error.get('reply') or '(empty reply)'}"
        )
    else:
        lines.append("last error    none recorded")
    return "\n".join(lines)

"""The pump: a small thread in each worker that starts drain tasks where there is work.

Every PUMP_INTERVAL_S it looks at each shard: if the shard has entries (or due retries) and no
drain task holds or awaits it, it queues one. The "queued" marker (SET NX with a TTL) keeps many
workers from queueing the same shard twice, and expires if a queued task is ever lost. Tasks are
sent by name, so the pump needs the Celery app it runs in, not the task module.

When every stream is empty and no retry is due, the pump does not look again after the interval
but waits in Redis for the first entry of any of its streams (`XREAD BLOCK` from the start of
each, a pure read), at most IDLE_WAIT_MS or until the next retry is due: an idle worker wakes
about once a second instead of five times, and a new event starts its drain at once instead of
at the next look. Each wake-up costs far more CPU than the look itself (caches gone cold after
the sleep): 2 ms per look after a 0.2 s sleep against 0.1 ms back to back, on the 2-core machine
of the README's measurements. A retry parked during the wait (by a drain that then ended) is
seen when the wait ends: a second late at most.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final

import redis

from config.redis_keys import RedisKeys
from config.settings import Settings
from store import scripts
from worker.clock import RedisClock

logger = logging.getLogger(__name__)

DRAIN_TASK: Final = "pushwoosh_fleet.drain"
QUEUED_MARKER_TTL_MS: Final = 60_000
BROKEN_SHARD_WARN_MS: Final = 60_000
# The longest an idle pump waits for an event before it looks again (a lease left by a dead
# worker, a Redis that went away); as long as a drain waits on an idle stream.
IDLE_WAIT_MS: Final = 1000

SendTask = Callable[[str, tuple[str, int]], Any]


@dataclasses.dataclass(frozen=True)
class Look:
    """One look at a destination's shards: those that need a drain task now; `quiet` when
    nothing is waiting at all (every stream empty, no retry due, no back-off, no broken shard);
    `next_retry_ms`, when the earliest retry not yet due is due."""

    wanted: list[int]
    quiet: bool
    next_retry_ms: int | None


def shards_with_work(
    client: redis.Redis, keys: RedisKeys, settings: Settings, now_ms: int
) -> list[int]:
    """Shards that need a drain task now (pure reads; one round trip)."""
    return look(client, keys, settings, now_ms).wanted


def look(client: redis.Redis, keys: RedisKeys, settings: Settings, now_ms: int) -> Look:
    """`shards_with_work`, and whether the pump may wait for events (pure reads; one round
    trip)."""
    commands: list[tuple[Any, ...]] = []
    for shard in range(settings.shards):
        shard_keys = keys.shard(shard)
        commands += (
            ("XLEN", shard_keys.stream),
            # The earliest retry: due now, or when the pump must look again at the latest.
            ("ZRANGE", shard_keys.retry, 0, 0, "WITHSCORES"),
            ("EXISTS", shard_keys.lease),
            ("EXISTS", keys.queued(shard)),
        )
    commands.append(("HGET", keys.circuit, "open_until_ms"))
    # One broken shard (a key of the wrong type) must not keep every other shard waiting:
    # errors come back in their command's place.
    results = _read_all(client, commands)
    open_until = results[-1]
    open_until_ms = 0 if isinstance(open_until, Exception) else int(open_until or 0)
    if open_until_ms > now_ms:
        return Look([], False, None)  # Pushwoosh is failing: nothing to do until the back-off
    wanted: list[int] = []
    quiet, next_retry_ms = True, None
    for shard in range(settings.shards):
        replies = results[shard * 4 : shard * 4 + 4]
        failed = next((r for r in replies if isinstance(r, Exception)), None)
        if failed is not None:
            _warn_broken(keys.shard(shard).tag, failed, now_ms)
            quiet = False
            continue
        length, earliest, leased, queued = replies
        due_ms = _score_ms(earliest)
        retries_due = due_ms is not None and due_ms <= now_ms
        if length > 0 or retries_due:
            quiet = False
            if not leased and not queued:
                wanted.append(shard)
        elif due_ms is not None:
            next_retry_ms = due_ms if next_retry_ms is None else min(next_retry_ms, due_ms)
    return Look(wanted, quiet, next_retry_ms)


def _score_ms(reply: Any) -> int | None:
    """The score of ZRANGE's first member WITHSCORES: [member, score] (RESP2), [[member,
    score]] (RESP3), or empty."""
    if not reply:
        return None
    pair = reply[0] if isinstance(reply[0], list | tuple) else reply
    return int(float(pair[1]))


def idle_wait_ms(looks: Sequence[Look], now_ms: int) -> int:
    """How long the pump may wait for an event before it looks again: 0 unless every look
    found nothing waiting; then IDLE_WAIT_MS, or less when a retry falls due sooner."""
    if not looks or not all(one.quiet for one in looks):
        return 0
    wait_ms = IDLE_WAIT_MS
    for one in looks:
        if one.next_retry_ms is not None:
            wait_ms = min(wait_ms, one.next_retry_ms - now_ms)
    return max(0, wait_ms)


def _read_all(client: redis.Redis, commands: list[tuple[Any, ...]]) -> list[Any]:
    """The replies of pure reads sent together: through the client's lane, where a pass of an
    idle worker, five times a second, costs a fraction of redis-py's pipeline; else (a cluster
    client) through that pipeline."""
    lane = scripts.lane_for(client)
    if lane is not None:
        return lane.execute_many(commands)
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    return list(pipe.execute(raise_on_error=False))


_warned_ms: dict[str, int] = {}


def _warn_broken(tag: str, error: Exception, now_ms: int) -> None:
    """Say so about once a minute per shard, not at every pass."""
    if now_ms - _warned_ms.get(tag, -BROKEN_SHARD_WARN_MS) >= BROKEN_SHARD_WARN_MS:
        _warned_ms[tag] = now_ms
        logger.error("pump: shard %s cannot be read, skipping it: %s", tag, error)


def queue_drains(
    client: redis.Redis, keys: RedisKeys, settings: Settings, send_task: SendTask, now_ms: int
) -> Look:
    """Queue a drain task for each shard that needs one; the look that found them."""
    found = look(client, keys, settings, now_ms)
    for shard in found.wanted:
        if client.set(keys.queued(shard), "1", nx=True, px=QUEUED_MARKER_TTL_MS):
            send_task(DRAIN_TASK, (keys.destination, shard))
    return found


def wait_for_events(client: redis.Redis, streams: Sequence[str], wait_ms: int) -> bool:
    """Wait until any of `streams` has an entry, at most wait_ms; False when this client
    cannot wait so (a cluster client: its streams live on different nodes). An entry added
    between the look and this wait ends it at once: it reads from each stream's start."""
    lane = scripts.lane_for(client)
    if lane is None or not streams or wait_ms <= 0:
        return False
    lane.execute(
        "XREAD", "COUNT", 1, "BLOCK", wait_ms, "STREAMS", *streams, *("0-0" for _ in streams)
    )
    return True


Targets = Callable[[], list[tuple[redis.Redis, RedisKeys, Settings]]]


class Pump:
    """on_pass(redis_ok) is called after every pass over the shards, whether Redis answered or
    not: the worker's heartbeat (worker/heartbeat.py), which shows the pump is alive."""

    def __init__(
        self,
        interval_s: float,
        targets: Targets,
        send_task: SendTask,
        on_pass: Callable[[bool], None] | None = None,
    ) -> None:
        self._interval_s = interval_s
        self._targets = targets
        self._send_task = send_task
        self._on_pass = on_pass
        self._clocks: dict[int, RedisClock] = {}  # one per Redis client: retries are due by
        # Redis' clock, which every worker shares
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pushwoosh-pump", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            waited = False
            targets: list[tuple[redis.Redis, RedisKeys, Settings]] = []
            looks: list[Look] = []
            try:
                targets = self._targets()
                for client, keys, settings in targets:
                    clock = self._clocks.setdefault(id(client), RedisClock(client))
                    looks.append(
                        queue_drains(client, keys, settings, self._send_task, clock.now_ms())
                    )
                failures = 0
            except Exception:  # the pump must outlive a Redis restart
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    logger.exception("pump: cannot reach Redis (attempt %d); retrying", failures)
            if self._on_pass is not None:
                try:
                    self._on_pass(failures == 0)
                except Exception:  # a heartbeat problem must never stop the pump
                    logger.exception("pump: heartbeat failed")
            if failures == 0:
                waited = self._wait_when_idle(targets, looks)
            if not waited:
                self._stop.wait(self._interval_s * (1 if failures == 0 else min(25, failures)))

    def _wait_when_idle(
        self, targets: list[tuple[redis.Redis, RedisKeys, Settings]], looks: list[Look]
    ) -> bool:
        """Wait in Redis for the next event when nothing is waiting; False when the pump
        must sleep its interval instead (work waiting, targets on several clients, an error)."""
        clients = {id(client) for client, _, _ in targets}
        if len(clients) != 1:
            return False
        client = targets[0][0]
        wait_ms = idle_wait_ms(looks, self._clocks[id(client)].now_ms())
        if wait_ms < self._interval_s * 1000:
            return False
        streams = [
            keys.shard(shard).stream
            for _, keys, settings in targets
            for shard in range(settings.shards)
        ]
        try:
            return wait_for_events(client, streams, wait_ms)
        except Exception:  # the next look reports Redis trouble; sleep the interval meanwhile
            return False

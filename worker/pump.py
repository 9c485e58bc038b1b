"""The pump: a small thread in each worker that starts drain tasks where there is work.

Every PUMP_INTERVAL_S it looks at each shard: if the shard has entries (or due retries) and no
drain task holds or awaits it, it queues one. The "queued" marker (SET NX with a TTL) keeps many
workers from queueing the same shard twice, and expires if a queued task is ever lost. Tasks are
sent by name, so the pump needs the Celery app it runs in, not the task module.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
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

SendTask = Callable[[str, tuple[str, int]], Any]


def shards_with_work(
    client: redis.Redis, keys: RedisKeys, settings: Settings, now_ms: int
) -> list[int]:
    """Shards that need a drain task now (pure reads; one round trip)."""
    commands: list[tuple[Any, ...]] = []
    for shard in range(settings.shards):
        shard_keys = keys.shard(shard)
        commands += (
            ("XLEN", shard_keys.stream),
            ("ZRANGEBYSCORE", shard_keys.retry, "-inf", now_ms, "LIMIT", 0, 1),
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
        return []  # Pushwoosh is failing: nothing to do until the back-off passes
    wanted = []
    for shard in range(settings.shards):
        replies = results[shard * 4 : shard * 4 + 4]
        failed = next((r for r in replies if isinstance(r, Exception)), None)
        if failed is not None:
            _warn_broken(keys.shard(shard).tag, failed, now_ms)
            continue
        length, retries_due, leased, queued = replies
        if (length > 0 or retries_due) and not leased and not queued:
            wanted.append(shard)
    return wanted


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
) -> int:
    started = 0
    for shard in shards_with_work(client, keys, settings, now_ms):
        if client.set(keys.queued(shard), "1", nx=True, px=QUEUED_MARKER_TTL_MS):
            send_task(DRAIN_TASK, (keys.destination, shard))
            started += 1
    return started


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
            try:
                for client, keys, settings in self._targets():
                    clock = self._clocks.setdefault(id(client), RedisClock(client))
                    queue_drains(client, keys, settings, self._send_task, clock.now_ms())
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
            self._stop.wait(self._interval_s * (1 if failures == 0 else min(25, failures)))

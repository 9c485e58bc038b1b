"""A worker's heartbeat: proof that it is still draining, for its liveness probe and the fleet.

The pump calls `beat` after every pass over the shards. At most once a second it writes a small
JSON file (WORKER_HEARTBEAT_PATH): when the pump last ran, whether Redis answered, and the drain
tasks running in this process with their start times. `pushwoosh-fleet probe worker` reads the
file, with no Redis and no broker, and fails when

- the pump has not run for `max_age_s` (the worker's main process or its pump is stuck or dead:
  nothing queues drain tasks from here any more), or
- a drain task has run longer than a drain can (its slice, one request, its lease): it is stuck,
  and its shard went to another worker when the lease expired.

Redis being away does NOT fail the probe: restarting cannot fix Redis, and a restart storm would
only delay the recovery. Every few seconds the pump also records the beat in Redis
(`config.redis_keys.worker_heartbeats`), from which `pushwoosh_fleet_workers_live` counts the
live workers of the whole fleet.

Drain tasks are seen through Celery's task signals in the process that runs them: with the
threads pool (the Procfile's) that is the worker process; with prefork, the pool's children, so
only the pump part of the probe applies.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import redis

logger = logging.getLogger(__name__)

WRITE_EVERY_S: Final = 1.0
REDIS_EVERY_S: Final = 5.0
# Beats of workers gone for longer than this are removed from Redis (pods come and go).
FORGET_AFTER_MS: Final = 24 * 3600 * 1000
DEFAULT_MAX_AGE_S: Final = 60.0


class Heartbeat:
    def __init__(
        self,
        path: str,
        node: str,
        stuck_after_s: float,
        redis_key: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.node = node
        self._stuck_after_s = stuck_after_s
        self._redis_key = redis_key
        self._clock = clock
        self._lock = threading.Lock()
        self._tasks: dict[str, float] = {}
        self._written_at = 0.0
        self._sent_at = 0.0
        self._failures = 0

    def task_started(self, task_id: str) -> None:
        with self._lock:
            self._tasks[task_id] = self._clock()

    def task_finished(self, task_id: str) -> None:
        with self._lock:
            self._tasks.pop(task_id, None)

    def state(self, redis_ok: bool) -> dict[str, Any]:
        with self._lock:
            tasks = dict(self._tasks)
        return {
            "node": self.node,
            "pid": os.getpid(),
            "beat": self._clock(),
            "redis_ok": redis_ok,
            "stuck_after_s": self._stuck_after_s,
            "tasks": tasks,
        }

    def beat(self, redis_ok: bool, client: redis.Redis | None) -> None:
        now = self._clock()
        if now - self._written_at >= WRITE_EVERY_S:
            self._write(self.state(redis_ok))
            self._written_at = now
        if client is not None and redis_ok and now - self._sent_at >= REDIS_EVERY_S:
            self._send(client, int(now * 1000))
            self._sent_at = now

    def _write(self, state: dict[str, Any]) -> None:
        # Written aside and renamed, so the probe never reads half a file.
        temporary = f"{self.path}.{os.getpid()}.tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as handle:
                json.dump(state, handle)
            os.replace(temporary, self.path)
            self._failures = 0
        except OSError as ex:
            self._failures += 1
            if self._failures in (1, 100):
                logger.error("heartbeat: cannot write %s: %s", self.path, ex)

    def _send(self, client: redis.Redis, now_ms: int) -> None:
        try:
            pipe = client.pipeline(transaction=False)
            pipe.zadd(self._redis_key, {self.node: now_ms})
            pipe.zremrangebyscore(self._redis_key, "-inf", now_ms - FORGET_AFTER_MS)
            pipe.execute()
        except redis.RedisError as ex:
            logger.debug("heartbeat: not recorded in Redis: %s", ex)

    def stop(self, client: redis.Redis | None) -> None:
        """A clean shutdown: this worker stops counting as live at once."""
        if client is not None:
            try:
                client.zrem(self._redis_key, self.node)
            except redis.RedisError:
                logger.debug("heartbeat: could not remove %s from Redis", self.node)
        with contextlib.suppress(OSError):
            os.remove(self.path)


def read_heartbeat(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists; another user's (kill answers EPERM) does."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def problems(
    state: dict[str, Any] | None,
    now_s: float,
    max_age_s: float = DEFAULT_MAX_AGE_S,
    alive: Callable[[int], bool] = pid_alive,
) -> list[str]:
    """Why the worker that wrote `state` is not draining; empty when it is."""
    if state is None:
        return ["no heartbeat: the worker has not started its pump (or writes elsewhere)"]
    found = []
    age_s = now_s - float(state.get("beat", 0))
    if age_s > max_age_s:
        found.append(f"the pump last ran {age_s:.0f} s ago (limit {max_age_s:g} s): stuck")
    pid = int(state.get("pid", 0))
    if pid and not alive(pid):
        found.append(f"the worker process {pid} is gone")
    stuck_after_s = float(state.get("stuck_after_s", 0))
    for task_id, started in sorted((state.get("tasks") or {}).items()):
        running_s = now_s - float(started)
        if stuck_after_s and running_s > stuck_after_s:
            found.append(
                f"drain task {task_id} has run {running_s:.0f} s; a drain ends within "
                f"{stuck_after_s:g} s: stuck"
            )
    return found

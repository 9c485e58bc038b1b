"""What a worker process needs, built once per process from the environment.

Built lazily (after Celery forks its pool), so each process has its own Redis pool and HTTP
session. Tests and the CLI build a `Runtime` directly from the pieces they hand in.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Sequence

import redis

from config.mappings import Mapping
from config.redis_keys import DEFAULT_DESTINATION, RedisKeys
from config.settings import Settings, load_settings
from worker.observer import DeliveryObserver, NullObserver
from worker.pushwoosh import Sender, make_sender


@dataclasses.dataclass
class Runtime:
    settings: Settings
    redis: redis.Redis
    mappings: Sequence[Mapping]
    sender: Sender
    destination: str = DEFAULT_DESTINATION
    observer: DeliveryObserver = dataclasses.field(default_factory=NullObserver)

    @property
    def keys(self) -> RedisKeys:
        return RedisKeys(self.settings.redis_key_prefix, self.destination)


def build_runtime(settings: Settings) -> Runtime:
    from config.mapping_file import mappings_from_settings

    client = redis.Redis.from_url(
        settings.effective_redis_url,
        decode_responses=True,
        socket_timeout=max(30.0, settings.batch_flush_delay_s + 10),
        socket_connect_timeout=5,
        health_check_interval=30,
    )
    return Runtime(
        settings=settings,
        redis=client,
        mappings=mappings_from_settings(settings),
        sender=make_sender(settings),
    )


_lock = threading.Lock()
_runtime: Runtime | None = None
_runtime_pid: int | None = None


def get_runtime() -> Runtime:
    """The process's runtime, built on first use (and again in a forked child)."""
    global _runtime, _runtime_pid
    with _lock:
        if _runtime is None or _runtime_pid != os.getpid():
            _runtime = build_runtime(load_settings(os.environ))
            _runtime_pid = os.getpid()
        return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Install a runtime (tests, the CLI), or clear it so the next use rebuilds."""
    global _runtime, _runtime_pid
    with _lock:
        _runtime = runtime
        _runtime_pid = os.getpid() if runtime is not None else None

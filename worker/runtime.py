"""What a worker process needs, built once per process from the environment.

Built lazily (after Celery forks its pool), so each process has its own Redis pool and HTTP
session. Tests and the CLI build a `Runtime` directly from the pieces they hand in.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Mapping as MappingABC
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


def build_runtimes(settings: Settings, env: MappingABC[str, str]) -> dict[str, Runtime]:
    """One Runtime per destination (DESTINATIONS_FILE), sharing one Redis connection pool."""
    from config.destinations import load_destinations
    from fleet.observer import build_observer

    client = settings.redis_client(
        decode_responses=True,
        socket_timeout=max(30.0, settings.batch_flush_delay_s + 10),
        socket_connect_timeout=5,
        health_check_interval=30,
    )
    return {
        name: Runtime(
            settings=destination.settings,
            redis=client,
            mappings=destination.mappings,
            sender=make_sender(destination.settings),
            destination=name,
            observer=build_observer(destination.settings, client, name),
        )
        for name, destination in load_destinations(settings, env).items()
    }


_lock = threading.Lock()
_runtimes: dict[str, Runtime] | None = None
_runtimes_pid: int | None = None


def get_runtimes() -> dict[str, Runtime]:
    """The process's runtimes by destination, built on first use (and again in a forked child)."""
    global _runtimes, _runtimes_pid
    with _lock:
        if _runtimes is None or _runtimes_pid != os.getpid():
            _runtimes = build_runtimes(load_settings(os.environ), os.environ)
            _runtimes_pid = os.getpid()
        return _runtimes


def get_runtime(destination: str = DEFAULT_DESTINATION) -> Runtime | None:
    """The runtime of one destination, or None when this fleet has no such destination."""
    return get_runtimes().get(destination)


def set_runtimes(runtimes: dict[str, Runtime] | None) -> None:
    """Install runtimes (tests, the CLI), or clear them so the next use rebuilds."""
    global _runtimes, _runtimes_pid
    with _lock:
        _runtimes = runtimes
        _runtimes_pid = os.getpid() if runtimes is not None else None

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

from config.destinations import load_destinations
from config.mappings import Mapping
from config.redis_keys import RedisKeys
from config.settings import Settings, load_settings
from store.client import redis_for
from worker.observer import DeliveryObserver
from worker.pushwoosh import DRY_RUN_APP_CODE, Sender, make_sender
from worker.telemetry import build_observer


@dataclasses.dataclass
class Runtime:
    """One destination's delivery, as one worker process runs it."""

    settings: Settings
    redis: redis.Redis
    mappings: Sequence[Mapping]
    sender: Sender
    destination: str
    observer: DeliveryObserver

    @property
    def keys(self) -> RedisKeys:
        return RedisKeys(self.settings.redis_key_prefix, self.destination)

    @property
    def app_code(self) -> str:
        """The application code batch elements carry (a placeholder in a dry run)."""
        return self.settings.pushwoosh_application_code or DRY_RUN_APP_CODE


def worker_redis(settings: Settings) -> redis.Redis:
    """The worker's Redis client: its reads block up to a flush delay, so a longer timeout."""
    return redis_for(
        settings,
        decode_responses=True,
        socket_timeout=max(30.0, settings.batch_flush_delay_s + 10),
        socket_connect_timeout=5,
        health_check_interval=30,
    )


def build_runtimes(settings: Settings, env: MappingABC[str, str]) -> dict[str, Runtime]:
    """One Runtime per destination (DESTINATIONS_FILE), sharing one Redis connection pool."""
    client = worker_redis(settings)
    return {
        name: Runtime(
            settings=destination.settings,
            redis=client,
            mappings=destination.mappings,
            sender=make_sender(destination.settings),
            destination=name,
            observer=build_observer(destination.settings, client, destination),
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


def get_runtime(destination: str) -> Runtime | None:
    """The runtime of one destination, or None when this fleet has no such destination."""
    return get_runtimes().get(destination)


def set_runtimes(runtimes: dict[str, Runtime] | None) -> None:
    """Install runtimes (tests, the CLI), or clear them so the next use rebuilds."""
    global _runtimes, _runtimes_pid
    with _lock:
        _runtimes = runtimes
        _runtimes_pid = os.getpid() if runtimes is not None else None

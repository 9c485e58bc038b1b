"""The pump against a real Redis: an idle pump waits for events in Redis instead of looking five
times a second, and a new event or a retry falling due still starts its drain at once."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis

from config.redis_keys import RedisKeys
from config.settings import Settings, load_settings
from worker.pump import IDLE_WAIT_MS, Pump

pytestmark = pytest.mark.integration

INTERVAL_S = 0.2


class _Watched:
    """A pump over one destination, its passes counted and its queued drains timed."""

    def __init__(self, redis_url: str, key_prefix: str) -> None:
        self.client = redis.Redis.from_url(redis_url, decode_responses=True)
        self.settings: Settings = load_settings(
            {"REDIS_URL": redis_url, "REDIS_KEY_PREFIX": key_prefix}
        )
        self.keys = RedisKeys(key_prefix, "default")
        self.passes = 0
        self.queued: list[float] = []
        self._queued_event = threading.Event()
        self.pump = Pump(INTERVAL_S, self._targets, self._send, on_pass=self._on_pass)

    def _targets(self) -> list[tuple[redis.Redis, RedisKeys, Settings]]:
        return [(self.client, self.keys, self.settings)]

    def _send(self, name: str, args: tuple[str, int]) -> Any:
        self.queued.append(time.monotonic())
        self._queued_event.set()

    def _on_pass(self, redis_ok: bool) -> None:
        self.passes += 1

    def wait_queued(self, timeout_s: float) -> bool:
        return self._queued_event.wait(timeout_s)


@pytest.fixture
def watched(redis_url: str, key_prefix: str) -> Any:
    pump = _Watched(redis_url, key_prefix)
    pump.pump.start()
    yield pump
    pump.pump.stop()


def test_an_idle_pump_looks_about_once_a_second_and_starts_a_new_event_at_once(
    watched: _Watched,
) -> None:
    # Given an idle destination
    time.sleep(1.5)
    # Then the pump looked about once a second, not five times
    assert watched.passes <= 3
    # When an event arrives mid-wait
    added = time.monotonic()
    watched.client.xadd(watched.keys.shard(0).stream, {"e": "{}"})
    # Then its drain is queued at once, long before the wait would have ended
    assert watched.wait_queued(IDLE_WAIT_MS / 1000)
    assert watched.queued[0] - added < 0.5


def test_an_idle_pump_wakes_for_a_retry_falling_due(watched: _Watched) -> None:
    # Given an idle pump, then a retry parked to fall due in 0.3 s
    time.sleep(0.3)
    seconds, micros = watched.client.time()
    due_ms = seconds * 1000 + micros // 1000 + 300
    watched.client.zadd(watched.keys.shard(0).retry, {"r": due_ms})
    # Then its drain is queued when it falls due, within the idle wait and a pass interval
    assert watched.wait_queued((IDLE_WAIT_MS + 300) / 1000 + 2 * INTERVAL_S)

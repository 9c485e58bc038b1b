"""A rate limit per destination shared by every worker on every machine, kept in Redis.

Two token buckets (requests/s and events/s) live in one Redis hash and are refilled and spent by
one Lua script (store/lua/rate_limit_acquire.lua), so any number of worker processes together
stay under the limit. The limit is adaptive: a 429 from Pushwoosh halves the current rate for
everyone (down to a tenth), and the rate then recovers gradually, by RATE_LIMIT_RECOVERY_PER_S
of the configured rate per second.
(Retry-After itself is honoured by the shared back-off in worker/circuit.py.)
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from store import scripts

MIN_FACTOR = 0.1
MAX_WAIT_S = 5.0


class SharedRateLimit:
    def __init__(
        self,
        client: redis.Redis,
        key: str,
        requests_per_s: float,
        events_per_s: float,
        recovery_per_s: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._key = key
        self._requests_per_s = requests_per_s
        self._events_per_s = events_per_s
        self._recovery_per_s = recovery_per_s
        self._sleep = sleep
        self._acquire = scripts.script(client, "rate_limit_acquire")
        self._slow_down = scripts.script(client, "rate_limit_slow_down")

    @property
    def enabled(self) -> bool:
        return self._requests_per_s > 0 or self._events_per_s > 0

    def wait_ms(self, events: int) -> int:
        """Spend tokens for one request of `events` events, or say how long to wait."""
        if not self.enabled:
            return 0
        return int(
            self._acquire(
                keys=[self._key],
                args=[
                    self._requests_per_s,
                    self._events_per_s,
                    events,
                    self._recovery_per_s,
                ],
            )
        )

    def acquire(self, events: int, keep_alive: Callable[[], None] = lambda: None) -> float:
        """Block until the request may go; returns the seconds waited."""
        waited = 0.0
        while True:
            wait_ms = self.wait_ms(events)
            if wait_ms <= 0:
                return waited
            pause = min(MAX_WAIT_S, wait_ms / 1000)
            self._sleep(pause)
            waited += pause
            keep_alive()

    def slow_down(self) -> float:
        """Pushwoosh said 429: halve the shared rate (not below a tenth)."""
        if not self.enabled:
            return 1.0
        return float(self._slow_down(keys=[self._key], args=[MIN_FACTOR]))

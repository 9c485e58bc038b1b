"""Time, handed in: policy and delivery code take a Clock instead of reading time themselves,
so tests can set the time and the code under test stays deterministic."""

from __future__ import annotations

import time
from typing import Any, Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock time in milliseconds since the epoch."""

    def monotonic_s(self) -> float:
        """Seconds on a clock that never goes back, for measuring intervals."""


class SystemClock:
    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def monotonic_s(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()


class RedisClock:
    """Wall-clock time as Redis tells it, so every worker agrees whatever its own clock says.

    Retry schedules, the shared back-off and the rate limit compare times written by different
    workers; a worker whose clock ran 5 s ahead would otherwise send retries 5 s early and
    read the back-off as over. Redis' `TIME` is read at most every RESYNC_S (one round trip),
    and the local monotonic clock carries the time in between.
    """

    RESYNC_S = 5.0

    def __init__(self, client: Any, local: Clock = SYSTEM_CLOCK) -> None:
        self._client = client
        self._local = local
        self._offset_ms: float | None = None
        self._synced_at = 0.0

    def now_ms(self) -> int:
        now = self._local.monotonic_s()
        if self._offset_ms is None or now - self._synced_at >= self.RESYNC_S:
            self._sync()
        assert self._offset_ms is not None
        return int(self._local.monotonic_s() * 1000 + self._offset_ms)

    def monotonic_s(self) -> float:
        return self._local.monotonic_s()

    def _sync(self) -> None:
        before = self._local.monotonic_s()
        seconds, micros = self._client.time()
        after = self._local.monotonic_s()
        redis_ms = int(seconds) * 1000 + int(micros) / 1000
        # Redis read its clock somewhere in the round trip: take the middle.
        self._offset_ms = redis_ms - (before + after) / 2 * 1000
        self._synced_at = after

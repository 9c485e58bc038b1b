"""Time, handed in: policy and delivery code take a Clock instead of reading time themselves,
so tests can set the time and the code under test stays deterministic."""

from __future__ import annotations

import time
from typing import Protocol


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

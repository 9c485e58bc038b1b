"""Leave Redis room to deliver: refuse new events while its memory is nearly full.

At `maxmemory` Redis refuses every write, the lease and the settle of a drain included, so a
full Redis would stop delivery, and delivery is what frees memory. Ingest therefore answers 503
with Retry-After once used memory passes (1 - REDIS_MEMORY_HEADROOM) of `maxmemory`, well
before Redis itself refuses.

Each process reads Redis' memory at most every CHECK_INTERVAL_S, and in between adds what it
stores to that reading (a request's size is a good estimate of what it adds); as soon as the
estimate nears the threshold it reads again. So a fast sender cannot overshoot between checks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from ingest.errors import StoreUnavailable

logger = logging.getLogger(__name__)

CHECK_INTERVAL_S: Final = 0.5


class MemoryGuard:
    def __init__(
        self, client: Any, headroom: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._client = client
        self._headroom = headroom
        self._clock = clock
        self._lock = threading.Lock()
        self._checked_at = -CHECK_INTERVAL_S
        self._estimate = 0
        self._threshold = 0  # 0: no maxmemory (or no headroom asked for): never refuse

    def check(self, incoming_bytes: int) -> None:
        """Raise StoreUnavailable when storing `incoming_bytes` would pass the threshold."""
        with self._lock:
            if self.due(incoming_bytes):
                self.update(self._client.info("memory"))
            self.admit(incoming_bytes)

    # The same in steps, for a caller that reads INFO memory its own way (ingest's event loop):
    # `due`, then `update` with the reading when due, then `admit`.
    def due(self, incoming_bytes: int) -> bool:
        """True when Redis' memory must be read before `incoming_bytes` can be admitted."""
        near = self._threshold and self._estimate + incoming_bytes > self._threshold
        return bool(near) or self._clock() - self._checked_at >= CHECK_INTERVAL_S

    def update(self, info: Mapping[str, Any]) -> None:
        """Take a fresh INFO memory reading."""
        limit = int(info.get("maxmemory") or 0)
        self._threshold = int(limit * (1 - self._headroom)) if limit and self._headroom else 0
        self._estimate = int(info.get("used_memory") or 0)
        self._checked_at = self._clock()

    def admit(self, incoming_bytes: int) -> None:
        """Count `incoming_bytes` as stored, or raise StoreUnavailable if it would pass."""
        if self._threshold and self._estimate + incoming_bytes > self._threshold:
            logger.warning(
                "Redis memory near its maxmemory (%d of %d bytes allowed): refusing new "
                "events until delivery frees some",
                self._estimate,
                self._threshold,
            )
            raise StoreUnavailable("the event store is nearly full; retry later")
        self._estimate += incoming_bytes

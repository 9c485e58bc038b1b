"""A lease on one shard, so exactly one drain task reads and sends it at a time (in order).

The lease is a key with the holder's token and a time to live in Redis; the holder renews it as
it works, and its unit of work commits only while the token is still its own. Every send is cut
off before the lease could run out (`remaining_s`), so a task that lost its lease can never have
a request in flight while the next owner sends.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Final

import redis

from store import scripts

# A send is cut off this long before the lease could expire: the margin covers the round trip
# of the next renewal and the difference between this process's clock rate and Redis'.
SAFETY_MARGIN_S: Final = 1.0


class LeaseLost(Exception):
    """Raised when a drain task finds that its shard lease expired and may be held by another."""


class Lease:
    def __init__(
        self,
        client: redis.Redis,
        key: str,
        ttl_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.key = key
        self._ttl_ms = int(ttl_s * 1000)
        self._monotonic = monotonic
        self.token = uuid.uuid4().hex
        self._renewed_at = 0.0
        self._renew = scripts.script(client, "lease_renew")
        self._release = scripts.script(client, "lease_release")

    def acquire(self) -> bool:
        started = self._monotonic()
        acquired = bool(self._client.set(self.key, self.token, nx=True, px=self._ttl_ms))
        if acquired:
            self._renewed_at = started  # counted from before the round trip: never optimistic
        return acquired

    def renew(self, force: bool = False) -> None:
        """Extend the lease; a round trip at most every third of its life unless forced."""
        started = self._monotonic()
        if not force and started - self._renewed_at < self._ttl_ms / 3000:
            return
        if not self._renew(keys=[self.key], args=[self.token, self._ttl_ms]):
            raise LeaseLost(self.key)
        self._renewed_at = started

    def remaining_s(self) -> float:
        """How long the lease surely still holds, minus a safety margin (may be negative)."""
        held_s = self._monotonic() - self._renewed_at
        return self._ttl_ms / 1000 - held_s - SAFETY_MARGIN_S

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.token])

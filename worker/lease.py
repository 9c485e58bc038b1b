"""A lease on one shard, so exactly one drain task reads it at a time (and keeps it in order)."""

from __future__ import annotations

import time
import uuid

import redis

from store import scripts


class LeaseLost(Exception):
    """Raised when a drain task finds that its shard lease expired and may be held by another."""


class Lease:
    def __init__(self, client: redis.Redis, key: str, ttl_s: float) -> None:
        self._client = client
        self._key = key
        self._ttl_ms = int(ttl_s * 1000)
        self.token = uuid.uuid4().hex
        self._renewed_at = 0.0
        self._renew = scripts.script(client, "lease_renew")
        self._release = scripts.script(client, "lease_release")

    def acquire(self) -> bool:
        acquired = bool(self._client.set(self._key, self.token, nx=True, px=self._ttl_ms))
        if acquired:
            self._renewed_at = time.monotonic()
        return acquired

    def renew(self) -> None:
        """Extend the lease; a round trip at most every third of its life, not at every call."""
        now = time.monotonic()
        if now - self._renewed_at < self._ttl_ms / 3000:
            return
        if not self._renew(keys=[self._key], args=[self.token, self._ttl_ms]):
            raise LeaseLost(self._key)
        self._renewed_at = now

    def release(self) -> None:
        self._release(keys=[self._key], args=[self.token])

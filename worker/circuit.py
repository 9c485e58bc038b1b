"""A back-off shared by every worker of a destination, kept in Redis.

When Pushwoosh fails a call retryably (or refuses the credentials), the circuit opens until a
jittered, growing deadline (never sooner than Retry-After; the delays come from the retry
policy). While it is open no worker sends; when it passes, one worker sends a single probe (a
short Redis lock), and only its success closes the circuit. So an outage costs one request per
back-off interval, however many workers there are.
"""

from __future__ import annotations

import logging
import random
from typing import Final

import redis

from config.redis_keys import RedisKeys
from worker.errors import AuthenticationFailed, RetryableDeliveryError
from worker.policy import RetryPolicy

logger = logging.getLogger(__name__)

# The circuit's state is read at most this often per drain task; sends in between use the copy.
CACHE_MS: Final = 100


class Circuit:
    def __init__(
        self,
        client: redis.Redis,
        keys: RedisKeys,
        policy: RetryPolicy,
        rng: random.Random,
        probe_ttl_s: float,
    ) -> None:
        self._client = client
        self._key = keys.circuit
        self._probe_key = keys.circuit_probe
        self._policy = policy
        self._rng = rng
        self._probe_ttl_ms = int(probe_ttl_s * 1000)
        self._cached_at_ms = -CACHE_MS
        self._open_until_ms = 0
        self._failures = 0
        self._holding_probe = False

    def _refresh(self, now_ms: int) -> None:
        if now_ms - self._cached_at_ms < CACHE_MS:
            return
        state = self._client.hgetall(self._key)
        self._open_until_ms = int(state.get("open_until_ms", 0))
        self._failures = int(state.get("failures", 0))
        self._cached_at_ms = now_ms

    def open_until_ms(self, now_ms: int) -> int:
        """0 when closed; else when sending may be tried again."""
        self._refresh(now_ms)
        return self._open_until_ms if self._failures else 0

    def allows_send(self, now_ms: int) -> bool:
        self._refresh(now_ms)
        if not self._failures or self._holding_probe:
            return True
        if now_ms < self._open_until_ms:
            return False
        if self._client.set(self._probe_key, "1", nx=True, px=self._probe_ttl_ms):
            self._holding_probe = True
            return True
        return False

    def record_success(self) -> None:
        if self._failures or self._holding_probe:
            self._client.delete(self._key, self._probe_key)
            self._failures = 0
            self._open_until_ms = 0
            self._holding_probe = False

    def record_failure(
        self, error: RetryableDeliveryError | AuthenticationFailed, now_ms: int
    ) -> int:
        """Open (or keep open) the circuit; returns the deadline in ms."""
        failures = int(self._client.hincrby(self._key, "failures", 1))
        if isinstance(error, AuthenticationFailed):
            delay_s = self._policy.auth_pause_delay_s(failures)
            logger.error(
                "Pushwoosh refused the credentials (%s): check PUSHWOOSH_API_KEY and "
                "PUSHWOOSH_APPLICATION_CODE; pausing delivery for %.0f s",
                error.reason,
                delay_s,
            )
        else:
            delay_s = self._policy.retry_delay_s(failures, error.retry_after_s, self._rng)
            logger.warning(
                "Pushwoosh call failed (%s); pausing sends for %.2f s (failure %d in a row)",
                error.reason,
                delay_s,
                failures,
            )
        open_until_ms = now_ms + int(delay_s * 1000)
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(
            self._key,
            mapping={
                "open_until_ms": open_until_ms,
                "reason": error.reason[:300],
                "kind": "auth" if isinstance(error, AuthenticationFailed) else "retryable",
            },
        )
        pipe.delete(self._probe_key)
        pipe.execute()
        self._holding_probe = False
        self._failures = failures
        self._open_until_ms = open_until_ms
        self._cached_at_ms = now_ms
        return open_until_ms

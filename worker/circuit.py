"""A back-off shared by every worker of a destination, kept in Redis.

When Pushwoosh fails a call retryably (or refuses the credentials), the circuit opens until a
jittered, growing deadline (never sooner than Retry-After). While it is open no worker sends;
when it passes, one worker sends a single probe (a short Redis lock), and only its success closes
the circuit. So an outage costs one request per back-off interval, however many workers there are.
"""

from __future__ import annotations

import logging
import random
import time

import redis

from config.settings import Settings
from worker.errors import AuthenticationFailed, RetryableDeliveryError
from worker.retry import retry_delay_s

logger = logging.getLogger(__name__)

AUTH_PAUSE_CAP_S = 3600.0
CACHE_S = 0.1


class Circuit:
    def __init__(
        self, client: redis.Redis, key: str, settings: Settings, rng: random.Random
    ) -> None:
        self._client = client
        self._key = key
        self._probe_key = key + ":probe"
        self._settings = settings
        self._rng = rng
        self._cached_at = 0.0
        self._open_until_ms = 0
        self._failures = 0
        self._holding_probe = False

    def _refresh(self, now_s: float) -> None:
        if now_s - self._cached_at < CACHE_S:
            return
        state = self._client.hgetall(self._key)
        self._open_until_ms = int(state.get("open_until_ms", 0))
        self._failures = int(state.get("failures", 0))
        self._cached_at = now_s

    def open_until_ms(self, now_s: float) -> int:
        """0 when closed; else when sending may be tried again."""
        self._refresh(now_s)
        return self._open_until_ms if self._failures else 0

    def allows_send(self, now_s: float | None = None) -> bool:
        now_s = time.time() if now_s is None else now_s
        self._refresh(now_s)
        if not self._failures or self._holding_probe:
            return True
        if now_s * 1000 < self._open_until_ms:
            return False
        probe_ttl_ms = int((self._settings.pushwoosh_timeout_s + 5) * 1000)
        if self._client.set(self._probe_key, "1", nx=True, px=probe_ttl_ms):
            self._holding_probe = True
            return True
        return False

    def record_success(self) -> None:
        if self._failures or self._holding_probe:
            self._client.delete(self._key, self._probe_key)
            self._failures = 0
            self._open_until_ms = 0
            self._holding_probe = False

    def record_failure(self, error: RetryableDeliveryError | AuthenticationFailed) -> int:
        """Open (or keep open) the circuit; returns the deadline in ms."""
        now_s = time.time()
        failures = int(self._client.hincrby(self._key, "failures", 1))
        if isinstance(error, AuthenticationFailed):
            delay_s = min(
                AUTH_PAUSE_CAP_S, self._settings.auth_failure_pause_s * 2 ** (failures - 1)
            )
            logger.error(
                "Pushwoosh refused the credentials (%s): check PUSHWOOSH_API_KEY and "
                "PUSHWOOSH_APPLICATION_CODE; pausing delivery for %.0f s",
                error.reason,
                delay_s,
            )
        else:
            delay_s = retry_delay_s(
                failures - 1,
                error.retry_after_s,
                self._settings.retry_base_delay_s,
                self._settings.retry_max_delay_s,
                self._rng,
            )
            logger.warning(
                "Pushwoosh call failed (%s); pausing sends for %.2f s (failure %d in a row)",
                error.reason,
                delay_s,
                failures,
            )
        open_until_ms = int((now_s + delay_s) * 1000)
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
        self._cached_at = now_s
        return open_until_ms

"""A rate limit per destination shared by every worker on every machine, kept in Redis.

Two token buckets (requests/s and events/s) live in one Redis hash and are refilled and spent by
one Lua script, so any number of worker processes together stay under the limit. The limit is
adaptive: a 429 from Pushwoosh halves the current rate for everyone (down to a tenth), and the
rate then recovers gradually, by RATE_LIMIT_RECOVERY_PER_S of the configured rate per second.
(Retry-After itself is honoured by the shared back-off in worker/circuit.py.)
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

# KEYS[1] = bucket hash. ARGV: now_ms, req_rate, ev_rate, n_events, recovery_per_s.
# Returns 0 when the request may go now, else the milliseconds to wait before asking again.
_ACQUIRE = """
local now = tonumber(ARGV[1])
local req_rate = tonumber(ARGV[2])
local ev_rate = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local recovery = tonumber(ARGV[5])
local state = redis.call('HMGET', KEYS[1], 'req', 'ev', 'ts', 'factor')
local factor = tonumber(state[4]) or 1.0
local ts = tonumber(state[3]) or now
local elapsed = math.max(0, now - ts) / 1000.0
factor = math.min(1.0, factor + elapsed * recovery)
local req_cap = math.max(1, req_rate)
local ev_cap = math.max(n, ev_rate)
local req = math.min(req_cap, (tonumber(state[1]) or req_cap) + elapsed * req_rate * factor)
local ev = math.min(ev_cap, (tonumber(state[2]) or ev_cap) + elapsed * ev_rate * factor)
local wait = 0
if req_rate > 0 and req < 1 then
  wait = math.max(wait, (1 - req) / (req_rate * factor) * 1000)
end
if ev_rate > 0 and ev < n then
  wait = math.max(wait, (n - ev) / (ev_rate * factor) * 1000)
end
if wait == 0 then
  if req_rate > 0 then req = req - 1 end
  if ev_rate > 0 then ev = ev - n end
end
redis.call('HSET', KEYS[1], 'req', tostring(req), 'ev', tostring(ev), 'ts', now,
           'factor', tostring(factor))
redis.call('PEXPIRE', KEYS[1], 3600000)
return math.ceil(wait)
"""

_SLOW_DOWN = """
local factor = tonumber(redis.call('HGET', KEYS[1], 'factor')) or 1.0
factor = math.max(tonumber(ARGV[1]), factor * 0.5)
redis.call('HSET', KEYS[1], 'factor', tostring(factor))
return tostring(factor)
"""

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
        self._acquire = client.register_script(_ACQUIRE)
        self._slow_down = client.register_script(_SLOW_DOWN)

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
                    int(time.time() * 1000),
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

"""Delivery policy, pure: what a Pushwoosh reply means, and what to do next.

`classify` turns a reply into None (delivered) or a `DeliveryError` that says whether trying
again can help; `decide` turns that outcome, the attempt so far and the time into one action:

| outcome                                                   | when                  | action      |
|-----------------------------------------------------------|-----------------------|-------------|
| any 2xx (207 too)                                         |                       | Deliver     |
| 408, 423, 429, 5xx except 501, timeout, connection error  | attempts and age left | Park        |
| the same                                                  | attempts or age spent | DeadLetter  |
| 400 on a request of two or more events                    |                       | Split       |
| 401, 403                                                  |                       | Pause       |
| any other 4xx, 501, 400 on one event                      |                       | DeadLetter  |

A parked call waits `max(Retry-After, full-jitter exponential back-off)`, the server's wish
clamped to RETRY_MAX_DELAY_S. Which statuses are retried comes from the wire contract.
"""

from __future__ import annotations

import dataclasses
import email.utils
import math
import random
import re
from collections.abc import Mapping
from typing import Final

from config.settings import Settings
from worker.errors import (
    AuthenticationFailed,
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)

RETRYABLE_STATUSES: Final = frozenset({408, 423, 429})
MAX_REASON_CHARS: Final = 500
# A 401/403 pause doubles per failure in a row, up to an hour.
AUTH_PAUSE_CAP_S: Final = 3600.0
# delta-seconds: RFC 9110 says a non-negative integer; a decimal fraction is tolerated.
_DELTA_SECONDS = re.compile(r"\d{1,12}(\.\d{1,6})?")


def _short(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS] + "…"


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP-date), or None.

    A reply is untrusted input: anything but a plain non-negative number or a valid HTTP-date
    (`inf`, `nan`, `-5`, `1e13`, garbage) means no Retry-After at all. Callers clamp the result.
    """
    if not value:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None or when.tzinfo is None:
        return None
    seconds = when.timestamp() - now_s
    return max(0.0, seconds) if math.isfinite(seconds) else None


def classify(
    status: int | None,
    body: str,
    headers: Mapping[str, str],
    transport_error: str | None,
    now_s: float,
) -> DeliveryError | None:
    """None when the call delivered (any 2xx); otherwise the error that says what to do next."""
    if transport_error is not None or status is None:
        return RetryableDeliveryError(_short(transport_error or "no response"), None)
    if 200 <= status < 300:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    reason = f"HTTP {status}: {_short(body)}" if body.strip() else f"HTTP {status}"
    if status in RETRYABLE_STATUSES or (status >= 500 and status != 501):
        retry_after = parse_retry_after(lowered.get("retry-after"), now_s)
        return RetryableDeliveryError(reason, status, retry_after)
    if status in (401, 403):
        return AuthenticationFailed(reason, status)
    return PermanentDeliveryError(reason, status)


def backoff_delay_s(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential back-off with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    ceiling = min(cap_s, base_s * (2 ** min(max(attempt, 0), 40)))
    return rng.uniform(0.0, ceiling)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """The settings the policy reads."""

    base_delay_s: float = 1.0
    max_delay_s: float = 300.0
    max_age_s: float = 4 * 3600.0
    max_attempts: int = 50
    auth_pause_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            base_delay_s=settings.retry_base_delay_s,
            max_delay_s=settings.retry_max_delay_s,
            max_age_s=settings.retry_max_age_s,
            max_attempts=settings.retry_max_attempts,
            auth_pause_s=settings.auth_failure_pause_s,
        )

    def retry_delay_s(
        self, failures: int, retry_after_s: float | None, rng: random.Random
    ) -> float:
        """The wait after the `failures`-th failure in a row: never sooner than the server's
        Retry-After, which is clamped to max_delay_s."""
        jittered = backoff_delay_s(failures - 1, self.base_delay_s, self.max_delay_s, rng)
        if retry_after_s is None:
            return jittered
        return max(min(retry_after_s, self.max_delay_s), jittered)

    def auth_pause_delay_s(self, failures: int) -> float:
        """The pause after the `failures`-th credentials failure in a row."""
        doublings = min(max(failures - 1, 0), 20)
        return min(AUTH_PAUSE_CAP_S, self.auth_pause_s * float(2**doublings))


@dataclasses.dataclass(frozen=True)
class Attempt:
    """A request just sent: how many times in all (this one included), since when its oldest
    event waits, and how many events it carries."""

    attempts: int
    first_accepted_ms: int
    size: int


@dataclasses.dataclass(frozen=True)
class Deliver:
    """Pushwoosh took every event of the request."""


@dataclasses.dataclass(frozen=True)
class Park:
    """Try again at `due_ms`."""

    due_ms: int
    reason: str


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """Never send again on its own; keep it in the dead-letter queue with the reason."""

    code: str  # a short, bounded label: retries_exhausted, http_400, ...
    reason: str


@dataclasses.dataclass(frozen=True)
class Split:
    """A batch was refused: send its halves, so only the bad events end up dead-lettered."""


@dataclasses.dataclass(frozen=True)
class Pause:
    """The credentials were refused: dead-letter this request and pause the destination."""

    reason: str


Action = Deliver | Park | DeadLetter | Split | Pause


def decide(
    outcome: DeliveryError | None,
    attempt: Attempt,
    now_ms: int,
    policy: RetryPolicy,
    rng: random.Random,
) -> Action:
    """What to do with a request after one more attempt; see the module's table."""
    if outcome is None:
        return Deliver()
    if isinstance(outcome, RetryableDeliveryError):
        age_s = (now_ms - attempt.first_accepted_ms) / 1000
        if attempt.attempts >= policy.max_attempts or age_s >= policy.max_age_s:
            return DeadLetter(
                "retries_exhausted", f"gave up after {attempt.attempts} attempts: {outcome.reason}"
            )
        delay_s = policy.retry_delay_s(attempt.attempts, outcome.retry_after_s, rng)
        return Park(now_ms + int(delay_s * 1000), outcome.reason)
    if isinstance(outcome, AuthenticationFailed):
        return Pause(outcome.reason)
    if outcome.status == 400 and attempt.size > 1:
        return Split()
    code = f"http_{outcome.status}" if outcome.status is not None else "failed"
    return DeadLetter(code, outcome.reason)

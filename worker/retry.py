"""Retry policy, pure: classify a Pushwoosh reply and compute back-off delays.

Which failures are retried comes from the wire contract: 408, 423, 429 and every 5xx except 501,
timeouts and connection errors. Every other 4xx and 501 is permanent; 401/403 mean the
credentials are wrong.
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import Mapping

from worker.errors import (
    AuthenticationFailed,
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)

RETRYABLE_STATUSES = frozenset({408, 423, 429})
MAX_REASON_CHARS = 500


def _short(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS] + "…"


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now_s)


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
    ceiling = min(cap_s, base_s * (2 ** min(attempt, 40)))
    return rng.uniform(0.0, ceiling)


def retry_delay_s(
    attempt: int, retry_after_s: float | None, base_s: float, cap_s: float, rng: random.Random
) -> float:
    """The wait before the next attempt: never sooner than the server's Retry-After."""
    jittered = backoff_delay_s(attempt, base_s, cap_s, rng)
    if retry_after_s is None:
        return jittered
    return max(retry_after_s, jittered)

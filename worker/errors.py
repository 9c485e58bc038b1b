"""Why a Pushwoosh call failed, as a small hierarchy that says whether to try again.

These are values returned by `worker.retry.classify`, not exceptions raised through the stack:
a failed call is an ordinary outcome of delivery, and the drain loop decides what to do with it.
"""

from __future__ import annotations


class DeliveryError(Exception):
    """Raised when a Pushwoosh call did not deliver its events."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class RetryableDeliveryError(DeliveryError):
    """Raised when a call failed for a reason that may pass: timeout, network, 408/423/429/5xx."""

    def __init__(self, reason: str, status: int | None = None, retry_after_s: float | None = None):
        super().__init__(reason, status)
        self.retry_after_s = retry_after_s


class PermanentDeliveryError(DeliveryError):
    """Raised when Pushwoosh refused a call and sending it again cannot help (other 4xx, 501)."""


class AuthenticationFailed(PermanentDeliveryError):
    """Raised when Pushwoosh answers 401/403: the API key or application code is wrong."""

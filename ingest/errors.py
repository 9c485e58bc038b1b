"""Errors of the ingest package; each carries the HTTP status, code and message it answers with.

The HTTP edge maps them to `{"code": ..., "message": ...}` in one place (ingest/answers.py).
Messages are shown to senders, so they never contain a write key, a secret or a signature.
"""

from __future__ import annotations

# How long a sender should wait before retrying when the fleet sheds load or Redis is away.
DEFAULT_RETRY_AFTER_S = 5


class IngestError(Exception):
    """Raised when a request cannot be accepted; root of every ingest error."""

    status: int = 400
    code: str = "invalid_request"

    def __init__(
        self, message: str, *, code: str | None = None, retry_after_s: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.retry_after_s = retry_after_s


class BadRequest(IngestError):
    """Raised when a request is malformed or fails validation; a retry cannot fix it."""

    status = 400
    code = "invalid_request"


class PayloadTooLarge(IngestError):
    """Raised when a request, an event or a batch is over a size limit; the message names it."""

    # 400, not 413: Segment's API answers 400 to an over-limit request, and analytics-swift
    # (without an httpConfig in its settings) drops a batch only on 400: it would resend a
    # batch refused with 413 for ever. Every other Segment SDK drops both.
    status = 400
    code = "too_large"


class Unauthorized(IngestError):
    """Raised when a request carries no valid write key or signature."""

    status = 401
    code = "unauthorized"


class Forbidden(IngestError):
    """Raised when a valid credential may not do what the request asks (a delete on a write key)."""

    status = 403
    code = "forbidden"


class OriginNotAllowed(IngestError):
    """Raised when a browser posts from a page whose origin INGEST_CORS_ORIGINS does not list."""

    status = 403
    code = "origin_not_allowed"


class UnsupportedMediaType(IngestError):
    """Raised when the Content-Type or Content-Encoding is not one ingest understands."""

    status = 415
    code = "unsupported_media_type"


class RequestTimeout(IngestError):
    """Raised when a request's body does not arrive within INGEST_BODY_TIMEOUT_S."""

    # Segment's SDKs retry a 408 (analytics.js always; the mobile SDKs keep the batch).
    status = 408
    code = "request_timeout"


class ClientGone(BadRequest):
    """Raised when the client disconnects before its whole body arrived: nothing is stored
    (part of a body might still parse), and no one reads the answer."""

    code = "client_disconnected"


class QueueFull(IngestError):
    """Raised when accepting the events would push the backlog over its limit.

    The sender is told only that the queue is full: the backlog's size is the operator's
    business (it is logged, and on the metrics), not the public port's. `detail` keeps what the
    raiser said.
    """

    status = 429
    code = "queue_full"
    PUBLIC_MESSAGE = "the event queue is full; retry after Retry-After seconds"

    def __init__(self, message: str, *, retry_after_s: int = DEFAULT_RETRY_AFTER_S) -> None:
        super().__init__(self.PUBLIC_MESSAGE, retry_after_s=retry_after_s)
        self.detail = message


class StoreUnavailable(IngestError):
    """Raised when Redis cannot be reached, so nothing was stored and a retry may succeed."""

    status = 503
    code = "store_unavailable"

    def __init__(self, message: str, *, retry_after_s: int = DEFAULT_RETRY_AFTER_S) -> None:
        super().__init__(message, retry_after_s=retry_after_s)

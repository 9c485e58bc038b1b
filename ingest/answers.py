"""What ingest answers, in one place: the answer to stored events, and to every refusal.

The front (ingest/front.py) answers POSTs to the ingest routes from here, and falcon's error
handlers (ingest/app.py) every other route, so a refusal reads the same whichever served it:
`{"code": ..., "message": ...}`, the status its error carries, and no traceback ever.
"""

from __future__ import annotations

import dataclasses
import json
import logging

from ingest.errors import DEFAULT_RETRY_AFTER_S, IngestError, PayloadTooLarge, RequestTimeout

logger = logging.getLogger(__name__)

# Exactly this body with 200: Segment's clients treat anything else as a failure.
STORED_BODY = b'{"success": true}'


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """A status, a JSON body and the headers that go with them (besides the content's)."""

    status: int
    code: str
    message: str
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def media(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}

    def body(self) -> bytes:
        """The body as falcon's JSON handler writes `media` (the standard library's dumps)."""
        return json.dumps(self.media, ensure_ascii=False).encode()


def refusal(ex: IngestError, method: str, path: str) -> Answer:
    """The answer to a request refused with `ex`, logged once here."""
    if ex.status >= 500 or ex.status == 429:
        logger.warning("%s %s: %s %s", method, path, ex.status, ex.code)
    else:
        logger.info("%s %s: %s %s: %s", method, path, ex.status, ex.code, ex.message)
    headers: list[tuple[str, str]] = []
    if isinstance(ex, RequestTimeout | PayloadTooLarge):
        # The rest of the body may still be on its way: reading it would only feed a client
        # that is too slow or too big, so the connection closes after this answer.
        headers.append(("Connection", "close"))
    if ex.retry_after_s is not None:
        headers.append(("Retry-After", str(ex.retry_after_s)))
    return Answer(ex.status, ex.code, ex.message, tuple(headers))


def unexpected(method: str, path: str, *, stored: bool) -> Answer:
    """Never a 500 with a traceback: log it (call from an `except`), answer 503 so the sender
    retries. When the events were stored already, no Retry-After: a retry is only a repeat."""
    logger.exception("unexpected error on %s %s (events stored: %s)", method, path, stored)
    headers = () if stored else (("Retry-After", str(DEFAULT_RETRY_AFTER_S)),)
    return Answer(503, "internal_error", "internal error; retry later", headers)

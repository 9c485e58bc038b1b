"""Hooks the drain loop calls as calls move along, for metrics and event traces.

The drain loop calls these at each step and `flush()` after each commit; an observer buffers
what it learns and writes it out in `flush()`. Observers never decide anything about delivery.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from worker.batching import PlannedRequest
from worker.dlq import DeadLetter
from worker.mapping import Call, Rejection
from worker.pushwoosh import Reply

logger = logging.getLogger(__name__)

# One event read from its stream: its messageId (as the event has it, None when it has none),
# when it was accepted (ms, from its entry id), its `src` field and the calls it matched (maybe
# none).
Mapped = tuple[Any, int, str, Sequence[Call]]


class DeliveryObserver(Protocol):
    def on_mapped(self, mapped: Sequence[Mapped]) -> None:
        """Events read together from their stream, each with the calls it matched: once per
        read, before any of their outcomes (skipped, rejected, sent...) is reported."""

    def on_rejected(self, rejection: Rejection) -> None:
        """A mapping could not turn an event into a valid call."""

    def on_skipped(self, message_id: str, reason: str) -> None:
        """An event (or one of its calls) is not sent, by design: no user id, integrations."""

    def on_attempt(
        self, request: PlannedRequest, reply: Reply, outcome: str, attempts: int
    ) -> None:
        """A request was sent; outcome is delivered, retry, split, dead_letter or auth_failed."""

    def on_parked(self, request: PlannedRequest, due_ms: int, attempts: int, reason: str) -> None:
        """A request was put on the retry schedule."""

    def on_dead_lettered(self, letter: DeadLetter) -> None:
        """A call (or a rejected event) went to the dead-letter queue."""

    def flush(self) -> None:
        """The drain loop committed; write out what was buffered."""


class NullObserver:
    def on_mapped(self, mapped: Sequence[Mapped]) -> None:
        return

    def on_rejected(self, rejection: Rejection) -> None:
        return

    def on_skipped(self, message_id: str, reason: str) -> None:
        return

    def on_attempt(
        self, request: PlannedRequest, reply: Reply, outcome: str, attempts: int
    ) -> None:
        return

    def on_parked(self, request: PlannedRequest, due_ms: int, attempts: int, reason: str) -> None:
        return

    def on_dead_lettered(self, letter: DeadLetter) -> None:
        return

    def flush(self) -> None:
        return


class GuardedObserver:
    """Wraps an observer so that a failure in it can never stop or repeat a delivery.

    Metrics and traces are worth less than the events: an observer that raises is logged (once a
    minute at most) and otherwise ignored.
    """

    def __init__(self, inner: DeliveryObserver) -> None:
        self._inner = inner
        self._last_logged = 0.0

    def _guard(self, name: str, *args: Any) -> None:
        try:
            getattr(self._inner, name)(*args)
        except Exception:
            self._failed(name)

    def _failed(self, name: str) -> None:
        """Log the exception being handled (once a minute at most)."""
        now = time.monotonic()
        if now - self._last_logged > 60:
            self._last_logged = now
            logger.exception("delivery observer failed in %s; delivery goes on", name)

    def on_mapped(self, mapped: Sequence[Mapped]) -> None:
        self._guard("on_mapped", mapped)

    def on_rejected(self, rejection: Rejection) -> None:
        self._guard("on_rejected", rejection)

    def on_skipped(self, message_id: str, reason: str) -> None:
        self._guard("on_skipped", message_id, reason)

    def on_attempt(
        self, request: PlannedRequest, reply: Reply, outcome: str, attempts: int
    ) -> None:
        self._guard("on_attempt", request, reply, outcome, attempts)

    def on_parked(self, request: PlannedRequest, due_ms: int, attempts: int, reason: str) -> None:
        self._guard("on_parked", request, due_ms, attempts, reason)

    def on_dead_lettered(self, letter: DeadLetter) -> None:
        self._guard("on_dead_lettered", letter)

    def flush(self) -> None:
        self._guard("flush")

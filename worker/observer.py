"""Hooks the drain loop calls as calls move along, for metrics and event traces.

The drain loop calls these at each step and `flush()` after each commit; an observer buffers
what it learns and writes it out in `flush()`. Observers never decide anything about delivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from worker.batching import PlannedRequest
from worker.dlq import DeadLetter
from worker.mapping import Call, Rejection
from worker.pushwoosh import Reply


class DeliveryObserver(Protocol):
    def on_mapped(
        self, event: dict[str, Any], entry_id: str, src: str, calls: Sequence[Call]
    ) -> None:
        """An event was read from its stream and matched these calls (maybe none)."""

    def on_rejected(self, rejection: Rejection) -> None:
        """A mapping could not turn an event into a valid call."""

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
    def on_mapped(
        self, event: dict[str, Any], entry_id: str, src: str, calls: Sequence[Call]
    ) -> None:
        return

    def on_rejected(self, rejection: Rejection) -> None:
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

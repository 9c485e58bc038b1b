"""When each in-flight event was accepted, so a delivery can tell how late it is.

A worker learns an event's acceptance time when it reads it (the stream entry's id is the time
Redis stored it, in ms) and forgets it once every call made from it was delivered or
dead-lettered. Bounded: past `max_events` the oldest are forgotten (a call retried by another
process is then simply not measured here).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

DEFAULT_MAX_EVENTS = 100_000


class AcceptedTimes:
    def __init__(self, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        self._max_events = max_events
        self._lock = threading.Lock()
        # messageId -> [accepted ms, calls not yet settled]
        self._open: dict[str, list[int]] = {}

    def __len__(self) -> int:
        return len(self._open)

    def note(self, message_id: str, accepted_ms: int, calls: int) -> None:
        if calls <= 0:
            return
        with self._lock:
            self._open[message_id] = [accepted_ms, calls]
            while len(self._open) > self._max_events:
                del self._open[next(iter(self._open))]

    def note_many(self, events: Iterable[tuple[str, int, int]]) -> None:
        """`note` for each (message id, accepted ms, calls), under one lock."""
        with self._lock:
            opened, max_events = self._open, self._max_events
            for message_id, accepted_ms, calls in events:
                if calls > 0:
                    opened[message_id] = [accepted_ms, calls]
                    while len(opened) > max_events:
                        del opened[next(iter(opened))]

    def settle(self, message_ids: Iterable[str]) -> list[int]:
        """One call of each event is done; the acceptance times of those known."""
        found = []
        with self._lock:
            for message_id in message_ids:
                entry = self._open.get(message_id)
                if entry is None:
                    continue
                found.append(entry[0])
                entry[1] -= 1
                if entry[1] <= 0:
                    del self._open[message_id]
        return found

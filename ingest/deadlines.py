"""Deadlines on waits for a client, kept by one sweeping timer per process instead of a timer each.

A request's head must arrive within `keepalive` s of the connection or of the previous answer
(ingest/server.py), its body within INGEST_BODY_TIMEOUT_S of the head (ingest/handler.py). Almost
every head and body is in microseconds after the wait starts, so a timer per wait (armed, then
cancelled: 2 to 3.5 µs with uvloop, twice per request) is spent for nothing. Instead each wait
registers its key and its deadline in a dict; a timer sweeps the dict every SWEEP_S while it
holds anything, and expires the keys past their deadline. A deadline is thus kept to within
SWEEP_S. Used from the loop's thread only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final, Generic, TypeVar

SWEEP_S: Final = 0.25

K = TypeVar("K")


class SweptDeadlines(Generic[K]):
    """Keys with a deadline; `expire(key)` is called (once) for a key whose deadline passed."""

    def __init__(
        self,
        timeout_s: float,
        expire: Callable[[K], None],
        *,
        sweep_s: float = SWEEP_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_s = timeout_s
        self._expire = expire
        self._sweep_s = sweep_s
        self._clock = clock
        self._due: dict[K, float] = {}
        self._sweeping: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._due)

    def start(self, key: K, loop: asyncio.AbstractEventLoop) -> None:
        """The wait of `key` starts: it expires unless stopped within timeout_s from now."""
        self._due[key] = self._clock() + self.timeout_s
        if self._sweeping is not loop:
            self._sweeping = loop
            loop.call_later(self._sweep_s, self._sweep, loop)

    def stop(self, key: K) -> None:
        self._due.pop(key, None)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = self._clock()
        for key, due in list(self._due.items()):
            if due <= now:
                del self._due[key]
                self._expire(key)
        if self._due and not loop.is_closed():
            loop.call_later(self._sweep_s, self._sweep, loop)
        else:
            self._sweeping = None


class BodyDeadlines:
    """Reads of request bodies, by task: a task past its deadline is cancelled, and `stop`
    tells it so (its read then answers 408)."""

    def __init__(
        self,
        timeout_s: float,
        *,
        sweep_s: float = SWEEP_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_s = timeout_s
        self._expired: set[asyncio.Task[object]] = set()
        self._waits = SweptDeadlines(timeout_s, self._cancel, sweep_s=sweep_s, clock=clock)

    def start(self, task: asyncio.Task[object], loop: asyncio.AbstractEventLoop) -> None:
        """`task` starts reading a body: it must have it within timeout_s from now."""
        self._waits.start(task, loop)

    def stop(self, task: asyncio.Task[object]) -> bool:
        """`task` is done reading; True when its deadline passed (it was cancelled for that)."""
        self._waits.stop(task)
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def _cancel(self, task: asyncio.Task[object]) -> None:
        self._expired.add(task)
        task.cancel()

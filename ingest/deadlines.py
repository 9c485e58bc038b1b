"""The body deadline of every request reading its body, kept by one sweeping timer per process.

A body must arrive within INGEST_BODY_TIMEOUT_S of the headers. Almost every body is already in
when the app starts reading it, so a timer per request (armed, then cancelled microseconds
later: 2.3 µs with uvloop) is spent for nothing. Instead each read registers its task and its
deadline in a dict; a timer sweeps the dict every SWEEP_S while it holds anything, and cancels
the tasks past their deadline, which then answer 408. A deadline is thus kept to within
SWEEP_S. Used from the loop's thread only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final

SWEEP_S: Final = 0.25


class BodyDeadlines:
    def __init__(
        self,
        timeout_s: float,
        *,
        sweep_s: float = SWEEP_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_s = timeout_s
        self._sweep_s = sweep_s
        self._clock = clock
        self._due: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._sweeping: asyncio.AbstractEventLoop | None = None

    def start(self, task: asyncio.Task[object], loop: asyncio.AbstractEventLoop) -> None:
        """`task` starts reading a body: it must have it within timeout_s from now."""
        self._due[task] = self._clock() + self.timeout_s
        if self._sweeping is not loop:
            self._sweeping = loop
            loop.call_later(self._sweep_s, self._sweep, loop)

    def stop(self, task: asyncio.Task[object]) -> bool:
        """`task` is done reading; True when its deadline passed (it was cancelled for that)."""
        self._due.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = self._clock()
        for task, due in list(self._due.items()):
            if due <= now:
                del self._due[task]
                self._expired.add(task)
                task.cancel()
        if self._due and not loop.is_closed():
            loop.call_later(self._sweep_s, self._sweep, loop)
        else:
            self._sweeping = None

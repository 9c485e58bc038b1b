"""Hard deadlines for blocking socket work: one watchdog thread per process.

A socket timeout bounds each read, not the whole exchange: a server that trickles its reply a
byte at a time never trips one and can hold a request open for ever. `Watchdog.guard(deadline,
on_expiry)` runs `on_expiry` (which shuts the socket down, waking the blocked read) if the
guarded block is still running at the deadline. One thread serves every guard of the process,
so a guard costs a heap push and a pop, not a thread. The thread is woken only when a new
deadline comes before the one it waits for: sends with later deadlines (the usual case, one
per request) do not wake it, and what ended in time is dropped from the heap as guards are
added, so it holds about as many entries as blocks are running.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator


class Watchdog:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        # The deadline the thread sleeps until; None while it waits for a first guard.
        self._wakes_at: float | None = None

    @contextlib.contextmanager
    def guard(self, deadline: float, on_expiry: Callable[[], None]) -> Iterator[None]:
        """Call on_expiry at `deadline` (on the watchdog's clock) unless the block ended first.

        on_expiry never runs after the block has ended, so it may act on resources (a pooled
        connection) that the next user of them would otherwise find broken.
        """
        lock = threading.Lock()
        ended = False

        def fire() -> None:
            with lock:
                if not ended:
                    on_expiry()

        handle = self._add(deadline, fire)
        try:
            yield
        finally:
            with lock:
                ended = True
            with self._cond:
                self._cancelled.add(handle)

    def _add(self, deadline: float, on_expiry: Callable[[], None]) -> int:
        with self._cond:
            self._drop_ended()
            handle = next(self._ids)
            heapq.heappush(self._heap, (deadline, handle, on_expiry))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="deadlines", daemon=True)
                self._thread.start()
            if self._wakes_at is None or deadline < self._wakes_at:
                self._cond.notify()  # it sleeps past this deadline (or for ever): wake it
            return handle

    def _drop_ended(self) -> None:
        """Forget the earliest guards whose blocks have ended (call with the lock held)."""
        heap, cancelled = self._heap, self._cancelled
        while heap and heap[0][1] in cancelled:
            cancelled.discard(heapq.heappop(heap)[1])

    def _run(self) -> None:
        while True:
            with self._cond:
                self._drop_ended()
                if not self._heap:
                    self._wakes_at = None
                    self._cond.wait()
                    continue
                deadline, _, on_expiry = self._heap[0]
                wait_s = deadline - self._clock()
                if wait_s > 0:
                    self._wakes_at = deadline
                    self._cond.wait(wait_s)
                    continue
                heapq.heappop(self._heap)
            with contextlib.suppress(Exception):  # the socket may be closed already
                on_expiry()


WATCHDOG = Watchdog()

"""A background writer to Redis for what processes buffer: event history, the last error.

Writers (`PipelineWriter`) buffer in memory; a daemon thread asks each for its batch about once
a second (sooner when woken) and writes them all in one pipeline, so the delivery path never
waits on these writes. A batch that cannot be written (Redis away) goes back to its writer and
out with the next flush. A forked child starts afresh: it never writes what its parent buffered.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Any

import redis

logger = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 1.0


class PipelineWriter:
    """Something that writes its own buffered data in the flusher's pipeline."""

    def take(self) -> Any:
        """Return (and forget) what to write; falsy when there is nothing."""
        raise NotImplementedError

    def write(self, pipe: Any, batch: Any) -> int:
        """Queue commands on pipe; return how many replies they produce."""
        raise NotImplementedError

    def restore(self, batch: Any) -> None:
        """The write failed: keep the batch for the next flush (within bounds)."""

    def written(self, replies: list[Any]) -> None:
        """The write went through; replies are those of the commands queued in `write`."""


class Flusher:
    """Writes its writers' batches to Redis from a daemon thread, started on first use."""

    def __init__(self, client: redis.Redis, *, interval_s: float = FLUSH_INTERVAL_S) -> None:
        self._client = client
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._writers: list[PipelineWriter] = []
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._failures = 0
        atexit.register(self.flush_at_exit)

    def add_writer(self, writer: PipelineWriter) -> None:
        with self._lock:
            self._writers.append(writer)
            self._ensure_started()

    def wake(self) -> None:
        """Ask the thread to write now instead of at the next tick."""
        with self._lock:
            self._ensure_started()
        self._wake.set()

    def _ensure_started(self) -> None:
        """Start the thread in this process (called with the lock held)."""
        if self._pid != os.getpid():  # a forked child: the parent's thread is not ours
            self._pid = os.getpid()
            self._thread = None
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="pushwoosh-flush", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the thread must outlive anything a flush meets
                logger.exception("telemetry: flush failed")

    def flush(self) -> None:
        """Write every writer's batch now, in one round trip."""
        if self._pid != os.getpid():
            return
        with self._lock:
            writers = list(self._writers)
        batches = [(writer, writer.take()) for writer in writers]
        batches = [(writer, batch) for writer, batch in batches if batch]
        if not batches:
            return
        pipe = self._client.pipeline(transaction=False)
        calls = [writer.write(pipe, batch) for writer, batch in batches]
        try:
            # A failed command (a key of the wrong type) must not undo or repeat the others.
            results = pipe.execute(raise_on_error=False)
        except redis.RedisError as ex:
            self._failures += 1
            if self._failures in (1, 10) or self._failures % 100 == 0:
                logger.warning(
                    "telemetry: cannot write to Redis (%d times): %s", self._failures, ex
                )
            for writer, batch in batches:
                writer.restore(batch)
            return
        self._failures = 0
        position = 0
        for (writer, _), count in zip(batches, calls, strict=True):
            writer.written(results[position : position + count])
            position += count

    def flush_at_exit(self) -> None:
        try:
            self.flush()
        except Exception:  # at exit, Redis may be gone already
            logger.debug("telemetry: final flush failed", exc_info=True)

"""The gunicorn worker ingest runs on: uvicorn's, on uvloop and httptools, with deadlines.

gunicorn stays the process manager (worker processes, restarts, the master's metrics
listener); each worker serves the ASGI app (ingest/app.py) on one event loop. Measured with the
benchmark's load of single-event requests, CPU of the serving process tree per request, in
round trips of the benchmark's unit (bench/cost.py): an app that only reads the body and
answers 200, 56 under gunicorn's gevent worker, 15 under this one.

uvicorn bounds the wait between requests on a keep-alive connection, but not a request's line
and headers: a client sending a byte every few seconds would hold its connection for ever. This
worker's protocol gives them a deadline, `keepalive` seconds from the connection or from the
previous answer, and a size limit; a connection past either is closed. The body has its own
deadline, INGEST_BODY_TIMEOUT_S from the headers, which the handler enforces (ingest/handler.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any, Final, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker

from ingest.deadlines import SweptDeadlines

# How often a worker tells gunicorn's master it is alive (and checks the master still is).
NOTIFY_S: Final = 5.0
# A request's line and headers together; Segment's senders send well under 2 KB.
MAX_HEAD_BYTES: Final = 64 * 1024
_HEAD_TOO_LARGE_BODY: Final = (
    b'{"code": "headers_too_large", "message": "the request line and headers are over %d bytes"}'
    % MAX_HEAD_BYTES
)
_HEAD_TOO_LARGE: Final = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
    % (len(_HEAD_TOO_LARGE_BODY), _HEAD_TOO_LARGE_BODY)
)


class IngestProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, with a deadline and a size limit on every request's head.

    The deadline runs from the connection, or from the previous answer, to the end of the
    head; it replaces uvicorn's keep-alive timer, which bounded only the wait for the first
    byte (an idle connection closes at the same moment). Deadlines are kept by one sweep per
    process (ingest/deadlines.py), not a timer per request.
    """

    _head_bytes = 0

    _out: _HeadWithBody
    _heads: SweptDeadlines[IngestProtocol]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._out = _HeadWithBody(transport)
        self._heads = _head_deadlines(self.loop, self.timeout_keep_alive)
        super().connection_made(cast(asyncio.Transport, self._out))
        self._await_head()

    def data_received(self, data: bytes) -> None:
        waiting = self._head_bytes >= 0
        super().data_received(data)
        if waiting and self._head_bytes >= 0:  # still in the head after these bytes
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._stop_waiting()
                if not self.transport.is_closing():
                    self.transport.write(_HEAD_TOO_LARGE)
                    self.transport.close()

    def on_headers_complete(self) -> None:
        self._stop_waiting()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        """uvicorn's, with the head deadline where uvicorn armed its keep-alive timer."""
        self._out.answered()
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:  # a pipelined request already has its head in: no deadline for it
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        self._head_bytes = 0
        self._heads.start(self, self.loop)

    def _stop_waiting(self) -> None:
        self._head_bytes = -1  # not in a head
        self._heads.stop(self)

    def head_too_slow(self) -> None:
        self._head_bytes = -1
        if not self.transport.is_closing():
            self.transport.close()


_heads_by_loop: dict[asyncio.AbstractEventLoop, SweptDeadlines[IngestProtocol]] = {}


def _head_deadlines(
    loop: asyncio.AbstractEventLoop, timeout_s: float
) -> SweptDeadlines[IngestProtocol]:
    """The head deadlines of the connections served on `loop` (one per worker process)."""
    heads = _heads_by_loop.get(loop)
    if heads is None or heads.timeout_s != timeout_s:
        for gone in [other for other in _heads_by_loop if other.is_closed()]:
            del _heads_by_loop[gone]
        heads = _heads_by_loop[loop] = SweptDeadlines(timeout_s, IngestProtocol.head_too_slow)
    return heads


class _HeadWithBody:
    """A client's transport on which an answer's head waits for its body, to leave with it.

    uvicorn writes an answer's head when the app starts the answer, and the body when the app
    sends it: two `send` calls on the socket where ingest's answers are one short piece each.
    The first write of each answer that is a head (a status line other than 100 Continue,
    ending with the blank line) is held until the next write, or until the answer is complete
    or the connection closes, so nothing ever waits longer than the answer it belongs to.
    """

    __slots__ = ("_expect_head", "_held", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held = b""
        self._expect_head = True

    def write(self, data: bytes) -> None:
        if self._held:
            data, self._held = self._held + data, b""
        elif self._expect_head and _is_head(data):
            self._expect_head = False
            self._held = bytes(data)
            return
        self._transport.write(data)

    def answered(self) -> None:
        """The answer is complete: send what is held; the next write may be a head again."""
        self._send_held()
        self._expect_head = True

    def close(self) -> None:
        self._send_held()
        self._transport.close()

    def abort(self) -> None:
        self._held = b""
        self._transport.abort()

    def _send_held(self) -> None:
        if self._held:
            held, self._held = self._held, b""
            if not self._transport.is_closing():
                self._transport.write(held)

    # What uvicorn calls on every request, forwarded directly: through __getattr__ each call
    # first failed an ordinary lookup, building an AttributeError (about 0.45 µs a call).
    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _is_head(data: bytes) -> bool:
    return (
        data.startswith(b"HTTP/1.1 ")
        and not data.startswith(b"HTTP/1.1 1")
        and (data.endswith(b"\r\n\r\n"))
    )


class IngestWorker(UvicornWorker):  # type: ignore[misc]
    """gunicorn's worker for ingest: `worker_class` in ingest/gunicorn_conf.py."""

    CONFIG_KWARGS: dict[str, Any] = {
        "loop": "uvloop",
        "http": IngestProtocol,
        "lifespan": "off",
        "server_header": False,
        # Ingest never reads the client's address; behind a proxy, the access log shows the
        # proxy's, as gunicorn's did.
        "proxy_headers": False,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Up to GUNICORN_WORKER_CONNECTIONS requests at once per process; beyond, uvicorn
        # answers 503, which every Segment sender retries.
        self.config.limit_concurrency = self.cfg.worker_connections
        # A worker ends its own graceful shutdown as gunicorn's master would (uvicorn waits
        # for every open request for ever otherwise), and tells the master it is alive every
        # few seconds, which is also when it notices a master gone.
        self.config.timeout_graceful_shutdown = self.cfg.graceful_timeout
        self.config.timeout_notify = min(NOTIFY_S, self.timeout / 2)
        # An access line per request only when GUNICORN_ACCESS_LOG asks for them: uvicorn
        # writes one whenever its access logger has a handler.
        if not (self.cfg.accesslog and self.log.access_log.isEnabledFor(logging.INFO)):
            logging.getLogger("uvicorn.access").handlers = []

    async def callback_notify(self) -> None:
        """Tell the master this worker is alive; shut down when the master is gone.

        gunicorn's own workers stop when their parent changes; uvicorn's worker does not, so a
        worker whose master was killed outright would serve, and hold the metrics port it
        inherited, for ever. It now stops within NOTIFY_S, gracefully (uvicorn's SIGTERM).
        """
        if self.ppid != os.getppid():
            self.log.info("Parent changed, shutting down: %s", self)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        await super().callback_notify()

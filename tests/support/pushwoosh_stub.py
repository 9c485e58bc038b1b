"""A real HTTP server on 127.0.0.1 standing in for Pushwoosh: records requests, answers as told.

Tests script replies with `stub.respond_with(...)` (a queue of canned replies, then the default),
`stub.set_default(...)`, or `stub.set_handler(fn)` for per-request decisions (e.g. reject a batch
that contains a given event). Thread-safe; `stub.requests` is the list of recorded requests.
"""

from __future__ import annotations

import dataclasses
import json
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclasses.dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float
    status: int = 0  # what the stub answered
    client_port: int = 0  # tells connections apart (keep-alive reuse)
    finished_at: float | None = None  # when the reply was written out (or the client left)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclasses.dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict[str, Any] = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    delay_s: float = 0.0
    # Write the reply one byte every trickle_s seconds (headers included): a server that keeps
    # a request alive without ever tripping a socket read timeout.
    trickle_s: float = 0.0


Handler = Callable[[RecordedRequest], Reply | None]


def _client_left(connection: socket.socket, wait_s: float) -> bool:
    """Wait up to wait_s; True as soon as the client has closed (or cut) its side."""
    readable, _, _ = select.select([connection], [], [], wait_s)
    if not readable:
        return False
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _trickle(handler: BaseHTTPRequestHandler, status: int, payload: bytes, every_s: float) -> None:
    """Write a whole reply, headers included, a byte every `every_s`, until the client leaves."""
    head = f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(payload)}\r\n\r\n"
    for byte in head.encode() + payload:
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()
        if _client_left(handler.connection, every_s):
            return


class PushwooshStub:
    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.abandoned = 0  # requests whose client left before sending the whole body
        self._lock = threading.Lock()
        self._queued: deque[Reply] = deque()
        self._default = Reply()
        self._handler: Handler | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting -------------------------------------------------------------------------
    def respond_with(self, *replies: Reply) -> None:
        with self._lock:
            self._queued.extend(replies)

    def set_default(self, reply: Reply) -> None:
        with self._lock:
            self._default = reply

    def set_handler(self, handler: Handler | None) -> None:
        with self._lock:
            self._handler = handler

    def _reply_for(self, request: RecordedRequest) -> Reply:
        with self._lock:
            handler = self._handler
            queued = self._queued.popleft() if self._queued else None
            default = self._default
        if handler is not None:
            decided = handler(request)
            if decided is not None:
                return decided
        return queued or default

    # -- reading ---------------------------------------------------------------------------
    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self.requests)

    def delivered_message_count(self) -> int:
        return sum(len(r.json.get("events", [None])) for r in self.snapshot() if r.body)

    def wait_for(
        self, predicate: Callable[[list[RecordedRequest]], bool], timeout_s: float = 30.0
    ) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.snapshot()
            if predicate(got):
                return got
            time.sleep(0.02)
        got = self.snapshot()
        raise AssertionError(
            f"stub: condition not met in {timeout_s}s; {len(got)} requests recorded"
        )

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> PushwooshStub:
        stub = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if len(body) < length:
                    # The client left mid-request (a worker killed while sending): like any
                    # HTTP server, nothing is processed, so nothing is recorded as received.
                    with stub._lock:
                        stub.abandoned += 1
                    self.close_connection = True
                    return
                recorded = RecordedRequest(
                    method=self.command,
                    path=self.path,
                    headers={k: v for k, v in self.headers.items()},
                    body=body,
                    received_at=time.time(),
                    client_port=int(self.client_address[1]),
                )
                reply = stub._reply_for(recorded)
                recorded.status = reply.status
                with stub._lock:
                    stub.requests.append(recorded)  # at receipt: a slow reply was still received
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                payload = reply.body
                if isinstance(payload, dict):
                    payload = json.dumps(payload)
                if isinstance(payload, str):
                    payload = payload.encode()
                try:
                    if reply.trickle_s:
                        _trickle(self, reply.status, payload, reply.trickle_s)
                    else:
                        self.send_response(reply.status)
                        for key, value in reply.headers.items():
                            self.send_header(key, value)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    self.close_connection = True
                finally:
                    recorded.finished_at = time.time()

            do_POST = _handle
            do_GET = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
